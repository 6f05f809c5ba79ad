//! Properties of the objective: the NT-Xent special case, gradients, numerical safety, shapes.

mod common;

use amcl_core::loss::{
    AmclObjectiveConfig, NegativeReduction, amcl_objective, cosine_similarity_matrix, nt_xent,
    try_amcl_objective,
};
use amcl_core::methods::simclr_pair_indices;
use burn::prelude::*;
use common::*;

/// With C = 1, beta = 0 and every tau = t, the soft form is exactly SimCLR's NT-Xent at t.
#[test]
fn logsumexp_with_one_head_no_omega_and_fixed_tau_is_nt_xent() {
    let d = device();
    let n = 6;
    let dim = 5;
    for &t in &[0.1f32, 0.5, 1.0] {
        let z_a = from_vec(uniform(n * dim, -1.0, 1.0, 1), [n, dim], &d);
        let z_b = from_vec(uniform(n * dim, -1.0, 1.0, 2), [n, dim], &d);
        let expected = scalar(nt_xent(z_a.clone(), z_b.clone(), t));

        let z = Tensor::cat(vec![z_a, z_b], 0);
        let sim = cosine_similarity_matrix(z.clone(), z);
        let (pos, neg) = simclr_pair_indices(n, &d);
        let pos_sim = sim.clone().gather(1, pos).reshape([1, 2 * n]);
        let neg_sim = sim.gather(1, neg).reshape([1, 2 * n, 2 * n - 2]);
        let cfg = AmclObjectiveConfig { beta: 0.0, dim, reduction: NegativeReduction::LogSumExp };
        let got = scalar(amcl_objective(
            pos_sim.clone(),
            neg_sim.clone(),
            pos_sim.zeros_like().add_scalar(t),
            neg_sim.zeros_like().add_scalar(t),
            &cfg,
        ));
        assert!((got - expected).abs() < 1e-5, "t={t}: {got} vs NT-Xent {expected}");
    }
}

fn objective_of(
    values: &[f32],
    c: usize,
    n: usize,
    k: usize,
    reduction: NegativeReduction,
    device: &Device,
) -> Tensor<1> {
    let (ps, rest) = values.split_at(c * n);
    let (ns, rest) = rest.split_at(c * n * k);
    let (pt, nt) = rest.split_at(c * n);
    let cfg = AmclObjectiveConfig { beta: 0.1, dim: 4, reduction };
    amcl_objective(
        from_vec(ps.to_vec(), [c, n], device),
        from_vec(ns.to_vec(), [c, n, k], device),
        from_vec(pt.to_vec(), [c, n], device),
        from_vec(nt.to_vec(), [c, n, k], device),
        &cfg,
    )
}

/// Autodiff gradients with respect to similarities and temperatures match central differences.
#[test]
fn gradients_match_finite_differences() {
    let (c, n, k) = (2, 3, 4);
    let mut values = uniform(c * n, -0.9, 0.9, 3);
    values.extend(uniform(c * n * k, -0.9, 0.9, 4));
    values.extend(uniform(c * n, 0.5, 1.5, 5));
    values.extend(uniform(c * n * k, 0.5, 1.5, 6));
    // Top-k with k below K (the selection is constant near these inputs) and at K.
    let reductions = [
        NegativeReduction::LogSumExp,
        NegativeReduction::Max,
        NegativeReduction::TopK(2),
        NegativeReduction::TopK(k),
    ];
    for reduction in reductions {
        let ad = device().autodiff();
        let input = from_vec(values.clone(), [values.len()], &ad).require_grad();
        let data = input.clone();
        let split = |from: usize, len: usize| data.clone().narrow(0, from, len);
        let cfg = AmclObjectiveConfig { beta: 0.1, dim: 4, reduction };
        let loss = amcl_objective(
            split(0, c * n).reshape([c, n]),
            split(c * n, c * n * k).reshape([c, n, k]),
            split(c * n + c * n * k, c * n).reshape([c, n]),
            split(2 * c * n + c * n * k, c * n * k).reshape([c, n, k]),
            &cfg,
        );
        let grads = loss.backward();
        let analytic = values_of(input.grad(&grads).expect("gradient"));
        let eps = 1e-2;
        let cpu = device();
        for i in 0..values.len() {
            let mut plus = values.clone();
            plus[i] += eps;
            let mut minus = values.clone();
            minus[i] -= eps;
            let numeric = (scalar(objective_of(&plus, c, n, k, reduction, &cpu))
                - scalar(objective_of(&minus, c, n, k, reduction, &cpu)))
                / (2.0 * eps);
            let tol = 2e-2 * numeric.abs().max(0.1);
            assert!(
                (analytic[i] - numeric).abs() <= tol,
                "{reduction:?} input {i}: autodiff {} vs finite difference {numeric}",
                analytic[i]
            );
        }
    }
}

fn values_of(t: Tensor<1>) -> Vec<f32> {
    values(t)
}

