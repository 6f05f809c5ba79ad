//! Optimisers (`--optimizer`) and the learning-rate schedule.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::{Momentum, MomentumConfig};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, Optimizer, SgdConfig, SgdState};
use burn::prelude::*;
use burn::tensor::FloatDType;

/// Which optimiser.
#[derive(
    clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with momentum 0.9 and weight decay (the paper's choice).
    Sgd,
    /// LARS: SGD with momentum whose step per weight matrix is scaled by trust ratio
    /// eta * |w| / (|g| + wd * |w|) (You et al. 2017); biases and norms use plain SGD.
    Lars,
    /// Adam (no weight decay).
    Adam,
}

/// Builds the optimiser with weight decay `weight_decay` (ignored by Adam).
pub fn build(kind: OptimizerKind, weight_decay: f64) -> ModuleOptimizer {
    let momentum = MomentumConfig::new().with_momentum(0.9);
    match kind {
        OptimizerKind::Adam => AdamConfig::new().init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum(Some(momentum))
            .with_weight_decay(Some(WeightDecayConfig::new(weight_decay as f32)))
            .init(),
        OptimizerKind::Lars => ModuleOptimizer::from(Lars {
            momentum: Momentum::new(&momentum),
            weight_decay,
            eta: 0.02,
        }),
    }
}

/// Learning rate at `step` of `total`: linear warm-up over the first `warmup` steps, then cosine
/// decay to zero.
pub fn learning_rate(peak: f64, step: usize, total: usize, warmup: usize) -> f64 {
    if step < warmup {
        peak * (step + 1) as f64 / warmup as f64
    } else {
        let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
        peak * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
    }
}

/// Clips the gradients of `module`'s parameters to a global L2 norm of at most `max_norm`, as
/// PyTorch's `clip_grad_norm_` (the authors clip at 1.0): every gradient is scaled by
/// min(1, max_norm / ||g||), ||g|| taken over all parameters together. Returns the clipped
/// gradients and ||g|| before clipping ([1], on the device: read it when logging).
pub fn clip_global_norm<M: Module>(
    mut grads: GradientsParams,
    module: &M,
    max_norm: f32,
) -> (GradientsParams, Option<Tensor<1>>) {
    let mut squares = SquaredNorm { grads: &grads, total: None };
    module.visit(&mut squares);
    let Some(total) = squares.total else { return (grads, None) };
    let norm = total.sqrt();
    // max_norm / max(||g||, max_norm) = min(1, max_norm / ||g||).
    let scale = norm.clone().clamp_min(max_norm).recip().mul_scalar(max_norm);
    module.visit(&mut Rescale { grads: &mut grads, scale });
    (grads, Some(norm))
}

/// The sum of every gradient's squared entries.
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            // In f32: under --precision f16 the squares would overflow above 65,504.
            let sum = grad.cast(FloatDType::F32).square().sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + sum,
                None => sum,
            });
        }
    }
}

/// Multiplies every gradient by `scale` [1].
struct Rescale<'a> {
    grads: &'a mut GradientsParams,
    scale: Tensor<1>,
}

impl ModuleVisitor for Rescale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            let scale = self.scale.clone().cast(grad.dtype()).reshape([1; D]);
            let scaled = grad * scale;
            self.grads.register(param.id, scaled);
        }
    }
}

/// Layer-wise Adaptive Rate Scaling with momentum.
#[derive(Clone)]
pub struct Lars {
    momentum: Momentum,
    weight_decay: f64,
    /// Trust coefficient.
    eta: f64,
}

impl Optimizer for Lars {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        // Weight matrices and kernels are adapted and decayed; biases and norm scales are not.
        let grad = if D > 1 {
            let grad = grad + tensor.clone().mul_scalar(self.weight_decay);
            let w_norm = norm(tensor.clone());
            let g_norm = norm(grad.clone());
            // Trust ratio eta * |w| / |g|, or 1 when either norm is zero.
            let both = w_norm.clone().greater_elem(0.0).bool_and(g_norm.clone().greater_elem(0.0));
            let ratio = (w_norm.mul_scalar(self.eta) / g_norm.clamp_min(1e-12))
                .mask_fill(both.bool_not(), 1.0);
            grad * ratio.reshape([1; D])
        } else {
            grad
        };
        let (grad, momentum) = self.momentum.transform(grad, state.and_then(|s| s.momentum));
        (tensor - grad.mul_scalar(lr), Some(SgdState::new(Some(momentum))))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.map(|m| m.to_device(device));
        state
    }
}

/// Euclidean norm of all entries, `[1]`.
fn norm<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    x.powi_scalar(2).sum().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};

    /// The gradients of a loss on a small linear layer, scaled by `factor`.
    fn gradients(factor: f32) -> (Linear, GradientsParams) {
        let device = Device::flex().autodiff();
        device.seed(3);
        let layer = LinearConfig::new(4, 3).init(&device);
        let x = Tensor::<2>::ones([2, 4], &device);
        let loss = layer.forward(x).sum().mul_scalar(factor);
        let grads = GradientsParams::from_grads(loss.backward(), &layer);
        (layer, grads)
    }

    fn global_norm(layer: &Linear, grads: &GradientsParams) -> f32 {
        let w = grads.get::<2>(layer.weight.id).unwrap().square().sum();
        let b = grads.get::<1>(layer.bias.as_ref().unwrap().id).unwrap().square().sum();
        (w + b).sqrt().into_scalar::<f32>()
    }

    #[test]
    fn clipping_scales_large_gradients_to_the_limit_and_keeps_small_ones() {
        let (layer, grads) = gradients(10.0);
        let before = global_norm(&layer, &grads);
        assert!(before > 1.0, "the test needs a gradient above the limit, got {before}");
        let original = grads.get::<2>(layer.weight.id).unwrap();
        let (clipped, norm) = clip_global_norm(grads, &layer, 1.0);
        assert!((norm.unwrap().into_scalar::<f32>() - before).abs() < 1e-4 * before);
        assert!((global_norm(&layer, &clipped) - 1.0).abs() < 1e-5);
        // The direction is kept: every entry scaled by the same factor.
        let ratio = clipped.get::<2>(layer.weight.id).unwrap() / original;
        let ratio: Vec<f32> = ratio.into_data().try_to_vec::<f32>().unwrap();
        assert!(ratio.iter().all(|r| (r - 1.0 / before).abs() < 1e-5), "{ratio:?}");

        let (layer, grads) = gradients(1e-3);
        let small = global_norm(&layer, &grads);
        let (kept, _) = clip_global_norm(grads, &layer, 1.0);
        assert!((global_norm(&layer, &kept) - small).abs() < 1e-9);
    }

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert!((learning_rate(1.0, 0, 100, 10) - 0.1).abs() < 1e-12);
        assert!((learning_rate(1.0, 9, 100, 10) - 1.0).abs() < 1e-12);
        assert!(learning_rate(1.0, 50, 100, 10) < 1.0);
        assert!(learning_rate(1.0, 100, 100, 10).abs() < 1e-12);
    }
}
