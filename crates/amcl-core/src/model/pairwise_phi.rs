//! The all-pairs part of a temperature network, fused on the CPU.
//!
//! phi_c's first layer is linear, so for views i (side a) and j (side b) its hidden units are
//! relu(a_i + b_j), with a = W_a z_a + bias and b = W_b z_b projected once per view
//! ([`super::StackedTemperatureNets`]). What remains is, for every pair in every head c,
//!
//! ```text
//! logit[c, i, j] = sum_k w[c, k] * relu(a[c, i, k] + b[c, j, k])   a: [C, N, H], b: [C, M, H], w: [C, H]
//! ```
//!
//! Written with tensor ops this materialises an [N, M, H] activation (H = 128; 33 MB per head
//! for SimCLR at batch 128, 67 MB against a MoCo queue of 1,024) and about ten passes over it
//! forward and backward, which on the CPU cost as much as the small CNN itself. Here the CPU
//! backend (flex) computes it in one pass forward and one backward without that activation, all
//! heads in one op, with these gradients (one head; c left out):
//!
//! ```text
//! d logit / d a[i, k] = sum_j g[i, j] * w[k] * [a[i, k] + b[j, k] > 0]
//! d logit / d b[j, k] = sum_i g[i, j] * w[k] * [a[i, k] + b[j, k] > 0]
//! d logit / d w[k]    = sum_ij g[i, j] * relu(a[i, k] + b[j, k])
//! ```
//!
//! Other backends (WebGPU, CUDA, wgpu), and autodiff with gradient checkpointing, use the tensor
//! ops, which their kernel fusion handles; both paths give the same numbers (tests below).

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::relu;

use super::TemperatureRange;
use crate::cpu::buffer::{contiguous, f32s};
use crate::cpu::{FlexPath, flex_path};

/// logit[c, i, j] = sum_k w[c, k] relu(a[c, i, k] + b[c, j, k]) for a [C, N, H], b [C, M, H],
/// w [C, H]: [C, N, M], every head c at once.
pub fn pairwise_relu_dot(a: Tensor<3>, b: Tensor<3>, w: Tensor<2>) -> Tensor<3> {
    let [c, _, _] = a.dims();
    let bias = Tensor::zeros([c], &a.device());
    fused(a, b, w, bias, None)
}

/// tau[c, i, j] = range.squash(logit[c, i, j] + bias[c]): the temperatures themselves, with
/// phi's output bias and the squashing in the same pass over the pairs (bias: [C]).
pub fn pairwise_temperature(
    a: Tensor<3>,
    b: Tensor<3>,
    w: Tensor<2>,
    bias: Tensor<1>,
    range: TemperatureRange,
) -> Tensor<3> {
    fused(a, b, w, bias, Some(range))
}

/// The fused op where there is one (f32 on flex), else the tensor ops.
fn fused(
    a: Tensor<3>,
    b: Tensor<3>,
    w: Tensor<2>,
    bias: Tensor<1>,
    squash: Option<TemperatureRange>,
) -> Tensor<3> {
    let all_f32 = [a.dtype(), b.dtype(), w.dtype(), bias.dtype()].iter().all(|&t| t == DType::F32);
    match flex_path(&a.device()) {
        _ if !all_f32 => composed_squashed(a, b, w, bias, squash),
        FlexPath::Plain => flex_forward(a, b, w, bias, squash),
        #[cfg(feature = "autodiff")]
        FlexPath::Tracked => tracked::forward(a, b, w, bias, squash),
        _ => composed_squashed(a, b, w, bias, squash),
    }
}

/// The same with tensor ops: a [C, N, M, H] activation and a batched matrix product.
pub fn composed(a: Tensor<3>, b: Tensor<3>, w: Tensor<2>) -> Tensor<3> {
    let [c, n, h] = a.dims();
    let [_, m, _] = b.dims();
    let hidden = relu(a.reshape([c, n, 1, h]) + b.reshape([c, 1, m, h]));
    hidden.reshape([c, n * m, h]).matmul(w.reshape([c, h, 1])).reshape([c, n, m])
}

/// [`composed`], then the bias and the squashing when asked for.
fn composed_squashed(
    a: Tensor<3>,
    b: Tensor<3>,
    w: Tensor<2>,
    bias: Tensor<1>,
    squash: Option<TemperatureRange>,
) -> Tensor<3> {
    let [c, _, _] = a.dims();
    let logits = composed(a, b, w);
    match squash {
        Some(range) => range.squash(logits + bias.reshape([c, 1, 1])),
        None => logits,
    }
}

/// Forward on flex tensors without autodiff.
fn flex_forward(
    a: Tensor<3>,
    b: Tensor<3>,
    w: Tensor<2>,
    bias: Tensor<1>,
    squash: Option<TemperatureRange>,
) -> Tensor<3> {
    fn primitive<const D: usize>(t: Tensor<D>) -> FlexTensor {
        contiguous(t.try_into_primitive::<Flex>().expect("a flex tensor"))
    }
    let (a, b, w, bias) = (primitive(a), primitive(b), primitive(w), primitive(bias));
    let output = forward_primitive(&a, &b, &w, &bias, squash);
    Tensor::from_primitive::<Flex>(output)
}

