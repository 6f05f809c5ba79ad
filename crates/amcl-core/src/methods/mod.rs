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
    Barlow, BarlowTemperatureSet, barlow_objective, barlow_step, channel_temperatures,
    channel_vectors, cross_correlation, standardise,
};
pub use diagnostics::{DiagnosticsTensor, HeadDiagnostics, STATS};
pub use flex_kernels::{Columns, select_columns};
pub use moco::{
    Moco, MocoState, MocoTemperatures, moco_objective, moco_step, moco_symmetric_objective,
};
pub use simclr::{
    Simclr, simclr_amcl_objective, simclr_amcl_step, simclr_pair_columns, simclr_pair_indices,
    simclr_plain_objective,
};
pub use simsiam::{Simsiam, simsiam_objective, simsiam_step};

use burn::prelude::*;

use crate::error::{AmclError, Result as AmclResult, ensure_dims};
use crate::loss::{AUTHORS_TOP_K, AmclObjectiveConfig, NegativeReduction};
use crate::model::{AmclModel, AmclModelConfig, ProjectorKind};
use crate::ranks::{Ranks, SingleRank};
use std::sync::Arc;

/// A base method: the parts it adds to the model, its paper settings and its loss for two views
/// of a batch, plain or with AMCL's adaptive temperatures. Each is one file of this module with a
/// unit struct implementing this trait, and one line of [`BASE_METHODS`].
pub trait BaseMethod: Send + Sync + std::fmt::Debug {
    /// Its name (`simclr`); `amcl-` + the name is its AMCL version.
    fn name(&self) -> &'static str;

    /// The model this method trains, from a common architecture (docs/METHOD.md, "Other base
    /// methods"): its authors' projector and what else it needs (predictors, channel networks);
    /// `batch_size` for the parts whose input is the batch.
    /// The default: the common MLP projector and nothing else (SimCLR, MoCo).
    fn model_config(
        &self,
        model: AmclModelConfig,
        _adaptive: bool,
        _batch_size: usize,
    ) -> AmclModelConfig {
        model.with_projector(ProjectorKind::Mlp).with_predictor_hidden(None).with_barlow_batch(None)
    }

    /// An error naming what `model` lacks for this method (built without [`Self::model_config`]).
    fn check_model(&self, _model: &AmclModel, _adaptive: bool) -> AmclResult<()> {
        Ok(())
    }

    /// The authors' Omega weight beta.
    fn authors_beta(&self) -> f32 {
        1e-4
    }

    /// The plain method's fixed temperature (authors' release); 1 for a method without one.
    fn base_temperature(&self) -> f32 {
        1.0
    }

    /// The authors' peak learning rate (docs/METHOD.md, "Training").
    fn paper_lr(&self) -> f64;

    /// The authors' projector width for this method when it is not the common 512 -> 128.
    fn paper_projector_width(&self) -> Option<usize> {
        None
    }

    /// Whether its AMCL version gives every (anchor, other view) pair a temperature, with
    /// negatives: the pair temperatures the centred form centres and `temperature_spread` reads.
    fn pair_temperatures(&self) -> bool {
        false
    }

    /// Whether it takes [`MethodConfig::positive_beta`] (a screening candidate of AMCL-SimCLR).
    fn positive_beta(&self) -> bool {
        false
    }

    /// The loss and per-head diagnostics of one step; `state` is what the method carries
    /// between steps (None before its first step).
    fn loss(
        &self,
        step: Step<'_>,
        state: &mut StepState,
    ) -> AmclResult<(Tensor<1>, DiagnosticsTensor)>;

    /// After each optimiser step, with the updated model (MoCo's momentum update).
    fn after_step(&self, _model: &AmclModel, _state: &mut StepState, _config: &MethodConfig) {}
}

/// Every base method, by name: a new method is a file of this module and a line here.
pub static BASE_METHODS: [&dyn BaseMethod; 4] =
    [&simclr::Simclr, &moco::Moco, &simsiam::Simsiam, &barlow::Barlow];

