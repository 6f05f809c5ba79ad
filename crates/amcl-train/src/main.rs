//! `amcl-train`: pretrain an AMCL model from the command line.
//!
//! This first version trains on the built-in synthetic dataset on the CPU (burn's flex backend),
//! reports per-epoch progress with per-head temperatures, evaluates with the kNN monitor and
//! writes a run folder (config.json, metrics.jsonl, model.bpk). Real-data loaders, eval/export/
//! score/bench subcommands and GPU devices are tracked in the trainer issue.

mod data;
mod eval;
mod score;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use amcl_core::prelude::*;
use amcl_core::rng::Rng;
use amcl_core::weights;
use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, SgdConfig, momentum::MomentumConfig};
use burn::prelude::*;
use clap::{Parser, Subcommand, ValueEnum};

use data::Dataset;

#[derive(Parser, Debug)]
#[command(
    name = "amcl-train",
    version,
    about = "Pretrain AMCL models (Adaptive Multi-head Contrastive Learning)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Pretrain a model (the default command).
    Pretrain(PretrainArgs),
    /// Score an image pair with trained weights: per head cos sim, tau+, s/tau+, beta*Omega.
    Score(score::ScoreArgs),
}

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
struct PretrainArgs {
    /// Method: simclr, amcl-simclr, moco, amcl-moco, simsiam, amcl-simsiam, barlow, amcl-barlow.
    #[arg(long, default_value = "amcl-simclr")]
    method: String,
    /// Backbone: small-cnn or resnet18.
    #[arg(long, default_value = "small-cnn")]
    backbone: String,
    /// Width of the small CNN (features = 8 x width).
    #[arg(long, default_value_t = 16)]
    width: usize,
    /// Number of projection heads C.
    #[arg(long, default_value_t = 3)]
    heads: usize,
    /// Projection dimension d.
    #[arg(long, default_value_t = 64)]
    dim: usize,
    /// Augmentations, letters a-e (a crop, b blur, c grayscale, d colour jitter, e flip).
    #[arg(long, default_value = "abcde")]
    augs: String,
    /// Epochs over the training set.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Images per batch (two views each).
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Peak learning rate (after warm-up, then cosine decay).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Optimiser.
    #[arg(long, value_enum, default_value_t = Optimizer::Adam)]
    optimizer: Optimizer,
    /// Weight of the Omega regulariser.
    #[arg(long, default_value_t = 0.1)]
    beta: f32,
    /// Negative reduction of the AMCL objective: max (the paper's hardest negative) or
    /// logsumexp (soft form over all negatives). The default is the soft form: in our runs the
    /// hard form with beta = 0.1 drove all views together (loss ~0, kNN at chance).
    #[arg(long, value_enum, default_value_t = Reduction::Logsumexp)]
    reduction: Reduction,
    /// Training images in the built-in synthetic dataset.
    #[arg(long, default_value_t = 4000)]
    train_size: usize,
    /// Test images in the built-in synthetic dataset.
    #[arg(long, default_value_t = 1000)]
    test_size: usize,
    /// Random seed (data order, augmentations, initial queue).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run folder for config.json, metrics.jsonl and model.bpk.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
}

#[derive(ValueEnum, Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Reduction {
    /// Hardest negative only (shared/AMCL.md, paper form).
    Max,
    /// Log-sum-exp over all negatives (soft form).
    Logsumexp,
}

#[derive(ValueEnum, Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Optimizer {
    /// SGD with momentum 0.9 and weight decay 5e-4.
    Sgd,
    /// Adam.
    Adam,
}