/// A 3-D tensor's [heads, rows, cols].
fn dims(t: &FlexTensor) -> [usize; 3] {
    let shape = t.layout().shape();
    [shape[0], shape[1], shape[2]]
}

/// The logits or temperatures [C, N, M] of a [C, N, H], b [C, M, H], w [C, H] and bias [C]
/// (contiguous f32 tensors, read in place), one head after the other.
fn forward_primitive(
    a: &FlexTensor,
    b: &FlexTensor,
    w: &FlexTensor,
    bias: &FlexTensor,
    squash: Option<TemperatureRange>,
) -> FlexTensor {
    let ([c, n, h], [_, m, _]) = (dims(a), dims(b));
    let mut out = vec![0.0; c * n * m];
    let heads = out.chunks_exact_mut((n * m).max(1)).take(c).enumerate();
    let path = kernel::Path::fastest(h);
    for (head, out) in heads {
        let (a, b, w) = (head_of(a, head, n * h), head_of(b, head, m * h), head_of(w, head, h));
        kernel::forward(path, a, b, w, m, out);
        if let Some(range) = squash {
            kernel::squash(out, f32s(bias)[head], range);
        }
    }
    FlexTensor::from_data(TensorData::new(out, [c, n, m]))
}

/// Head `c`'s `len` values of a tensor whose heads lie one after the other.
fn head_of(t: &FlexTensor, c: usize, len: usize) -> &[f32] {
    &f32s(t)[c * len..(c + 1) * len]
}

/// The gradients of a, b, w and the bias given the gradient of the output; `output` is the
/// forward's (the temperatures, when squashed). Shapes as [`forward_primitive`]'s inputs.
#[cfg_attr(not(feature = "autodiff"), allow(dead_code))]
fn backward_primitive(
    [a, b, w, output]: &[FlexTensor; 4],
    squash: Option<TemperatureRange>,
    grad: FlexTensor,
) -> [FlexTensor; 4] {
    let ([c, n, h], [_, m, _]) = (dims(a), dims(b));
    let mut g = f32s(&contiguous(grad)).to_vec();
    let (mut grad_a, mut grad_b, mut grad_w) =
        (Vec::with_capacity(c * n * h), Vec::with_capacity(c * m * h), Vec::with_capacity(c * h));
    let mut grad_bias = vec![0.0; c];
    let path = kernel::Path::fastest(h);
    for (head, g) in g.chunks_exact_mut((n * m).max(1)).take(c).enumerate() {
        if let Some(range) = squash {
            grad_bias[head] = kernel::unsquash_grad(g, head_of(output, head, n * m), range);
        }
        let (a, b, w) = (head_of(a, head, n * h), head_of(b, head, m * h), head_of(w, head, h));
        let grads = kernel::backward(path, a, b, w, g, n, m);
        grad_a.extend_from_slice(&grads.a);
        grad_b.extend_from_slice(&grads.b);
        grad_w.extend_from_slice(&grads.w);
    }
    [
        FlexTensor::from_data(TensorData::new(grad_a, [c, n, h])),
        FlexTensor::from_data(TensorData::new(grad_b, [c, m, h])),
        FlexTensor::from_data(TensorData::new(grad_w, [c, h])),
        FlexTensor::from_data(TensorData::new(grad_bias, [c])),
    ]
}

/// The op on flex under autodiff: the fused forward, and a backward node that runs the fused
/// gradient kernel.
#[cfg(feature = "autodiff")]
mod tracked {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::{Autodiff, Flex};
    use burn::prelude::*;

    use super::{
        FlexTensor, TemperatureRange, backward_primitive, composed_squashed, contiguous,
        forward_primitive,
    };

    type Ad = Autodiff<Flex, NoCheckpointing>;

    #[derive(Debug)]
    struct PairwiseReluDot {
        squash: Option<TemperatureRange>,
    }

    impl Backward<Flex, 4> for PairwiseReluDot {
        /// a, b, w, and the forward's output.
        type State = [FlexTensor; 4];

        fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
            let grad = grads.consume::<Flex>(&ops.node);
            let computed = backward_primitive(&ops.state, self.squash, grad);
            for (node, grad) in ops.parents.into_iter().zip(computed) {
                if let Some(node) = node {
                    grads.register::<Flex>(node.id, grad);
                }
            }
        }
    }

    pub(super) fn forward(
        a: Tensor<3>,
        b: Tensor<3>,
        w: Tensor<2>,
        bias: Tensor<1>,
        squash: Option<TemperatureRange>,
    ) -> Tensor<3> {
        let (Ok(pa), Ok(pb), Ok(pw), Ok(pbias)) = (
            a.clone().try_into_primitive::<Ad>(),
            b.clone().try_into_primitive::<Ad>(),
            w.clone().try_into_primitive::<Ad>(),
            bias.clone().try_into_primitive::<Ad>(),
        ) else {
            // Gradient checkpointing (another strategy type): the tensor-op path.
            return composed_squashed(a, b, w, bias, squash);
        };
        let nodes = [pa.node(), pb.node(), pw.node(), pbias.node()];
        let [a, b, w, bias] = [pa, pb, pw, pbias].map(|p| contiguous(p.into_primitive()));
        let output = forward_primitive(&a, &b, &w, &bias, squash);
        let op = PairwiseReluDot { squash };
        let output = match op.prepare::<NoCheckpointing>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish([a, b, w, output.clone()], output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        Tensor::from_primitive::<Ad>(output)
    }
}

