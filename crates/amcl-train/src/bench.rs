//! `bench`: training-step throughput and peak memory of a method and backbone on a device.

use std::time::Instant;

use amcl_core::prelude::*;
use anyhow::{Result, bail};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::device::{self, DeviceChoice};
use crate::optim::{self, OptimizerKind};

/// Arguments of `bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Method name, as for `pretrain`.
    #[arg(long, default_value = "amcl-simclr")]
    pub method: String,
    /// Backbone: small-cnn or resnet18.
    #[arg(long, default_value = "small-cnn")]
    pub backbone: String,
    /// Width of the small CNN.
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Projection heads C.
    #[arg(long, default_value_t = 3)]
    pub heads: usize,
    /// Projection dimension d.
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Images per batch (two views each).
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Augmentations applied in each step (part of the measured work).
    #[arg(long, default_value = "abcde")]
    pub augs: String,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed warm-up steps (kernel compilation, allocator growth).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Print JSON instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

/// Runs `bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.batch_size < 2 || args.steps == 0 {
        bail!("--batch-size must be at least 2 and --steps at least 1");
    }
    let kind: MethodKind = args.method.parse()?;
    let backbone: BackboneKind = args.backbone.parse()?;
    let augs: AugmentationSet = args.augs.parse()?;
    let selected = device::select(args.device)?;
    let device = selected.device.clone().autodiff();
    let config = kind.model_config(
        AmclModelConfig::new()
            .with_backbone(backbone)
            .with_width(args.width)
            .with_heads(args.heads)
            .with_dim(args.dim),
    );
    let mut model = config.init(&device)?;
    let mut method = Method::new(kind, MethodConfig::new().with_moco_queue(1024));
    let mut optimizer = optim::build(OptimizerKind::Sgd, 5e-4);
    let mut augmenter = Augmenter::new(augs, AugmentConfig::new(), 0);
    let size = config.image_size;
    let images = Tensor::<4>::random(
        [args.batch_size, 3, size, size],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        &device,
    );
    let mut started = Instant::now();
    for step in 0..args.warmup + args.steps {
        if step == args.warmup {
            started = Instant::now();
        }
        let (a, b) = augmenter.two_views(images.clone())?;
        let out = method.loss(&model, a, b)?;
        // Reading the loss each step, as `pretrain` does, waits for the step's queued work.
        let loss = out.loss.clone().into_scalar::<f32>();
        if !loss.is_finite() {
            bail!("non-finite loss at bench step {step}");
        }
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        model = optimizer.step(1e-3, model, grads);
        method.after_step(&model);
    }
    let seconds = started.elapsed().as_secs_f64();
    let images_per_s = (args.steps * args.batch_size) as f64 / seconds;
    let peak = device::peak_memory_bytes(&selected.device);
    let value = serde_json::json!({
        "method": kind.name(),
        "backbone": backbone.name(),
        "batch_size": args.batch_size,
        "images_per_s": images_per_s,
        "seconds_per_step": seconds / args.steps as f64,
        "peak_memory_bytes": peak,
        "device": selected.name,
        "steps": args.steps,
        "params": model.num_params(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "{} / {} / batch {} on {}: {:.1} images/s ({:.3} s/step), peak memory {:.1} MiB",
            kind.name(),
            backbone.name(),
            args.batch_size,
            selected.name,
            images_per_s,
            seconds / args.steps as f64,
            peak as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}
