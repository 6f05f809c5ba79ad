//! The authors' temperature network (docs/METHOD.md, "Temperatures"): ONE phi shared by all
//! heads, phi = Linear(n, 128)-ReLU-Linear(128, n), and for a pair
//!
//! ```text
//! tau(z_a, z_b) = lo + (hi - lo) * sigmoid(-<phi(z_a), phi(z_b)>)      (Eq. 3)
//! ```
//!
//! For projections n = d and the inputs are the L2-normalised projections; Barlow Twins uses a
//! second network of the same shape with n = B on channel vectors. All pairs of two sets are one
//! matrix product of their phi-projections, so nothing here needs a kernel of its own.
//!
//! phi computes in f32 whatever the training precision (the objective's `OBJECTIVE_DTYPE`): its
//! weights are stored in the training precision, like every other weight (burn 0.22 keeps no f32
//! master copy), and cast for the forward pass, so temperatures near lo = 1e-5 stay
//! representable under f16.

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::linear;

use super::{TEMPERATURE_HIDDEN, TemperatureRange};
use crate::error::{AmclError, Result};
use crate::loss::objective_precision;

/// phi: R^n -> R^n, Linear(n, 128)-ReLU-Linear(128, n).
#[derive(Module, Debug)]
pub struct DotTemperatureNet {
    hidden: Linear,
    output: Linear,
}

impl DotTemperatureNet {
    /// phi for inputs of dimension `n`.
    pub fn new(n: usize, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(n, TEMPERATURE_HIDDEN).init(device),
            output: LinearConfig::new(TEMPERATURE_HIDDEN, n).init(device),
        }
    }

    /// phi with given weights: hidden [n, H] and [H], output [H, n] and [n] (burn's layout,
    /// input-major), e.g. from a reference implementation.
    pub fn from_weights(w1: Tensor<2>, b1: Tensor<1>, w2: Tensor<2>, b2: Tensor<1>) -> Self {
        let linear =
            |w, b| Linear { weight: Param::from_tensor(w), bias: Some(Param::from_tensor(b)) };
        Self { hidden: linear(w1, b1), output: linear(w2, b2) }
    }

    /// Input (and output) dimension n. Read from the parameter's shape, which does not
    /// initialise a lazily initialised weight (that would draw its random values out of turn).
    pub fn input_dim(&self) -> usize {
        self.hidden.weight.lazy_shape()[0]
    }

    /// phi(z) for every row: [.., n] -> [.., n], computed in f32 (the casts are free in f32
    /// training).
    pub fn project<const D: usize>(&self, z: Tensor<D>) -> Tensor<D> {
        let layer = |l: &Linear, x| {
            let bias = l.bias.as_ref().map(|b| objective_precision(b.val()));
            linear(x, objective_precision(l.weight.val()), bias)
        };
        layer(&self.output, relu(layer(&self.hidden, objective_precision(z))))
    }

    /// Temperatures of every pair (x_i, y_j) of two sets: [C, N, n] x [C, M, n] -> [C, N, M].
    pub fn pairwise_temperatures(
        &self,
        x: Tensor<3>,
        y: Tensor<3>,
        range: &TemperatureRange,
    ) -> Tensor<3> {
        range.squash(pairwise_logits(self.project(x), self.project(y)))
    }

    /// phi with its output bias set to the constant vector v, |v|^2 = -logit(tau): at
    /// initialisation phi's other terms are small, so <phi(a), phi(b)> ~ |v|^2 and every pair
    /// starts near `tau`. A squared norm is never negative, so this reaches only temperatures
    /// below the middle of the range ((lo + hi) / 2 ~ 1 with the authors' bounds). The bias's
    /// random draw keeps its place in the seeded sequence (`init_mapper`), so every other weight
    /// starts as it would without this.
    pub fn with_initial_temperature(mut self, tau: f32, range: &TemperatureRange) -> Result<Self> {
        let logit = range.initial_logit(tau).ok_or_else(|| {
            AmclError::InvalidConfig(format!(
                "the dot-product temperature network can start temperatures only strictly between \
                 lo = {} and the middle of the range {}, got {tau}",
                range.lo,
                (range.lo + range.hi) / 2.0
            ))
        })?;
        let n = self.input_dim();
        let v = (-logit / n as f32).sqrt();
        self.output.bias =
            self.output.bias.map(|b| b.init_mapper(move |t| t.zeros_like().add_scalar(v)));
        Ok(self)
    }
}

/// Eq. 3's logits of aligned pairs, -<a[c, i], b[c, i]>: [C, N, n] twice -> [C, N].
pub fn paired_logits(a: Tensor<3>, b: Tensor<3>) -> Tensor<2> {
    (a * b).sum_dim(2).squeeze_dim::<2>(2).neg()
}

/// Eq. 3's logits of all pairs, -<a[c, i], b[c, j]>: [C, N, n] x [C, M, n] -> [C, N, M].
pub fn pairwise_logits(a: Tensor<3>, b: Tensor<3>) -> Tensor<3> {
    a.matmul(b.transpose()).neg()
}
