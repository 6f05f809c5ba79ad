//! Pair-adaptive temperatures (docs/METHOD.md, "Temperatures").
//!
//! Every temperature is squashed into (lo, hi) by the paper's Eq. 3,
//! sigma(r) = iota / (1 + e^r) + eta, i.e. tau = lo + (hi - lo) * sigmoid(logit), and the logit of
//! a pair comes from the authors' network ([`dot`]): ONE phi shared by all heads,
//! phi = Linear(d, 128)-ReLU-Linear(128, d), logit = -<phi(z_a), phi(z_b)>. All pairs'
//! temperatures are one matrix product of the phi-projections.
//!
//! The centred form ([`centre`], this project's variant) subtracts the batch's mean phi-projection
//! from every phi-projection first, so the logits of an anchor average to zero: phi decides which
//! pairs are warmer or colder than the common level, which stays at the middle of the range.
//!
//! The first versions of this project read the paper's figure as a per-head phi_c([z_a ; z_b])
//! -> 1 ("concat"). Not shown to train better than the authors' network (docs/RESULTS.md), it was
//! removed with its CPU kernels; its weights files are refused by name ([`crate::weights`]).

mod centre;
mod dot;

pub use centre::{CENTRE_MOMENTUM, TemperatureCentre};
pub use dot::{DotTemperatureNet, paired_logits, pairwise_logits};

use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

/// Hidden width of phi (paper and authors' release: 128).
pub const TEMPERATURE_HIDDEN: usize = 128;

/// Bounds of the adaptive temperature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TemperatureRange {
    /// Lower bound eta (authors: 1e-5).
    pub lo: f32,
    /// Upper bound eta + iota (authors: 2.0).
    pub hi: f32,
}

impl Default for TemperatureRange {
    fn default() -> Self {
        Self { lo: 1e-5, hi: 2.0 }
    }
}

impl TemperatureRange {
    /// Eq. 3: lo + (hi - lo) * sigmoid(logit).
    pub fn squash<const D: usize>(&self, logit: Tensor<D>) -> Tensor<D> {
        sigmoid(logit).mul_scalar(self.hi - self.lo).add_scalar(self.lo)
    }

    /// The logit that [`squash`](Self::squash) maps to `tau`, for lo < tau < hi.
    pub fn logit(&self, tau: f32) -> Option<f32> {
        let p = (tau - self.lo) / (self.hi - self.lo);
        (p > 0.0 && p < 1.0).then(|| (p / (1.0 - p)).ln())
    }

    /// The logit of `tau` when phi's output bias can start every pair there: phi's bias is a
    /// vector v with |v|^2 = -logit(tau), and a squared norm reaches only the lower half of the
    /// range, lo < tau < (lo + hi) / 2.
    pub fn initial_logit(&self, tau: f32) -> Option<f32> {
        self.logit(tau).filter(|l| *l < 0.0)
    }

    /// The thresholds of saturation: a temperature at or below the first sits at the floor
    /// (within 1 % of lo), at or above the second at the ceiling (within 1 % of hi).
    pub fn saturation_thresholds(&self) -> (f32, f32) {
        (self.lo * (1.0 + SATURATION), self.hi * (1.0 - SATURATION))
    }
}

/// A temperature is saturated when it lies within this share of a bound (1 %, relative to it).
pub const SATURATION: f32 = 0.01;

/// Which network turns a pair into a temperature logit. Recorded in every weights manifest, so
/// that a file of another form is refused by name rather than by a list of tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TemperatureForm {
    /// The authors' release: one phi shared by all heads, logit = -<phi(z_a), phi(z_b)>.
    #[default]
    Dot,
    /// This project's variant: the same phi, its projections centred over the batch
    /// ([`TemperatureCentre`]), logit = -<phi(z_a) - phi_bar, phi(z_b) - phi_bar>.
    Centred,
}

impl std::fmt::Display for TemperatureForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Dot => "dot",
            Self::Centred => "centred",
        })
    }
}