/// What a method carries from one step to the next (MoCo: [`MocoState`]); the method that
/// creates it is the one that reads it.
pub type StepState = Option<Box<dyn std::any::Any + Send>>;

/// The inputs of one step of a method.
pub struct Step<'a> {
    /// The online model.
    pub model: &'a AmclModel,
    /// The two augmented views [b, 3, S, S] of this rank's share of the batch (the whole batch
    /// on one device).
    pub views: [Tensor<4>; 2],
    /// The backbone's features of each view of the whole batch [B, F], gathered from the ranks.
    pub features: [Tensor<2>; 2],
    /// The ranks sharing the batch (what a method running a backbone of its own gathers with).
    pub ranks: &'a dyn Ranks,
    /// With AMCL's adaptive temperatures (the `amcl-` version).
    pub adaptive: bool,
    /// The methods' hyper-parameters (beta among them).
    pub config: &'a MethodConfig,
    /// The AMCL objective's settings for the model's projection dimension.
    pub objective: AmclObjectiveConfig,
}

impl Step<'_> {
    /// The projection dimension d.
    pub fn dim(&self) -> usize {
        self.objective.dim
    }
}

/// A method: a base method, with or without AMCL's heads-and-temperatures objective.
#[derive(Clone, Copy)]
pub struct MethodKind {
    /// The base method.
    pub base: &'static dyn BaseMethod,
    /// Whether adaptive temperatures and Omega are used (the `amcl-` prefix).
    pub adaptive: bool,
}

impl PartialEq for MethodKind {
    fn eq(&self, other: &Self) -> bool {
        self.base.name() == other.base.name() && self.adaptive == other.adaptive
    }
}

impl Eq for MethodKind {}

impl std::fmt::Debug for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl MethodKind {
    /// Every method, each base method plain and then with AMCL.
    pub fn all() -> Vec<MethodKind> {
        BASE_METHODS
            .iter()
            .flat_map(|&base| [false, true].map(|adaptive| MethodKind { base, adaptive }))
            .collect()
    }

    /// Every method name, as accepted by [`str::parse`].
    pub fn names() -> Vec<String> {
        Self::all().iter().map(MethodKind::name).collect()
    }

    /// The method's name (e.g. `amcl-simclr`).
    pub fn name(&self) -> String {
        let base = self.base.name();
        if self.adaptive { format!("amcl-{base}") } else { base.to_string() }
    }

    /// Adjusts a model architecture to what this method needs (see [`BaseMethod::model_config`]).
    pub fn model_config(&self, model: AmclModelConfig, batch_size: usize) -> AmclModelConfig {
        self.base.model_config(model, self.adaptive, batch_size)
    }

    /// The authors' Omega weight beta: 1e-4 for SimCLR, MoCo and SimSiam, 1e-6 for Barlow Twins.
    pub fn authors_beta(&self) -> f32 {
        self.base.authors_beta()
    }

    /// The fixed temperature of the base method (authors' release): SimCLR 0.5, MoCo 0.1;
    /// SimSiam and Barlow Twins have none (1).
    pub fn base_temperature(&self) -> f32 {
        self.base.base_temperature()
    }

    /// Whether this is an AMCL method with a temperature per (anchor, other view) pair.
    pub fn has_pair_temperatures(&self) -> bool {
        self.adaptive && self.base.pair_temperatures()
    }
}

