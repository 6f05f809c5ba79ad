//! The negative log-likelihood of each row's positive among its negatives, every logit with its
//! own temperature and the temperatures penalised: the per-anchor terms of AMCL's objective
//! (Wang et al., ECCV 2024), fused on the CPU.
//!
//! Written with tensor ops, each row of K negatives (K = 1,024 against a MoCo queue) goes through
//! about fifteen element-wise passes forward (divide, concatenate, maxima, exponentials,
//! logarithms, the penalty, softmax weights) and as many backward, each one a new tensor. Here
//! the CPU backend (flex) reads each row once forward and once backward.
//!
//! Per row, with l_0 = s+/t+, l_n = s_n/t_n, the penalty Omega(t) = a ln t + 1/t and its
//! derivative Omega'(t) = a/t - 1/t^2 (in AMCL a = d/2 for projections of dimension d):
//!
//! ```text
//! LogSumExp  L = -l_0 + b Omega(t+) + ln(e^l_0 + sum_n e^l_n) - b W,   W = sum_n p_n Omega(t_n)
//!            q_n = e^l_n / (e^l_0 + sum_m e^l_m)    p_n = e^l_n / sum_m e^l_m
//!            dL/dl_0 = q_0 - 1                     dL/dl_n = q_n - b p_n (Omega(t_n) - W)
//!            dL/dt_n, directly = -b p_n Omega'(t_n)
//! Max        L = -l_0 + b Omega(t+) + l_* - b Omega(t_*),   * = the first argmax_n l_n
//!            dL/dl_0 = -1    dL/dl_* = 1    dL/dt_*, directly = -b Omega'(t_*)
//! both       dL/dt+, directly = b Omega'(t+);   through l = s/t:  dL/ds = dL/dl / t  and
//!            dL/dt = (directly) - dL/dl l / t
//! ```
//!
//! Other backends (WebGPU, CUDA), and autodiff with gradient checkpointing, use the caller's
//! tensor ops, which their kernel fusion handles. amcl-core's tests compare the two (values and
//! gradients), and its golden-value and finite-difference tests run on this path.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::DType;

use crate::buffer::{contiguous, f32s};
use crate::{FlexPath, flex_path};

/// The terms [C, N] of rows (c, n) by the fused kernel, for s+ and t+ [C, N] and s and t
/// [C, N, K], when the tensors are f32 on the CPU backend (with or without autodiff); `None`
/// otherwise, for the caller's tensor ops. Shapes are checked by the caller.
pub fn tempered_nll(
    pos_sim: &Tensor<2>,
    neg_sim: &Tensor<3>,
    pos_tau: &Tensor<2>,
    neg_tau: &Tensor<3>,
    settings: TemperedNll,
) -> Option<Tensor<2>> {
    let all_f32 = [pos_sim.dtype(), neg_sim.dtype(), pos_tau.dtype(), neg_tau.dtype()]
        .iter()
        .all(|&dtype| dtype == DType::F32);
    if !all_f32 {
        return None;
    }
    let [c, n, k] = neg_sim.dims();
    // The kernel sees rows: [C, N] as [C N, 1], and [C, N, K] as [C N, K].
    let column = |t: &Tensor<2>| t.clone().reshape([c * n, 1]);
    let rows = |t: &Tensor<3>| t.clone().reshape([c * n, k]);
    let inputs = [column(pos_sim), rows(neg_sim), column(pos_tau), rows(neg_tau)];
    let terms = match flex_path(&pos_sim.device()) {
        FlexPath::Plain => Some(untracked_forward(inputs, settings)),
        #[cfg(feature = "autodiff")]
        FlexPath::Tracked => tracked::forward(inputs, settings),
        _ => None,
    }?;
    Some(terms.reshape([c, n]))
}

/// The loss's constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemperedNll {
    /// The penalty's weight (AMCL's beta).
    pub beta: f32,
    /// a, the penalty's log coefficient (AMCL: d/2).
    pub log_coefficient: f32,
    /// Only the hardest negative (largest s/t) counts, instead of all of them (log-sum-exp).
    pub hardest_only: bool,
}

/// The forward on flex tensors without autodiff.
fn untracked_forward(inputs: [Tensor<2>; 4], settings: TemperedNll) -> Tensor<2> {
    let inputs = inputs.map(|t| t.try_into_primitive::<Flex>().expect("a flex tensor"));
    Tensor::from_primitive::<Flex>(forward_primitive(&inputs.map(contiguous), settings).0)
}

