//! MoCo v2 (momentum key encoder, queue of negatives, symmetric loss) and AMCL-MoCo.

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn_store::{BurnpackStore, ModuleSnapshot};

use super::diagnostics::DiagnosticsTensor;
use super::{BaseMethod, MethodConfig, Step, StepState};
use crate::error::Result;
use crate::loss::{
    AmclObjectiveConfig, NegativeReduction, amcl_objective_terms, l2_normalize, objective_precision,
};
use crate::model::{AmclModel, TemperatureRange, paired_logits, pairwise_logits};
use crate::ranks::Ranks;
use crate::rng::Rng;

/// Temperatures of a MoCo step: positive [C, N] and queue negatives [C, N, Q].
pub type MocoTemperatures = (Tensor<2>, Tensor<3>);

/// MoCo's objective over pre-computed quantities, one direction. `q`, `k`: unit-norm queries and
/// keys [C, N, d] (keys carry no gradient); `queue`: unit-norm negatives [C, Q, d].
/// With `taus = None` this is plain InfoNCE at `temperature` (the soft AMCL form with fixed tau
/// and beta = 0); otherwise the AMCL objective with those temperatures (within `range`).
pub fn moco_objective(
    q: Tensor<3>,
    k: Tensor<3>,
    queue: Tensor<3>,
    taus: Option<MocoTemperatures>,
    temperature: f32,
    cfg: &AmclObjectiveConfig,
    range: TemperatureRange,
) -> Result<(Tensor<1>, DiagnosticsTensor)> {
    let adaptive = taus.is_some();
    let pos_sim = (q.clone() * k).sum_dim(2).squeeze_dim::<2>(2);
    let neg_sim = q.matmul(queue.transpose());
    let (pos_tau, neg_tau, cfg) = match taus {
        Some((pos_tau, neg_tau)) => (pos_tau, neg_tau, cfg.clone()),
        None => (
            pos_sim.clone().zeros_like().add_scalar(temperature),
            neg_sim.clone().zeros_like().add_scalar(temperature),
            AmclObjectiveConfig {
                beta: 0.0,
                dim: cfg.dim,
                reduction: NegativeReduction::LogSumExp,
            },
        ),
    };
    let (neg_sim, neg_tau) = super::top_k::selected_negatives(neg_sim, neg_tau, &cfg);
    let diagnostics = DiagnosticsTensor::from_parts(
        pos_tau.clone(),
        pos_sim.clone(),
        Some(neg_tau.clone()),
        Some(neg_sim.clone().max_dim(2).squeeze_dim(2)),
        adaptive.then_some(range),
    );
    let terms = amcl_objective_terms(pos_sim, neg_sim, pos_tau, neg_tau, &cfg)?;
    Ok((terms.sum_dim(0).mean().reshape([1]), diagnostics))
}

/// The momentum encoder and the queue, created on the first step from the online model.
#[derive(Debug)]
pub struct MocoState {
    /// Key encoder: an exponential moving average of the online model, never trained directly.
    pub key_model: AmclModel,
    /// Negatives, unit-norm [C, Q, d], newest first.
    pub queue: Tensor<3>,
}

impl MocoState {
    /// Copies `model` into a key encoder and fills the queue with random unit vectors.
    pub fn new(
        model: &AmclModel,
        queue_len: usize,
        dim: usize,
        seed: u64,
        device: &Device,
    ) -> Self {
        let c = model.num_heads();
        let mut rng = Rng::new(seed);
        let values: Vec<f32> = (0..c * queue_len * dim).map(|_| rng.normal()).collect();
        let queue = Tensor::<3>::from_data(TensorData::new(values, [c, queue_len, dim]), device);
        let queue = objective_precision(queue).without_autodiff();
        Self { key_model: independent_copy(model, device), queue: l2_normalize(queue) }
    }

    /// Unit-norm keys [C, N, d] of `images`, without gradient.
    pub fn keys(&self, images: Tensor<4>, ranks: &dyn Ranks) -> Result<Tensor<3>> {
        let features = ranks.gather(self.key_model.features(images).detach())?;
        Ok(self.key_model.project_normalized(features).detach())
    }

    /// Pushes `keys` [C, M, d] to the front of the queue and drops the oldest entries.
    pub fn enqueue(&mut self, keys: Tensor<3>) {
        let [c, q, d] = self.queue.dims();
        let [_, m, _] = keys.dims();
        let keys = keys.without_autodiff();
        self.queue = if m >= q {
            keys.slice([0..c, 0..q, 0..d])
        } else {
            Tensor::cat(vec![keys, self.queue.clone().slice([0..c, 0..q - m, 0..d])], 1)
        };
    }

    /// key <- momentum * key + (1 - momentum) * online, for every parameter.
    pub fn momentum_update(&mut self, online: &AmclModel, momentum: f32) {
        let mut collector = ParamCollector::default();
        online.visit(&mut collector);
        let mut blender = ParamBlender { online: collector.params.into_iter(), momentum };
        self.key_model = self.key_model.clone().map(&mut blender);
    }
}

/// A copy of `model` that shares nothing with it (parameters and batch-norm running statistics
/// are new tensors; a clone would share the running statistics), without gradient: the key
/// encoder then evolves on its own, exactly like one restored from a checkpoint.
fn independent_copy(model: &AmclModel, device: &Device) -> AmclModel {
    let mut copy = model.config.init(device).expect("the model's own config is valid");
    let mut store = BurnpackStore::from_bytes(None);
    model.save_into(&mut store).expect("saving a model into memory");
    let bytes = store.get_bytes().expect("in-memory burnpack");
    let mut store = BurnpackStore::from_bytes(Some(bytes));
    copy.load_from(&mut store).expect("loading a model into its own architecture");
    copy.no_grad()
}