/// The kernels on plain f32 slices, row-major: a [n, h], b [m, h], w [h], g [n, m]. Rows of the
/// output are split across the cores. The loops come in paths ([`kernel::Path`]): portable ones,
/// compiled for AVX-512, for AVX2 and for the baseline (the widest this CPU has is picked at run
/// time), and, on x86-64 and for phi's hidden width, loops with the AVX-512 or AVX2 instructions
/// written out, which take fewer per pair (`x86`; with AVX-512 a training step of AMCL-MoCo on
/// the small CNN 0.185 -> 0.174 s). Tests run every path this CPU has against sums in f64.
#[cfg_attr(not(feature = "autodiff"), allow(dead_code))] // the backward pass serves autodiff
mod kernel {
    #[cfg(not(target_arch = "wasm32"))]
    use rayon::prelude::*;

    #[cfg(target_arch = "x86_64")]
    use crate::cpu::simd::{self, SimdLevel};

    /// Whether `AMCL_CPU_LOOPS=portable` leaves out the written-out loops (never off x86-64,
    /// which has none).
    fn portable_loops_only() -> bool {
        #[cfg(target_arch = "x86_64")]
        return simd::portable_loops_only();
        #[cfg(not(target_arch = "x86_64"))]
        false
    }
    use crate::cpu::{math, widest_simd};

    /// Rows of `a` per parallel task in the backward pass (each task keeps a partial [m, h]).
    const ROWS_PER_TASK: usize = 16;

    /// Lanes of one AVX-512 register (two AVX2 registers): the columns of the forward's sums
    /// computed together, and the hidden units of the backward's.
    const LANES: usize = 16;

    /// Rows of `a` that share each read of a row of `b`.
    const BLOCK: usize = 4;

    /// The hidden width the blocked forward is compiled for (`TEMPERATURE_HIDDEN`); other widths
    /// take the row-by-row loop.
    const H: usize = crate::model::TEMPERATURE_HIDDEN;

    widest_simd!(fn forward_rows_simd => forward_rows(
        a_rows: &[f32],
        b: &[f32],
        panels: &[f32],
        w: &[f32],
        out_rows: &mut [f32]
    ));
    widest_simd!(fn backward_rows_simd => backward_rows(
        a_rows: &[f32],
        b: &[f32],
        g_rows: &[f32],
        h: usize,
        grad_a_rows: &mut [f32],
        grad_b: &mut [f32]
    ));

    /// The number of threads that share the work.
    #[cfg(not(target_arch = "wasm32"))]
    fn threads() -> usize {
        rayon::current_num_threads()
    }