/// tau at the floor 1e-5 with the largest similarities stays finite in every form.
#[test]
fn objective_is_finite_at_the_temperature_floor() {
    let d = device();
    for reduction in
        [NegativeReduction::Max, NegativeReduction::LogSumExp, NegativeReduction::TopK(3)]
    {
        let cfg = AmclObjectiveConfig { beta: 0.1, dim: 128, reduction };
        let loss = amcl_objective(
            Tensor::<2>::ones([3, 4], &d),
            Tensor::<3>::ones([3, 4, 5], &d),
            Tensor::<2>::full([3, 4], 1e-5, &d),
            Tensor::<3>::full([3, 4, 5], 1e-5, &d),
            &cfg,
        );
        let v = scalar(loss);
        assert!(v.is_finite(), "{reduction:?}: {v}");
    }
}

#[test]
fn shape_mismatches_are_errors_not_panics() {
    let d = device();
    let cfg = AmclObjectiveConfig::default();
    let err = try_amcl_objective(
        Tensor::<2>::ones([3, 4], &d),
        Tensor::<3>::ones([3, 4, 5], &d),
        Tensor::<2>::ones([3, 5], &d),
        Tensor::<3>::ones([3, 4, 5], &d),
        &cfg,
    )
    .unwrap_err();
    assert!(err.to_string().contains("pos_tau"), "{err}");
    let err = try_amcl_objective(
        Tensor::<2>::ones([3, 4], &d),
        Tensor::<3>::ones([2, 4, 5], &d),
        Tensor::<2>::ones([3, 4], &d),
        Tensor::<3>::ones([2, 4, 5], &d),
        &cfg,
    )
    .unwrap_err();
    assert!(err.to_string().contains("neg_sim"), "{err}");
    let err = try_amcl_objective(
        Tensor::<2>::ones([3, 4], &d),
        Tensor::<3>::ones([3, 4, 5], &d),
        Tensor::<2>::ones([3, 4], &d),
        Tensor::<3>::ones([3, 4, 6], &d),
        &cfg,
    )
    .unwrap_err();
    assert!(err.to_string().contains("neg_tau"), "{err}");
}

/// Through the method's own pair gathering too: AMCL-SimCLR with fixed tau and beta = 0 in the
/// soft form equals the sum over heads of NT-Xent, at a realistic batch size.
#[test]
fn amcl_simclr_with_fixed_tau_is_multi_head_nt_xent() {
    use amcl_core::loss::l2_normalize;
    use amcl_core::methods::{simclr_amcl_objective, simclr_plain_objective};
    let d = device();
    let (c, n, dim) = (3, 64, 16);
    let z_a = l2_normalize(from_vec(uniform(c * n * dim, -1.0, 1.0, 7), [c, n, dim], &d));
    let z_b = l2_normalize(from_vec(uniform(c * n * dim, -1.0, 1.0, 8), [c, n, dim], &d));
    let tau = Tensor::<3>::full([c, 2 * n, 2 * n], 0.2, &d);
    let cfg = AmclObjectiveConfig { beta: 0.0, dim, reduction: NegativeReduction::LogSumExp };
    let range = amcl_core::model::TemperatureRange::default();
    let (amcl, _) = simclr_amcl_objective(z_a.clone(), z_b.clone(), tau, &cfg, range).unwrap();
    let (plain, _) = simclr_plain_objective(z_a, z_b, 0.2);
    let (amcl, plain) = (scalar(amcl), scalar(plain));
    assert!((amcl - plain).abs() < 1e-4 * plain.abs(), "amcl {amcl} vs plain {plain}");
}