impl std::str::FromStr for MethodKind {
    type Err = AmclError;
    fn from_str(name: &str) -> AmclResult<Self> {
        let (adaptive, base) = match name.strip_prefix("amcl-") {
            Some(base) => (true, base),
            None => (false, name),
        };
        match BASE_METHODS.iter().find(|method| method.name() == base) {
            Some(&base) => Ok(MethodKind { base, adaptive }),
            None => Err(AmclError::UnknownName {
                kind: "method",
                name: name.to_string(),
                expected: Self::names().join(", "),
            }),
        }
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
    /// [`BaseMethod::authors_beta`]).
    #[config(default = 1e-4)]
    pub beta: f32,
    /// How the negatives enter the AMCL objective (authors: the top 100).
    #[config(default = "NegativeReduction::TopK(AUTHORS_TOP_K)")]
    pub reduction: NegativeReduction,
    /// Fixed temperature of plain SimCLR and MoCo (authors: 0.5 and 0.1, see
    /// [`BaseMethod::base_temperature`]).
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
    state: StepState,
    /// The ranks sharing each batch ([`SingleRank`] unless [`Method::with_ranks`]).
    ranks: Arc<dyn Ranks>,
}

impl Method {
    /// A method of the given kind.
    pub fn new(kind: MethodKind, config: MethodConfig) -> Self {
        Self { kind, config, state: None, ranks: Arc::new(SingleRank) }
    }

    /// The same method as one of several data-parallel ranks: each [`Method::loss`] is given
    /// this rank's share of the batch and takes the objective over the whole batch
    /// (see [`crate::ranks`]).
    pub fn with_ranks(mut self, ranks: Arc<dyn Ranks>) -> Self {
        self.ranks = ranks;
        self
    }

    /// Parses a method name and builds it.
    pub fn from_name(name: &str, config: MethodConfig) -> AmclResult<Self> {
        Ok(Self::new(name.parse()?, config))
    }

    /// The AMCL objective's settings for a model of projection dimension `dim`.
    pub fn objective(&self, dim: usize) -> AmclObjectiveConfig {
        AmclObjectiveConfig { beta: self.config.beta, dim, reduction: self.config.reduction }
    }

    /// The loss of one batch given as two views [b, 3, S, S] of the same b images: the whole
    /// batch, or this rank's share of it (see [`Method::with_ranks`]).
    pub fn loss(
        &mut self,
        model: &AmclModel,
        view_a: Tensor<4>,
        view_b: Tensor<4>,
    ) -> AmclResult<StepOutput> {
        ensure_dims("second view", &view_a.dims(), &view_b.dims())?;
        let b = view_a.dims()[0] * self.ranks.world();
        if b < 2 {
            return Err(AmclError::InvalidConfig(format!(
                "a batch needs at least 2 images, got {b}"
            )));
        }
        self.kind.base.check_model(model, self.kind.adaptive)?;
        if self.config.positive_beta.is_some()
            && !(self.kind.adaptive && self.kind.base.positive_beta())
        {
            return Err(AmclError::InvalidConfig(format!(
                "a separate Omega weight on the positives is a candidate of amcl-simclr only, not {}",
                self.kind
            )));
        }
        let ranks = self.ranks.as_ref();
        let features = [
            ranks.gather(model.try_view_features(view_a.clone())?)?,
            ranks.gather(model.features(view_b.clone()))?,
        ];
        let step = Step {
            model,
            views: [view_a, view_b],
            features,
            ranks,
            adaptive: self.kind.adaptive,
            config: &self.config,
            objective: self.objective(model.heads[0].output_dim()),
        };
        let (loss, diagnostics) = self.kind.base.loss(step, &mut self.state)?;
        Ok(StepOutput { loss, diagnostics })
    }

    /// Call after each optimiser step with the updated model (MoCo's momentum update).
    pub fn after_step(&mut self, model: &AmclModel) {
        self.kind.base.after_step(model, &mut self.state, &self.config);
    }

    /// The MoCo state, if this is MoCo and a step has run.
    pub fn moco_state(&self) -> Option<&MocoState> {
        self.state.as_ref()?.downcast_ref()
    }

    /// Restores MoCo state (when resuming).
    pub fn set_moco_state(&mut self, state: MocoState) {
        self.state = Some(Box::new(state));
    }
}
