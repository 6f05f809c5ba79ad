//! The AMCL objective (docs/METHOD.md, "The objective for SimCLR and MoCo"), as a pure function
//! over head-wise similarities and pair-adaptive temperatures.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use flex_kernels::tempered_nll::{TemperedNll, tempered_nll};

use super::nt_xent::log_sum_exp_rows;
use super::omega::omega;
use crate::error::{AmclError, Result};

/// How the negatives of an anchor enter the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NegativeReduction {
    /// The literal Eq. 2.1: only the hardest negative n* = argmax_n s_n / tau_n counts. A
    /// hardest-negative triplet loss without a margin: it collapses in training (docs/METHOD.md).
    Max,
    /// The authors' release (Eq. 5, the top-k approximation): the k negatives with the largest
    /// similarity s (not s / tau), their s/tau averaged, their temperatures regularised by
    /// -beta sum_k (ln tau_k + 1/tau_k). k = min(k, available).
    TopK(usize),
    /// The soft form: log-sum-exp over the positive and all negatives, and the negative Omega
    /// term weighted by softmax_n(s_n / tau_n).
    LogSumExp,
}

/// Settings of [`amcl_objective`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AmclObjectiveConfig {
    /// Weight of the Omega regulariser (authors' release: 1e-4).
    pub beta: f32,
    /// Projection dimension d, which scales Omega(tau) = (d/2) ln tau + 1/tau.
    pub dim: usize,
    /// How the negatives enter: top-k (authors' release), soft, or the single hardest.
    pub reduction: NegativeReduction,
}

/// The authors' number of negatives per anchor in the top-k form.
pub const AUTHORS_TOP_K: usize = 100;

impl Default for AmclObjectiveConfig {
    /// The authors' release: beta = 1e-4, d = 128, top-100 negatives.
    fn default() -> Self {
        Self { beta: 1e-4, dim: 128, reduction: NegativeReduction::TopK(AUTHORS_TOP_K) }
    }
}

/// The AMCL objective. `pos_sim`, `pos_tau`: [C, N]; `neg_sim`, `neg_tau`: [C, N, K].
/// Returns [1]: the mean over the N anchors of the sum over the C heads of
///
/// - `TopK(k)`:    -s+/t+ + mean_{n in top k by s} s_n/t_n + beta Omega(t+)
///   - beta sum_{n in top k} (ln t_n + 1/t_n)   (Eq. 2.1 with Eq. 5, authors' release);
/// - `Max`:        -s+/t+ + s*/t* + beta Omega(t+) - beta Omega(t*), with n* = argmax_n s_n/t_n;
/// - `LogSumExp`:  -s+/t+ + log(exp(s+/t+) + sum_n exp(s_n/t_n)) + beta Omega(t+)
///   - beta sum_n p_n Omega(t_n),  p = softmax_n(s_n/t_n).
///
/// # Panics
/// On inconsistent shapes; [`try_amcl_objective`] returns an error instead.
pub fn amcl_objective(
    pos_sim: Tensor<2>,
    neg_sim: Tensor<3>,
    pos_tau: Tensor<2>,
    neg_tau: Tensor<3>,
    cfg: &AmclObjectiveConfig,
) -> Tensor<1> {
    match try_amcl_objective(pos_sim, neg_sim, pos_tau, neg_tau, cfg) {
        Ok(loss) => loss,
        Err(err) => panic!("{err}"),
    }
}

/// [`amcl_objective`] with shape checks reported as [`AmclError::Shape`].
pub fn try_amcl_objective(
    pos_sim: Tensor<2>,
    neg_sim: Tensor<3>,
    pos_tau: Tensor<2>,
    neg_tau: Tensor<3>,
    cfg: &AmclObjectiveConfig,
) -> Result<Tensor<1>> {
    let per_anchor = amcl_objective_terms(pos_sim, neg_sim, pos_tau, neg_tau, cfg)?;
    Ok(per_anchor.sum_dim(0).mean().reshape([1]))
}

/// The per-head, per-anchor terms L_i^c of the objective: [C, N]. The objective is their sum
/// over heads, averaged over anchors. On the CPU backend one fused kernel computes them and their
/// gradients ([`flex_kernels::tempered_nll`]); elsewhere the tensor ops of [`composed_terms`].
pub fn amcl_objective_terms(
    pos_sim: Tensor<2>,
    neg_sim: Tensor<3>,
    pos_tau: Tensor<2>,
    neg_tau: Tensor<3>,
    cfg: &AmclObjectiveConfig,
) -> Result<Tensor<2>> {
    check_shapes(&pos_sim, &neg_sim, &pos_tau, &neg_tau)?;
    if cfg.dim == 0 {
        return Err(AmclError::InvalidConfig("objective dim must be positive".into()));
    }
    if cfg.reduction == NegativeReduction::TopK(0) {
        return Err(AmclError::InvalidConfig("the top-k reduction needs k >= 1".into()));
    }
    if let Some(terms) = fused_terms(&pos_sim, &neg_sim, &pos_tau, &neg_tau, cfg) {
        return Ok(terms);
    }
    Ok(composed_terms(pos_sim, neg_sim, pos_tau, neg_tau, cfg))
}

