//! The weight format: one burnpack file (burn's store) holding every parameter of the model
//! (backbone, heads, temperature networks) and, in its metadata under [`MANIFEST_KEY`], a JSON
//! [`Manifest`] describing the architecture, so that a loader can rebuild the model before
//! reading the tensors. The browser and the trainer read the same file.
//!
//! Linear and convolution weights may be stored in half precision ([`Precision::F16`], what
//! `amcl-train export` ships to the browser: half the download); loading always yields f32.

use burn::prelude::*;
use burn::tensor::Bytes;
use burn::tensor::DType;
use burn_store::{BurnpackStore, FloatCastAdapter, HalfPrecisionAdapter, ModuleSnapshot};
use serde::{Deserialize, Serialize};

use crate::error::{AmclError, Result};
use crate::model::{AmclModel, AmclModelConfig};

/// Metadata key of the manifest inside the burnpack file.
pub const MANIFEST_KEY: &str = "amcl_manifest";
/// Version of the manifest layout.
pub const FORMAT_VERSION: u32 = 1;

/// What a weights file is: everything needed to rebuild and interpret the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Architecture (backbone, C, d, normalisation, temperature range...).
    pub model: AmclModelConfig,
    /// Training method name (e.g. `amcl-simclr`).
    pub method: String,
    /// Omega weight beta used in training (and by pair scoring).
    pub beta: f32,
    /// Free-form training summary (epochs, final loss, eval accuracy...).
    #[serde(default)]
    pub training: serde_json::Value,
}

impl Manifest {
    /// A manifest for a model trained with `method`.
    pub fn new(model: AmclModelConfig, method: &str, beta: f32) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            model,
            method: method.to_string(),
            beta,
            training: serde_json::Value::Null,
        }
    }
}

/// How the float tensors of a weights file are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Every tensor as f32 (training checkpoints and run weights).
    #[default]
    F32,
    /// Linear and convolution weights and biases as f16; batch-norm statistics, whose running
    /// variance would underflow, stay f32.
    F16,
}

/// Serialises `model` and its manifest into burnpack bytes, every tensor in f32.
pub fn to_bytes(model: &AmclModel, manifest: &Manifest) -> Result<Vec<u8>> {
    to_bytes_with(model, manifest, Precision::F32)
}

/// Serialises `model` and its manifest into burnpack bytes at `precision`.
pub fn to_bytes_with(
    model: &AmclModel,
    manifest: &Manifest,
    precision: Precision,
) -> Result<Vec<u8>> {
    let json = serde_json::to_string(manifest)
        .map_err(|e| AmclError::Weights(format!("manifest: {e}")))?;
    let mut store = BurnpackStore::from_bytes(None).metadata(MANIFEST_KEY, json);
    if precision == Precision::F16 {
        store = store.with_to_adapter(HalfPrecisionAdapter::new());
    }
    model.save_into(&mut store).map_err(|e| AmclError::Weights(format!("saving: {e}")))?;
    let bytes = store.get_bytes().map_err(|e| AmclError::Weights(format!("saving: {e}")))?;
    Ok(bytes.to_vec())
}

/// Reads only the manifest of burnpack `bytes`.
pub fn read_manifest(bytes: &[u8]) -> Result<Manifest> {
    let reader =
        burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).map_err(|e| {
            AmclError::Weights(format!("not a readable burnpack file ({e}); is it truncated?"))
        })?;
    let json = reader.metadata().get(MANIFEST_KEY).ok_or_else(|| {
        AmclError::Weights(format!("no '{MANIFEST_KEY}' metadata: not an AMCL weights file"))
    })?;
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| AmclError::Weights(format!("manifest is not valid JSON: {e}")))?;
    refuse_removed_forms(&value)?;
    let manifest: Manifest = serde_json::from_value(value)
        .map_err(|e| AmclError::Weights(format!("manifest is not valid: {e}")))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(AmclError::Weights(format!(
            "format version {} is not supported (expected {FORMAT_VERSION})",
            manifest.format_version
        )));
    }
    Ok(manifest)
}

