//! The earlier concatenated-pair temperature networks (docs/METHOD.md, "Other forms"):
//! tau = lo + (hi - lo) * sigmoid(phi_c([z_a ; z_b])), phi_c = Linear(2d, 128)-ReLU-Linear(128, 1),
//! one per head or one shared. Kept as `--temperature-net concat`, and to load weights of that form.
//!
//! Scoring every pair of a batch naively would run the MLP on B^2 concatenated inputs. The first
//! layer is linear, so W [z_a ; z_b] + b = W_a z_a + (W_b z_b + b): each view is projected once
//! ([B, 128]) and pairs only add and ReLU, which makes all-pairs temperatures ~2d times cheaper;
//! [`crate::model::pairwise_phi`] fuses that remaining all-pairs part on the CPU. A training step runs
//! all heads' networks at once, stacked ([`StackedTemperatureNets`]).

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::{TEMPERATURE_HIDDEN, TemperatureRange};
use crate::model::pairwise_phi::{pairwise_relu_dot, pairwise_temperature};

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

    /// phi itself on concatenated pairs [z_a ; z_b]: [P, 2d] -> [P] logits. The definition, which
    /// the methods below compute without concatenating every pair (tests check they agree).
    pub fn logits(&self, pairs: Tensor<2>) -> Tensor<1> {
        let [p, _] = pairs.dims();
        self.output.forward(relu(self.hidden.forward(pairs))).reshape([p])
    }

    /// This network alone, as a stack of one head, and both sides of the pairs of z_a [N, d] and
    /// z_b [M, d] ([1, N, H], [1, M, H]).
    fn alone(
        &self,
        z_a: Tensor<2>,
        z_b: Tensor<2>,
    ) -> (StackedTemperatureNets, Tensor<3>, Tensor<3>) {
        let phi = StackedTemperatureNets::new(&[self]);
        let (a, b) = phi.project(z_a.unsqueeze(), z_b.unsqueeze());
        (phi, a, b)
    }

    /// Temperature logits of the aligned pairs (z_a[i], z_b[i]): [B, d] x [B, d] -> [B].
    pub fn paired_logits(&self, z_a: Tensor<2>, z_b: Tensor<2>) -> Tensor<1> {
        let [n, _] = z_a.dims();
        let (phi, a, b) = self.alone(z_a, z_b);
        phi.paired_logits(a, b).reshape([n])
    }

    /// Temperature logits of every pair (z_a[i], z_b[j]): [N, d] x [M, d] -> [N, M].
    /// The [N, M, 128] hidden layer is fused on the CPU ([`pairwise_relu_dot`]).
    pub fn pairwise_logits(&self, z_a: Tensor<2>, z_b: Tensor<2>) -> Tensor<2> {
        let ([n, _], [m, _]) = (z_a.dims(), z_b.dims());
        let (phi, a, b) = self.alone(z_a, z_b);
        phi.pairwise_logits(a, b).reshape([n, m])
    }

    /// Temperatures of every pair, `range.squash(pairwise_logits(z_a, z_b))`, with the output
    /// bias and the squashing fused into the all-pairs pass on the CPU.
    pub fn pairwise_temperatures(
        &self,
        z_a: Tensor<2>,
        z_b: Tensor<2>,
        range: &TemperatureRange,
    ) -> Tensor<2> {
        let ([n, _], [m, _]) = (z_a.dims(), z_b.dims());
        let (phi, a, b) = self.alone(z_a, z_b);
        phi.pairwise_temperatures(a, b, range).reshape([n, m])
    }
}

/// The temperature networks of all C heads with their parameters stacked along a leading head
/// axis, so that a step runs each layer once for every head (batched matrix products and one
/// fused all-pairs op) instead of a dozen small ops per head: fewer kernel launches on a GPU; on
/// the CPU the same speed, where the all-pairs kernel is nearly all of the time. Stacked afresh
/// from the networks each step: gradients flow back to each network's own parameters.
///
/// phi's first layer on a pair is W [z_a ; z_b] + bias = (W_a z_a + bias) + W_b z_b, so each side
/// is projected once ([`project_a`](Self::project_a), [`project_b`](Self::project_b)) and pairs
/// only add them.
#[derive(Debug, Clone)]
pub struct StackedTemperatureNets {
    /// The hidden layer's rows that act on z_a, [C, d, H].
    w_a: Tensor<3>,
    /// The hidden layer's rows that act on z_b, [C, d, H].
    w_b: Tensor<3>,
    /// The hidden layer's bias, [C, 1, H].
    hidden_bias: Option<Tensor<3>>,
    /// The output layer's weights, [C, H].
    w_out: Tensor<2>,
    /// The output layer's bias, [C].
    output_bias: Option<Tensor<1>>,
}

