//! Checkpoints: everything needed to continue a run exactly where it stopped.
//!
//! `checkpoint/` in the run folder holds the model (`model.bpk`, with manifest), the optimiser
//! state (`optimizer.bpk`), MoCo's key encoder and queue when the method has them, and
//! `state.json` (the position in training). It is written to `checkpoint.tmp/` and swapped in by
//! renames, so a crash at any moment leaves either the old or the new checkpoint whole.

use std::path::{Path, PathBuf};

use amcl_core::loss::objective_tensor;
use amcl_core::methods::MocoState;
use amcl_core::model::AmclModel;
use amcl_core::weights::{self, Manifest};
use anyhow::{Context, Result, bail};
use burn::optim::ModuleOptimizer;
use burn::prelude::*;

/// Where training stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Epoch in progress (0-based); equals the number of epochs when training is done.
    pub epoch: usize,
    /// Optimiser steps already taken in that epoch.
    pub step_in_epoch: usize,
    /// Optimiser steps taken in all.
    pub step: usize,
}

/// What a checkpoint restores.
pub struct Restored {
    pub model: AmclModel,
    pub optimizer: ModuleOptimizer,
    pub moco: Option<MocoState>,
    pub position: Position,
}

fn dir(run: &Path) -> PathBuf {
    run.join("checkpoint")
}

/// Writes a checkpoint of the training state into `run`/checkpoint/.
pub fn save(
    run: &Path,
    model: &AmclModel,
    manifest: &Manifest,
    optimizer: &ModuleOptimizer,
    moco: Option<&MocoState>,
    position: Position,
) -> Result<()> {
    let tmp = run.join("checkpoint.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    std::fs::write(tmp.join("model.bpk"), weights::to_bytes(model, manifest)?)?;
    let optim_bytes = optimizer.into_bytes().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    std::fs::write(tmp.join("optimizer.bpk"), optim_bytes.to_vec())?;
    if let Some(moco) = moco {
        std::fs::write(tmp.join("moco_key.bpk"), weights::to_bytes(&moco.key_model, manifest)?)?;
        let shape = moco.queue.dims();
        let values = moco
            .queue
            .clone()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(tmp.join("moco_queue.f32"), bytes)?;
        std::fs::write(tmp.join("moco_queue.json"), serde_json::to_string(&shape)?)?;
    }
    std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(&position)?)?;
    // Swap in: checkpoint -> checkpoint.old, checkpoint.tmp -> checkpoint, drop the old one.
    let current = dir(run);
    let old = run.join("checkpoint.old");
    let _ = std::fs::remove_dir_all(&old);
    if current.exists() {
        std::fs::rename(&current, &old).context("moving the previous checkpoint aside")?;
    }
    std::fs::rename(&tmp, &current).context("moving the new checkpoint into place")?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The checkpoint folder of `run` (or the previous one, if a swap was cut short).
fn existing(run: &Path) -> Option<PathBuf> {
    [dir(run), run.join("checkpoint.old")].into_iter().find(|d| d.join("state.json").is_file())
}

/// Loads the checkpoint of `run` onto `device` (an autodiff device), into an optimiser built
/// like the original.
pub fn load(run: &Path, optimizer: ModuleOptimizer, device: &Device) -> Result<Restored> {
    let Some(dir) = existing(run) else {
        bail!("--resume: {} has no checkpoint/ to resume from", run.display());
    };
    let position: Position = serde_json::from_str(
        &std::fs::read_to_string(dir.join("state.json"))
            .context("reading checkpoint/state.json")?,
    )
    .context("checkpoint/state.json is corrupt")?;
    let (model, _) =
        weights::load(&dir.join("model.bpk"), device).context("loading checkpoint/model.bpk")?;
    let bytes =
        std::fs::read(dir.join("optimizer.bpk")).context("reading checkpoint/optimizer.bpk")?;
    let optimizer = optimizer
        .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| anyhow::anyhow!("checkpoint/optimizer.bpk is corrupt: {e:?}"))?;
    let moco = if dir.join("moco_key.bpk").is_file() {
        let (key_model, _) = weights::load(&dir.join("moco_key.bpk"), device)
            .context("loading checkpoint/moco_key.bpk")?;
        let shape: Vec<usize> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("moco_queue.json"))?)?;
        let bytes = std::fs::read(dir.join("moco_queue.f32"))?;
        let values: Vec<f32> =
            bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if shape.len() != 3 || values.len() != shape.iter().product::<usize>() {
            bail!("checkpoint/moco_queue.f32 does not match its shape {shape:?}");
        }
        // The queue holds unit-norm keys of the objective, f32 whatever the training precision.
        let data = TensorData::new(values, [shape[0], shape[1], shape[2]]);
        let queue = Tensor::<3>::from_data(data, objective_tensor(device)).without_autodiff();
        Some(MocoState { key_model: key_model.no_grad(), queue })
    } else {
        None
    };
    Ok(Restored { model, optimizer, moco, position })
}
