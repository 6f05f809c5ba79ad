//! Each anchor's top-k negatives, for the authors' form of the objective (`NegativeReduction::TopK`).

use burn::prelude::*;
use flex_kernels::select_columns::{Columns, select_columns, top_k_columns};
use flex_kernels::{FlexPath, flex_path};

use crate::loss::{AmclObjectiveConfig, NegativeReduction, hardest_negatives};

/// The negatives the objective uses: with `TopK(k)` each anchor's k most similar (selected here,
/// so that the diagnostics describe them; the objective then keeps all it is given), otherwise all.
///
/// On the CPU the k largest of each row are found on the host (a partial sort of one row per
/// anchor) and copied out by [`select_columns`]; burn's `topk` sorts every row in full and its
/// gather's backward runs on one thread, which made the authors' form 60 % slower per step.
/// Elsewhere burn's `topk` and `gather` ([`hardest_negatives`]) select the same entries.
pub(crate) fn selected_negatives(
    neg_sim: Tensor<3>,
    neg_tau: Tensor<3>,
    cfg: &AmclObjectiveConfig,
) -> (Tensor<3>, Tensor<3>) {
    let NegativeReduction::TopK(k) = cfg.reduction else { return (neg_sim, neg_tau) };
    let [c, n, available] = neg_sim.dims();
    if k >= available {
        return (neg_sim, neg_tau);
    }
    if flex_path(&neg_sim.device()) == FlexPath::Elsewhere {
        return hardest_negatives(neg_sim, neg_tau, k);
    }
    let Ok(sims) = neg_sim.clone().detach().into_data().convert::<f32>().try_into_vec::<f32>()
    else {
        return hardest_negatives(neg_sim, neg_tau, k);
    };
    let columns = Columns::new(c * n, k, top_k_columns(&sims, available, k));
    // Every (head, anchor) row has its own columns: the heads become rows of one stack.
    let pick = |x: Tensor<3>| {
        select_columns(x.reshape([1, c * n, available]), &columns).reshape([c, n, k])
    };
    (pick(neg_sim), pick(neg_tau))
}
