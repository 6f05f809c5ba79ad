//! One training step, the same in `pretrain` and `bench`: the method's loss of two views, the
//! backward pass, global gradient-norm clipping (optional), the optimiser step and the method's
//! post-step update (MoCo's momentum encoder).

use amcl_core::methods::{DiagnosticsTensor, Method};
use amcl_core::model::AmclModel;
use anyhow::Result;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use crate::distributed::Collective;
use crate::distributed::exchange::sum_backbone_gradients;
use crate::optim;
use std::sync::Arc;

/// What a step changes: the model, its optimiser and the method's state.
pub struct Learner {
    /// Always present between steps; taken out during one, so that the optimiser holds the only
    /// reference to the parameters and updates them in place.
    model: Option<AmclModel>,
    pub optimizer: ModuleOptimizer,
    pub method: Method,
    /// The gradients' largest global norm (None: no clipping).
    pub grad_clip: Option<f32>,
    /// The other ranks of a data-parallel run (None on one device): the backbone's gradients
    /// are summed with theirs before clipping and the optimiser step.
    pub ranks: Option<Arc<dyn Collective>>,
}

/// What one step reports.
pub struct StepOutcome {
    /// The loss of the step, read from the device (which waits for the step's forward pass).
    pub loss: f32,
    /// The gradients' global norm before clipping (with clipping only).
    pub grad_norm: Option<f32>,
    /// Each head's statistics, still on the device.
    pub diagnostics: DiagnosticsTensor,
}

impl StepOutcome {
    /// False when the loss is NaN or infinite: the step was then not applied.
    pub fn is_finite(&self) -> bool {
        self.loss.is_finite()
    }
}

impl Learner {
    pub fn new(
        model: AmclModel,
        optimizer: ModuleOptimizer,
        method: Method,
        grad_clip: Option<f32>,
    ) -> Self {
        Self { model: Some(model), optimizer, method, grad_clip, ranks: None }
    }

    /// The model as the last step left it.
    pub fn model(&self) -> &AmclModel {
        self.model.as_ref().expect("the learner holds its model between steps")
    }

    /// One step on the views (a, b) of a batch at learning rate `lr`. A non-finite loss leaves
    /// the model and optimiser as they were (see [`StepOutcome::is_finite`]).
    pub fn step(&mut self, (a, b): (Tensor<4>, Tensor<4>), lr: f64) -> Result<StepOutcome> {
        let model = self.model.as_ref().expect("the learner holds its model between steps");
        let out = self.method.loss(model, a, b)?;
        let loss = out.loss.clone().into_scalar::<f32>();
        let mut outcome = StepOutcome { loss, grad_norm: None, diagnostics: out.diagnostics };
        if !loss.is_finite() {
            return Ok(outcome);
        }
        let model = self.model.take().expect("the learner holds its model between steps");
        let mut grads = GradientsParams::from_grads(out.loss.backward(), &model);
        if let Some(ranks) = &self.ranks {
            sum_backbone_gradients(&mut grads, &model, ranks.as_ref()).map_err(|err| {
                self.model = Some(model.clone());
                anyhow::anyhow!("summing the backbone's gradients over the ranks: {err}")
            })?;
        }
        if let Some(max_norm) = self.grad_clip {
            let (clipped, norm) = optim::clip_global_norm(grads, &model, max_norm);
            grads = clipped;
            outcome.grad_norm = norm.map(|n| n.into_scalar::<f32>());
        }
        let model = self.model.insert(self.optimizer.step(lr, model, grads));
        self.method.after_step(model);
        Ok(outcome)
    }
}
