//! The centred form's centring of phi (docs/METHOD.md, "the centred form"): phi's projections
//! minus their mean over the batch, per head,
//!
//! ```text
//! tau_ij = lo + (hi - lo) * sigmoid(-<phi_i - phi_bar, phi_j - phi_bar>)
//! ```
//!
//! Over the batch that defines phi_bar, every anchor's logits average to zero:
//! mean_j <phi_i - phi_bar, phi_j - phi_bar> = <phi_i - phi_bar, 0> = 0. So phi can make some of an
//! anchor's pairs warmer and others colder, but it cannot move the common level, which stays
//! near the middle of the range: with lo ~ 0 and hi = 2 tau_0, near the base method's tau_0.
//!
//! Like batch norm: while training (an autodiff device) phi_bar is the batch's mean, with its
//! gradient, and a running mean follows it; otherwise (evaluation, `score`, the browser) the
//! running mean is used, so one pair has a temperature of its own.

use std::ops::Range;

use burn::module::RunningState;
use burn::prelude::*;

use crate::loss::objective_precision;

/// Weight of the newest batch in the running mean (batch norm's 0.1).
pub const CENTRE_MOMENTUM: f64 = 0.1;

/// The running mean of phi's projections, one row per head: [C, n].
#[derive(Module, Debug)]
pub struct TemperatureCentre {
    running: RunningState<Tensor<2>>,
}

impl TemperatureCentre {
    /// A centre for `heads` heads of phi-dimension `n`, starting at zero.
    pub fn new(heads: usize, n: usize, device: &Device) -> Self {
        Self { running: RunningState::new(Tensor::zeros([heads, n], device)) }
    }

    /// The running mean [C, n], in f32.
    pub fn running(&self) -> Tensor<2> {
        objective_precision(self.running.value_sync())
    }

    /// phi_bar for the heads `heads` as [C', 1, n], from `batch` (phi-projections [C', N_k, n]):
    /// their mean over every row while training, the running mean otherwise. A training batch of
    /// every head also updates the running mean.
    pub fn of(&self, batch: &[Tensor<3>], heads: Range<usize>) -> Tensor<3> {
        let device = batch[0].device();
        // Computed in the objective's f32 whatever the training precision, like phi's
        // projections; stored back in the precision the state is kept in (like every buffer).
        let stored = self.running.value_sync();
        let stored_dtype = stored.dtype();
        let running = objective_precision(stored).to_device(&device);
        let [c, n] = running.dims();
        if !device.is_autodiff() {
            return running.slice([heads, 0..n]).unsqueeze_dim(1);
        }
        let mean = Tensor::cat(batch.to_vec(), 1).mean_dim(1);
        if heads == (0..c) {
            let updated = running * (1.0 - CENTRE_MOMENTUM)
                + mean.clone().detach().reshape([c, n]) * CENTRE_MOMENTUM;
            self.running.update(updated.detach().cast(stored_dtype));
        }
        mean
    }
}
