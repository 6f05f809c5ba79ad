//! Data-parallel ranks, as a method sees them.
//!
//! In a data-parallel run every rank (a device, or a process on another machine) holds a share
//! of each batch: the contiguous rows `rank * b .. (rank + 1) * b` of the global batch of
//! `world * b` images. The backbone runs on the share; the features of every share are then
//! gathered, and the heads, the temperature networks and the objective run on the whole batch,
//! the same on every rank. So SimCLR's 2B - 2 negatives, the top-k selection, the temperatures,
//! the heads' batch norm and MoCo's queue all see the global batch, as on one device.
//!
//! Gradients: the loss is the one-device loss on every rank. Its gradient reaches this rank's
//! share of the features only (the other shares arrive as constants), so a backbone parameter's
//! gradient on one rank is that share's part of the sum over the batch: summing the backbone's
//! gradients over the ranks gives the one-device gradient. The heads and temperature networks
//! see the whole batch on every rank and already hold the one-device gradient.

use burn::prelude::*;

use crate::error::Result;

/// The ranks of a data-parallel step: who this rank is, and the exchange of features.
pub trait Ranks: Send + Sync + std::fmt::Debug {
    /// How many ranks share a batch.
    fn world(&self) -> usize;

    /// This rank's place, 0-based; its share is rows `rank * b .. (rank + 1) * b`.
    fn rank(&self) -> usize;

    /// Every rank's rows of `local` [b, F], in rank order: [world * b, F]. This rank's rows keep
    /// their autodiff graph; the others' are constants. Every rank calls it, in the same order.
    fn gather(&self, local: Tensor<2>) -> Result<Tensor<2>>;
}

/// One device holding the whole batch: gathering is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleRank;

impl Ranks for SingleRank {
    fn world(&self) -> usize {
        1
    }

    fn rank(&self) -> usize {
        0
    }

    fn gather(&self, local: Tensor<2>) -> Result<Tensor<2>> {
        Ok(local)
    }
}

/// Rows `[rank * share, (rank + 1) * share)` of a global batch of `world * share` rows.
pub fn share_rows(rank: usize, share: usize) -> std::ops::Range<usize> {
    rank * share..(rank + 1) * share
}

/// The global batch [world * b, F] from every rank's rows, this rank's `local` (tracked) at its
/// place among the others' (`others`: every rank's rows in rank order, constants; this rank's
/// entry is ignored). The concatenation routes the gradient of the global rows back to `local`.
pub fn assemble(local: Tensor<2>, rank: usize, others: Vec<Tensor<2>>) -> Tensor<2> {
    let parts = others
        .into_iter()
        .enumerate()
        .map(|(r, rows)| if r == rank { local.clone() } else { rows })
        .collect();
    Tensor::cat(parts, 0)
}