/// Refuses, by name, weights of the form this version no longer has: manifests written before
/// the authors' temperature network (no `temperature_form`) hold the earlier per-head
/// concatenated-pair networks phi_c([z_a ; z_b]) (and, for amcl-barlow, free-parameter Barlow
/// temperatures), removed when they were not shown to train better (docs/RESULTS.md).
fn refuse_removed_forms(manifest: &serde_json::Value) -> Result<()> {
    let form = manifest["model"]["temperature_form"].as_str().unwrap_or("concat");
    if form == "concat" {
        return Err(AmclError::Weights(
            "these weights have the earlier per-head temperature networks phi_c([z_a ; z_b]) \
             (temperature form \"concat\"); this version has only the authors' shared network \
             (\"dot\", docs/METHOD.md): retrain them"
                .into(),
        ));
    }
    Ok(())
}

/// Rebuilds the model described by the manifest in `bytes` and loads its tensors.
pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<(AmclModel, Manifest)> {
    let manifest = read_manifest(bytes)?;
    let model = load_into(bytes, &manifest.model, device)?;
    Ok((model, manifest))
}

/// Loads the tensors of `bytes` into a model of architecture `expected`; any difference
/// (missing or extra tensors, other shapes) is an error that lists it.
pub fn load_into(bytes: &[u8], expected: &AmclModelConfig, device: &Device) -> Result<AmclModel> {
    let mut model = expected.init(device)?;
    // Collect every difference instead of stopping at the first, to report them all.
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes.to_vec())))
        .validate(false)
        .allow_partial(true)
        // Every file loads in the device's float type (f16 files as f32 on an f32 device, f32
        // checkpoints in bf16 when training resumes in bf16).
        .with_from_adapter(FloatCastAdapter::to(DType::from(device.settings().float_dtype)));
    let result = model.load_from(&mut store).map_err(|e| {
        AmclError::Weights(format!("file does not match the manifest's architecture: {e}"))
    })?;
    let mut problems = Vec::new();
    if !result.missing.is_empty() {
        problems.push(format!(
            "missing tensors: {}",
            list(result.missing.iter().map(|(p, _)| p.as_str()))
        ));
    }
    if !result.unused.is_empty() {
        problems.push(format!(
            "unexpected tensors: {}",
            list(result.unused.iter().map(String::as_str))
        ));
    }
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(describe).collect();
        problems.push(list(errors.iter().map(String::as_str)));
    }
    if problems.is_empty() {
        Ok(model)
    } else {
        Err(AmclError::Weights(format!(
            "file does not match the manifest's architecture: {}",
            problems.join("; ")
        )))
    }
}

/// One load error in words, e.g. `heads.0.output.weight is [512, 16] in the file, the
/// architecture needs [512, 32]`.
fn describe(error: &burn_store::ApplyError) -> String {
    match error {
        burn_store::ApplyError::ShapeMismatch { path, expected, found } => format!(
            "{path} has shape {:?} in the file, the architecture needs {:?}",
            found.as_slice(),
            expected.as_slice()
        ),
        other => other.to_string(),
    }
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    let shown = items.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    if items.len() > 5 { format!("{shown} (+{} more)", items.len() - 5) } else { shown }
}

/// Writes `model` and `manifest` to `path` atomically (temporary file, then rename).
pub fn save(model: &AmclModel, manifest: &Manifest, path: &std::path::Path) -> Result<()> {
    let bytes = to_bytes(model, manifest)?;
    crate::files::write_atomic(path, &bytes)
}

/// Loads a weights file from `path`.
pub fn load(path: &std::path::Path, device: &Device) -> Result<(AmclModel, Manifest)> {
    let bytes = std::fs::read(path)
        .map_err(|error| AmclError::Io { path: path.display().to_string(), error })?;
    from_bytes(&bytes, device).map_err(|e| match e {
        AmclError::Weights(msg) => AmclError::Weights(format!("{}: {msg}", path.display())),
        other => other,
    })
}
