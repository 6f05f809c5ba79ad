//! Picking some columns of every row of a stack of matrices: in a contrastive loss, each
//! anchor's positive or its negatives out of [C, V, V] similarities and temperatures; and the
//! columns of each row's k largest values ([`top_k_columns`]).
//!
//! `select_columns(x, columns)[c, i, k] = x[c, i, columns[i][k]]`, which is `gather` along the
//! last axis. On the CPU backend (flex, under autodiff) burn's gather and the scatter-add of its
//! backward run on one thread and cost AMCL-SimCLR about 3 % of a training step; here both are a copy
//! per row over the cores. Elsewhere it is `gather`; both give the same values and gradients
//! (tests below).
#![cfg_attr(target_arch = "wasm32", allow(dead_code, unused_imports))]

use std::sync::Arc;

use burn::prelude::*;

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
        use crate::{FlexPath, flex_path};
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

/// For each row of `width` values, the columns of its `k` largest, in increasing column order
/// (among equal values the lower columns first).
pub fn top_k_columns(values: &[f32], width: usize, k: usize) -> Vec<usize> {
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
    use burn::backend::flex::FlexTensor;
    use burn::prelude::*;
    use rayon::prelude::*;

    use super::Columns;
    use crate::buffer::f32s;
    use crate::custom_op::{FlexBackward, record, tracked};

    #[derive(Debug)]
    struct SelectColumns;

    impl FlexBackward<1> for SelectColumns {
        /// The columns, and x's shape [C, V, W].
        type State = (Columns, [usize; 3]);

        fn backward(
            self,
            (columns, [c, v, w]): Self::State,
            grad: FlexTensor,
            _: [bool; 1],
        ) -> [Option<FlexTensor>; 1] {
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
            [Some(FlexTensor::from_data(TensorData::new(dx, [c, v, w])))]
        }
    }

    /// None under another checkpointing strategy, or when an index is out of range.
    pub(super) fn forward(x: Tensor<3>, columns: &Columns) -> Option<Tensor<3>> {
        let [c, v, w] = x.dims();
        if v != columns.rows || columns.indices.iter().any(|&j| j >= w) {
            return None;
        }
        let (node, x) = tracked(x)?;
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
        Some(record(SelectColumns, [node], y, (columns.clone(), [c, v, w])))
    }
}

#[cfg(all(test, feature = "autodiff"))]
mod tests {
    use super::*;

    #[test]
    fn values_and_gradients_equal_gather() {
        let device = Device::flex().autodiff();
        let (c, v, w) = (3, 5, 7);
        let mut rng = crate::test_values::Rng::new(3);
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
