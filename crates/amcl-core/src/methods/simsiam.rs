//! SimSiam (predictor, stop-gradient, no negatives) and AMCL-SimSiam.

use burn::prelude::*;

use super::diagnostics::DiagnosticsTensor;
use super::{BaseMethod, Step, StepState};
use crate::error::{AmclError, Result};
use crate::loss::{l2_normalize, objective_precision, omega};
use crate::model::{AmclModel, AmclModelConfig, ProjectorKind, TemperatureRange};

/// SimSiam's objective over pre-computed quantities. `p1`, `p2`: predictions [C, N, d];
/// `z1`, `z2`: projections [C, N, d] (stop-gradient is applied here); `taus`: the two
/// positive temperatures [C, N] (direction p1->z2, then p2->z1), or `None` for plain SimSiam.
///
/// Plain: sum_c mean_i -(cos(p1, z2) + cos(p2, z1)) / 2.
/// AMCL (authors' release, docs/METHOD.md "SimSiam"):
///        sum_c mean_i [-s12/(2 t1) - s21/(2 t2) + beta Omega(t1) + beta Omega(t2)],
/// the full beta on each Omega. `range`: the temperatures' bounds (for the diagnostics).
#[allow(clippy::too_many_arguments)]
pub fn simsiam_objective(
    p1: Tensor<3>,
    p2: Tensor<3>,
    z1: Tensor<3>,
    z2: Tensor<3>,
    taus: Option<(Tensor<2>, Tensor<2>)>,
    beta: f32,
    dim: usize,
    range: TemperatureRange,
) -> (Tensor<1>, DiagnosticsTensor) {
    let adaptive = taus.is_some();
    let cos = |p: Tensor<3>, z: Tensor<3>| {
        (l2_normalize(p) * l2_normalize(z.detach())).sum_dim(2).squeeze_dim::<2>(2)
    };
    let s12 = cos(p1, z2);
    let s21 = cos(p2, z1);
    let (term, tau_a, tau_b) = match taus {
        None => {
            let ones = s12.clone().ones_like();
            ((s12.clone() + s21.clone()).mul_scalar(-0.5), ones.clone(), ones)
        }
        Some((t1, t2)) => {
            let scaled = (s12.clone() / t1.clone() + s21.clone() / t2.clone()).mul_scalar(-0.5);
            let omegas = (omega(t1.clone(), dim) + omega(t2.clone(), dim)).mul_scalar(beta);
            (scaled + omegas, t1, t2)
        }
    };
    let loss = term.sum_dim(0).mean().reshape([1]);
    let diagnostics = DiagnosticsTensor::from_parts(
        Tensor::cat(vec![tau_a, tau_b], 1),
        Tensor::cat(vec![s12, s21], 1),
        None,
        None,
        adaptive.then_some(range),
    );
    (loss, diagnostics)
}

/// One SimSiam step on the model: predictors p_c(z_c), temperatures from phi on
/// (normalised p, normalised sg(z)).
pub fn simsiam_step(
    model: &AmclModel,
    features_a: Tensor<2>,
    features_b: Tensor<2>,
    adaptive: bool,
    beta: f32,
    dim: usize,
) -> (Tensor<1>, DiagnosticsTensor) {
    let z1 = model.project(features_a);
    let z2 = model.project(features_b);
    let predict = |z: &[Tensor<2>]| -> Vec<Tensor<2>> {
        z.iter().zip(&model.predictors).map(|(z, p)| p.forward(z.clone())).collect()
    };
    let stack = |v: Vec<Tensor<2>>| Tensor::stack::<3>(v, 0);
    // The predictors run in the training precision; the objective in f32.
    let for_objective = |v| objective_precision(stack(v));
    let (p1, p2) = (for_objective(predict(&z1)), for_objective(predict(&z2)));
    let (z1, z2) = (for_objective(z1), for_objective(z2));
    let taus = adaptive.then(|| {
        let tau = |p: &Tensor<3>, z: &Tensor<3>| {
            model.paired_temperatures(l2_normalize(p.clone()), l2_normalize(z.clone()).detach())
        };
        (tau(&p1, &z2), tau(&p2, &z1))
    });
    simsiam_objective(p1, p2, z1, z2, taus, beta, dim, model.range)
}

/// SimSiam (predictor, stop-gradient, no negatives) and AMCL-SimSiam.
#[derive(Debug)]
pub struct Simsiam;

impl BaseMethod for Simsiam {
    fn name(&self) -> &'static str {
        "simsiam"
    }

    /// SimSiam's 3-layer projector and one predictor per head, with a bottleneck of h / 4 (512
    /// for 2,048).
    fn model_config(&self, model: AmclModelConfig, _: bool, _: usize) -> AmclModelConfig {
        let predictor = Some((model.hidden / 4).max(1));
        model
            .with_projector(ProjectorKind::Simsiam)
            .with_predictor_hidden(predictor)
            .with_barlow_batch(None)
    }

    fn check_model(&self, model: &AmclModel, _: bool) -> Result<()> {
        if model.predictors.len() != model.num_heads() {
            return Err(AmclError::InvalidConfig(
                "simsiam needs one predictor per head: build the model with MethodKind::model_config".into(),
            ));
        }
        Ok(())
    }

    fn paper_lr(&self) -> f64 {
        0.05
    }

    fn paper_projector_width(&self) -> Option<usize> {
        Some(2048)
    }

    fn loss(&self, step: Step<'_>, _: &mut StepState) -> Result<(Tensor<1>, DiagnosticsTensor)> {
        let dim = step.dim();
        let Step { model, features: [features_a, features_b], adaptive, config, .. } = step;
        Ok(simsiam_step(model, features_a, features_b, adaptive, config.beta, dim))
    }
}
