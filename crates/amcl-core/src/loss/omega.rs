//! Omega(tau) = (d/2) ln(tau) + 1/tau: the log-normaliser of the head-wise Gaussian model
//! (docs/METHOD.md, "Notation"). Weighted by beta in the objective.

use burn::prelude::*;

/// Omega(tau) = (d/2) ln tau + 1/tau, element-wise.
///
/// Finite for every tau in the temperature range (lo = 1e-5 gives 1e5 + (d/2) ln 1e-5).
pub fn omega<const D: usize>(tau: Tensor<D>, dim: usize) -> Tensor<D> {
    tau.clone().log().mul_scalar(dim as f32 / 2.0) + tau.recip()
}

/// Omega for one scalar temperature (used for reporting).
pub fn omega_scalar(tau: f32, dim: usize) -> f32 {
    (dim as f32 / 2.0) * tau.ln() + 1.0 / tau
}
