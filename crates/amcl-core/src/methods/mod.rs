//! Base methods, each plain and with AMCL, chosen by name: `simclr`, `amcl-simclr`, `moco`,
//! `amcl-moco`, `simsiam`, `amcl-simsiam`, `barlow`, `amcl-barlow`.
//!
//! A [`Method`] turns two augmented views of a batch into a loss and per-head diagnostics. It
//! owns the state some methods carry between steps (MoCo's momentum encoder and queue).

mod barlow;
mod diagnostics;
mod moco;
mod simclr;
mod simsiam;
mod top_k;

pub use barlow::{
    BarlowTemperatureSet, barlow_objective, barlow_step, channel_temperatures, channel_vectors,
    cross_correlation, standardise,
};
pub use diagnostics::{DiagnosticsTensor, HeadDiagnostics, STATS};
pub use flex_kernels::{Columns, select_columns};
pub use moco::{MocoState, MocoTemperatures, moco_objective, moco_step, moco_symmetric_objective};
pub use simclr::{
    simclr_amcl_objective, simclr_amcl_step, simclr_pair_columns, simclr_pair_indices,
    simclr_plain_objective,
};
pub use simsiam::{simsiam_objective, simsiam_step};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{AmclError, Result as AmclResult, ensure_dims};
use crate::loss::{AUTHORS_TOP_K, AmclObjectiveConfig, NegativeReduction};
use crate::model::{AmclModel, AmclModelConfig, ProjectorKind};

/// The base method underneath AMCL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseMethod {
    /// SimCLR: in-batch negatives over the 2N views.
    Simclr,
    /// MoCo v2: momentum encoder and a queue of negatives.
    Moco,
    /// SimSiam: predictor and stop-gradient, no negatives.
    Simsiam,
    /// Barlow Twins: cross-correlation towards the identity.
    Barlow,
}

/// A method: a base method, with or without AMCL's heads-and-temperatures objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodKind {
    /// The base method.
    pub base: BaseMethod,
    /// Whether adaptive temperatures and Omega are used (the `amcl-` prefix).
    pub adaptive: bool,
}

impl MethodKind {
    /// Every method name, as accepted by [`str::parse`].
    pub const NAMES: [&'static str; 8] = [
        "simclr",
        "amcl-simclr",
        "moco",
        "amcl-moco",
        "simsiam",
        "amcl-simsiam",
        "barlow",
        "amcl-barlow",
    ];

    /// The method's name (e.g. `amcl-simclr`).
    pub fn name(&self) -> String {
        let base = match self.base {
            BaseMethod::Simclr => "simclr",
            BaseMethod::Moco => "moco",
            BaseMethod::Simsiam => "simsiam",
            BaseMethod::Barlow => "barlow",
        };
        if self.adaptive { format!("amcl-{base}") } else { base.to_string() }
    }

    /// Adjusts a model architecture to what this method needs (docs/METHOD.md, "Other base
    /// methods"): its authors' projector; SimSiam predictors with a bottleneck of h / 4 (512 for
    /// 2,048); for amcl-barlow, the channel temperature network for batches of `batch_size`.
    pub fn model_config(&self, model: AmclModelConfig, batch_size: usize) -> AmclModelConfig {
        let predictor = (self.base == BaseMethod::Simsiam).then_some((model.hidden / 4).max(1));
        let projector = match self.base {
            BaseMethod::Simclr | BaseMethod::Moco => ProjectorKind::Mlp,
            BaseMethod::Simsiam => ProjectorKind::Simsiam,
            BaseMethod::Barlow => ProjectorKind::Barlow,
        };
        let barlow = self.adaptive && self.base == BaseMethod::Barlow;
        model
            .with_projector(projector)
            .with_predictor_hidden(predictor)
            .with_barlow_batch(barlow.then_some(batch_size))
    }

    /// The authors' Omega weight beta: 1e-4 for SimCLR, MoCo and SimSiam, 1e-6 for Barlow Twins.
    pub fn authors_beta(&self) -> f32 {
        match self.base {
            BaseMethod::Barlow => 1e-6,
            _ => 1e-4,
        }
    }