fn main() {
    let cli = Cli::parse();
    // No subcommand: `pretrain` with its defaults.
    let command = match cli.command {
        Some(command) => command,
        None => Cli::parse_from(["amcl-train", "pretrain"]).command.expect("pretrain parses"),
    };
    let result = match command {
        Command::Pretrain(args) => pretrain(&args),
        Command::Score(args) => score::run(&args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

/// Learning rate at `step` of `total`: linear warm-up over the first 10%, then cosine decay.
fn learning_rate(peak: f64, step: usize, total: usize) -> f64 {
    let warmup = (total / 10).max(1);
    if step < warmup {
        peak * (step + 1) as f64 / warmup as f64
    } else {
        let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
        peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

fn pretrain(args: &PretrainArgs) -> Result<()> {
    let kind: MethodKind = args.method.parse()?;
    let backbone: BackboneKind = args.backbone.parse()?;
    let augs: AugmentationSet = args.augs.parse().context("--augs")?;
    if args.batch_size < 2 {
        bail!("--batch-size must be at least 2, got {}", args.batch_size);
    }
    if args.train_size < args.batch_size {
        bail!(
            "--train-size ({}) must be at least --batch-size ({})",
            args.train_size,
            args.batch_size
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating run folder {}", args.out.display()))?;
    eprintln!("note: training on the built-in synthetic dataset (real-data loaders: see README)");
    eprintln!("device: cpu (flex)");

    let device = Device::flex().autodiff();
    let model_config = kind.model_config(
        AmclModelConfig::new()
            .with_backbone(backbone)
            .with_width(args.width)
            .with_heads(args.heads)
            .with_dim(args.dim),
    );
    let mut model = model_config.init(&device)?;
    let reduction = match args.reduction {
        Reduction::Max => NegativeReduction::Max,
        Reduction::Logsumexp => NegativeReduction::LogSumExp,
    };
    let method_config = MethodConfig::new()
        .with_beta(args.beta)
        .with_reduction(reduction)
        .with_seed(args.seed)
        .with_moco_queue(1024);
    let mut method = Method::new(kind, method_config);
    let mut augmenter = Augmenter::new(augs, AugmentConfig::new(), args.seed.wrapping_add(1));
    let train =
        Dataset::synthetic(args.train_size, model_config.image_size, args.seed.wrapping_add(2));
    let test =
        Dataset::synthetic(args.test_size, model_config.image_size, args.seed.wrapping_add(3));
    write_json(
        &args.out.join("config.json"),
        &serde_json::json!({"args": args, "model": model_config}),
    )?;

    let mut optim = match args.optimizer {
        Optimizer::Adam => AdamConfig::new().init(),
        Optimizer::Sgd => SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_momentum(0.9)))
            .with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(5e-4)))
            .init(),
    };
    let steps_per_epoch = args.train_size / args.batch_size;
    let total_steps = steps_per_epoch * args.epochs;
    let mut metrics =
        std::fs::File::create(args.out.join("metrics.jsonl")).context("metrics.jsonl")?;
    let mut order_rng = Rng::new(args.seed);
    let mut step = 0;
    let mut last_loss = f32::NAN;
    for epoch in 0..args.epochs {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order_rng.shuffle(&mut order);
        let mut epoch_loss = 0.0;
        let mut diagnostics = None;
        for (i, chunk) in order.chunks_exact(args.batch_size).enumerate() {
            let images = train.batch(chunk, &device);
            let (a, b) = augmenter.two_views(images)?;
            let out = method.loss(&model, a, b)?;
            let loss = out.loss.clone().into_scalar::<f32>();
            if !loss.is_finite() {
                let detail = out
                    .diagnostics
                    .read()
                    .iter()
                    .enumerate()
                    .map(|(c, h)| {
                        format!(
                            "head {c}: tau+ [{:.2e}, {:.2e}], tau- [{:.2e}, {:.2e}]",
                            h.tau_pos_min, h.tau_pos_max, h.tau_neg_min, h.tau_neg_max
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                bail!(
                    "non-finite loss {loss} at step {step} (epoch {epoch}); {detail}; last saved weights are kept in {}",
                    args.out.display()
                );
            }
            // Diagnostics stay on the device; only the last batch's are read, at the epoch end.
            diagnostics = Some(out.diagnostics);
            let grads = GradientsParams::from_grads(out.loss.backward(), &model);
            model = optim.step(learning_rate(args.lr, step, total_steps), model, grads);
            method.after_step(&model);
            epoch_loss += loss;
            step += 1;
            let done = i + 1;
            let rate = (done * args.batch_size) as f32 / started.elapsed().as_secs_f32();
            let eta = (total_steps - step) as f32 * args.batch_size as f32 / rate;
            eprint!(
                "\repoch {}/{} [{done}/{steps_per_epoch}] loss {loss:.4} {rate:.0} img/s ETA {eta:.0}s   ",
                epoch + 1,
                args.epochs
            );
        }
        last_loss = epoch_loss / steps_per_epoch as f32;
        let heads = diagnostics.map(|d| d.read()).unwrap_or_default();
        let taus: Vec<String> =
            heads.iter().map(|h| format!("{:.3}/{:.3}", h.tau_pos_mean, h.tau_neg_mean)).collect();
        eprintln!(
            "\repoch {}/{} loss {last_loss:.4} tau+/tau- per head [{}] ({:.1}s)                ",
            epoch + 1,
            args.epochs,
            taus.join(", "),
            started.elapsed().as_secs_f32()
        );
        let line = serde_json::json!({"epoch": epoch + 1, "step": step, "loss": last_loss, "heads": heads});
        writeln!(metrics, "{line}").context("metrics.jsonl")?;
        let manifest = Manifest::new(model_config.clone(), &kind.name(), args.beta);
        weights::save(&model.valid(), &manifest, &args.out.join("model.bpk"))?;
    }

    let plain = Device::flex();
    let eval_model = model.valid().to_device(&plain);
    let train_features = eval::embed(&eval_model, &train, 256, &plain);
    let test_features = eval::embed(&eval_model, &test, 256, &plain);
    let knn = eval::knn_top1(
        train_features,
        &train.labels,
        test_features,
        &test.labels,
        train.classes,
        200,
        0.1,
    )?;
    println!("kNN top-1 (k=200, t=0.1) on the synthetic test set: {:.2}%", knn * 100.0);
    let mut manifest = Manifest::new(model_config, &kind.name(), args.beta);
    manifest.training = serde_json::json!({"epochs": args.epochs, "final_loss": last_loss, "knn_top1": knn, "data": "synthetic"});
    weights::save(&eval_model, &manifest, &args.out.join("model.bpk"))?;
    write_json(&args.out.join("summary.json"), &manifest.training)?;
    println!("weights: {}", args.out.join("model.bpk").display());
    Ok(())
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    weights::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
