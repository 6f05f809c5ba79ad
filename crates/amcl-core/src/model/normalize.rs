//! Input normalisation, stored with the model so that every caller (trainer, scorer, browser)
//! feeds images in [0, 1] and gets the same features.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Per-channel mean and standard deviation of the training images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Channel means (R, G, B) of pixels in [0, 1].
    pub mean: [f32; 3],
    /// Channel standard deviations (R, G, B).
    pub std: [f32; 3],
}

impl Normalization {
    /// The CIFAR-10 training-set statistics used by most SSL code bases.
    pub const CIFAR10: Normalization =
        Normalization { mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616] };

    /// (x - mean) / std per channel, for images [B, 3, H, W] in [0, 1].
    pub fn apply(&self, images: Tensor<4>) -> Tensor<4> {
        let device = images.device();
        let mean = Tensor::<1>::from_floats(self.mean, &device).reshape([1, 3, 1, 1]);
        let inv_std =
            Tensor::<1>::from_floats(self.std.map(|s| 1.0 / s), &device).reshape([1, 3, 1, 1]);
        (images - mean) * inv_std
    }
}

impl Default for Normalization {
    fn default() -> Self {
        Self::CIFAR10
    }
}