    /// The fixed temperature of the base method (authors' release): SimCLR 0.5, MoCo 0.1;
    /// SimSiam and Barlow Twins have none (1).
    pub fn base_temperature(&self) -> f32 {
        match self.base {
            BaseMethod::Simclr => 0.5,
            BaseMethod::Moco => 0.1,
            BaseMethod::Simsiam | BaseMethod::Barlow => 1.0,
        }
    }
}

impl std::str::FromStr for MethodKind {
    type Err = AmclError;
    fn from_str(name: &str) -> AmclResult<Self> {
        let (adaptive, base) = match name.strip_prefix("amcl-") {
            Some(base) => (true, base),
            None => (false, name),
        };
        let base = match base {
            "simclr" => BaseMethod::Simclr,
            "moco" => BaseMethod::Moco,
            "simsiam" => BaseMethod::Simsiam,
            "barlow" => BaseMethod::Barlow,
            _ => {
                return Err(AmclError::UnknownName {
                    kind: "method",
                    name: name.to_string(),
                    expected: Self::NAMES.join(", "),
                });
            }
        };
        Ok(MethodKind { base, adaptive })
    }
}

impl std::fmt::Display for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Hyper-parameters of the methods (defaults: the authors' release, docs/METHOD.md).
#[derive(Config, Debug, PartialEq)]
pub struct MethodConfig {
    /// Weight beta of Omega (authors: 1e-4; 1e-6 for Barlow Twins, see
    /// [`MethodKind::authors_beta`]).
    #[config(default = 1e-4)]
    pub beta: f32,
    /// How the negatives enter the AMCL objective (authors: the top 100).
    #[config(default = "NegativeReduction::TopK(AUTHORS_TOP_K)")]
    pub reduction: NegativeReduction,
    /// Fixed temperature of plain SimCLR and MoCo (authors: 0.5 and 0.1, see
    /// [`MethodKind::base_temperature`]).
    #[config(default = 0.5)]
    pub temperature: f32,
    /// MoCo queue length.
    #[config(default = 4096)]
    pub moco_queue: usize,
    /// MoCo key-encoder momentum.
    #[config(default = 0.99)]
    pub moco_momentum: f32,
    /// A candidate (docs/RESULTS.md, "Choosing the default form"), AMCL-SimCLR only: Omega's
    /// weight on the positive pairs, in place of `beta` there (the Gaussian likelihood's is 1);
    /// `None` keeps `beta` (the authors' objective).
    #[config(default = "None")]
    pub positive_beta: Option<f32>,
    /// Barlow Twins off-diagonal weight lambda.
    #[config(default = 5e-3)]
    pub barlow_lambda: f32,
    /// Seed of the initial MoCo queue.
    #[config(default = 0)]
    pub seed: u64,
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

/// What one step returns: the scalar loss (with its autodiff graph) and per-head diagnostics.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The loss, [1].
    pub loss: Tensor<1>,
    /// Per-head statistics, kept on the device until read.
    pub diagnostics: DiagnosticsTensor,
}

/// A method ready to compute losses, with the state it carries between steps.
#[derive(Debug)]
pub struct Method {
    /// Which method.
    pub kind: MethodKind,
    /// Its hyper-parameters.
    pub config: MethodConfig,
    moco: Option<MocoState>,
}

impl Method {
    /// A method of the given kind.
    pub fn new(kind: MethodKind, config: MethodConfig) -> Self {
        Self { kind, config, moco: None }
    }

    /// Parses a method name and builds it.
    pub fn from_name(name: &str, config: MethodConfig) -> AmclResult<Self> {
        Ok(Self::new(name.parse()?, config))
    }

    /// The AMCL objective's settings for a model of projection dimension `dim`.
    pub fn objective(&self, dim: usize) -> AmclObjectiveConfig {
        AmclObjectiveConfig { beta: self.config.beta, dim, reduction: self.config.reduction }
    }

    /// The loss of one batch given as two views [B, 3, S, S] of the same B images.
    pub fn loss(
        &mut self,
        model: &AmclModel,
        view_a: Tensor<4>,
        view_b: Tensor<4>,
    ) -> AmclResult<StepOutput> {
        ensure_dims("second view", &view_a.dims(), &view_b.dims())?;
        let [b, _, _, _] = view_a.dims();
        if b < 2 {
            return Err(AmclError::InvalidConfig(format!(
                "a batch needs at least 2 images, got {b}"
            )));
        }
        self.check_model(model)?;
        if self.config.positive_beta.is_some()
            && !(self.kind.adaptive && self.kind.base == BaseMethod::Simclr)
        {
            return Err(AmclError::InvalidConfig(format!(
                "a separate Omega weight on the positives is a candidate of amcl-simclr only, not {}",
                self.kind
            )));
        }
        let features_a = model.try_features(view_a.clone())?;
        let features_b = model.features(view_b.clone());
        let dim = model.heads[0].output_dim();
        let objective = self.objective(dim);
        let adaptive = self.kind.adaptive;
        let (loss, diagnostics) = match self.kind.base {
            BaseMethod::Simclr => {
                let z_a = model.project_normalized(features_a);
                let z_b = model.project_normalized(features_b);
                if adaptive {
                    let extra = self.config.positive_beta.map(|w| w - self.config.beta);
                    let positive = extra.map(|w| positive_omega(model, &z_a, &z_b, w, dim));
                    let (loss, diagnostics) = simclr_amcl_step(model, z_a, z_b, &objective)?;
                    (positive.map_or(loss.clone(), |p| loss + p), diagnostics)
                } else {
                    simclr_plain_objective(z_a, z_b, self.config.temperature)
                }
            }
            BaseMethod::Moco => {
                let device = view_a.device();
                let config = &self.config;
                let state = self.moco.get_or_insert_with(|| {
                    MocoState::new(model, config.moco_queue, dim, config.seed, &device)
                });
                let q_a = model.project_normalized(features_a);
                let q_b = model.project_normalized(features_b);
                let (loss, diagnostics, keys) = moco_step(
                    model,
                    state,
                    (q_a, q_b),
                    (view_a, view_b),
                    adaptive,
                    config.temperature,
                    &objective,
                )?;
                state.enqueue(keys);
                (loss, diagnostics)
            }
            BaseMethod::Simsiam => {
                simsiam_step(model, features_a, features_b, adaptive, self.config.beta, dim)
            }
            BaseMethod::Barlow => barlow_step(
                model,
                features_a,
                features_b,
                adaptive,
                self.config.barlow_lambda,
                self.config.beta,
            )?,
        };
        Ok(StepOutput { loss, diagnostics })
    }

    /// Call after each optimiser step with the updated model (MoCo's momentum update).
    pub fn after_step(&mut self, model: &AmclModel) {
        if let Some(state) = &mut self.moco {
            state.momentum_update(model, self.config.moco_momentum);
        }
    }

    /// The MoCo state, if this is MoCo and a step has run.
    pub fn moco_state(&self) -> Option<&MocoState> {
        self.moco.as_ref()
    }

    /// Restores MoCo state (when resuming).
    pub fn set_moco_state(&mut self, state: MocoState) {
        self.moco = Some(state);
    }

    fn check_model(&self, model: &AmclModel) -> AmclResult<()> {
        if self.kind.base == BaseMethod::Simsiam && model.predictors.len() != model.num_heads() {
            return Err(AmclError::InvalidConfig(
                "simsiam needs one predictor per head: build the model with MethodKind::model_config".into(),
            ));
        }
        if self.kind.adaptive && self.kind.base == BaseMethod::Barlow && model.channel_phi.is_none()
        {
            return Err(AmclError::InvalidConfig(
                "amcl-barlow needs its channel temperature network: build the model with MethodKind::model_config".into(),
            ));
        }
        Ok(())
    }
}