/// The kernel's view of contiguous f32 inputs s+ [R, 1], s [R, K], t+ [R, 1], t [R, K].
fn rows([pos_sim, neg_sim, pos_tau, neg_tau]: &[FlexTensor; 4]) -> kernel::Rows<'_> {
    let (pos_sim, neg_sim) = (f32s(pos_sim), f32s(neg_sim));
    let k = neg_sim.len() / pos_sim.len().max(1);
    kernel::Rows { pos_sim, neg_sim, pos_tau: f32s(pos_tau), neg_tau: f32s(neg_tau), k }
}

/// The terms [R, 1], and each row's statistics [R, STATS] that the backward pass reuses.
fn forward_primitive(inputs: &[FlexTensor; 4], settings: TemperedNll) -> (FlexTensor, FlexTensor) {
    let (terms, stats) = kernel::forward(&rows(inputs), settings);
    let r = terms.len();
    (
        FlexTensor::from_data(TensorData::new(terms, [r, 1])),
        FlexTensor::from_data(TensorData::new(stats, [r, kernel::STATS])),
    )
}

/// The gradients of s+ [R, 1], s [R, K], t+ [R, 1] and t [R, K], given the inputs, the forward's
/// row statistics and the terms' gradient [R, 1].
#[cfg_attr(not(feature = "autodiff"), allow(dead_code))]
fn backward_primitive(
    inputs: &[FlexTensor; 4],
    stats: &FlexTensor,
    settings: TemperedNll,
    grad: FlexTensor,
) -> [FlexTensor; 4] {
    let x = rows(inputs);
    let grad = contiguous(grad);
    let grads = kernel::backward(&x, f32s(stats), f32s(&grad), settings);
    let (r, k) = (x.pos_sim.len(), x.k);
    [
        FlexTensor::from_data(TensorData::new(grads.pos_sim, [r, 1])),
        FlexTensor::from_data(TensorData::new(grads.neg_sim, [r, k])),
        FlexTensor::from_data(TensorData::new(grads.pos_tau, [r, 1])),
        FlexTensor::from_data(TensorData::new(grads.neg_tau, [r, k])),
    ]
}

/// The op on flex under autodiff: the fused forward, and a backward node that runs the fused
/// gradient kernel.
#[cfg(feature = "autodiff")]
mod tracked {
    use burn::prelude::*;

    use super::{FlexTensor, TemperedNll, backward_primitive, forward_primitive};
    use crate::custom_op::{FlexBackward, record, tracked};

    #[derive(Debug)]
    struct TemperedNllBackward(TemperedNll);

    impl FlexBackward<4> for TemperedNllBackward {
        /// s+, s, t+, t, and the forward's row statistics.
        type State = ([FlexTensor; 4], FlexTensor);

        fn backward(
            self,
            (inputs, stats): Self::State,
            grad: FlexTensor,
            _: [bool; 4],
        ) -> [Option<FlexTensor>; 4] {
            backward_primitive(&inputs, &stats, self.0, grad).map(Some)
        }
    }

    /// `None` under gradient checkpointing (another strategy type), for the tensor ops.
    pub(super) fn forward(inputs: [Tensor<2>; 4], settings: TemperedNll) -> Option<Tensor<2>> {
        let [pos_sim, neg_sim, pos_tau, neg_tau] = inputs;
        let (node_0, pos_sim) = tracked(pos_sim)?;
        let (node_1, neg_sim) = tracked(neg_sim)?;
        let (node_2, pos_tau) = tracked(pos_tau)?;
        let (node_3, neg_tau) = tracked(neg_tau)?;
        let inputs = [pos_sim, neg_sim, pos_tau, neg_tau];
        let (terms, stats) = forward_primitive(&inputs, settings);
        let nodes = [node_0, node_1, node_2, node_3];
        Some(record(TemperedNllBackward(settings), nodes, terms, (inputs, stats)))
    }
}

/// The kernels on f32 slices, one anchor row at a time; rows are split across the cores.
#[cfg_attr(not(feature = "autodiff"), allow(dead_code))] // the backward pass serves autodiff
mod kernel {
    #[cfg(not(target_arch = "wasm32"))]
    use rayon::prelude::*;

    use std::mem::MaybeUninit;

    use super::TemperedNll;
    use crate::{buffer, math, widest_simd};

    /// An output slot the kernel writes before it is read.
    type Slot = MaybeUninit<f32>;

    /// Statistics kept per row for the backward pass. LogSumExp: the negatives' largest logit
    /// m', then e^m' / (e^l_0 + sum_n e^l_n) and 1 / sum_n e^(l_n - m'), which turn
    /// e^(l_n - m') into q_n and p_n, and W. Max: the index of the hardest negative.
    pub const STATS: usize = 4;

