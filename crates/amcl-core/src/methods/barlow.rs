//! Barlow Twins (cross-correlation, redundancy reduction) and AMCL-Barlow.

use burn::prelude::*;

use super::diagnostics::DiagnosticsTensor;
use crate::loss::omega;
use crate::model::AmclModel;

/// Learned Barlow temperatures of all heads: diagonal [C, d] and off-diagonal [C, d, d].
pub type BarlowTemperatureSet = (Tensor<2>, Tensor<3>);

/// Cross-correlation of batch-standardised projections: [C, N, d] x [C, N, d] -> [C, d, d].
pub fn cross_correlation(z1: Tensor<3>, z2: Tensor<3>) -> Tensor<3> {
    let [_, n, _] = z1.dims();
    let standardise = |z: Tensor<3>| {
        let mean = z.clone().mean_dim(1);
        let centred = z - mean;
        let std = centred.clone().square().mean_dim(1).add_scalar(1e-6).sqrt();
        centred / std
    };
    standardise(z1).transpose().matmul(standardise(z2)).div_scalar(n as f32)
}

/// Barlow Twins over pre-computed projections `z1`, `z2` [C, N, d], summed over heads.
///
/// Plain: sum_l (1 - C_ll)^2 + lambda sum_{l!=m} C_lm^2.
/// AMCL:  sum_l (1 - C_ll/t_l)^2 + lambda sum_{l!=m} C_lm^2/t_lm
///        + beta sum_l Omega(t_l) - beta sum_{l!=m} Omega(t_lm)   (shared/AMCL.md).
pub fn barlow_objective(
    z1: Tensor<3>,
    z2: Tensor<3>,
    taus: Option<BarlowTemperatureSet>,
    lambda: f32,
    beta: f32,
) -> (Tensor<1>, DiagnosticsTensor) {
    let [c, _, d] = z1.dims();
    let device = z1.device();
    let cc = cross_correlation(z1, z2);
    let eye = Tensor::<2>::eye(d, &device).unsqueeze_dim::<3>(0);
    let off_mask = eye.clone().neg().add_scalar(1.0);
    let diagonal = (cc.clone() * eye.clone()).sum_dim(2).squeeze_dim::<2>(2);
    let off_diagonal = |x: Tensor<3>| (x * off_mask.clone()).sum_dims_squeeze::<1, _>(&[1, 2]);
    let (per_head, tau_pos, tau_neg) = match taus {
        None => {
            let on = diagonal.clone().neg().add_scalar(1.0).square().sum_dim(1).reshape([c]);
            let off = off_diagonal(cc.clone().square()).mul_scalar(lambda);
            let ones = diagonal.clone().ones_like();
            (on + off, ones.clone(), ones.unsqueeze_dim::<3>(2))
        }
        Some((tau_diag, tau_off)) => {
            let on = (diagonal.clone() / tau_diag.clone()).neg().add_scalar(1.0).square()
                + omega(tau_diag.clone(), d).mul_scalar(beta);
            let off = (cc.clone().square() / tau_off.clone()).mul_scalar(lambda)
                - omega(tau_off.clone(), d).mul_scalar(beta);
            (on.sum_dim(1).reshape([c]) + off_diagonal(off), tau_diag, tau_off)
        }
    };
    let largest_off = (cc * off_mask).reshape([c, d * d]).abs().max_dim(1);
    let diagnostics =
        DiagnosticsTensor::from_parts(tau_pos, diagonal, Some(tau_neg), Some(largest_off));
    (per_head.sum().reshape([1]), diagnostics)
}

/// One Barlow Twins step on the model (projections unnormalised, as in the original method).
pub fn barlow_step(
    model: &AmclModel,
    features_a: Tensor<2>,
    features_b: Tensor<2>,
    adaptive: bool,
    lambda: f32,
    beta: f32,
) -> (Tensor<1>, DiagnosticsTensor) {
    let z1 = Tensor::stack::<3>(model.project(features_a), 0);
    let z2 = Tensor::stack::<3>(model.project(features_b), 0);
    let taus = adaptive.then(|| {
        let diag = model.barlow.iter().map(|t| model.range.squash(t.diagonal.val())).collect();
        let off = model.barlow.iter().map(|t| model.range.squash(t.off_diagonal.val())).collect();
        (Tensor::stack(diag, 0), Tensor::stack(off, 0))
    });
    barlow_objective(z1, z2, taus, lambda, beta)
}