    /// The loops that run the all-pairs kernels.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Path {
        /// Loops in plain Rust, compiled for the widest vector instructions ([`widest_simd`]).
        Portable,
        /// AVX2 and FMA instructions written out ([`x86`]), for the hidden width [`H`].
        #[cfg(target_arch = "x86_64")]
        Avx2,
        /// AVX-512 instructions written out ([`x86`]), for the hidden width [`H`].
        #[cfg(target_arch = "x86_64")]
        Avx512,
    }

    impl Path {
        /// The fastest path for the hidden width `h` on this CPU.
        pub fn fastest(h: usize) -> Path {
            Path::available(h).pop().expect("the portable path")
        }

        /// Every path that runs on this CPU for the hidden width `h` ([`Path::runs_here`]),
        /// slowest first; only the portable one with `AMCL_CPU_LOOPS=portable`.
        pub fn available(h: usize) -> Vec<Path> {
            let all = [
                Path::Portable,
                #[cfg(target_arch = "x86_64")]
                Path::Avx2,
                #[cfg(target_arch = "x86_64")]
                Path::Avx512,
            ];
            let wanted = |path: &Path| *path == Path::Portable || !portable_loops_only();
            all.into_iter().filter(|path| wanted(path) && path.runs_here(h)).collect()
        }

        /// Whether this path's loops run on this CPU for the hidden width `h`: the written-out
        /// ones need their instructions (up to [`simd::simd_level`]) and phi's width [`H`].
        /// [`forward`] and [`backward`] check it, since they run those instructions.
        fn runs_here(self, h: usize) -> bool {
            let _ = h; // read only by the x86-64 paths
            match self {
                Path::Portable => true,
                #[cfg(target_arch = "x86_64")]
                Path::Avx2 => h == H && simd::simd_level() >= SimdLevel::Avx2,
                #[cfg(target_arch = "x86_64")]
                Path::Avx512 => h == H && simd::simd_level() >= SimdLevel::Avx512,
            }
        }

        /// Rows of a per block in the forward pass.
        fn block_rows(self) -> usize {
            match self {
                Path::Portable => BLOCK,
                #[cfg(target_arch = "x86_64")]
                Path::Avx2 | Path::Avx512 => x86::FORWARD_ROWS,
            }
        }
    }

    /// out[i, j] = logit[i, j] = sum_k w[k] relu(a[i, k] + b[j, k]) for the n = out.len() / m
    /// rows of a, along `path` (one of [`Path::available`] for h).
    pub fn forward(path: Path, a: &[f32], b: &[f32], w: &[f32], m: usize, out: &mut [f32]) {
        let h = w.len();
        assert!(path.runs_here(h), "{path:?} loops do not run here for width {h}");
        let panels = panels(b, m, h);
        let block_rows = path.block_rows();
        let block = |(t, out_rows): (usize, &mut [f32])| {
            let rows = out_rows.len() / m.max(1);
            let first = t * block_rows;
            let a_rows = &a[first * h..(first + rows) * h];
            match path {
                Path::Portable => forward_rows_simd(a_rows, b, &panels, w, out_rows),
                // SAFETY: the path runs here (checked above): the CPU has AVX2 and FMA.
                #[cfg(target_arch = "x86_64")]
                Path::Avx2 => unsafe { x86::forward_rows_avx2(a_rows, b, &panels, w, out_rows) },
                // SAFETY: the path runs here (checked above): the CPU has AVX-512F.
                #[cfg(target_arch = "x86_64")]
                Path::Avx512 => unsafe {
                    x86::forward_rows_avx512(a_rows, b, &panels, w, out_rows)
                },
            }
        };
        #[cfg(not(target_arch = "wasm32"))]
        out.par_chunks_mut((block_rows * m).max(1)).enumerate().for_each(block);
        #[cfg(target_arch = "wasm32")]
        out.chunks_mut((block_rows * m).max(1)).enumerate().for_each(block);
    }

    /// b [m, h] as panels of [`LANES`] rows, each transposed to [h, LANES], so that
    /// b[j..j + LANES, k] for a k are [`LANES`] adjacent values. Rows past the last whole panel
    /// are left out (the forward reads them from b).
    fn panels(b: &[f32], m: usize, h: usize) -> Vec<f32> {
        let whole = m / LANES;
        let mut panels = vec![0.0; whole * LANES * h];
        for (panel, rows) in panels.chunks_exact_mut(LANES * h).zip(b.chunks_exact(LANES * h)) {
            for (l, b_j) in rows.chunks_exact(h).enumerate() {
                for (k, &v) in b_j.iter().enumerate() {
                    panel[k * LANES + l] = v;
                }
            }
        }
        panels
    }

    /// Some rows of the logits. With the hidden width [`H`], each block of [`BLOCK`] rows takes
    /// the panels ([`forward_block`]); columns past the last whole panel, a last block of fewer
    /// rows, and other widths take the plain loop.
    #[inline(always)]
    fn forward_rows(a_rows: &[f32], b: &[f32], panels: &[f32], w: &[f32], out_rows: &mut [f32]) {
        let h = w.len();
        let m = b.len() / h.max(1);
        let whole = panels.len() / (LANES * h).max(1);
        for (a_block, out_block) in a_rows.chunks(BLOCK * h).zip(out_rows.chunks_mut(BLOCK * m)) {
            let done = match (<&[f32; BLOCK * H]>::try_from(a_block), <&[f32; H]>::try_from(w)) {
                (Ok(a_block), Ok(w)) => {
                    for (p, panel) in panels.chunks_exact(LANES * H).enumerate() {
                        let panel = panel.try_into().expect("a whole panel");
                        for (r, sums) in forward_block(a_block, panel, w).iter().enumerate() {
                            out_block[r * m + p * LANES..][..LANES].copy_from_slice(sums);
                        }
                    }
                    whole * LANES
                }
                _ => 0,
            };
            plain_logits(a_block, b, w, out_block, done);
        }
    }

    /// The logits of some rows of a against the columns of b from `first` on, one by one.
    #[inline(always)]
    fn plain_logits(a_rows: &[f32], b: &[f32], w: &[f32], out_rows: &mut [f32], first: usize) {
        let h = w.len().max(1);
        let m = b.len() / h;
        for (a_i, out_row) in a_rows.chunks_exact(h).zip(out_rows.chunks_exact_mut(m.max(1))) {
            for (out_ij, b_j) in out_row.iter_mut().zip(b.chunks_exact(h)).skip(first) {
                *out_ij = a_i.iter().zip(b_j).zip(w).map(|((x, y), w)| w * relu(x + y)).sum();
            }
        }
    }

    /// The logits of a block of [`BLOCK`] rows against one panel of [`LANES`] columns. The
    /// sums stay in registers, one lane per j, while k runs over the hidden units: each step
    /// broadcasts a[i, k] and w[k] against b[j..j + LANES, k], so no sum has to be gathered
    /// across lanes. Fixed sizes throughout, so that no index needs a bounds check.
    #[inline(always)]
    fn forward_block(
        a: &[f32; BLOCK * H],
        panel: &[f32; H * LANES],
        w: &[f32; H],
    ) -> [[f32; LANES]; BLOCK] {
        let mut sums = [[0.0f32; LANES]; BLOCK];
        for k in 0..H {
            let y = &panel[k * LANES..(k + 1) * LANES];
            for (r, sums) in sums.iter_mut().enumerate() {
                let x = a[r * H + k];
                for l in 0..LANES {
                    sums[l] = multiply_add(w[k], relu(x + y[l]), sums[l]);
                }
            }
        }
        sums
    }

    /// a b + c, as one fused multiply-add instruction in the copies compiled for AVX-512 and for
    /// AVX2 + FMA (Rust does not fuse a separate product and sum): the forward's blocks 1.84 ->
    /// 1.55 ms per head at 256 x 1,024 pairs (`temperatures` bench). In the browser a product
    /// and a sum: wasm has no fused multiply-add, and `mul_add` there is a library call (as in
    /// the baseline copy, which only x86-64 CPUs without AVX2 run: slower there, still exact).
    #[inline(always)]
    fn multiply_add(a: f32, b: f32, c: f32) -> f32 {
        if cfg!(target_arch = "wasm32") { a * b + c } else { a.mul_add(b, c) }
    }

    /// max(x, 0) as one compare-and-select (`f32::max` also orders NaNs, which costs a blend).
    #[inline(always)]
    fn relu(x: f32) -> f32 {
        if x > 0.0 { x } else { 0.0 }
    }

    /// logits -> lo + (hi - lo) sigmoid(logit + bias), in place.
    pub fn squash(out: &mut [f32], bias: f32, range: super::TemperatureRange) {
        let apply = |chunk: &mut [f32]| squash_chunk_simd(chunk, bias, range);
        #[cfg(not(target_arch = "wasm32"))]
        out.par_chunks_mut(4096).for_each(apply);
        #[cfg(target_arch = "wasm32")]
        out.chunks_mut(4096).for_each(apply);
    }

    widest_simd!(fn squash_chunk_simd => squash_chunk(
        chunk: &mut [f32],
        bias: f32,
        range: super::TemperatureRange
    ));

    /// One chunk of [`squash`], with an exponential that vectorises.
    #[inline(always)]
    fn squash_chunk(chunk: &mut [f32], bias: f32, range: super::TemperatureRange) {
        let span = range.hi - range.lo;
        for v in chunk {
            *v = range.lo + span / (1.0 + math::exp(-(*v + bias)));
        }
    }

    /// The gradient of the temperatures -> that of the logits (in place), given the
    /// temperatures tau: d tau / d logit = (hi - lo) s (1 - s) = (tau - lo)(hi - tau) / (hi - lo).
    /// Returns the bias's gradient, the sum of the logits' gradients.
    pub fn unsquash_grad(g: &mut [f32], tau: &[f32], range: super::TemperatureRange) -> f32 {
        let span = range.hi - range.lo;
        let apply = |(g, tau): (&mut [f32], &[f32])| {
            let mut sum = 0.0f64;
            for (g, &t) in g.iter_mut().zip(tau) {
                *g *= (t - range.lo) * (range.hi - t) / span;
                sum += *g as f64;
            }
            sum
        };
        #[cfg(not(target_arch = "wasm32"))]
        let sum: f64 = g.par_chunks_mut(4096).zip(tau.par_chunks(4096)).map(apply).sum();
        #[cfg(target_arch = "wasm32")]
        let sum: f64 = g.chunks_mut(4096).zip(tau.chunks(4096)).map(apply).sum();
        sum as f32
    }

    /// Gradients of a, b and w.
    pub struct Grads {
        pub a: Vec<f32>,
        pub b: Vec<f32>,
        pub w: Vec<f32>,
    }

    /// One worker's partial sums B [m, h] (see [`backward`]).
    struct Partial {
        b: Vec<f32>,
    }

    impl Partial {
        fn zeros(m: usize, h: usize) -> Partial {
            Partial { b: vec![0.0; m * h] }
        }

        fn add(mut self, other: Partial) -> Partial {
            self.b.iter_mut().zip(&other.b).for_each(|(x, y)| *x += y);
            self
        }
    }

    /// The backward pass (the module's equations). The all-pairs loop sums only
    /// A[i, k] = sum_j g[i, j] [a[i, k] + b[j, k] > 0] and B[j, k] = sum_i (the same). Then
    /// grad a = w A, grad b = w B, and, since relu(x) = [x > 0] x,
    /// grad w[k] = sum_ij g[i, j] relu(a[i, k] + b[j, k]) = sum_i a[i, k] A[i, k] + sum_j b[j, k] B[j, k].
    /// Along `path`, as [`forward`].
    pub fn backward(
        path: Path,
        a: &[f32],
        b: &[f32],
        w: &[f32],
        g: &[f32],
        n: usize,
        m: usize,
    ) -> Grads {
        let h = w.len();
        assert!(path.runs_here(h), "{path:?} loops do not run here for width {h}");
        let mut grad_a = vec![0.0; n * h];
        // What the written-out loops compare a with.
        #[cfg(target_arch = "x86_64")]
        let neg_b: Vec<f32> = match path {
            Path::Portable => Vec::new(),
            Path::Avx2 | Path::Avx512 => b.iter().map(|v| -v).collect(),
        };
        let task = |mut partial: Partial, (t, grad_a_rows): (usize, &mut [f32])| {
            let first = t * ROWS_PER_TASK;
            let rows = grad_a_rows.len() / h.max(1);
            let a_rows = &a[first * h..(first + rows) * h];
            let g_rows = &g[first * m..(first + rows) * m];
            match path {
                Path::Portable => {
                    backward_rows_simd(a_rows, b, g_rows, h, grad_a_rows, &mut partial.b)
                }
                // SAFETY: the path runs here (checked above): the CPU has AVX2 and FMA.
                #[cfg(target_arch = "x86_64")]
                Path::Avx2 => unsafe {
                    x86::backward_rows_avx2(a_rows, &neg_b, g_rows, grad_a_rows, &mut partial.b)
                },
                // SAFETY: the path runs here (checked above): the CPU has AVX-512F.
                #[cfg(target_arch = "x86_64")]
                Path::Avx512 => unsafe {
                    x86::backward_rows_avx512(a_rows, &neg_b, g_rows, grad_a_rows, &mut partial.b)
                },
            }
            partial
        };
        let chunk = (ROWS_PER_TASK * h).max(1);
        let zeros = || Partial::zeros(m, h);
        // Runs of consecutive tasks, one per core, so that there are as many partial B
        // ([m, h]: 512 kB against a MoCo queue) to zero and add up as there are cores.
        #[cfg(not(target_arch = "wasm32"))]
        let tasks = n.div_ceil(ROWS_PER_TASK);
        #[cfg(not(target_arch = "wasm32"))]
        let total = grad_a
            .par_chunks_mut(chunk)
            .enumerate()
            .with_min_len(tasks.div_ceil(threads()).max(1))
            .fold(zeros, task)
            .reduce(zeros, Partial::add);
        #[cfg(target_arch = "wasm32")]
        let total = grad_a.chunks_mut(chunk).enumerate().fold(zeros(), task);
        let mut grad_b = total.b;
        let mut grad_w = vec![0.0f32; h];
        for (x, sums) in [(a, &grad_a[..]), (b, &grad_b[..])] {
            for (x_i, sums_i) in x.chunks_exact(h.max(1)).zip(sums.chunks_exact(h.max(1))) {
                grad_w.iter_mut().zip(x_i).zip(sums_i).for_each(|((gw, x), s)| *gw += x * s);
            }
        }
        for sums in grad_a.chunks_mut(h.max(1)).chain(grad_b.chunks_mut(h.max(1))) {
            sums.iter_mut().zip(w).for_each(|(x, w_k)| *x *= w_k);
        }
        Grads { a: grad_a, b: grad_b, w: grad_w }
    }

    /// The loops with their x86 vector instructions written out (AVX-512, AVX2).
    #[cfg(target_arch = "x86_64")]
    mod x86;

    /// Some rows' A (complete) and their share of B (see [`backward`]). Blocks of [`BLOCK`]
    /// rows share each read of b_j and update of B_j.
    #[inline(always)]
    fn backward_rows(
        a_rows: &[f32],
        b: &[f32],
        g_rows: &[f32],
        h: usize,
        grad_a_rows: &mut [f32],
        grad_b: &mut [f32],
    ) {
        let m = grad_b.len() / h.max(1);
        let blocks = a_rows
            .chunks(BLOCK * h)
            .zip(g_rows.chunks(BLOCK * m))
            .zip(grad_a_rows.chunks_mut(BLOCK * h));
        for ((a_block, g_block), grad_a_block) in blocks {
            let full = (
                <&[f32; BLOCK * H]>::try_from(a_block),
                <&mut [f32; BLOCK * H]>::try_from(&mut *grad_a_block),
            );
            if let (Ok(a_block), Ok(grad_a_block)) = full
                && h == H
            {
                for (j, (b_j, grad_b_j)) in
                    b.chunks_exact(H).zip(grad_b.chunks_exact_mut(H)).enumerate()
                {
                    let g: [f32; BLOCK] = std::array::from_fn(|r| g_block[r * m + j]);
                    if g.iter().any(|&g| g != 0.0) {
                        let b_j = b_j.try_into().expect("h values");
                        let grad_b_j = grad_b_j.try_into().expect("h values");
                        backward_block(a_block, b_j, g, grad_a_block, grad_b_j);
                    }
                }
                continue;
            }
            for ((a_i, g_i), grad_a_i) in a_block
                .chunks_exact(h)
                .zip(g_block.chunks_exact(m))
                .zip(grad_a_block.chunks_exact_mut(h))
            {
                for ((&g_ij, b_j), grad_b_j) in
                    g_i.iter().zip(b.chunks_exact(h)).zip(grad_b.chunks_exact_mut(h))
                {
                    if g_ij == 0.0 {
                        continue;
                    }
                    for k in 0..h {
                        let active = if a_i[k] + b_j[k] > 0.0 { g_ij } else { 0.0 };
                        grad_a_i[k] += active;
                        grad_b_j[k] += active;
                    }
                }
            }
        }
    }

    /// One b_j against a block of [`BLOCK`] rows: A_r += g_r [a_r + b_j > 0], and their sum
    /// over the block into B_j.
    #[inline(always)]
    fn backward_block(
        a: &[f32; BLOCK * H],
        b_j: &[f32; H],
        g: [f32; BLOCK],
        grad_a: &mut [f32; BLOCK * H],
        grad_b_j: &mut [f32; H],
    ) {
        for c in (0..H).step_by(LANES) {
            let y = &b_j[c..c + LANES];
            let mut sum_b = [0.0f32; LANES];
            for (r, &g_r) in g.iter().enumerate() {
                let x = &a[r * H + c..r * H + c + LANES];
                let grad_a = &mut grad_a[r * H + c..r * H + c + LANES];
                for l in 0..LANES {
                    let active = if x[l] + y[l] > 0.0 { g_r } else { 0.0 };
                    grad_a[l] += active;
                    sum_b[l] += active;
                }
            }
            for l in 0..LANES {
                grad_b_j[c + l] += sum_b[l];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
        let mut rng = crate::rng::Rng::new(seed);
        let values: Vec<f32> = (0..shape.iter().product()).map(|_| rng.normal()).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn max_diff(x: Tensor<3>, y: Tensor<3>) -> f32 {
        (x - y).abs().max().into_scalar()
    }

    /// An output bias per head: -0.7, -0.2, 0.3, ...
    fn biases(c: usize, device: &Device) -> Tensor<1> {
        let values = (0..c).map(|head| head as f32 * 0.5 - 0.7).collect();
        Tensor::from_data(TensorData::new(values, [c]), device)
    }

    #[test]
    fn fused_forward_equals_the_tensor_ops() {
        let device = Device::flex();
        // M = 37: two panels of 16 columns and a remainder; N = 9: two blocks of 4 rows and a
        // remainder; H = 13 and 19: odd widths; M = 1 and N = 1: the edges; C = 2 and 3: heads
        // with their own weights.
        let shapes =
            [(1, 7, 5, 13), (2, 1, 9, 16), (1, 6, 1, 128), (3, 9, 37, 19), (2, 8, 32, 128)];
        for (c, n, m, h) in shapes {
            let a = random([c, n, h], 1, &device);
            let b = random([c, m, h], 2, &device);
            let w = random([c, h], 3, &device);
            let fused = pairwise_relu_dot(a.clone(), b.clone(), w.clone());
            assert_eq!(fused.dims(), [c, n, m]);
            let expected = composed(a, b, w);
            // Relative to the largest logit: the AVX-512 form sums other terms (max(b, -a) and
            // an offset per row), so its rounding grows with the logits (here up to ~30).
            let scale = expected.clone().abs().max().into_scalar::<f32>().max(1.0);
            let diff = max_diff(fused, expected);
            assert!(diff < 1e-6 * scale, "({c}, {n}, {m}, {h}): max |diff| {diff}, scale {scale}");
        }
    }

    /// The temperatures (each head's bias and the squashing fused) equal the composed ops too.
    #[test]
    fn fused_temperatures_equal_the_tensor_ops() {
        let device = Device::flex();
        let range = TemperatureRange { lo: 0.05, hi: 1.5 };
        let (c, n, m, h) = (3, 6, 9, 128);
        let a = random([c, n, h], 1, &device);
        let b = random([c, m, h], 2, &device);
        let w = random([c, h], 3, &device).mul_scalar(0.1);
        let bias = biases(c, &device);
        let fused = pairwise_temperature(a.clone(), b.clone(), w.clone(), bias.clone(), range);
        let expected = composed_squashed(a, b, w, bias, Some(range));
        assert!(max_diff(fused, expected) < 1e-5);
    }

    /// Every kernel path this CPU has (on x86-64 with AVX-512 the portable loops, the AVX2 ones
    /// and the AVX-512 ones) against sums in f64, at the hidden width the AVX-512 path is made for:
    /// N = 21 rows are two blocks of eight and five left over in the forward pass, and a task of
    /// 16 rows (two blocks) and one of five single rows in the backward pass; M = 37 columns are
    /// two panels of 16 and five left over.
    #[test]
    fn every_kernel_path_computes_the_sums() {
        let (n, m, h) = (21, 37, crate::model::TEMPERATURE_HIDDEN);
        let mut rng = crate::rng::Rng::new(11);
        let mut values = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.normal()).collect() };
        let (a, b, w, g) = (values(n * h), values(m * h), values(h), values(n * m));
        let hidden = |i: usize, j: usize, k: usize| (a[i * h + k] + b[j * h + k]) as f64;
        let logit = |i: usize, j: usize| -> f64 {
            (0..h).map(|k| w[k] as f64 * hidden(i, j, k).max(0.0)).sum()
        };
        let active = |i: usize, j: usize, k: usize| hidden(i, j, k) > 0.0;
        let grad_a = |i: usize, k: usize| -> f64 {
            (0..m).filter(|&j| active(i, j, k)).map(|j| g[i * m + j] as f64 * w[k] as f64).sum()
        };
        let grad_b = |j: usize, k: usize| -> f64 {
            (0..n).filter(|&i| active(i, j, k)).map(|i| g[i * m + j] as f64 * w[k] as f64).sum()
        };
        let grad_w = |k: usize| -> f64 {
            let pairs = (0..n).flat_map(|i| (0..m).map(move |j| (i, j)));
            pairs.map(|(i, j)| g[i * m + j] as f64 * hidden(i, j, k).max(0.0)).sum()
        };
        let check = |what: &str, got: &[f32], expected: &dyn Fn(usize) -> f64, tolerance: f64| {
            for (index, &got) in got.iter().enumerate() {
                let expected = expected(index);
                let diff = (got as f64 - expected).abs();
                assert!(diff < tolerance, "{what}[{index}]: {got} against {expected}");
            }
        };
        let paths = kernel::Path::available(h);
        #[cfg(target_arch = "x86_64")]
        {
            use crate::cpu::simd::{SimdLevel, portable_loops_only, simd_level};
            let written_out = |level| simd_level() >= level && !portable_loops_only();
            assert_eq!(written_out(SimdLevel::Avx512), paths.contains(&kernel::Path::Avx512));
            assert_eq!(written_out(SimdLevel::Avx2), paths.contains(&kernel::Path::Avx2));
        }
        for path in paths {
            let mut out = vec![0.0; n * m];
            kernel::forward(path, &a, &b, &w, m, &mut out);
            check(&format!("{path:?} logit"), &out, &|index| logit(index / m, index % m), 1e-4);
            let grads = kernel::backward(path, &a, &b, &w, &g, n, m);
            check(&format!("{path:?} grad a"), &grads.a, &|x| grad_a(x / h, x % h), 1e-4);
            check(&format!("{path:?} grad b"), &grads.b, &|x| grad_b(x / h, x % h), 1e-4);
            check(&format!("{path:?} grad w"), &grads.w, &grad_w, 1e-3);
        }
    }

    /// The written-out loops refuse a width they are not made for (and, on a CPU without
    /// their instructions, every width) instead of running.
    #[cfg(target_arch = "x86_64")]
    #[test]
    #[should_panic(expected = "loops do not run here")]
    fn written_out_loops_refuse_what_they_cannot_run() {
        let (n, m, h) = (2, 3, 19);
        let (a, b, w) = (vec![0.5; n * h], vec![0.5; m * h], vec![0.1; h]);
        let mut out = vec![0.0; n * m];
        kernel::forward(kernel::Path::Avx2, &a, &b, &w, m, &mut out);
    }

    /// Needs the `autodiff` feature, on in workspace builds (amcl-train enables it): without it
    /// both sides would take the tensor-op path.
    #[cfg(feature = "autodiff")]
    #[test]
    fn fused_gradients_equal_the_tensor_ops() {
        let device = Device::flex().autodiff();
        let range = TemperatureRange { lo: 0.05, hi: 1.5 };
        // H = 19: the row-by-row loops; H = 128 with 10 rows: two blocks of four and a remainder.
        // Each without and with the bias and squashing of `pairwise_temperature`; two heads.
        for ((c, n, m, h), squash) in
            [((2, 37, 21, 19), None), ((2, 10, 23, 128), None), ((2, 10, 23, 128), Some(range))]
        {
            let grads_of = |fused: bool| {
                let a = random([c, n, h], 4, &device).require_grad();
                let b = random([c, m, h], 5, &device).require_grad();
                let w = random([c, h], 6, &device).mul_scalar(0.1).detach().require_grad();
                let bias = biases(c, &device).require_grad();
                // A non-uniform upstream gradient, so that each g[c, i, j] matters.
                let g = random([c, n, m], 7, &device);
                let out = match (fused, squash) {
                    (true, Some(range)) => {
                        pairwise_temperature(a.clone(), b.clone(), w.clone(), bias.clone(), range)
                    }
                    (true, None) => pairwise_relu_dot(a.clone(), b.clone(), w.clone()),
                    (false, squash) => {
                        composed_squashed(a.clone(), b.clone(), w.clone(), bias.clone(), squash)
                    }
                };
                let grads = (out * g).sum().backward();
                let values = |t: Option<Tensor<1>>| match t {
                    Some(t) => t.into_data().try_to_vec::<f32>().unwrap(),
                    None => vec![0.0; c],
                };
                let flat = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
                (
                    flat(a.grad(&grads).unwrap()),
                    flat(b.grad(&grads).unwrap()),
                    w.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap(),
                    values(bias.grad(&grads)),
                )
            };
            let (fused, composed) = (grads_of(true), grads_of(false));
            let pairs = [
                ("a", fused.0, composed.0),
                ("b", fused.1, composed.1),
                ("w", fused.2, composed.2),
                ("bias", fused.3, composed.3),
            ];
            for (name, x, y) in pairs {
                assert_eq!(x.len(), y.len(), "grad {name}");
                let diff = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
                let scale = y.iter().fold(1.0f32, |s, v| s.max(v.abs()));
                assert!(
                    diff < 1e-4 * scale,
                    "h {h}, squash {squash:?}, grad {name}: max |diff| {diff}"
                );
                if name != "bias" || squash.is_some() {
                    assert!(y.iter().any(|v| v.abs() > 1e-3), "grad {name} is not trivially zero");
                }
            }
        }
    }
}
