//! Pair-adaptive temperatures (docs/METHOD.md, "Temperatures").
//!
//! Every temperature is squashed into (lo, hi) by the paper's Eq. 3,
//! sigma(r) = iota / (1 + e^r) + eta, i.e. tau = lo + (hi - lo) * sigmoid(logit). Two networks
//! produce the logit:
//!
//! - [`TemperatureForm::Dot`], the authors' release: ONE network phi shared by all heads,
//!   phi = Linear(d, 128)-ReLU-Linear(128, d), and logit = -<phi(z_a), phi(z_b)> ([`dot`]). All
//!   pairs' temperatures are one matrix product of the phi-projections.
//! - [`TemperatureForm::Concat`], this project's earlier reading of the paper's figure:
//!   phi_c([z_a ; z_b]) -> 1 per head ([`concat`]), with its fused CPU kernel.
//!
//! [`PairTemperatures`] hides which one a model has: each side of the pairs is projected once
//! ([`PairTemperatures::side_a`], [`PairTemperatures::side_b`]), then aligned pairs or all pairs
//! are scored.

mod concat;
mod dot;

pub use concat::{StackedTemperatureNets, TemperatureNet};
pub use dot::DotTemperatureNet;

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

    /// Whether `tau` sits at the floor: within 1 % of lo (tau <= 1.01 lo).
    pub fn at_lo(&self, tau: f32) -> bool {
        tau <= self.lo * (1.0 + SATURATION)
    }

    /// Whether `tau` sits at the ceiling: within 1 % of hi (tau >= 0.99 hi).
    pub fn at_hi(&self, tau: f32) -> bool {
        tau >= self.hi * (1.0 - SATURATION)
    }
}

/// A temperature is saturated when it lies within this share of a bound (1 %, relative to it).
pub const SATURATION: f32 = 0.01;

/// Which network turns a pair into a temperature logit. Recorded in every weights manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TemperatureForm {
    /// The authors' release: one phi shared by all heads, logit = -<phi(z_a), phi(z_b)>.
    #[default]
    Dot,
    /// The earlier form: phi_c([z_a ; z_b]) -> 1, per head (or shared).
    Concat,
}

impl std::str::FromStr for TemperatureForm {
    type Err = crate::AmclError;
    fn from_str(name: &str) -> crate::Result<Self> {
        match name {
            "dot" => Ok(Self::Dot),
            "concat" => Ok(Self::Concat),
            _ => Err(crate::AmclError::UnknownName {
                kind: "temperature network",
                name: name.to_string(),
                expected: "dot, concat".into(),
            }),
        }
    }
}

impl std::fmt::Display for TemperatureForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Dot => "dot",
            Self::Concat => "concat",
        })
    }
}

/// A model's temperature network, ready to score pairs of every head at once.
#[derive(Debug, Clone)]
pub enum PairTemperatures<'a> {
    /// The authors' shared phi.
    Dot(&'a DotTemperatureNet),
    /// The concatenated-pair networks of all heads, stacked (boxed: it holds five tensors).
    Concat(Box<StackedTemperatureNets>),
}

impl PairTemperatures<'_> {
    /// The anchor side of pairs, [C, N, d] -> [C, N, H] (H = d for Dot, 128 for Concat).
    pub fn side_a(&self, z_a: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Dot(phi) => phi.project(z_a),
            Self::Concat(phi) => phi.project_a(z_a),
        }
    }

    /// The other side of pairs, [C, M, d] -> [C, M, H].
    pub fn side_b(&self, z_b: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Dot(phi) => phi.project(z_b),
            Self::Concat(phi) => phi.project_b(z_b),
        }
    }

    /// Temperatures of the aligned pairs (a[c, i], b[c, i]) of two projected sides: [C, N].
    pub fn paired(&self, a: Tensor<3>, b: Tensor<3>, range: &TemperatureRange) -> Tensor<2> {
        match self {
            Self::Dot(_) => range.squash(dot::paired_logits(a, b)),
            Self::Concat(phi) => phi.paired_temperatures(a, b, range),
        }
    }

    /// Temperatures of every pair (a[c, i], b[c, j]) of two projected sides: [C, N, M].
    pub fn pairwise(&self, a: Tensor<3>, b: Tensor<3>, range: &TemperatureRange) -> Tensor<3> {
        match self {
            Self::Dot(_) => range.squash(dot::pairwise_logits(a, b)),
            Self::Concat(phi) => phi.pairwise_temperatures(a, b, range),
        }
    }
}
