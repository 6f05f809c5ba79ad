//! Temperature networks phi_c (shared/AMCL.md, "Temperatures"):
//! tau = lo + (hi - lo) * sigmoid(phi_c([z_a ; z_b])), phi_c = Linear(2d, 128)-ReLU-Linear(128, 1).
//!
//! Scoring every pair of a batch naively would run the MLP on B^2 concatenated inputs. The first
//! layer is linear, so W [z_a ; z_b] + b = W_a z_a + (W_b z_b + b): each view is projected once
//! ([B, 128]) and pairs only add and ReLU, which makes all-pairs temperatures ~2d times cheaper;
//! [`super::pairwise_phi`] fuses that remaining all-pairs part on the CPU.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use serde::{Deserialize, Serialize};

use super::pairwise_phi::{pairwise_relu_dot, pairwise_temperature};

/// Bounds of the adaptive temperature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TemperatureRange {
    /// Lower bound (paper: 1e-5).
    pub lo: f32,
    /// Upper bound (paper: 2.0).
    pub hi: f32,
}

impl Default for TemperatureRange {
    fn default() -> Self {
        Self { lo: 1e-5, hi: 2.0 }
    }
}

impl TemperatureRange {
    /// lo + (hi - lo) * sigmoid(logit).
    pub fn squash<const D: usize>(&self, logit: Tensor<D>) -> Tensor<D> {
        sigmoid(logit).mul_scalar(self.hi - self.lo).add_scalar(self.lo)
    }

    /// The logit that [`squash`](Self::squash) maps to `tau`, for lo < tau < hi.
    pub fn logit(&self, tau: f32) -> Option<f32> {
        let p = (tau - self.lo) / (self.hi - self.lo);
        (p > 0.0 && p < 1.0).then(|| (p / (1.0 - p)).ln())
    }
}

/// Hidden width of phi (paper: 128).
pub const TEMPERATURE_HIDDEN: usize = 128;

/// One temperature network phi.
#[derive(Module, Debug)]
pub struct TemperatureNet {
    /// Linear(2d, 128) on [z_a ; z_b]; its weight rows 0..d act on z_a, d..2d on z_b.
    hidden: Linear,
    output: Linear,
}

impl TemperatureNet {
    /// phi for projections of dimension `dim`.
    pub fn new(dim: usize, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(2 * dim, TEMPERATURE_HIDDEN).init(device),
            output: LinearConfig::new(TEMPERATURE_HIDDEN, 1).init(device),
        }
    }

    /// phi with its output bias set to `logit`: at initialisation the hidden layer's contribution
    /// is small, so every pair's temperature starts near squash(logit). Parameters are
    /// initialised lazily from the device's seeded generator, in the order they are first used;
    /// `init_mapper` keeps the bias's random draw in its place, so every other weight starts
    /// exactly as it would without this.
    pub fn with_output_bias(mut self, logit: f32) -> Self {
        self.output.bias =
            self.output.bias.map(|b| b.init_mapper(move |t| t.zeros_like().add_scalar(logit)));
        self
    }

    /// W_a z_a + b and W_b z_b: the first layer applied to each side separately, [B, 128] each.
    fn project_sides(&self, z_a: Tensor<2>, z_b: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let [d2, h] = self.hidden.weight.dims();
        let weight = self.hidden.weight.val();
        let w_a = weight.clone().slice([0..d2 / 2, 0..h]);
        let w_b = weight.slice([d2 / 2..d2, 0..h]);
        let mut a = z_a.matmul(w_a);
        if let Some(bias) = &self.hidden.bias {
            a = a + bias.val().unsqueeze_dim(0);
        }
        (a, z_b.matmul(w_b))
    }

    /// Temperature logits of the aligned pairs (z_a[i], z_b[i]): [B, d] x [B, d] -> [B].
    pub fn paired_logits(&self, z_a: Tensor<2>, z_b: Tensor<2>) -> Tensor<1> {
        let (a, b) = self.project_sides(z_a, z_b);
        let [n, _] = a.dims();
        self.output.forward(relu(a + b)).reshape([n])
    }

    /// Temperature logits of every pair (z_a[i], z_b[j]): [N, d] x [M, d] -> [N, M].
    /// The [N, M, 128] hidden layer is fused on the CPU ([`pairwise_relu_dot`]).
    pub fn pairwise_logits(&self, z_a: Tensor<2>, z_b: Tensor<2>) -> Tensor<2> {
        let (a, b) = self.project_sides(z_a, z_b);
        let [h, _] = self.output.weight.dims();
        let mut logits = pairwise_relu_dot(a, b, self.output.weight.val().reshape([h]));
        if let Some(bias) = &self.output.bias {
            logits = logits + bias.val().reshape([1, 1]);
        }
        logits
    }

    /// Temperatures of every pair, `range.squash(pairwise_logits(z_a, z_b))`, with the output
    /// bias and the squashing fused into the all-pairs pass on the CPU.
    pub fn pairwise_temperatures(
        &self,
        z_a: Tensor<2>,
        z_b: Tensor<2>,
        range: &TemperatureRange,
    ) -> Tensor<2> {
        let (a, b) = self.project_sides(z_a, z_b);
        let [h, _] = self.output.weight.dims();
        let w = self.output.weight.val().reshape([h]);
        let bias = match &self.output.bias {
            Some(bias) => bias.val().reshape([1]),
            None => Tensor::zeros([1], &a.device()),
        };
        pairwise_temperature(a, b, w, bias, *range)
    }
}
