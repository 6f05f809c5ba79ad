//! The all-pairs part of a temperature network, fused on the CPU.
//!
//! phi_c's first layer is linear, so for views i (side a) and j (side b) its hidden units are
//! relu(a_i + b_j), with a = W_a z_a + bias and b = W_b z_b projected once per view
//! ([`super::TemperatureNet`]). What remains is, for every pair,
//!
//! ```text
//! logit[i, j] = sum_k w[k] * relu(a[i, k] + b[j, k])        a: [N, H], b: [M, H], w: [H]
//! ```
//!
//! Written with tensor ops this materialises an [N, M, H] activation (H = 128; 33 MB per head
//! for SimCLR at batch 128, 67 MB against a MoCo queue of 1,024) and about ten passes over it
//! forward and backward, which on the CPU cost as much as the small CNN itself. Here the CPU
//! backend (flex) computes it in one pass forward and one backward without that activation:
//!
//! ```text
//! d logit / d a[i, k] = sum_j g[i, j] * w[k] * [a[i, k] + b[j, k] > 0]
//! d logit / d b[j, k] = sum_i g[i, j] * w[k] * [a[i, k] + b[j, k] > 0]
//! d logit / d w[k]    = sum_ij g[i, j] * relu(a[i, k] + b[j, k])
//! ```
//!
//! Other backends (WebGPU, CUDA, wgpu), and autodiff with gradient checkpointing, use the tensor
//! ops, which their kernel fusion handles; both paths give the same numbers (tests below).

use burn::backend::DispatchDevice;
use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::activation::relu;

/// logit[i, j] = sum_k w[k] relu(a[i, k] + b[j, k]) for a [N, H], b [M, H], w [H]: [N, M].
pub fn pairwise_relu_dot(a: Tensor<2>, b: Tensor<2>, w: Tensor<1>) -> Tensor<2> {
    match a.device().as_dispatch() {
        DispatchDevice::Flex(_) => flex_forward(a, b, w),
        #[cfg(feature = "autodiff")]
        DispatchDevice::Autodiff(inner) if matches!(**inner, DispatchDevice::Flex(_)) => {
            tracked::forward(a, b, w)
        }
        _ => composed(a, b, w),
    }
}

/// The same with tensor ops: an [N, M, H] activation and a matrix product.
pub fn composed(a: Tensor<2>, b: Tensor<2>, w: Tensor<1>) -> Tensor<2> {
    let [n, h] = a.dims();
    let [m, _] = b.dims();
    let hidden = relu(a.reshape([n, 1, h]) + b.reshape([1, m, h]));
    hidden.matmul(w.reshape([1, h, 1])).reshape([n, m])
}

/// Forward on flex tensors without autodiff.
fn flex_forward(a: Tensor<2>, b: Tensor<2>, w: Tensor<1>) -> Tensor<2> {
    let primitive = |t: Tensor<2>| t.try_into_primitive::<Flex>().expect("a flex tensor");
    let w = w.unsqueeze_dim::<2>(0).try_into_primitive::<Flex>().expect("a flex tensor");
    Tensor::from_primitive::<Flex>(forward_primitive(primitive(a), primitive(b), w))
}

/// A flex tensor's values as f32, with its shape [rows, cols] and dtype.
fn values(t: FlexTensor) -> (Vec<f32>, [usize; 2], burn::tensor::DType) {
    let data = t.into_data();
    let dtype = data.dtype();
    let shape = [data.shape()[0], data.shape()[1]];
    let values = data.convert::<f32>().try_into_vec::<f32>().expect("f32 after conversion");
    (values, shape, dtype)
}

/// f32 values back into a flex tensor of `dtype`.
fn tensor(values: Vec<f32>, shape: [usize; 2], dtype: burn::tensor::DType) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape).convert_dtype(dtype))
}

fn forward_primitive(a: FlexTensor, b: FlexTensor, w: FlexTensor) -> FlexTensor {
    let (a, [n, h], dtype) = values(a);
    let (b, [m, _], _) = values(b);
    let (w, _, _) = values(w);
    tensor(kernel::forward(&a, &b, &w, n, m, h), [n, m], dtype)
}