/// The terms by flex-kernels' fused CPU kernel, when it runs for these tensors (f32 on flex);
/// it has the log-sum-exp and hardest-negative forms, so top-k runs as tensor ops.
pub fn fused_terms(
    pos_sim: &Tensor<2>,
    neg_sim: &Tensor<3>,
    pos_tau: &Tensor<2>,
    neg_tau: &Tensor<3>,
    cfg: &AmclObjectiveConfig,
) -> Option<Tensor<2>> {
    let hardest_only = match cfg.reduction {
        NegativeReduction::TopK(_) => return None,
        NegativeReduction::Max => true,
        NegativeReduction::LogSumExp => false,
    };
    let settings =
        TemperedNll { beta: cfg.beta, log_coefficient: cfg.dim as f32 / 2.0, hardest_only };
    tempered_nll(pos_sim, neg_sim, pos_tau, neg_tau, settings)
}

/// [`amcl_objective_terms`] written with tensor ops: what runs on the GPU backends, and on the
/// CPU the reference the fused kernel is tested and benchmarked against (`benches/objective.rs`).
/// Shapes as [`amcl_objective_terms`], unchecked.
pub fn composed_terms(
    pos_sim: Tensor<2>,
    neg_sim: Tensor<3>,
    pos_tau: Tensor<2>,
    neg_tau: Tensor<3>,
    cfg: &AmclObjectiveConfig,
) -> Tensor<2> {
    let beta = cfg.beta;
    let pos_scaled = pos_sim / pos_tau.clone();
    let scaled = |neg_sim: Tensor<3>| neg_sim / neg_tau.clone();
    let positive = pos_scaled.clone().neg() + omega(pos_tau, cfg.dim).mul_scalar(beta);
    let negative = match cfg.reduction {
        NegativeReduction::TopK(k) => {
            let (sim, tau) = hardest_negatives(neg_sim, neg_tau, k);
            let regulariser = (tau.clone().log() + tau.clone().recip()).sum_dim(2);
            (sim / tau).mean_dim(2) - regulariser.mul_scalar(beta)
        }
        NegativeReduction::Max => {
            let (hardest, index) = scaled(neg_sim).max_dim_with_indices(2);
            let hardest_tau = neg_tau.gather(2, index);
            hardest - omega(hardest_tau, cfg.dim).mul_scalar(beta)
        }
        NegativeReduction::LogSumExp => {
            let neg_scaled = scaled(neg_sim);
            let logits = Tensor::cat(vec![pos_scaled.unsqueeze_dim(2), neg_scaled.clone()], 2);
            let weights = softmax(neg_scaled, 2);
            let weighted_omega = (weights * omega(neg_tau, cfg.dim)).sum_dim(2);
            log_sum_exp_rows(logits) - weighted_omega.mul_scalar(beta)
        }
    };
    positive + negative.squeeze_dim(2)
}

/// Eq. 5's selection: each anchor's `k` negatives of largest similarity s (ties in index order)
/// and their temperatures, [C, N, K] twice -> [C, N, min(k, K)]. Gradients flow to the selected
/// entries only; with k >= K everything is kept, in its order.
pub fn hardest_negatives(
    neg_sim: Tensor<3>,
    neg_tau: Tensor<3>,
    k: usize,
) -> (Tensor<3>, Tensor<3>) {
    let [_, _, available] = neg_sim.dims();
    if k >= available {
        return (neg_sim, neg_tau);
    }
    let (_, index) = neg_sim.clone().detach().topk_with_indices(k, 2);
    (neg_sim.gather(2, index.clone()), neg_tau.gather(2, index))
}

fn check_shapes(
    pos_sim: &Tensor<2>,
    neg_sim: &Tensor<3>,
    pos_tau: &Tensor<2>,
    neg_tau: &Tensor<3>,
) -> Result<()> {
    let [c, n] = pos_sim.dims();
    let [_, _, k] = neg_sim.dims();
    let shape_error = |what: &str, expected: String, actual: String| AmclError::Shape {
        context: format!("amcl_objective: {what}"),
        expected,
        actual,
    };
    if pos_tau.dims() != [c, n] {
        return Err(shape_error(
            "pos_tau",
            format!("{:?}", [c, n]),
            format!("{:?}", pos_tau.dims()),
        ));
    }
    if neg_sim.dims()[..2] != [c, n] {
        return Err(shape_error(
            "neg_sim",
            format!("[{c}, {n}, K]"),
            format!("{:?}", neg_sim.dims()),
        ));
    }
    if k == 0 {
        return Err(shape_error("neg_sim", "K >= 1 negatives".into(), "K = 0".into()));
    }
    if neg_tau.dims() != neg_sim.dims() {
        return Err(shape_error(
            "neg_tau",
            format!("{:?}", neg_sim.dims()),
            format!("{:?}", neg_tau.dims()),
        ));
    }
    Ok(())
}
