//! `amcl-train score A [B]`: how each head and its adaptive temperature score an image pair.

use std::path::{Path, PathBuf};

use amcl_core::augment::{AugmentationSet, Augmenter, Strengths};
use amcl_core::model::TemperatureForm;
use amcl_core::score::{PairScore, score_pair};
use amcl_core::weights;
use anyhow::{Context, Result};

use crate::device::{self, DeviceChoice};
use burn::prelude::*;

/// Arguments of `score`.
#[derive(clap::Args, Debug, Clone)]
pub struct ScoreArgs {
    /// First image (PNG or JPEG).
    pub image_a: PathBuf,
    /// Second image; without it, the pair is two augmented views of the first (needs --augs).
    pub image_b: Option<PathBuf>,
    /// Weights file written by `pretrain`.
    #[arg(long, default_value = "runs/latest/model.bpk")]
    pub weights: PathBuf,
    /// Augment each image with these letters (a-e) before scoring.
    #[arg(long)]
    pub augs: Option<String>,
    /// Seed of the augmentations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Smallest crop area of augmentation a, a fraction in (0, 1] (the demo's explorer).
    #[arg(long, default_value_t = Strengths::default().crop_scale_min)]
    pub crop_scale: f32,
    /// Colour-jitter strength of augmentation d, in [0, 1].
    #[arg(long, default_value_t = Strengths::default().jitter_strength)]
    pub jitter_strength: f32,
    /// Largest blur sigma of augmentation b, in [0.1, 5].
    #[arg(long, default_value_t = Strengths::default().blur_sigma_max)]
    pub blur_max: f32,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Reads an image file as a `[1, 3, size, size]` tensor in [0, 1] (bilinear resize).
pub fn load_image(path: &Path, size: usize, device: &Device) -> Result<Tensor<4>> {
    let pixels = crate::data::folder::decode(path, size)?;
    let values: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    Ok(Tensor::from_data(TensorData::new(values, [1, 3, size, size]), device))
}

/// Runs `score`.
pub fn run(args: &ScoreArgs) -> Result<()> {
    let selected = device::select(args.device)?;
    let device = selected.device.clone();
    let (model, manifest) = weights::load(&args.weights, &device).context("loading --weights")?;
    let size = manifest.model.image_size;
    let a = load_image(&args.image_a, size, &device)?;
    let b = match &args.image_b {
        Some(path) => load_image(path, size, &device)?,
        None if args.augs.is_some() => a.clone(),
        None => anyhow::bail!("give a second image, or --augs to score two views of the first"),
    };
    let (a, b) = match &args.augs {
        Some(letters) => {
            let set: AugmentationSet = letters.parse().context("--augs")?;
            let strengths = Strengths {
                crop_scale_min: args.crop_scale,
                jitter_strength: args.jitter_strength,
                blur_sigma_max: args.blur_max,
            };
            let config =
                strengths.config().context("--crop-scale, --jitter-strength, --blur-max")?;
            let mut augmenter = Augmenter::new(set, config, args.seed);
            (augmenter.view(a)?, augmenter.view(b)?)
        }
        None => (a, b),
    };
    let score = score_pair(&model, a, b, manifest.beta)?;
    let form = manifest.model.temperature_form;
    if args.json {
        print_json(&score, &selected.name, form)
    } else {
        print_table(&score, &manifest.method, &selected.name, form);
        Ok(())
    }
}

fn print_json(score: &PairScore, backend: &str, form: TemperatureForm) -> Result<()> {
    let value = serde_json::json!({
        "backend": backend,
        "temperature_form": form,
        "heads": score.heads,
        "amcl_score": score.amcl_score,
    });
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

fn print_table(score: &PairScore, method: &str, backend: &str, form: TemperatureForm) {
    println!("model: {method} (temperature network: {form}), backend: {backend}");
    println!(
        "{:>4} {:>10} {:>10} {:>12} {:>12}",
        "head", "cos sim", "tau+", "s/tau+", "beta*Omega"
    );
    for h in &score.heads {
        println!(
            "{:>4} {:>10.4} {:>10.4} {:>12.4} {:>12.4}",
            h.head, h.similarity, h.tau_pos, h.scaled, h.omega
        );
    }
    println!("AMCL score (sum of s/tau+ - beta*Omega): {:.4}", score.amcl_score);
}
