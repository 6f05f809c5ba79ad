//! The objective's terms by flex-kernels' fused CPU kernel (`loss::fused_terms`, what training on
//! the CPU runs) equal the tensor ops every other backend runs (`loss::composed_terms`): values
//! and gradients, for each reduction the kernel has, with and without Omega.

use amcl_core::loss::{AmclObjectiveConfig, NegativeReduction, composed_terms, fused_terms};
use amcl_core::rng::Rng;
use burn::prelude::*;

fn uniform<const D: usize>(shape: [usize; D], lo: f32, hi: f32, seed: u64) -> Tensor<D> {
    let mut rng = Rng::new(seed);
    let count = shape.iter().product();
    let values: Vec<f32> = (0..count).map(|_| lo + (hi - lo) * rng.uniform()).collect();
    Tensor::from_data(TensorData::new(values, shape), &Device::flex())
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn assert_close(got: Vec<f32>, expected: Vec<f32>, what: &str) {
    let scale = expected.iter().fold(1e-3f32, |s, v| s.max(v.abs()));
    let diff = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(diff <= 1e-5 * scale, "{what}: max |diff| {diff} (scale {scale})");
}

/// Shapes with one negative, with a K that is not a multiple of anything, and with more
/// rows than one task holds; each reduction, with and without Omega.
fn cases() -> Vec<([usize; 3], AmclObjectiveConfig)> {
    let mut cases = Vec::new();
    for shape in [[1, 1, 1], [2, 5, 7], [3, 11, 37]] {
        for reduction in [NegativeReduction::LogSumExp, NegativeReduction::Max] {
            for beta in [0.0, 0.1] {
                cases.push((shape, AmclObjectiveConfig { beta, dim: 64, reduction }));
            }
        }
    }
    cases
}

#[test]
fn fused_terms_equal_the_tensor_ops() {
    for ([c, n, k], cfg) in cases() {
        let neg_sim = uniform([c, n, k], -1.0, 1.0, 2);
        let neg_tau = uniform([c, n, k], 0.05, 1.0, 4);
        // Then the positives at the temperature floor, whose logits (~1e5) dwarf every
        // negative's: the negatives' weights must not underflow into 0 / 0.
        let positives = [
            (uniform([c, n], -1.0, 1.0, 1), uniform([c, n], 0.05, 1.0, 3)),
            (uniform([c, n], 0.5, 1.0, 1), Tensor::full([c, n], 1e-5, &Device::flex())),
        ];
        for (pos_sim, pos_tau) in positives {
            let (neg_sim, neg_tau) = (neg_sim.clone(), neg_tau.clone());
            let fused = fused_terms(&pos_sim, &neg_sim, &pos_tau, &neg_tau, &cfg)
                .expect("the kernel runs for f32 on flex");
            let composed = composed_terms(pos_sim, neg_sim, pos_tau, neg_tau, &cfg);
            let what = format!("{:?} {cfg:?}", [c, n, k]);
            assert_close(to_vec(fused), to_vec(composed), &what);
        }
    }
}

/// Needs the `autodiff` feature (the kernel's backward pass), on in workspace builds.
#[cfg(feature = "autodiff")]
#[test]
fn fused_gradients_equal_the_tensor_ops() {
    let device = Device::flex().autodiff();
    for ([c, n, k], cfg) in cases() {
        let grads_of = |fused: bool| {
            let leaf = |t: Tensor<3>| Tensor::<3>::from_data(t.into_data(), &device);
            let pos_sim = leaf(uniform([c, n, 1], -1.0, 1.0, 1)).require_grad();
            let neg_sim = leaf(uniform([c, n, k], -1.0, 1.0, 2)).require_grad();
            let pos_tau = leaf(uniform([c, n, 1], 0.05, 1.0, 3)).require_grad();
            let neg_tau = leaf(uniform([c, n, k], 0.05, 1.0, 4)).require_grad();
            let (ps, pt) = (pos_sim.clone().reshape([c, n]), pos_tau.clone().reshape([c, n]));
            let terms = if fused {
                fused_terms(&ps, &neg_sim, &pt, &neg_tau, &cfg).expect("the kernel runs")
            } else {
                composed_terms(ps, neg_sim.clone(), pt, neg_tau.clone(), &cfg)
            };
            // A non-uniform upstream gradient, so that each row's g matters.
            let g = Tensor::<2>::from_data(uniform([c, n], -1.0, 1.0, 5).into_data(), &device);
            let grads = (terms * g).sum().backward();
            [pos_sim, neg_sim, pos_tau, neg_tau]
                .map(|x| to_vec(x.grad(&grads).expect("a gradient")))
        };
        let (fused, composed) = (grads_of(true), grads_of(false));
        let names = ["pos_sim", "neg_sim", "pos_tau", "neg_tau"];
        for ((name, got), expected) in names.iter().zip(fused).zip(composed) {
            assert!(expected.iter().any(|v| v.abs() > 1e-4), "{name}: trivially zero");
            assert_close(got, expected, &format!("grad {name}, {:?} {cfg:?}", [c, n, k]));
        }
    }
}