    /// Anchor rows per parallel task.
    const ROWS_PER_TASK: usize = 8;

    /// Negatives summed side by side in a row's loops (one AVX-512 register, two AVX2).
    const LANES: usize = 16;

    /// Every row's inputs: s+ [R], s [R, K], t+ [R], t [R, K].
    pub struct Rows<'a> {
        pub pos_sim: &'a [f32],
        pub neg_sim: &'a [f32],
        pub pos_tau: &'a [f32],
        pub neg_tau: &'a [f32],
        pub k: usize,
    }

    impl Rows<'_> {
        /// Row r's negatives' similarities and temperatures.
        fn negatives(&self, r: usize) -> (&[f32], &[f32]) {
            let span = r * self.k..(r + 1) * self.k;
            (&self.neg_sim[span.clone()], &self.neg_tau[span])
        }
    }

    /// Omega(t) = a ln t + 1/t.
    #[inline(always)]
    fn omega(tau: f32, s: TemperedNll) -> f32 {
        s.log_coefficient * math::ln(tau) + 1.0 / tau
    }

    /// Omega'(t) = a/t - 1/t^2.
    #[inline(always)]
    fn omega_prime(tau: f32, s: TemperedNll) -> f32 {
        let inv = 1.0 / tau;
        inv * (s.log_coefficient - inv)
    }

    /// Each row's term, and its statistics [R, STATS].
    pub fn forward(x: &Rows, s: TemperedNll) -> (Vec<f32>, Vec<f32>) {
        let rows = x.pos_sim.len();
        let (mut terms, mut stats) = (vec![0.0; rows], vec![0.0; rows * STATS]);
        let task = |(t, (terms, stats)): (usize, (&mut [f32], &mut [f32]))| {
            for (i, (term, stats)) in
                terms.iter_mut().zip(stats.chunks_exact_mut(STATS)).enumerate()
            {
                let (value, row_stats) = forward_row_simd(x, t * ROWS_PER_TASK + i, s);
                *term = value;
                stats.copy_from_slice(&row_stats);
            }
        };
        #[cfg(not(target_arch = "wasm32"))]
        terms
            .par_chunks_mut(ROWS_PER_TASK)
            .zip(stats.par_chunks_mut(ROWS_PER_TASK * STATS))
            .enumerate()
            .for_each(task);
        #[cfg(target_arch = "wasm32")]
        terms
            .chunks_mut(ROWS_PER_TASK)
            .zip(stats.chunks_mut(ROWS_PER_TASK * STATS))
            .enumerate()
            .for_each(task);
        (terms, stats)
    }

    widest_simd!(fn forward_row_simd => forward_row(x: &Rows, r: usize, s: TemperedNll) -> (f32, [f32; STATS]));

    /// Row r's term L (module equations) and statistics.
    #[inline(always)]
    fn forward_row(x: &Rows, r: usize, s: TemperedNll) -> (f32, [f32; STATS]) {
        let (sims, taus) = x.negatives(r);
        let (l_0, tau_0) = (x.pos_sim[r] / x.pos_tau[r], x.pos_tau[r]);
        let positive = -l_0 + s.beta * omega(tau_0, s);
        if s.hardest_only {
            let (hardest, at) = largest_logit::<true>(sims, taus);
            return (positive + hardest - s.beta * omega(taus[at], s), [at as f32, 0.0, 0.0, 0.0]);
        }
        // p is normalised by the negatives' own maximum, so that it stays finite when the
        // positive's logit dwarfs every negative's (e^(l_n - m) would all underflow to 0).
        let (m_neg, _) = largest_logit::<false>(sims, taus);
        let (z_neg, weighted) = if s.beta != 0.0 {
            exp_sums::<true>(sims, taus, m_neg, s)
        } else {
            exp_sums::<false>(sims, taus, m_neg, s)
        };
        let w = if s.beta != 0.0 { weighted / z_neg } else { 0.0 };
        let m = l_0.max(m_neg);
        let negatives_scale = math::exp(m_neg - m);
        let z = z_neg * negatives_scale + math::exp(l_0 - m);
        let q_scale = negatives_scale / z;
        (positive + m + math::ln(z) - s.beta * w, [m_neg, q_scale, 1.0 / z_neg, w])
    }

    /// The largest l_n = s_n / t_n and, with `INDEX`, the first n where it is (0 when there is
    /// none, as when every l_n is NaN; always 0 without `INDEX`), from [`LANES`] running maxima
    /// (and their indices), so that the loop vectorises.
    #[inline(always)]
    pub(super) fn largest_logit<const INDEX: bool>(sims: &[f32], taus: &[f32]) -> (f32, usize) {
        let (sim_lanes, tau_lanes) = (sims.chunks_exact(LANES), taus.chunks_exact(LANES));
        let whole = sims.len() - sim_lanes.remainder().len();
        let rest = sim_lanes.remainder().iter().zip(tau_lanes.remainder());
        let (mut best, mut at) = ([f32::NEG_INFINITY; LANES], [0u32; LANES]);
        for (chunk, (sims, taus)) in sim_lanes.zip(tau_lanes).enumerate() {
            for l in 0..LANES {
                let v = sims[l] / taus[l];
                if INDEX {
                    let n = (chunk * LANES + l) as u32;
                    (best[l], at[l]) = if v > best[l] { (v, n) } else { (best[l], at[l]) };
                } else {
                    best[l] = if v > best[l] { v } else { best[l] };
                }
            }
        }
        // Across lanes, the largest value, and of equal ones the first index.
        let (mut largest, mut index) = (f32::NEG_INFINITY, 0usize);
        for (&v, &n) in best.iter().zip(&at) {
            if v > largest || (v == largest && (n as usize) < index) {
                (largest, index) = (v, n as usize);
            }
        }
        for (n, (&sim, &tau)) in rest.enumerate() {
            let v = sim / tau;
            if v > largest {
                (largest, index) = (v, if INDEX { whole + n } else { 0 });
            }
        }
        (largest, index)
    }

    /// sum_n e^(l_n - m) and, when `WEIGHTED`, sum_n e^(l_n - m) Omega(t_n), each summed in
    /// [`LANES`] partial sums so that the loop vectorises.
    #[inline(always)]
    fn exp_sums<const WEIGHTED: bool>(
        sims: &[f32],
        taus: &[f32],
        m: f32,
        s: TemperedNll,
    ) -> (f32, f32) {
        let term = |sim: f32, tau: f32| {
            let e = math::exp(sim / tau - m);
            (e, if WEIGHTED { e * omega(tau, s) } else { 0.0 })
        };
        let (sim_lanes, tau_lanes) = (sims.chunks_exact(LANES), taus.chunks_exact(LANES));
        let rest = sim_lanes.remainder().iter().zip(tau_lanes.remainder());
        let (mut z, mut weighted) = ([0.0f32; LANES], [0.0f32; LANES]);
        for (sims, taus) in sim_lanes.zip(tau_lanes) {
            for l in 0..LANES {
                let (e, we) = term(sims[l], taus[l]);
                z[l] += e;
                weighted[l] += we;
            }
        }
        let (mut z, mut weighted) = (z.iter().sum::<f32>(), weighted.iter().sum::<f32>());
        for (&sim, &tau) in rest {
            let (e, we) = term(sim, tau);
            z += e;
            weighted += we;
        }
        (z, weighted)
    }

    /// Gradients of s+, s, t+ and t.
    pub struct Grads {
        pub pos_sim: Vec<f32>,
        pub neg_sim: Vec<f32>,
        pub pos_tau: Vec<f32>,
        pub neg_tau: Vec<f32>,
    }

    /// The backward pass, given the forward's statistics and the terms' gradient g [R].
    pub fn backward(x: &Rows, stats: &[f32], g: &[f32], s: TemperedNll) -> Grads {
        let (rows, k) = (g.len(), x.k);
        let stats_of = |r: usize| -> [f32; STATS] {
            stats[r * STATS..(r + 1) * STATS].try_into().expect("STATS values")
        };
        let (mut pos_sim, mut pos_tau) = (vec![0.0; rows], vec![0.0; rows]);
        for r in 0..rows {
            (pos_sim[r], pos_tau[r]) = positive_grads(x, r, stats_of(r), g[r], s);
        }
        // Every slot is written below, so the [R, K] gradients need no zeroing first.
        let (mut neg_sim, mut neg_tau) = (buffer::uninit(rows * k), buffer::uninit(rows * k));
        let task = |(t, (d_sim, d_tau)): (usize, (&mut [Slot], &mut [Slot]))| {
            let rows = d_sim.chunks_exact_mut(k).zip(d_tau.chunks_exact_mut(k));
            for (i, (d_sim, d_tau)) in rows.enumerate() {
                let r = t * ROWS_PER_TASK + i;
                negative_grads_simd(x, r, stats_of(r), g[r], s, d_sim, d_tau);
            }
        };
        let chunk = (ROWS_PER_TASK * k).max(1);
        #[cfg(not(target_arch = "wasm32"))]
        neg_sim.par_chunks_mut(chunk).zip(neg_tau.par_chunks_mut(chunk)).enumerate().for_each(task);
        #[cfg(target_arch = "wasm32")]
        neg_sim.chunks_mut(chunk).zip(neg_tau.chunks_mut(chunk)).enumerate().for_each(task);
        // SAFETY: `negative_grads` wrote every slot of every row.
        let (neg_sim, neg_tau) =
            unsafe { (buffer::assume_init(neg_sim), buffer::assume_init(neg_tau)) };
        Grads { pos_sim, neg_sim, pos_tau, neg_tau }
    }

    /// dL/ds+ and dL/dt+ of row r, times g.
    fn positive_grads(
        x: &Rows,
        r: usize,
        stats: [f32; STATS],
        g: f32,
        s: TemperedNll,
    ) -> (f32, f32) {
        let (tau, l_0) = (x.pos_tau[r], x.pos_sim[r] / x.pos_tau[r]);
        // dL/dl_0 = q_0 - 1 = -sum_n q_n (exactly -1 for Max).
        let d_l = if s.hardest_only { -g } else { -g * stats[1] / stats[2] };
        (d_l / tau, -d_l * l_0 / tau + g * s.beta * omega_prime(tau, s))
    }

    widest_simd!(fn negative_grads_simd => negative_grads(
        x: &Rows,
        r: usize,
        stats: [f32; STATS],
        g: f32,
        s: TemperedNll,
        d_sim: &mut [Slot],
        d_tau: &mut [Slot]
    ));

    /// dL/ds_n and dL/dt_n of row r, times g, written to every slot of `d_sim` and `d_tau` [K].
    #[inline(always)]
    fn negative_grads(
        x: &Rows,
        r: usize,
        stats: [f32; STATS],
        g: f32,
        s: TemperedNll,
        d_sim: &mut [Slot],
        d_tau: &mut [Slot],
    ) {
        let (sims, taus) = x.negatives(r);
        if s.hardest_only {
            let (d_sim, d_tau) = (buffer::zeroed(d_sim), buffer::zeroed(d_tau));
            let at = stats[0] as usize;
            let (tau, l) = (taus[at], sims[at] / taus[at]);
            d_sim[at] = g / tau;
            d_tau[at] = -g * l / tau - g * s.beta * omega_prime(tau, s);
            return;
        }
        let [m_neg, q_scale, inv_z_neg, w] = stats;
        let row = (m_neg, q_scale, inv_z_neg, w, g);
        if s.beta != 0.0 {
            softmax_grads::<true>(sims, taus, row, s, d_sim, d_tau);
        } else {
            softmax_grads::<false>(sims, taus, row, s, d_sim, d_tau);
        }
    }

    /// The log-sum-exp form's dL/ds_n and dL/dt_n of one row, given its statistics
    /// (m', e^m' / Z, 1 / Z', W) and g; `WEIGHTED` when b != 0.
    #[inline(always)]
    fn softmax_grads<const WEIGHTED: bool>(
        sims: &[f32],
        taus: &[f32],
        (m_neg, q_scale, inv_z_neg, w, g): (f32, f32, f32, f32, f32),
        s: TemperedNll,
        d_sim: &mut [Slot],
        d_tau: &mut [Slot],
    ) {
        let outputs = d_sim.iter_mut().zip(d_tau.iter_mut());
        for ((&sim, &tau), (d_sim, d_tau)) in sims.iter().zip(taus).zip(outputs) {
            let l = sim / tau;
            let e = math::exp(l - m_neg);
            let mut d_l = g * e * q_scale;
            let mut direct = 0.0;
            if WEIGHTED {
                let p = e * inv_z_neg;
                d_l -= g * s.beta * p * (omega(tau, s) - w);
                direct = -g * s.beta * p * omega_prime(tau, s);
            }
            d_sim.write(d_l / tau);
            d_tau.write(direct - d_l * l / tau);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hard negative is the first of equal logits, wherever they sit among the lanes and
    /// the remainder, as the tensor ops' argmax.
    #[test]
    fn the_hardest_negative_is_the_first_of_equal_logits() {
        for (k, ties) in [(37, vec![3, 20, 35]), (37, vec![33, 36]), (48, vec![17, 1, 40])] {
            let mut sims = vec![0.1f32; k];
            for &n in &ties {
                sims[n] = 0.9;
            }
            let taus = vec![0.5; k];
            let first = *ties.iter().min().unwrap();
            let hardest = kernel::largest_logit::<true>(&sims, &taus);
            assert_eq!(hardest, (1.8, first), "K = {k}, {ties:?}");
            assert_eq!(kernel::largest_logit::<false>(&sims, &taus).0, 1.8, "K = {k}, {ties:?}");
        }
    }
}
