//! Batch normalisation in training mode on the CPU, in two passes forward and two backward:
//! the statistics (both sums in one pass), then the element-wise part.
//!
//! For x [B, C, S] (S = H W) and each channel c, with n = B S:
//!
//! ```text
//! mean_c = sum x / n     var_c = sum (x - mean_c)^2 / n     inv_c = 1 / sqrt(var_c + eps)
//! y      = gamma_c inv_c (x - mean_c) + beta_c
//! dbeta_c  = sum dy      dgamma_c = sum dy xhat              xhat = inv_c (x - mean_c)
//! dx     = gamma_c inv_c (dy - dbeta_c / n - xhat dgamma_c / n)
//! ```
//!
//! With `relu`, y is followed by max(y, 0) in the same pass, and dy is masked by y > 0 (recomputed
//! from x) before the sums above.
//!
//! burn's generic `batch_norm_train` builds these from about a dozen tensor ops, each a pass
//! over the activation, with transposed copies for the per-channel reductions; on flex that cost
//! a fifth of a small-CNN step. Here each pass is a loop: statistics in parallel over channels,
//! the element-wise part in parallel over images.
//!
//! Used on flex under autodiff in f32 (training); the module's parameters and running
//! statistics stay burn's [`BatchNorm`], updated exactly as burn updates them. Everything else
//! (inference, other backends) calls [`BatchNorm::forward`].
#![cfg_attr(target_arch = "wasm32", allow(dead_code, unused_imports))]

use burn::nn::BatchNorm;
use burn::prelude::*;

/// `bn.forward(x)`, then a ReLU when `relu`; fused on the CPU while training.
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>, relu: bool) -> Tensor<4> {
    #[cfg(all(feature = "autodiff", not(target_arch = "wasm32")))]
    if bn.training.is_enabled()
        && x.dtype() == burn::tensor::DType::F32
        && bn.gamma.dims() == [x.dims()[1]]
    {
        use crate::{FlexPath, flex_path};
        if flex_path(&x.device()) == FlexPath::Tracked {
            // None under another checkpointing strategy: burn's batch norm then.
            if let Some((y, mean, variance)) =
                tracked::forward(x.clone(), bn.gamma.val(), bn.beta.val(), bn.epsilon, relu)
            {
                update_running_statistics(bn, mean, variance);
                return y;
            }
        }
    }
    let y = bn.forward(x);
    if relu { burn::tensor::activation::relu(y) } else { y }
}

/// running = (1 - momentum) running + momentum batch, as burn's `BatchNorm` does.
#[cfg_attr(not(feature = "autodiff"), allow(dead_code))]
fn update_running_statistics(bn: &BatchNorm, mean: Tensor<1>, variance: Tensor<1>) {
    let m = bn.momentum;
    let device = mean.device();
    let mean =
        bn.running_mean.value_sync().to_device(&device).mul_scalar(1.0 - m).add(mean.mul_scalar(m));
    let variance = bn
        .running_var
        .value_sync()
        .to_device(&device)
        .mul_scalar(1.0 - m)
        .add(variance.mul_scalar(m));
    bn.running_mean.update(mean.detach());
    bn.running_var.update(variance.detach());
}

/// The fused op on flex under autodiff.
#[cfg(all(feature = "autodiff", not(target_arch = "wasm32")))]
mod tracked {
    use burn::backend::flex::FlexTensor;
    use burn::prelude::*;

    use super::kernel;
    use crate::buffer::f32s;
    use crate::custom_op::{FlexBackward, record, tracked};

    /// What the backward pass needs: x, its [B, C, S] sizes, gamma, beta, the batch statistics
    /// and whether a ReLU followed.
    #[derive(Debug, Clone)]
    struct Saved {
        x: FlexTensor,
        dims: [usize; 3],
        relu: bool,
        gamma: Vec<f32>,
        beta: Vec<f32>,
        mean: Vec<f32>,
        inv_std: Vec<f32>,
    }

    #[derive(Debug)]
    struct BatchNormBackward;

    impl FlexBackward<3> for BatchNormBackward {
        type State = Saved;

        fn backward(self, s: Saved, dy: FlexTensor, _: [bool; 3]) -> [Option<FlexTensor>; 3] {
            let shape = s.x.layout().shape().clone();
            let affine = kernel::Affine {
                gamma: &s.gamma,
                beta: &s.beta,
                mean: &s.mean,
                inv_std: &s.inv_std,
            };
            let grad = kernel::backward(f32s(&s.x), f32s(&dy), affine, s.dims, s.relu);
            let channels =
                |values| Some(FlexTensor::from_data(TensorData::new(values, [s.dims[1]])));
            [
                Some(FlexTensor::from_data(TensorData::new(grad.x, shape))),
                channels(grad.gamma),
                channels(grad.beta),
            ]
        }
    }