/// The hardest-negative form (the literal Eq. 2.1) collapses by its formula alone: with a fixed
/// tau and beta = 0 it is -s+/t + max_n s_n/t, a triplet loss without a margin, whose value and
/// gradient vanish when every embedding sits at one point. A linear encoder starts where a
/// network at initialisation does, its embeddings nearly coinciding (mean similarity 0.98 here):
/// 300 steps of the hardest-negative form leave them there (loss ~0.002), while the same steps of
/// the log-sum-exp form spread them out (mean similarity ~0.01).
#[test]
fn the_hardest_negative_form_collapses_where_the_soft_form_does_not() {
    use amcl_core::loss::l2_normalize;
    use amcl_core::methods::simclr_pair_columns;
    let (n, input, dim, t) = (16, 12, 6, 0.2);
    let ad = device().autodiff();
    // Images share most of their content (as the inputs of a network at initialisation map to
    // nearly one point): a common vector plus a small part of their own.
    let common = from_vec(uniform(input, -1.0, 1.0, 39), [1, input], &ad);
    let images = from_vec(uniform(n * input, -0.2, 0.2, 40), [n, input], &ad) + common;
    let view = |step: usize, which: u64| {
        let noise = uniform(n * input, -0.1, 0.1, 1000 + 2 * step as u64 + which);
        images.clone() + from_vec(noise, [n, input], &ad)
    };
    let (positive, negatives) = simclr_pair_columns(n);
    let train = |reduction: NegativeReduction| -> (f32, f32) {
        let mut w = from_vec(uniform(input * dim, -0.5, 0.5, 41), [input, dim], &ad).require_grad();
        let mut loss_value = 0.0;
        for step in 0..300 {
            let z =
                l2_normalize(Tensor::cat(vec![view(step, 0), view(step, 1)], 0).matmul(w.clone()));
            let sim = z.clone().matmul(z.transpose()).unsqueeze_dim::<3>(0);
            let pos_sim =
                amcl_core::methods::select_columns(sim.clone(), &positive).reshape([1, 2 * n]);
            let neg_sim = amcl_core::methods::select_columns(sim, &negatives);
            let cfg = AmclObjectiveConfig { beta: 0.0, dim, reduction };
            let loss = amcl_objective(
                pos_sim.clone(),
                neg_sim.clone(),
                pos_sim.zeros_like().add_scalar(t),
                neg_sim.zeros_like().add_scalar(t),
                &cfg,
            );
            loss_value = loss.clone().into_scalar::<f32>();
            let grad = Tensor::<2>::from_data(
                w.grad(&loss.backward()).expect("gradient").into_data(),
                &ad,
            );
            let next = (w.detach() - grad.mul_scalar(0.05)).into_data();
            w = Tensor::from_data(next, &ad).require_grad();
        }
        // Mean cosine similarity of the embeddings of different images.
        let z = l2_normalize(images.clone().matmul(w.detach()));
        let sim = values(z.clone().matmul(z.transpose()));
        let off: Vec<f32> = (0..n * n).filter(|k| k / n != k % n).map(|k| sim[k]).collect();
        (off.iter().sum::<f32>() / off.len() as f32, loss_value)
    };
    let (max_sim, max_loss) = train(NegativeReduction::Max);
    let (soft_sim, _) = train(NegativeReduction::LogSumExp);
    assert!(
        max_sim > 0.95,
        "the hardest-negative form should collapse: mean similarity {max_sim}, loss {max_loss}"
    );
    assert!(max_loss.abs() < 0.5, "a collapsed model's loss is near 0, got {max_loss}");
    assert!(soft_sim < 0.5, "the soft form should not collapse: mean similarity {soft_sim}");
}

/// AMCL-SimCLR's top-k selection on the CPU (a partial sort per row on the host, then a parallel
/// copy) gives the values and gradients of burn's `topk` and `gather` inside the objective.
#[test]
fn top_k_selection_on_the_cpu_equals_burns_topk() {
    use amcl_core::loss::l2_normalize;
    use amcl_core::methods::simclr_amcl_objective;
    use amcl_core::model::TemperatureRange;
    let ad = device().autodiff();
    let (c, n, dim, k) = (2, 6, 5, 3);
    let z_a = from_vec(uniform(c * n * dim, -1.0, 1.0, 50), [c, n, dim], &ad).require_grad();
    let z_b = from_vec(uniform(c * n * dim, -1.0, 1.0, 51), [c, n, dim], &ad);
    let tau = from_vec(uniform(c * 4 * n * n, 0.1, 1.0, 52), [c, 2 * n, 2 * n], &ad).require_grad();
    let cfg = AmclObjectiveConfig { beta: 0.1, dim, reduction: NegativeReduction::TopK(k) };
    let unit = |z: &Tensor<3>| l2_normalize(z.clone());
    let (fast, _) = simclr_amcl_objective(
        unit(&z_a),
        unit(&z_b),
        tau.clone(),
        &cfg,
        TemperatureRange::default(),
    )
    .unwrap();
    // The same objective with the pairs gathered by burn and the objective's own top-k.
    let z = Tensor::cat(vec![unit(&z_a), unit(&z_b)], 1);
    let sim = z.clone().matmul(z.transpose());
    let (pos, neg) = simclr_pair_indices(n, &ad);
    let index = |i: Tensor<2, Int>| {
        let [r, w] = i.dims();
        i.unsqueeze_dim::<3>(0).expand([c, r, w])
    };
    let gather = |x: Tensor<3>, i: &Tensor<2, Int>| x.gather(2, index(i.clone()));
    let reference = amcl_objective(
        gather(sim.clone(), &pos).reshape([c, 2 * n]),
        gather(sim, &neg),
        gather(tau.clone(), &pos).reshape([c, 2 * n]),
        gather(tau.clone(), &neg),
        &cfg,
    );
    let (a, b) = (fast.clone().into_scalar::<f32>(), reference.clone().into_scalar::<f32>());
    assert!((a - b).abs() < 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    let (gf, gr) = (fast.backward(), reference.backward());
    for (what, x, y) in [
        ("z_a", values(z_a.grad(&gf).unwrap()), values(z_a.grad(&gr).unwrap())),
        ("tau", values(tau.grad(&gf).unwrap()), values(tau.grad(&gr).unwrap())),
    ] {
        for (i, (x, y)) in x.iter().zip(&y).enumerate() {
            assert!((x - y).abs() < 1e-4 * y.abs().max(1.0), "{what}[{i}]: {x} vs {y}");
        }
    }
}