impl StackedTemperatureNets {
    /// Stacks one network per head, in head order (a shared network is passed once per head).
    ///
    /// # Panics
    /// When `nets` is empty (a model has at least one head).
    pub fn new(nets: &[&TemperatureNet]) -> Self {
        let hidden =
            Tensor::stack::<3>(nets.iter().map(|net| net.hidden.weight.val()).collect(), 0);
        let [c, d2, h] = hidden.dims();
        let biases = |layer: fn(&TemperatureNet) -> &Linear| {
            let biases: Option<Vec<Tensor<1>>> =
                nets.iter().map(|net| layer(net).bias.as_ref().map(|b| b.val())).collect();
            biases.map(|b| Tensor::stack::<2>(b, 0))
        };
        let output =
            Tensor::stack::<3>(nets.iter().map(|net| net.output.weight.val()).collect(), 0);
        Self {
            w_a: hidden.clone().slice([0..c, 0..d2 / 2, 0..h]),
            w_b: hidden.slice([0..c, d2 / 2..d2, 0..h]),
            hidden_bias: biases(|net| &net.hidden).map(|b| b.unsqueeze_dim(1)),
            w_out: output.reshape([c, h]),
            output_bias: biases(|net| &net.output).map(|b| b.reshape([c])),
        }
    }

    /// Number of heads C.
    pub fn heads(&self) -> usize {
        self.w_a.dims()[0]
    }

    /// Side a of every pair, a = W_a z_a + bias: [C, N, d] -> [C, N, H].
    pub fn project_a(&self, z_a: Tensor<3>) -> Tensor<3> {
        let a = z_a.matmul(self.w_a.clone());
        match &self.hidden_bias {
            Some(bias) => a + bias.clone(),
            None => a,
        }
    }

    /// Side b of every pair, b = W_b z_b: [C, M, d] -> [C, M, H].
    pub fn project_b(&self, z_b: Tensor<3>) -> Tensor<3> {
        z_b.matmul(self.w_b.clone())
    }

    /// Both sides, ([`project_a`](Self::project_a)(z_a), [`project_b`](Self::project_b)(z_b)).
    pub fn project(&self, z_a: Tensor<3>, z_b: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        (self.project_a(z_a), self.project_b(z_b))
    }

    /// The output bias of each head, [C] (zeros without one).
    fn output_bias(&self, device: &Device) -> Tensor<1> {
        self.output_bias.clone().unwrap_or_else(|| Tensor::zeros([self.heads()], device))
    }

    /// Logits of the aligned pairs (a[c, i], b[c, i]): [C, N, H] twice -> [C, N].
    pub fn paired_logits(&self, a: Tensor<3>, b: Tensor<3>) -> Tensor<2> {
        let [c, n, h] = a.dims();
        let bias = self.output_bias(&a.device()).reshape([c, 1, 1]);
        let logits = relu(a + b).matmul(self.w_out.clone().reshape([c, h, 1])) + bias;
        logits.reshape([c, n])
    }

    /// Temperatures of the aligned pairs, `range.squash(paired_logits(a, b))`: [C, N].
    pub fn paired_temperatures(
        &self,
        a: Tensor<3>,
        b: Tensor<3>,
        range: &TemperatureRange,
    ) -> Tensor<2> {
        range.squash(self.paired_logits(a, b))
    }

    /// Logits of every pair (a[c, i], b[c, j]): [C, N, H] x [C, M, H] -> [C, N, M]. The
    /// [C, N, M, H] hidden layer is fused on the CPU ([`pairwise_relu_dot`]).
    pub fn pairwise_logits(&self, a: Tensor<3>, b: Tensor<3>) -> Tensor<3> {
        let [c, _, _] = a.dims();
        let bias = self.output_bias(&a.device()).reshape([c, 1, 1]);
        pairwise_relu_dot(a, b, self.w_out.clone()) + bias
    }

    /// Temperatures of every pair, `range.squash(pairwise_logits(a, b))`, with the output bias
    /// and the squashing fused into the all-pairs pass on the CPU: [C, N, M].
    pub fn pairwise_temperatures(
        &self,
        a: Tensor<3>,
        b: Tensor<3>,
        range: &TemperatureRange,
    ) -> Tensor<3> {
        let bias = self.output_bias(&a.device());
        pairwise_temperature(a, b, self.w_out.clone(), bias, *range)
    }
}