    /// (y, batch mean, biased batch variance); None under another checkpointing strategy.
    pub(super) fn forward(
        x: Tensor<4>,
        gamma: Tensor<1>,
        beta: Tensor<1>,
        epsilon: f64,
        relu: bool,
    ) -> Option<(Tensor<4>, Tensor<1>, Tensor<1>)> {
        let device = x.device();
        let [b, c, h, w] = x.dims();
        let (node_x, x) = tracked(x)?;
        let (node_gamma, gamma) = tracked(gamma)?;
        let (node_beta, beta) = tracked(beta)?;
        let (gamma, beta) = (f32s(&gamma).to_vec(), f32s(&beta).to_vec());
        let dims = [b, c, h * w];
        let out = kernel::forward(f32s(&x), &gamma, &beta, epsilon as f32, dims, relu);
        let y = FlexTensor::from_data(TensorData::new(out.y, [b, c, h, w]));
        let mean = Tensor::from_data(TensorData::new(out.mean.clone(), [c]), &device);
        let variance = Tensor::from_data(TensorData::new(out.variance, [c]), &device);
        let saved = Saved { x, dims, relu, gamma, beta, mean: out.mean, inv_std: out.inv_std };
        let nodes = [node_x, node_gamma, node_beta];
        Some((record(BatchNormBackward, nodes, y, saved), mean, variance))
    }
}

/// The kernels on row-major f32 slices x [B, C, S].
#[cfg_attr(not(feature = "autodiff"), allow(dead_code))]
mod kernel {
    use std::mem::MaybeUninit;

    #[cfg(not(target_arch = "wasm32"))]
    use rayon::prelude::*;

    use crate::buffer;

    pub struct Forward {
        pub y: Vec<f32>,
        pub mean: Vec<f32>,
        pub variance: Vec<f32>,
        pub inv_std: Vec<f32>,
    }

    pub struct Backward {
        pub x: Vec<f32>,
        pub gamma: Vec<f32>,
        pub beta: Vec<f32>,
    }

