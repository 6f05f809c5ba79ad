//! Data-parallel pretraining over several devices (`pretrain --devices cpu,cpu`, `cuda:0,cuda:1`).
//!
//! Each device is a rank with a replica of the model and a share of every batch: the contiguous
//! rows `rank * b .. (rank + 1) * b` of the global batch of `world * b` images, drawn in the same
//! order and augmented with the same random draws as on one device. The backbone runs on the
//! share; the features are gathered ([`exchange::FeatureExchange`], `amcl_core::ranks`), so the
//! heads, temperatures and objective see the global batch; the backbone's gradients are summed
//! over the ranks ([`exchange::sum_backbone_gradients`]). Every rank then takes the same
//! optimiser step, so the replicas stay equal without broadcasting weights.
//!
//! The ranks talk through a [`Collective`]: [`threads::ThreadGroup`], ranks as threads of one
//! process (host memory), or [`network::NetworkGroup`], ranks as processes on one or several
//! machines (`--rank --world --address`, over burn-communication's WebSocket layer). burn 0.22's own collectives (`burn::tensor::distributed`) reduce
//! only on CUDA (NCCL): its CPU backend and wgpu have no transport (docs/ARCHITECTURE.md).
//!
//! Not synchronised: batch norm inside the backbone normalises each rank's share with its own
//! statistics (as PyTorch's DDP without SyncBatchNorm); `--backbone small-cnn-no-bn` has none, and
//! with it several ranks reproduce one device exactly (tests/distributed.rs).

pub mod exchange;
pub mod network;
pub mod threads;

#[cfg(test)]
mod equivalence;

use std::sync::Arc;

use anyhow::{Result, bail};

use crate::device::DeviceChoice;

/// Why a rank could not complete an exchange.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RankError {
    /// Another rank stopped (an error, Ctrl-C or a panic), so this step cannot complete.
    #[error("rank {rank} stopped: {reason}")]
    Stopped { rank: usize, reason: String },
    /// The ranks disagree about what they exchange (a bug, or ranks of different runs).
    #[error("rank {rank} sent {got} values where rank {me} sent {expected}")]
    Mismatch { me: usize, rank: usize, expected: usize, got: usize },
}

/// The communication between the ranks of one run. Every rank calls the same operations in the
/// same order; each call returns once every rank has made it (or one has stopped).
pub trait Collective: Send + Sync + std::fmt::Debug {
    /// This rank, 0-based.
    fn rank(&self) -> usize;

    /// The number of ranks.
    fn world(&self) -> usize;

    /// Every rank's `data`, in rank order.
    fn all_gather(&self, data: Vec<f32>) -> Result<Vec<Arc<Vec<f32>>>, RankError>;

    /// Tells the other ranks that this one has stopped: their current and next exchanges fail
    /// with [`RankError::Stopped`] naming it.
    fn abort(&self, reason: &str);

    /// The element-wise sum of every rank's `data`, added in rank order (so every rank gets the
    /// same bits).
    fn all_reduce_sum(&self, data: Vec<f32>) -> Result<Vec<f32>, RankError> {
        let me = self.rank();
        let expected = data.len();
        let all = self.all_gather(data)?;
        let mut sum = vec![0.0f32; expected];
        for (rank, part) in all.iter().enumerate() {
            if part.len() != expected {
                return Err(RankError::Mismatch { me, rank, expected, got: part.len() });
            }
            sum.iter_mut().zip(part.iter()).for_each(|(s, v)| *s += v);
        }
        Ok(sum)
    }

    /// Whether any rank passed `flag` (Ctrl-C seen on one rank stops them all at the same step).
    fn any(&self, flag: bool) -> Result<bool, RankError> {
        Ok(self.all_gather(vec![flag as u8 as f32])?.iter().any(|v| v.first() == Some(&1.0)))
    }
}

/// One entry of `--devices`: a device kind and its index (`cuda:1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSpec {
    pub choice: DeviceChoice,
    pub index: usize,
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.choice {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::Cpu => "cpu",
        };
        write!(f, "{name}:{}", self.index)
    }
}

/// Parses `--devices`: comma-separated `cpu`, `cuda:N` or `wgpu`, one rank each.
pub fn parse_devices(list: &str) -> Result<Vec<DeviceSpec>> {
    let specs = list
        .split(',')
        .map(|item| {
            let item = item.trim();
            let (name, index) = match item.split_once(':') {
                Some((name, index)) => match index.parse::<usize>() {
                    Ok(index) => (name, index),
                    Err(_) => bail!("--devices: '{item}' has no device index after ':'"),
                },
                None => (item, 0),
            };
            let choice = match name {
                "cpu" => DeviceChoice::Cpu,
                "cuda" => DeviceChoice::Cuda,
                "wgpu" => DeviceChoice::Wgpu,
                _ => bail!("--devices: unknown device '{item}'; expected cpu, cuda:N or wgpu"),
            };
            Ok(DeviceSpec { choice, index })
        })
        .collect::<Result<Vec<_>>>()?;
    if specs.is_empty() {
        bail!("--devices: the list is empty");
    }
    Ok(specs)
}

/// The share of each rank in a global batch of `batch_size`, or an error when it does not split
/// evenly.
pub fn share_of(batch_size: usize, world: usize) -> Result<usize> {
    if world == 0 || !batch_size.is_multiple_of(world) {
        bail!(
            "--batch-size {batch_size} cannot be split evenly over {world} devices; use a \
             multiple of {world}"
        );
    }
    if batch_size / world == 0 {
        bail!("--batch-size {batch_size} gives the {world} devices no images each");
    }
    Ok(batch_size / world)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_with_and_without_index() {
        let specs = parse_devices("cpu, cuda:1,wgpu").unwrap();
        assert_eq!(specs[0], DeviceSpec { choice: DeviceChoice::Cpu, index: 0 });
        assert_eq!(specs[1], DeviceSpec { choice: DeviceChoice::Cuda, index: 1 });
        assert_eq!(specs[2].choice, DeviceChoice::Wgpu);
        assert!(parse_devices("tpu:0").unwrap_err().to_string().contains("unknown device 'tpu:0'"));
        assert!(parse_devices("cuda:x").unwrap_err().to_string().contains("no device index"));
    }

    #[test]
    fn a_batch_splits_evenly_or_not_at_all() {
        assert_eq!(share_of(256, 2).unwrap(), 128);
        assert!(share_of(255, 2).unwrap_err().to_string().contains("multiple of 2"));
    }
}
