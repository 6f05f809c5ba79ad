//! Picking some columns of every row of an all-pairs matrix: each anchor's positive, or its
//! negatives, out of [C, V, V] similarities and temperatures; and each anchor's top-k negatives
//! ([`selected_negatives`]).
//!
//! `select_columns(x, columns)[c, i, k] = x[c, i, columns[i][k]]`, which is `gather` along the
//! last axis. On the CPU backend (flex, under autodiff) burn's gather and the scatter-add of its
//! backward run on one thread and cost AMCL-SimCLR about 3 % of a step; here both are a copy
//! per row over the cores. Elsewhere it is `gather`; both give the same values and gradients
//! (tests below).
#![cfg_attr(target_arch = "wasm32", allow(dead_code, unused_imports))]

use std::sync::Arc;

use burn::prelude::*;

use crate::loss::{AmclObjectiveConfig, NegativeReduction, hardest_negatives};

/// For each of `rows` rows, the same number of column indices (row-major).
#[derive(Debug, Clone)]
pub struct Columns {
    rows: usize,
    per_row: usize,
    indices: Arc<Vec<usize>>,
}

impl Columns {
    /// `indices` holds `per_row` column indices for each row in turn.
    pub fn new(rows: usize, per_row: usize, indices: Vec<usize>) -> Self {
        assert_eq!(indices.len(), rows * per_row, "Columns: {rows} rows of {per_row} indices");
        Self { rows, per_row, indices: Arc::new(indices) }
    }

    /// The indices as an Int tensor [rows, per_row].
    pub fn tensor(&self, device: &Device) -> Tensor<2, Int> {
        let values: Vec<i64> = self.indices.iter().map(|&j| j as i64).collect();
        Tensor::from_data(TensorData::new(values, [self.rows, self.per_row]), device)
    }
}

/// x [C, V, W] -> [C, V, K]: row i keeps the columns `columns` lists for it.
pub fn select_columns(x: Tensor<3>, columns: &Columns) -> Tensor<3> {
    #[cfg(all(feature = "autodiff", not(target_arch = "wasm32")))]
    if x.dtype() == burn::tensor::DType::F32 {
        use crate::cpu::{FlexPath, flex_path};
        if flex_path(&x.device()) == FlexPath::Tracked
            && let Some(y) = tracked::forward(x.clone(), columns)
        {
            return y;
        }
    }
    gathered(x, columns)
}

/// The same with burn's `gather`.
pub fn gathered(x: Tensor<3>, columns: &Columns) -> Tensor<3> {
    let [c, _, _] = x.dims();
    let index = columns.tensor(&x.device()).unsqueeze_dim::<3>(0).expand([
        c,
        columns.rows,
        columns.per_row,
    ]);
    x.gather(2, index)
}

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
    if crate::cpu::flex_path(&neg_sim.device()) == crate::cpu::FlexPath::Elsewhere {
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

/// For each row of `width` values, the columns of its `k` largest, in increasing column order
/// (among equal values the lower columns first).
fn top_k_columns(values: &[f32], width: usize, k: usize) -> Vec<usize> {
    let mut columns = Vec::with_capacity(values.len() / width * k);
    let mut order: Vec<usize> = Vec::with_capacity(width);
    for row in values.chunks(width) {
        order.clear();
        order.extend(0..width);
        let larger_first = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
        order.select_nth_unstable_by(k - 1, larger_first);
        let chosen = &mut order[..k];
        chosen.sort_unstable();
        columns.extend_from_slice(chosen);
    }
    columns
}

/// The op on flex under autodiff.
#[cfg(all(feature = "autodiff", not(target_arch = "wasm32")))]
mod tracked {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Autodiff, Flex};
    use burn::prelude::*;
    use rayon::prelude::*;

    use super::Columns;
    use crate::cpu::buffer::{contiguous, f32s};

    type Ad = Autodiff<Flex, NoCheckpointing>;

    #[derive(Debug)]
    struct SelectColumns;

    impl Backward<Flex, 1> for SelectColumns {
        /// The columns, and x's shape [C, V, W].
        type State = (Columns, [usize; 3]);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (columns, [c, v, w]) = ops.state;
            let grad = contiguous(grads.consume::<Flex>(&ops.node));
            let grad = f32s(&grad);
            let k = columns.per_row;
            // dx[c, i, columns[i][k]] += dy[c, i, k]; every other entry is zero.
            let mut dx = vec![0.0f32; c * v * w];
            dx.par_chunks_mut(w.max(1)).enumerate().for_each(|(row, dx_row)| {
                let i = row % v;
                let dy_row = &grad[row * k..(row + 1) * k];
                for (&j, &g) in columns.indices[i * k..(i + 1) * k].iter().zip(dy_row) {
                    dx_row[j] += g;
                }
            });
            let [node] = ops.parents;
            if let Some(node) = node {
                grads.register::<Flex>(
                    node.id,
                    FlexTensor::from_data(TensorData::new(dx, [c, v, w])),
                );
            }
        }
    }

    /// None under another checkpointing strategy, or when an index is out of range.
    pub(super) fn forward(x: Tensor<3>, columns: &Columns) -> Option<Tensor<3>> {
        let [c, v, w] = x.dims();
        if v != columns.rows || columns.indices.iter().any(|&j| j >= w) {
            return None;
        }
        let px = x.try_into_primitive::<Ad>().ok()?;
        let node = px.node();
        let x = contiguous(px.into_primitive());
        let values = f32s(&x);
        let k = columns.per_row;
        let mut y = vec![0.0f32; c * v * k];
        y.par_chunks_mut(k.max(1)).enumerate().for_each(|(row, y_row)| {
            let i = row % v;
            let x_row = &values[row * w..(row + 1) * w];
            for (y, &j) in y_row.iter_mut().zip(&columns.indices[i * k..(i + 1) * k]) {
                *y = x_row[j];
            }
        });
        let y = FlexTensor::from_data(TensorData::new(y, [c, v, k]));
        let y = match SelectColumns.prepare::<NoCheckpointing>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((columns.clone(), [c, v, w]), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        Some(Tensor::from_primitive::<Ad>(y))
    }
}

#[cfg(all(test, feature = "autodiff"))]
mod tests {
    use super::*;

    #[test]
    fn values_and_gradients_equal_gather() {
        let device = Device::flex().autodiff();
        let (c, v, w) = (3, 5, 7);
        let mut rng = crate::rng::Rng::new(3);
        let values: Vec<f32> = (0..c * v * w).map(|_| rng.normal()).collect();
        // Row i keeps columns (i + 1) % w, (i + 3) % w and (2 i) % w: distinct for each row.
        let indices = (0..v).flat_map(|i| [(i + 1) % w, (i + 3) % w, (2 * i) % w]).collect();
        let columns = Columns::new(v, 3, indices);
        let g: Vec<f32> = (0..c * v * 3).map(|_| rng.normal()).collect();
        let run = |ours: bool| {
            let x = Tensor::<3>::from_data(TensorData::new(values.clone(), [c, v, w]), &device)
                .require_grad();
            let y = if ours {
                select_columns(x.clone(), &columns)
            } else {
                gathered(x.clone(), &columns)
            };
            let g = Tensor::<3>::from_data(TensorData::new(g.clone(), [c, v, 3]), &device);
            let grads = (y.clone() * g).sum().backward();
            let to_vec = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
            (to_vec(y), to_vec(x.grad(&grads).unwrap()))
        };
        let (ours, burns) = (run(true), run(false));
        assert_eq!(ours.0, burns.0);
        assert_eq!(ours.1, burns.1);
        assert!(burns.1.iter().any(|&v| v != 0.0));
    }
}
