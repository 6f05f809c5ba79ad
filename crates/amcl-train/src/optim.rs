//! Optimisers (`--optimizer`) and the learning-rate schedule.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::{Momentum, MomentumConfig};
use burn::optim::{AdamConfig, ModuleOptimizer, Optimizer, SgdConfig, SgdState};
use burn::prelude::*;

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

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert!((learning_rate(1.0, 0, 100, 10) - 0.1).abs() < 1e-12);
        assert!((learning_rate(1.0, 9, 100, 10) - 1.0).abs() < 1e-12);
        assert!(learning_rate(1.0, 50, 100, 10) < 1.0);
        assert!(learning_rate(1.0, 100, 100, 10).abs() < 1e-12);
    }
}