/// The gradients of a, b and w (as [1, H]) given the gradient of the logits.
#[cfg_attr(not(feature = "autodiff"), allow(dead_code))]
fn backward_primitive(
    a: FlexTensor,
    b: FlexTensor,
    w: FlexTensor,
    grad: FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (a, [n, h], dtype) = values(a);
    let (b, [m, _], _) = values(b);
    let (w, _, _) = values(w);
    let (g, _, _) = values(grad);
    let grads = kernel::backward(&a, &b, &w, &g, n, m, h);
    (tensor(grads.a, [n, h], dtype), tensor(grads.b, [m, h], dtype), tensor(grads.w, [1, h], dtype))
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

    use super::{FlexTensor, backward_primitive, composed, forward_primitive};

    type Ad = Autodiff<Flex, NoCheckpointing>;

    #[derive(Debug)]
    struct PairwiseReluDot;

    impl Backward<Flex, 3> for PairwiseReluDot {
        type State = (FlexTensor, FlexTensor, FlexTensor);

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let (a, b, w) = ops.state;
            let grad = grads.consume::<Flex>(&ops.node);
            let (grad_a, grad_b, grad_w) = backward_primitive(a, b, w, grad);
            let [node_a, node_b, node_w] = ops.parents;
            for (node, grad) in [(node_a, grad_a), (node_b, grad_b), (node_w, grad_w)] {
                if let Some(node) = node {
                    grads.register::<Flex>(node.id, grad);
                }
            }
        }
    }

    pub(super) fn forward(a: Tensor<2>, b: Tensor<2>, w: Tensor<1>) -> Tensor<2> {
        let w = w.unsqueeze_dim::<2>(0);
        let (Ok(pa), Ok(pb), Ok(pw)) = (
            a.clone().try_into_primitive::<Ad>(),
            b.clone().try_into_primitive::<Ad>(),
            w.clone().try_into_primitive::<Ad>(),
        ) else {
            // Gradient checkpointing (another strategy type): the tensor-op path.
            return composed(a, b, w.squeeze_dim(0));
        };
        let nodes = [pa.node(), pb.node(), pw.node()];
        let (a, b, w) = (pa.into_primitive(), pb.into_primitive(), pw.into_primitive());
        let output = forward_primitive(a.clone(), b.clone(), w.clone());
        let output =
            match PairwiseReluDot.prepare::<NoCheckpointing>(nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((a, b, w), output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            };
        Tensor::from_primitive::<Ad>(output)
    }
}

/// The kernels on plain f32 slices, row-major: a [n, h], b [m, h], w [h], g [n, m]. Rows of the
/// output are split across the cores; each row's loops are compiled for AVX-512, for AVX2 and
/// for the baseline, and the widest this CPU has is picked at run time.
#[cfg_attr(not(feature = "autodiff"), allow(dead_code))] // the backward pass serves autodiff
mod kernel {
    #[cfg(not(target_arch = "wasm32"))]
    use rayon::prelude::*;

    /// Rows of `a` per parallel task in the backward pass (each task keeps a partial [m, h]).
    const ROWS_PER_TASK: usize = 16;

    /// Lanes of the partial sums in [`relu_dot`]: one AVX-512 register, two AVX2 registers.
    const LANES: usize = 16;