    /// The per-channel parameters and batch statistics of a forward pass.
    #[derive(Clone, Copy)]
    pub struct Affine<'a> {
        pub gamma: &'a [f32],
        pub beta: &'a [f32],
        pub mean: &'a [f32],
        pub inv_std: &'a [f32],
    }

    impl Affine<'_> {
        /// (scale, shift) of channel c: the pre-ReLU output is scale x + shift.
        fn scale_shift(&self, c: usize) -> (f32, f32) {
            let scale = self.gamma[c] * self.inv_std[c];
            (scale, self.beta[c] - self.mean[c] * scale)
        }
    }

    /// The runs of channel c in x [B, C, S]: B slices of S values.
    fn channel(x: &[f32], [b, c, s]: [usize; 3], ch: usize) -> impl Iterator<Item = &[f32]> {
        (0..b).map(move |i| &x[(i * c + ch) * s..][..s])
    }

    /// Per channel f(c) -> T, over the cores.
    fn per_channel<T: Send>(c: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
        #[cfg(not(target_arch = "wasm32"))]
        return (0..c).into_par_iter().map(f).collect();
        #[cfg(target_arch = "wasm32")]
        (0..c).map(f).collect()
    }

    /// A new [B, C, S] buffer, with out[i, c, :] written by g(c, offset of (i, c), out[i, c, :])
    /// for every image i and channel c, over the cores.
    fn per_image(
        [b, c, s]: [usize; 3],
        g: impl Fn(usize, usize, &mut [MaybeUninit<f32>]) + Sync + Send,
    ) -> Vec<f32> {
        let mut out = buffer::uninit(b * c * s);
        let image = |(i, out_i): (usize, &mut [MaybeUninit<f32>])| {
            for (ch, run) in out_i.chunks_exact_mut(s.max(1)).enumerate() {
                g(ch, (i * c + ch) * s, run);
            }
        };
        #[cfg(not(target_arch = "wasm32"))]
        out.par_chunks_mut((c * s).max(1)).enumerate().for_each(image);
        #[cfg(target_arch = "wasm32")]
        out.chunks_mut((c * s).max(1)).enumerate().for_each(image);
        // SAFETY: the runs (i, c) cover out, and every g below writes its whole run.
        unsafe { buffer::assume_init(out) }
    }

    /// Sums of f(x, y) = (u, v) over two runs, both in one pass, with independent partial sums
    /// per lane so that it vectorises.
    #[inline(always)]
    fn sums_by(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> (f32, f32)) -> (f64, f64) {
        const LANES: usize = 16;
        let (mut acc_u, mut acc_v) = ([0.0f32; LANES], [0.0f32; LANES]);
        let whole = x.len() / LANES * LANES;
        for (xs, ys) in x[..whole].chunks_exact(LANES).zip(y[..whole].chunks_exact(LANES)) {
            for l in 0..LANES {
                let (u, v) = f(xs[l], ys[l]);
                acc_u[l] += u;
                acc_v[l] += v;
            }
        }
        let (mut tail_u, mut tail_v) = (0.0f32, 0.0f32);
        for (&a, &b) in x[whole..].iter().zip(&y[whole..]) {
            let (u, v) = f(a, b);
            tail_u += u;
            tail_v += v;
        }
        let total =
            |acc: [f32; LANES], tail: f32| acc.iter().map(|&a| a as f64).sum::<f64>() + tail as f64;
        (total(acc_u, tail_u), total(acc_v, tail_v))
    }

    /// max(v, 0) as one compare-and-select.
    #[inline(always)]
    fn relu(v: f32) -> f32 {
        if v > 0.0 { v } else { 0.0 }
    }

    /// y (after the ReLU when `relu`), and the batch statistics (mean, biased variance,
    /// 1 / sqrt(variance + eps)).
    pub fn forward(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
        dims: [usize; 3],
        relu_after: bool,
    ) -> Forward {
        let [b, c, s] = dims;
        let n = (b * s).max(1) as f64;
        // One pass: sums of (x - k) and (x - k)^2 with k the channel's first value, a sample of
        // it, so that (x - k) is on the scale of the spread and the variance
        // E[(x - k)^2] - E[x - k]^2 loses no digits to a large mean.
        let stats = per_channel(c, |ch| {
            let k = channel(x, dims, ch).next().and_then(|run| run.first()).copied();
            let k = k.unwrap_or(0.0);
            let (mut sum, mut squares) = (0.0f64, 0.0f64);
            for run in channel(x, dims, ch) {
                let (u, v) = sums_by(run, run, |v, _| (v - k, (v - k) * (v - k)));
                sum += u;
                squares += v;
            }
            let shift = sum / n;
            ((k as f64 + shift) as f32, (squares / n - shift * shift).max(0.0) as f32)
        });
        let mean: Vec<f32> = stats.iter().map(|s| s.0).collect();
        let variance: Vec<f32> = stats.iter().map(|s| s.1).collect();
        let inv_std: Vec<f32> = variance.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        let affine = Affine { gamma, beta, mean: &mean, inv_std: &inv_std };
        let y = per_image(dims, |ch, at, out| {
            let (scale, shift) = affine.scale_shift(ch);
            let run = &x[at..][..s];
            if relu_after {
                out.iter_mut().zip(run).for_each(|(o, &v)| {
                    o.write(relu(v * scale + shift));
                });
            } else {
                out.iter_mut().zip(run).for_each(|(o, &v)| {
                    o.write(v * scale + shift);
                });
            }
        });
        Forward { y, mean, variance, inv_std }
    }

    /// Gradients of x, gamma and beta given dy (of the ReLU's output when `relu`).
    pub fn backward(
        x: &[f32],
        dy: &[f32],
        affine: Affine,
        dims: [usize; 3],
        relu_after: bool,
    ) -> Backward {
        let [b, c, s] = dims;
        let n = (b * s).max(1) as f32;
        // dy where the ReLU let the value through (all of it without a ReLU).
        let passed = |ch: usize| {
            let (scale, shift) = affine.scale_shift(ch);
            move |v: f32, d: f32| if !relu_after || v * scale + shift > 0.0 { d } else { 0.0 }
        };
        let sums = per_channel(c, |ch| {
            let (m, pass) = (affine.mean[ch], passed(ch));
            let (mut sum_dy, mut sum_dy_centred) = (0.0f64, 0.0f64);
            for (x_run, dy_run) in channel(x, dims, ch).zip(channel(dy, dims, ch)) {
                let (u, v) = sums_by(x_run, dy_run, |v, d| {
                    let d = pass(v, d);
                    (d, d * (v - m))
                });
                sum_dy += u;
                sum_dy_centred += v;
            }
            (sum_dy as f32, (sum_dy_centred * affine.inv_std[ch] as f64) as f32)
        });
        let beta: Vec<f32> = sums.iter().map(|s| s.0).collect();
        let gamma: Vec<f32> = sums.iter().map(|s| s.1).collect();
        // dx = k (dy - dbeta / n - xhat dgamma / n) = k dy + slope x + offset per channel.
        let dx = per_image(dims, |ch, at, out| {
            let (k, inv, pass) =
                (affine.gamma[ch] * affine.inv_std[ch], affine.inv_std[ch], passed(ch));
            let slope = -k * inv * gamma[ch] / n;
            let offset = -k * beta[ch] / n - slope * affine.mean[ch];
            for ((o, &v), &d) in out.iter_mut().zip(&x[at..][..s]).zip(&dy[at..][..s]) {
                o.write(k * pass(v, d) + slope * v + offset);
            }
        });
        Backward { x: dx, gamma, beta }
    }
}

