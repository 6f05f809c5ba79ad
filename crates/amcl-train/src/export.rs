//! `export`: the weights file the browser demo loads.
//!
//! The demo reads the same burnpack + manifest as every other command; export checks that the
//! file loads and rebuilds its architecture, writes it atomically where the demo looks for it,
//! and reports its download size (raw and gzipped). By default linear and convolution weights
//! are stored in half precision, which halves the download; loaders read them back as f32.

use std::io::Write;
use std::path::PathBuf;

use amcl_core::weights;
use anyhow::{Context, Result};
use burn::module::Module;
use burn::prelude::*;

/// Arguments of `export`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Weights written by `pretrain`.
    #[arg(long, default_value = "runs/latest/model.bpk")]
    pub weights: PathBuf,
    /// Where the demo loads weights from (the default is the file `trunk build` ships).
    #[arg(long, default_value = "web/model.bpk")]
    pub out: PathBuf,
    /// Storage of linear and convolution weights: f16 (half the download) or f32 (exact).
    #[arg(long, value_enum, default_value_t = ExportPrecision::F16)]
    pub precision: ExportPrecision,
}

/// `--precision`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportPrecision {
    F16,
    F32,
}

/// Runs `export`.
pub fn run(args: &ExportArgs) -> Result<()> {
    let device = Device::flex();
    let (model, manifest) = weights::load(&args.weights, &device)
        .with_context(|| format!("loading --weights {}", args.weights.display()))?;
    let precision = match args.precision {
        ExportPrecision::F16 => weights::Precision::F16,
        ExportPrecision::F32 => weights::Precision::F32,
    };
    let bytes = weights::to_bytes_with(&model, &manifest, precision)?;
    // The written file must load back into the same architecture.
    weights::from_bytes(&bytes, &device).context("the exported weights do not load back")?;
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    crate::files::write_atomic(&args.out, &bytes)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bytes)?;
    let gzipped = gz.finish()?.len();
    println!(
        "exported {} ({}, {} heads, {} parameters, {:?}) to {}: {:.1} KiB, {:.1} KiB gzipped",
        args.weights.display(),
        manifest.method,
        manifest.model.heads,
        model.num_params(),
        args.precision,
        args.out.display(),
        bytes.len() as f64 / 1024.0,
        gzipped as f64 / 1024.0
    );
    Ok(())
}