    /// Defines `$name`, which calls `$body` (an `#[inline(always)]` function) through a copy of it
    /// compiled for the widest vector instructions the CPU has.
    macro_rules! widest_simd {
        ($name:ident => $body:ident($($arg:ident: $ty:ty),*)) => {
            fn $name($($arg: $ty),*) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f")]
                    fn v4($($arg: $ty),*) {
                        $body($($arg),*)
                    }
                    #[target_feature(enable = "avx2,fma")]
                    fn v3($($arg: $ty),*) {
                        $body($($arg),*)
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU has AVX-512F.
                        return unsafe { v4($($arg),*) };
                    }
                    if std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                    {
                        // SAFETY: the CPU has AVX2 and FMA.
                        return unsafe { v3($($arg),*) };
                    }
                }
                $body($($arg),*)
            }
        };
    }

    widest_simd!(forward_row_simd => forward_row(a_i: &[f32], b: &[f32], w: &[f32], out_row: &mut [f32]));
    widest_simd!(backward_rows_simd => backward_rows(
        a_rows: &[f32],
        b: &[f32],
        w: &[f32],
        g_rows: &[f32],
        grad_a_rows: &mut [f32],
        partial: &mut Partial
    ));

    /// logit[i, j] = sum_k w[k] relu(a[i, k] + b[j, k]).
    pub fn forward(a: &[f32], b: &[f32], w: &[f32], n: usize, m: usize, h: usize) -> Vec<f32> {
        let mut out = vec![0.0; n * m];
        let row = |(i, out_row): (usize, &mut [f32])| {
            forward_row_simd(&a[i * h..(i + 1) * h], b, w, out_row)
        };
        #[cfg(not(target_arch = "wasm32"))]
        out.par_chunks_mut(m.max(1)).enumerate().for_each(row);
        #[cfg(target_arch = "wasm32")]
        out.chunks_mut(m.max(1)).enumerate().for_each(row);
        out
    }

    /// One row of the logits: anchor a_i against every b_j.
    #[inline(always)]
    fn forward_row(a_i: &[f32], b: &[f32], w: &[f32], out_row: &mut [f32]) {
        let h = a_i.len();
        for (j, out_ij) in out_row.iter_mut().enumerate() {
            *out_ij = relu_dot(a_i, &b[j * h..(j + 1) * h], w);
        }
    }

    /// sum_k w[k] relu(x[k] + y[k]), with independent partial sums so that it vectorises.
    #[inline(always)]
    fn relu_dot(x: &[f32], y: &[f32], w: &[f32]) -> f32 {
        let mut acc = [0.0f32; LANES];
        let whole = x.len() / LANES * LANES;
        for ((x, y), w) in x[..whole]
            .chunks_exact(LANES)
            .zip(y[..whole].chunks_exact(LANES))
            .zip(w[..whole].chunks_exact(LANES))
        {
            for l in 0..LANES {
                acc[l] += w[l] * relu(x[l] + y[l]);
            }
        }
        let mut sum: f32 = acc.iter().sum();
        for k in whole..x.len() {
            sum += w[k] * relu(x[k] + y[k]);
        }
        sum
    }

    /// max(x, 0) as one compare-and-select (`f32::max` also orders NaNs, which costs a blend).
    #[inline(always)]
    fn relu(x: f32) -> f32 {
        if x > 0.0 { x } else { 0.0 }
    }

    /// Gradients of a, b and w.
    pub struct Grads {
        pub a: Vec<f32>,
        pub b: Vec<f32>,
        pub w: Vec<f32>,
    }

    /// One task's partial sums of grad b [m, h] and grad w [h] (before the factor w[k]).
    struct Partial {
        b: Vec<f32>,
        w: Vec<f32>,
    }

    impl Partial {
        fn zeros(m: usize, h: usize) -> Partial {
            Partial { b: vec![0.0; m * h], w: vec![0.0; h] }
        }

        fn add(mut self, other: Partial) -> Partial {
            self.b.iter_mut().zip(&other.b).for_each(|(x, y)| *x += y);
            self.w.iter_mut().zip(&other.w).for_each(|(x, y)| *x += y);
            self
        }
    }

    /// The backward pass: see the module's equations.
    pub fn backward(
        a: &[f32],
        b: &[f32],
        w: &[f32],
        g: &[f32],
        n: usize,
        m: usize,
        h: usize,
    ) -> Grads {
        let mut grad_a = vec![0.0; n * h];
        let task = |(t, grad_a_rows): (usize, &mut [f32])| {
            let mut partial = Partial::zeros(m, h);
            let first = t * ROWS_PER_TASK;
            let rows = grad_a_rows.len() / h.max(1);
            let a_rows = &a[first * h..(first + rows) * h];
            let g_rows = &g[first * m..(first + rows) * m];
            backward_rows_simd(a_rows, b, w, g_rows, grad_a_rows, &mut partial);
            partial
        };
        let chunk = (ROWS_PER_TASK * h).max(1);
        #[cfg(not(target_arch = "wasm32"))]
        let total = grad_a
            .par_chunks_mut(chunk)
            .enumerate()
            .map(task)
            .reduce(|| Partial::zeros(m, h), Partial::add);
        #[cfg(target_arch = "wasm32")]
        let total =
            grad_a.chunks_mut(chunk).enumerate().map(task).fold(Partial::zeros(m, h), Partial::add);
        let mut grad_b = total.b;
        for grad_b_j in grad_b.chunks_mut(h.max(1)) {
            grad_b_j.iter_mut().zip(w).for_each(|(x, w_k)| *x *= w_k);
        }
        Grads { a: grad_a, b: grad_b, w: total.w }
    }

    /// Some rows of the backward pass: their grad a (complete) and their share of grad b and w.
    #[inline(always)]
    fn backward_rows(
        a_rows: &[f32],
        b: &[f32],
        w: &[f32],
        g_rows: &[f32],
        grad_a_rows: &mut [f32],
        partial: &mut Partial,
    ) {
        let h = w.len();
        let m = partial.b.len() / h.max(1);
        for ((a_i, g_i), grad_a_i) in
            a_rows.chunks_exact(h).zip(g_rows.chunks_exact(m)).zip(grad_a_rows.chunks_exact_mut(h))
        {
            for ((&g_ij, b_j), grad_b_j) in
                g_i.iter().zip(b.chunks_exact(h)).zip(partial.b.chunks_exact_mut(h))
            {
                if g_ij == 0.0 {
                    continue;
                }
                for k in 0..h {
                    let x = a_i[k] + b_j[k];
                    let active = if x > 0.0 { g_ij } else { 0.0 };
                    grad_a_i[k] += active;
                    grad_b_j[k] += active;
                    partial.w[k] += active * x;
                }
            }
            grad_a_i.iter_mut().zip(w).for_each(|(x, w_k)| *x *= w_k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(shape: [usize; 2], seed: u64, device: &Device) -> Tensor<2> {
        let mut rng = crate::rng::Rng::new(seed);
        let values: Vec<f32> = (0..shape[0] * shape[1]).map(|_| rng.normal()).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn max_diff(x: Tensor<2>, y: Tensor<2>) -> f32 {
        (x - y).abs().max().into_scalar()
    }

    #[test]
    fn fused_forward_equals_the_tensor_ops() {
        let device = Device::flex();
        // H = 13 exercises the kernel's remainder loop; M = 1 and N = 1 the edges.
        for (n, m, h) in [(7, 5, 13), (1, 9, 16), (6, 1, 128)] {
            let a = random([n, h], 1, &device);
            let b = random([m, h], 2, &device);
            let w = random([1, h], 3, &device).reshape([h]);
            let fused = pairwise_relu_dot(a.clone(), b.clone(), w.clone());
            assert_eq!(fused.dims(), [n, m]);
            assert!(max_diff(fused, composed(a, b, w)) < 1e-5);
        }
    }

    /// Needs the `autodiff` feature, on in workspace builds (amcl-train enables it): without it
    /// both sides would take the tensor-op path.
    #[cfg(feature = "autodiff")]
    #[test]
    fn fused_gradients_equal_the_tensor_ops() {
        let device = Device::flex().autodiff();
        let (n, m, h) = (37, 21, 19);
        let grads_of = |fused: bool| {
            let a = random([n, h], 4, &device).require_grad();
            let b = random([m, h], 5, &device).require_grad();
            let w = random([1, h], 6, &device).reshape([h]).require_grad();
            // A non-uniform upstream gradient, so that each g[i, j] matters.
            let g = random([n, m], 7, &device);
            let logits = if fused {
                pairwise_relu_dot(a.clone(), b.clone(), w.clone())
            } else {
                composed(a.clone(), b.clone(), w.clone())
            };
            let grads = (logits * g).sum().backward();
            (
                a.grad(&grads).unwrap(),
                b.grad(&grads).unwrap(),
                w.grad(&grads).unwrap().reshape([1, h]),
            )
        };
        let (fused, composed) = (grads_of(true), grads_of(false));
        for (name, x, y) in
            [("a", fused.0, composed.0), ("b", fused.1, composed.1), ("w", fused.2, composed.2)]
        {
            let x = x.into_data().try_to_vec::<f32>().unwrap();
            let y = y.into_data().try_to_vec::<f32>().unwrap();
            let diff = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
            assert!(diff < 1e-4, "grad {name}: max |diff| {diff}");
            assert!(y.iter().any(|v| v.abs() > 1e-3), "grad {name} is not trivially zero");
        }
    }
}