#[cfg(all(test, feature = "autodiff"))]
mod tests {
    use super::*;
    use burn::module::{Module, Param};
    use burn::nn::BatchNormConfig;

    fn random(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
        let mut rng = crate::test_values::Rng::new(seed);
        let values: Vec<f32> =
            (0..shape.iter().product()).map(|_| 3.0 * rng.normal() + 1.5).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn max_diff<const D: usize>(x: Tensor<D>, y: Tensor<D>) -> f32 {
        let x = x.into_data().try_to_vec::<f32>().unwrap();
        let y = y.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(x.len(), y.len());
        x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max)
    }

    /// Output, gradients of x, gamma and beta, and the running statistics after two steps all
    /// equal burn's `BatchNorm` (then a ReLU, in the cases marked so; S = 1, 5 and 20 cover the
    /// remainder loops).
    #[test]
    fn training_step_equals_burns_batch_norm() {
        let device = Device::flex().autodiff();
        let cases = [
            ([6, 4, 1, 1], false),
            ([3, 5, 5, 1], false),
            ([17, 3, 4, 5], false),
            ([9, 3, 4, 5], true),
        ];
        for (case, (shape, relu)) in cases.into_iter().enumerate() {
            let c = shape[1];
            let run = |fused: bool| {
                let bn = BatchNormConfig::new(c).init(&device);
                // Non-trivial gamma and beta.
                let channel_values = |f: fn(f32) -> f32| {
                    let values: Vec<f32> = (0..c).map(|ch| f(ch as f32)).collect();
                    Param::from_tensor(Tensor::from_data(TensorData::new(values, [c]), &device))
                };
                let bn = BatchNorm {
                    gamma: channel_values(|ch| 0.5 + 0.25 * ch),
                    beta: channel_values(|ch| 0.3 - 0.1 * ch),
                    ..bn
                };
                let mut grads = Vec::new();
                let mut y_first = None;
                for step in 0..2 {
                    let x = random(shape, 10 * case as u64 + step, &device).require_grad();
                    let y = if fused {
                        batch_norm(&bn, x.clone(), relu)
                    } else if relu {
                        burn::tensor::activation::relu(bn.forward(x.clone()))
                    } else {
                        bn.forward(x.clone())
                    };
                    let g = random(shape, 100 + step, &device);
                    y_first.get_or_insert(y.clone().detach());
                    let gradients = (y * g).sum().backward();
                    grads.push((
                        x.grad(&gradients).unwrap(),
                        bn.gamma.val().grad(&gradients).unwrap(),
                        bn.beta.val().grad(&gradients).unwrap(),
                    ));
                }
                let bn = bn.valid();
                (y_first.unwrap(), grads, bn.running_mean.value(), bn.running_var.value())
            };
            let (ours, burns) = (run(true), run(false));
            assert!(max_diff(ours.0, burns.0) < 1e-4, "case {case}: y");
            for (step, (a, b)) in ours.1.into_iter().zip(burns.1).enumerate() {
                let (dx, dg, db) = (max_diff(a.0, b.0), max_diff(a.1, b.1), max_diff(a.2, b.2));
                assert!(
                    dx < 1e-4 && dg < 1e-3 && db < 1e-3,
                    "case {case} step {step}: {dx} {dg} {db}"
                );
            }
            assert!(max_diff(ours.2, burns.2) < 1e-5, "case {case}: running mean");
            assert!(max_diff(ours.3, burns.3) < 1e-4, "case {case}: running variance");
        }
    }

    /// The one-pass statistics keep their digits when the mean dwarfs the spread (activations
    /// around 1000 +- 1): a plain E[x^2] - E[x]^2 in f32 would be off by tens of percent.
    #[test]
    fn statistics_hold_under_a_large_mean() {
        let dims = [8, 2, 50];
        let mut rng = crate::test_values::Rng::new(3);
        let x: Vec<f32> = (0..dims.iter().product()).map(|_| 1000.0 + rng.normal()).collect();
        let ones = [1.0f32; 2];
        let zeros = [0.0f32; 2];
        let stats = kernel::forward(&x, &ones, &zeros, 1e-5, dims, false);
        for ch in 0..2 {
            let values: Vec<f64> = (0..8)
                .flat_map(|i| x[(i * 2 + ch) * 50..][..50].iter().map(|&v| v as f64))
                .collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
            assert!((stats.mean[ch] as f64 - mean).abs() < 1e-3, "channel {ch} mean");
            assert!(
                (stats.variance[ch] as f64 - var).abs() < 1e-3 * var,
                "channel {ch}: variance {} against {var}",
                stats.variance[ch]
            );
        }
    }
}
