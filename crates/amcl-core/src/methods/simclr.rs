//! SimCLR (in-batch negatives over the 2N views) and AMCL-SimCLR.

use burn::prelude::*;

use super::diagnostics::DiagnosticsTensor;
use super::top_k::selected_negatives;
use super::{BaseMethod, Step, StepState};
use crate::error::Result;
use crate::loss::{
    AmclObjectiveConfig, amcl_objective_terms, nt_xent, objective_precision, objective_tensor,
};
use crate::model::{AmclModel, TemperatureRange};
use flex_kernels::{Columns, select_columns};

/// Index tensors that pick, for each of the 2N views, its positive ([2N, 1]) and its 2N - 2
/// negatives ([2N, 2N - 2]) out of a row of the [2N, 2N] pair matrix. Views i and i + N are the
/// two views of image i.
pub fn simclr_pair_indices(n: usize, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let (positive, negatives) = simclr_pair_columns(n);
    (positive.tensor(device), negatives.tensor(device))
}

/// The same as [`Columns`]: for each view, its positive, and its negatives.
pub fn simclr_pair_columns(n: usize) -> (Columns, Columns) {
    let views = 2 * n;
    let positive = (0..views).map(|i| (i + n) % views).collect();
    let negatives = (0..views)
        .flat_map(|i| (0..views).filter(move |&j| j != i && j != (i + n) % views))
        .collect();
    (Columns::new(views, 1, positive), Columns::new(views, views.saturating_sub(2), negatives))
}

/// AMCL-SimCLR over pre-computed quantities (docs/METHOD.md, "SimCLR and MoCo"). `z_a`, `z_b`:
/// unit-norm projections [C, N, d]; `tau`: temperatures of every ordered pair of the 2N views
/// [C, 2N, 2N] (views a then b), within `range`. Every view is an anchor, so the mean over the 2N
/// anchors averages the two directions. Returns the objective [1] and the diagnostics (of the
/// negatives the objective uses: the top k with `TopK(k)`).
pub fn simclr_amcl_objective(
    z_a: Tensor<3>,
    z_b: Tensor<3>,
    tau: Tensor<3>,
    cfg: &AmclObjectiveConfig,
    range: TemperatureRange,
) -> Result<(Tensor<1>, DiagnosticsTensor)> {
    let [_, n, _] = z_a.dims();
    let z = Tensor::cat(vec![z_a, z_b], 1);
    let sim = z.clone().matmul(z.transpose());
    let (positive, negatives) = simclr_pair_columns(n);
    let pos_sim = select_columns(sim.clone(), &positive).squeeze_dim::<2>(2);
    let pos_tau = select_columns(tau.clone(), &positive).squeeze_dim::<2>(2);
    let neg_sim = select_columns(sim, &negatives);
    let neg_tau = select_columns(tau, &negatives);
    let (neg_sim, neg_tau) = selected_negatives(neg_sim, neg_tau, cfg);
    let diagnostics = DiagnosticsTensor::from_parts(
        pos_tau.clone(),
        pos_sim.clone(),
        Some(neg_tau.clone()),
        Some(neg_sim.clone().max_dim(2).squeeze_dim(2)),
        Some(range),
    );
    let terms = amcl_objective_terms(pos_sim, neg_sim, pos_tau, neg_tau, cfg)?;
    Ok((terms.sum_dim(0).mean().reshape([1]), diagnostics))
}

