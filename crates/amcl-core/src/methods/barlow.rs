//! Barlow Twins (cross-correlation, redundancy reduction) and AMCL-Barlow.

use burn::prelude::*;

use super::diagnostics::DiagnosticsTensor;
use super::{BaseMethod, Step, StepState};
use crate::error::{AmclError, Result};
use crate::loss::{objective_precision, omega};
use crate::model::{AmclModel, AmclModelConfig, ProjectorKind, TemperatureRange};

/// Barlow temperatures of all heads: tau_ll [C, d] and tau_lm [C, d, d] (its diagonal unused).
pub type BarlowTemperatureSet = (Tensor<2>, Tensor<3>);

/// Each projection dimension standardised over the batch with the unbiased standard deviation:
/// [C, N, d] -> [C, N, d] (authors' release).
pub fn standardise(z: Tensor<3>) -> Tensor<3> {
    let [_, n, _] = z.dims();
    let centred = z.clone() - z.mean_dim(1);
    let variance = centred.clone().square().sum_dim(1).div_scalar((n.max(2) - 1) as f32);
    centred / variance.add_scalar(1e-12).sqrt()
}

/// Cross-correlation of batch-standardised projections, C = z1s^T z2s / N:
/// [C, N, d] x [C, N, d] -> [C, d, d].
pub fn cross_correlation(z1: Tensor<3>, z2: Tensor<3>) -> Tensor<3> {
    let [_, n, _] = z1.dims();
    standardise(z1).transpose().matmul(standardise(z2)).div_scalar(n as f32)
}

/// The channel vectors of the projections: dimension l's standardised column over the batch,
/// scaled to unit norm (docs/METHOD.md, "Barlow Twins"): [C, N, d] -> [C, d, N].
pub fn channel_vectors(z: Tensor<3>) -> Tensor<3> {
    let [_, n, _] = z.dims();
    standardise(z).transpose().div_scalar(((n.max(2) - 1) as f32).sqrt())
}

/// The Barlow temperatures of every pair of channels (x_l, y_m) from the channel network:
/// tau_lm = lo + (hi - lo) sigmoid(-<phi(x_l), phi(y_m)>), and tau_ll its diagonal.
pub fn channel_temperatures(
    model: &AmclModel,
    z1: Tensor<3>,
    z2: Tensor<3>,
) -> Result<BarlowTemperatureSet> {
    let [c, n, d] = z1.dims();
    let phi = model.channel_phi.as_ref().ok_or_else(|| {
        AmclError::InvalidConfig(
            "amcl-barlow needs its channel temperature network: build the model with MethodKind::model_config".into(),
        )
    })?;
    if phi.input_dim() != n {
        return Err(AmclError::InvalidConfig(format!(
            "amcl-barlow's channel temperature network takes batches of {} images (its input is R^B), got {n}; \
             train with that batch size (the last incomplete batch is dropped)",
            phi.input_dim()
        )));
    }
    let tau = phi.pairwise_temperatures(channel_vectors(z1), channel_vectors(z2), &model.range);
    let eye = objective_precision(Tensor::<2>::eye(d, &tau.device())).unsqueeze_dim::<3>(0);
    let diagonal = (tau.clone() * eye).sum_dim(2).reshape([c, d]);
    Ok((diagonal, tau))
}

/// Barlow Twins over pre-computed projections `z1`, `z2` [C, N, d], summed over heads.
///
/// Plain: sum_l (1 - C_ll)^2 + lambda sum_{l!=m} C_lm^2.
/// AMCL:  sum_l (1 - C_ll/t_l)^2 + lambda sum_{l!=m} C_lm^2/t_lm
///        + beta sum_l Omega(t_l) - beta sum_{l!=m} Omega(t_lm)   (docs/METHOD.md, "Barlow Twins").
/// `range`: the temperatures' bounds (for the diagnostics).
pub fn barlow_objective(
    z1: Tensor<3>,
    z2: Tensor<3>,
    taus: Option<BarlowTemperatureSet>,
    lambda: f32,
    beta: f32,
    range: TemperatureRange,
) -> (Tensor<1>, DiagnosticsTensor) {
    let adaptive = taus.is_some();
    let [c, _, d] = z1.dims();
    let device = z1.device();
    let cc = cross_correlation(z1, z2);
    let eye = objective_precision(Tensor::<2>::eye(d, &device)).unsqueeze_dim::<3>(0);
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
    let diagnostics = DiagnosticsTensor::from_parts(
        tau_pos,
        diagonal,
        Some(tau_neg),
        Some(largest_off),
        adaptive.then_some(range),
    );
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
) -> Result<(Tensor<1>, DiagnosticsTensor)> {
    let z1 = objective_precision(Tensor::stack::<3>(model.project(features_a), 0));
    let z2 = objective_precision(Tensor::stack::<3>(model.project(features_b), 0));
    let taus =
        if adaptive { Some(channel_temperatures(model, z1.clone(), z2.clone())?) } else { None };
    Ok(barlow_objective(z1, z2, taus, lambda, beta, model.range))
}

/// Barlow Twins (cross-correlation towards the identity) and AMCL-Barlow (a temperature per pair
/// of channels).
#[derive(Debug)]
pub struct Barlow;

impl BaseMethod for Barlow {
    fn name(&self) -> &'static str {
        "barlow"
    }

    /// Barlow Twins' 3-layer projector; for AMCL the channel temperature network, whose input
    /// is a channel over a batch of `batch_size` images.
    fn model_config(
        &self,
        model: AmclModelConfig,
        adaptive: bool,
        batch: usize,
    ) -> AmclModelConfig {
        model
            .with_projector(ProjectorKind::Barlow)
            .with_predictor_hidden(None)
            .with_barlow_batch(adaptive.then_some(batch))
    }

    fn check_model(&self, model: &AmclModel, adaptive: bool) -> Result<()> {
        if adaptive && model.channel_phi.is_none() {
            return Err(AmclError::InvalidConfig(
                "amcl-barlow needs its channel temperature network: build the model with MethodKind::model_config".into(),
            ));
        }
        Ok(())
    }

    fn authors_beta(&self) -> f32 {
        1e-6
    }

    fn paper_lr(&self) -> f64 {
        0.11
    }

    fn paper_projector_width(&self) -> Option<usize> {
        Some(2048)
    }

    fn loss(&self, step: Step<'_>, _: &mut StepState) -> Result<(Tensor<1>, DiagnosticsTensor)> {
        let Step { model, features: [features_a, features_b], adaptive, config, .. } = step;
        let (lambda, beta) = (config.barlow_lambda, config.beta);
        barlow_step(model, features_a, features_b, adaptive, lambda, beta)
    }
}