#[derive(Default)]
struct ParamCollector {
    params: Vec<Tensor<1>>,
}

impl ModuleVisitor for ParamCollector {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.params.push(param.val().detach().flatten(0, D - 1));
    }
}

struct ParamBlender<I: Iterator<Item = Tensor<1>>> {
    online: I,
    momentum: f32,
}

impl<I: Iterator<Item = Tensor<1>>> ModuleMapper for ParamBlender<I> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(online) = self.online.next() else { return param };
        let m = self.momentum;
        param.map(|key| {
            let online = online.reshape(key.shape());
            (key.mul_scalar(m) + online.mul_scalar(1.0 - m)).detach()
        })
    }
}

/// One symmetric MoCo step: queries from the online model, keys from the momentum encoder
/// ([`MocoState::keys`]), both unit-norm projections of the whole batch. Returns the mean of
/// both directions and the keys to enqueue [C, 2N, d].
pub fn moco_step(
    model: &AmclModel,
    state: &MocoState,
    queries: (Tensor<3>, Tensor<3>),
    (k_a, k_b): (Tensor<3>, Tensor<3>),
    adaptive: bool,
    temperature: f32,
    cfg: &AmclObjectiveConfig,
) -> Result<(Tensor<1>, DiagnosticsTensor, Tensor<3>)> {
    let keys = (k_a.clone(), k_b.clone());
    let (loss, diagnostics) =
        moco_symmetric_objective(model, queries, keys, &state.queue, adaptive, temperature, cfg)?;
    Ok((loss, diagnostics, Tensor::cat(vec![k_a, k_b], 1)))
}

/// MoCo's symmetric objective, the mean of its two directions: queries `q_a` against keys
/// `k_b`, and `q_b` against `k_a` ([C, N, d] each), both against the `queue` [C, Q, d]. With
/// `adaptive`, the temperatures come from `model`'s temperature networks.
///
/// The two directions run as one objective over 2N anchors: the temperature networks work pair
/// by pair and each direction averages over its N anchors, so the mean over the 2N anchors is the
/// mean of the two directions, and each temperature network and the objective run once per step
/// instead of twice.
pub fn moco_symmetric_objective(
    model: &AmclModel,
    (q_a, q_b): (Tensor<3>, Tensor<3>),
    (k_a, k_b): (Tensor<3>, Tensor<3>),
    queue: &Tensor<3>,
    adaptive: bool,
    temperature: f32,
    cfg: &AmclObjectiveConfig,
) -> Result<(Tensor<1>, DiagnosticsTensor)> {
    let queries = Tensor::cat(vec![q_a, q_b], 1);
    let keys = Tensor::cat(vec![k_b, k_a], 1);
    let taus = adaptive.then(|| moco_temperatures(model, &queries, &keys, queue));
    moco_objective(queries, keys, queue.clone(), taus, temperature, cfg, model.range)
}

/// Adaptive temperatures of (q_i, k_i) and of (q_i, queue_n) in every head, all heads at once;
/// the queries go through phi once for both. The keys and the queue carry no gradient, but phi's
/// projection of them does (both sides of a pair go through the same phi). In the centred form
/// the batch (queries and keys) sets phi_bar, which the queue is centred by as well.
fn moco_temperatures(
    model: &AmclModel,
    q: &Tensor<3>,
    k: &Tensor<3>,
    queue: &Tensor<3>,
) -> MocoTemperatures {
    let heads = 0..q.dims()[0];
    let sets = vec![q.clone(), k.clone(), queue.clone()];
    let [queries, keys, queue]: [Tensor<3>; 3] =
        model.phi_projections(sets, 2, heads).try_into().expect("three sets");
    let positive = model.range.squash(paired_logits(queries.clone(), keys));
    let negative = model.range.squash(pairwise_logits(queries, queue));
    (positive, negative)
}

/// MoCo v2 (momentum key encoder, a queue of negatives, symmetric InfoNCE at 0.1) and AMCL-MoCo.
#[derive(Debug)]
pub struct Moco;

impl BaseMethod for Moco {
    fn name(&self) -> &'static str {
        "moco"
    }

    fn base_temperature(&self) -> f32 {
        0.1
    }

    fn paper_lr(&self) -> f64 {
        0.08
    }

    fn pair_temperatures(&self) -> bool {
        true
    }

    /// The first step creates the key encoder (a copy of the model) and the queue.
    fn loss(
        &self,
        step: Step<'_>,
        state: &mut StepState,
    ) -> Result<(Tensor<1>, DiagnosticsTensor)> {
        let Step {
            model,
            views,
            features: [features_a, features_b],
            ranks,
            adaptive,
            config,
            objective,
        } = step;
        let device = views[0].device();
        let state = state
            .get_or_insert_with(|| {
                let dim = objective.dim;
                Box::new(MocoState::new(model, config.moco_queue, dim, config.seed, &device))
            })
            .downcast_mut::<MocoState>()
            .expect("MoCo's step state is its MocoState");
        let queries = (model.project_normalized(features_a), model.project_normalized(features_b));
        // This rank's share of the views; the keys of the whole batch are gathered.
        let [view_a, view_b] = views;
        let keys = (state.keys(view_a, ranks)?, state.keys(view_b, ranks)?);
        let (loss, diagnostics, keys) =
            moco_step(model, state, queries, keys, adaptive, config.temperature, &objective)?;
        state.enqueue(keys);
        Ok((loss, diagnostics))
    }

    fn after_step(&self, model: &AmclModel, state: &mut StepState, config: &MethodConfig) {
        if let Some(state) = state.as_mut().and_then(|s| s.downcast_mut::<MocoState>()) {
            state.momentum_update(model, config.moco_momentum);
        }
    }
}