/// Plain multi-head SimCLR: the sum over heads of NT-Xent at a fixed temperature.
/// `z_a`, `z_b`: projections [C, N, d] (normalised inside).
pub fn simclr_plain_objective(
    z_a: Tensor<3>,
    z_b: Tensor<3>,
    temperature: f32,
) -> (Tensor<1>, DiagnosticsTensor) {
    let [c, n, d] = z_a.dims();
    let device = z_a.device();
    let mut loss = Tensor::<1>::zeros([1], objective_tensor(&device));
    let mut pos = Vec::with_capacity(c);
    let mut hard = Vec::with_capacity(c);
    for head in 0..c {
        let a = z_a.clone().slice([head..head + 1, 0..n, 0..d]).reshape([n, d]);
        let b = z_b.clone().slice([head..head + 1, 0..n, 0..d]).reshape([n, d]);
        loss = loss + nt_xent(a.clone(), b.clone(), temperature);
        let (p, h) = positive_and_hardest(a, b);
        pos.push(p);
        hard.push(h);
    }
    let pos_sim = Tensor::stack::<2>(pos, 0);
    let fixed = pos_sim.clone().zeros_like().add_scalar(temperature);
    let diagnostics = DiagnosticsTensor::from_parts(
        fixed.clone(),
        pos_sim,
        Some(fixed.unsqueeze_dim(2)),
        Some(Tensor::stack(hard, 0)),
        None,
    );
    (loss, diagnostics)
}

/// Positive similarity [N] and hardest in-batch negative similarity [N] of view a's anchors.
fn positive_and_hardest(a: Tensor<2>, b: Tensor<2>) -> (Tensor<1>, Tensor<1>) {
    let [n, _] = a.dims();
    let sim = crate::loss::cosine_similarity_matrix(a, b).detach();
    let eye = Tensor::<2>::eye(n, &sim.device()).bool();
    let positive = (sim.clone() * objective_precision(eye.clone().float())).sum_dim(1).reshape([n]);
    let hardest = sim.mask_fill(eye, -2.0).max_dim(1).reshape([n]);
    (positive, hardest)
}

/// AMCL-SimCLR on the model: temperatures from phi over all ordered view pairs of every head.
pub fn simclr_amcl_step(
    model: &AmclModel,
    z_a: Tensor<3>,
    z_b: Tensor<3>,
    cfg: &AmclObjectiveConfig,
) -> Result<(Tensor<1>, DiagnosticsTensor)> {
    let views = Tensor::cat(vec![z_a.clone(), z_b.clone()], 1);
    let taus = model.pairwise_temperatures(views.clone(), views);
    simclr_amcl_objective(z_a, z_b, taus, cfg, model.range)
}

/// SimCLR (in-batch negatives over the 2N views, NT-Xent at 0.5) and AMCL-SimCLR.
#[derive(Debug)]
pub struct Simclr;

impl BaseMethod for Simclr {
    fn name(&self) -> &'static str {
        "simclr"
    }

    fn base_temperature(&self) -> f32 {
        0.5
    }

    fn paper_lr(&self) -> f64 {
        0.06
    }

    fn pair_temperatures(&self) -> bool {
        true
    }

    fn positive_beta(&self) -> bool {
        true
    }

    fn loss(&self, step: Step<'_>, _: &mut StepState) -> Result<(Tensor<1>, DiagnosticsTensor)> {
        let Step { model, features: [features_a, features_b], adaptive, config, objective, .. } =
            step;
        let z_a = model.project_normalized(features_a);
        let z_b = model.project_normalized(features_b);
        if !adaptive {
            return Ok(simclr_plain_objective(z_a, z_b, config.temperature));
        }
        let extra = config.positive_beta.map(|w| w - config.beta);
        let positive = extra.map(|w| positive_omega(model, &z_a, &z_b, w, objective.dim));
        let (loss, diagnostics) = simclr_amcl_step(model, z_a, z_b, &objective)?;
        Ok((positive.map_or(loss.clone(), |p| loss + p), diagnostics))
    }
}

/// `weight` * the mean over the 2N anchors of sum_c Omega(tau+): the positive pairs' Omega at a
/// weight of their own (the `positive_beta` candidate). tau is symmetric in the pair, so both
/// views of an image share their positive temperature.
fn positive_omega(
    model: &AmclModel,
    z_a: &Tensor<3>,
    z_b: &Tensor<3>,
    weight: f32,
    dim: usize,
) -> Tensor<1> {
    let tau = model.paired_temperatures(z_a.clone(), z_b.clone());
    crate::loss::omega(tau, dim).sum_dim(0).mean().mul_scalar(weight).reshape([1])
}
