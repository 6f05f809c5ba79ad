//! 2-D convolutions on the CPU, as im2col and one matrix product per group of images.
//!
//! For an input x [B, C_in, H, W] and weights w [C_out, C_in, k_h, k_w] (no bias, groups 1,
//! dilation 1), with K = C_in k_h k_w and P = H_out W_out:
//!
//! ```text
//! cols_b  = im2col(x_b)                 [K, P]     every receptive field, one per column
//! y_b     = w cols_b                    [C_out, P]
//! dw      = sum_b dy_b cols_b^T         [C_out, K]
//! dx_b    = col2im(w^T dy_b)            [C_in, H, W]
//! ```
//!
//! burn's flex backend computes the same forward (tiled, through NHWC copies), but its backward
//! goes through a transposed convolution for dx and permuted copies for dw, which together cost
//! more than the forward. Here the backward is one pass per group of images: im2col once, two
//! matrix products, col2im; the groups run in parallel and each keeps its own share of dw.
//! Images are grouped so that a matrix product has about [`COLUMNS_PER_PRODUCT`] columns (the
//! late layers have P = 16), while leaving every core a group. The weight gradient is summed as
//! dw^T = sum_b cols_b dy_b^T where that makes gemm copy less (see `dw_transposed`), and im2col
//! and col2im work a kernel tap and a plane at a time, as shifted block copies and adds where
//! the stride allows (see `im2col`).
//!
//! The 3x3 layers with stride 1 and 32 channels or more (most of a CIFAR ResNet's work) take
//! the Winograd convolution instead, in all three passes: see [`winograd`].
//!
//! Used on flex, with or without autodiff, in f32 and on native targets (the browser keeps
//! burn's convolution); every other case takes burn's `conv2d`, and both give the same numbers
//! (tests below).
#![cfg_attr(target_arch = "wasm32", allow(dead_code, unused_imports))]

use crate::{FlexPath, flex_path};
use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::ops::ConvOptions;

use crate::buffer::{self, contiguous, f32s};

mod winograd;

/// A convolution's sizes: input [batch, c_in, h, w], output channels, kernel, stride, padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl ConvShape {
    /// Output height and width.
    pub fn out_hw(&self) -> [usize; 2] {
        let out = |size: usize, d: usize| {
            (size + 2 * self.padding[d] - self.kernel[d]) / self.stride[d] + 1
        };
        [out(self.h, 0), out(self.w, 1)]
    }

    /// K = c_in k_h k_w, the length of one receptive field.
    fn k(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    /// P = h_out w_out, output positions per channel.
    fn p(&self) -> usize {
        let [h, w] = self.out_hw();
        h * w
    }
}

/// y = conv2d(x, w) with the given stride and (symmetric) padding; x [B, C_in, H, W],
/// w [C_out, C_in, k_h, k_w] -> [B, C_out, H_out, W_out].
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<4> {
    #[cfg(not(target_arch = "wasm32"))]
    if x.dtype() == DType::F32 && weight.dtype() == DType::F32 && fits(&x, &weight, padding) {
        match flex_path(&x.device()) {
            FlexPath::Plain => return flex_forward(x, weight, stride, padding),
            #[cfg(feature = "autodiff")]
            FlexPath::Tracked => {
                // None under another checkpointing strategy: burn's convolution then.
                if let Some(y) = tracked::forward(x.clone(), weight.clone(), stride, padding) {
                    return y;
                }
            }
            _ => {}
        }
    }
    composed(x, weight, stride, padding)
}

/// Whether the kernels handle these shapes: channels that match and a kernel no larger than the
/// padded input (anything else goes to burn, which reports it).
fn fits(x: &Tensor<4>, weight: &Tensor<4>, padding: [usize; 2]) -> bool {
    let ([_, c_in, h, w], [_, c_w, k_h, k_w]) = (x.dims(), weight.dims());
    c_in == c_w && k_h <= h + 2 * padding[0] && k_w <= w + 2 * padding[1]
}

/// burn's own convolution.
pub fn composed(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<4> {
    burn::tensor::module::conv2d(x, weight, None, ConvOptions::new(stride, padding, [1, 1], 1))
}

fn shape_of(x: &FlexTensor, w: &FlexTensor, stride: [usize; 2], padding: [usize; 2]) -> ConvShape {
    let x = x.layout().shape();
    let w = w.layout().shape();
    ConvShape {
        batch: x[0],
        c_in: x[1],
        h: x[2],
        w: x[3],
        c_out: w[0],
        kernel: [w[2], w[3]],
        stride,
        padding,
    }
}

fn forward_primitive(x: &FlexTensor, w: &FlexTensor, shape: &ConvShape) -> FlexTensor {
    let [h_out, w_out] = shape.out_hw();
    let y = kernel::forward(f32s(x), f32s(w), shape);
    FlexTensor::from_data(TensorData::new(y, [shape.batch, shape.c_out, h_out, w_out]))
}

fn flex_forward(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<4> {
    let x = contiguous(x.try_into_primitive::<Flex>().expect("a flex tensor"));
    let w = contiguous(weight.try_into_primitive::<Flex>().expect("a flex tensor"));
    let shape = shape_of(&x, &w, stride, padding);
    Tensor::from_primitive::<Flex>(forward_primitive(&x, &w, &shape))
}

/// The convolution on flex under autodiff: the forward above, and a backward node that runs
/// [`kernel::backward`].
#[cfg(feature = "autodiff")]
mod tracked {
    use burn::prelude::*;

    use super::{ConvShape, FlexTensor, f32s, forward_primitive, kernel, shape_of};
    use crate::custom_op::{FlexBackward, record, tracked};

    #[derive(Debug)]
    struct Conv2dBackward;

    impl FlexBackward<2> for Conv2dBackward {
        /// x, w and the shapes.
        type State = (FlexTensor, FlexTensor, ConvShape);

        fn backward(
            self,
            (x, w, shape): Self::State,
            grad: FlexTensor,
            [want_x, _]: [bool; 2],
        ) -> [Option<FlexTensor>; 2] {
            let (grad_x, grad_w) =
                kernel::backward(f32s(&x), f32s(&w), f32s(&grad), &shape, want_x);
            let x_dims = [shape.batch, shape.c_in, shape.h, shape.w];
            let w_dims = [shape.c_out, shape.c_in, shape.kernel[0], shape.kernel[1]];
            [
                grad_x.map(|g| FlexTensor::from_data(TensorData::new(g, x_dims))),
                Some(FlexTensor::from_data(TensorData::new(grad_w, w_dims))),
            ]
        }
    }

    /// None when autodiff uses another checkpointing strategy.
    pub(super) fn forward(
        x: Tensor<4>,
        weight: Tensor<4>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Option<Tensor<4>> {
        let (node_x, x) = tracked(x)?;
        let (node_w, w) = tracked(weight)?;
        let shape = shape_of(&x, &w, stride, padding);
        let y = forward_primitive(&x, &w, &shape);
        Some(record(Conv2dBackward, [node_x, node_w], y, (x, w, shape)))
    }
}

/// dst [m, n] = lhs [m, k] rhs [k, n] on one core, each operand given with its (row, column)
/// strides: the matrix product the kernels below make, for `benches/conv_products.rs`.
#[doc(hidden)]
pub fn matrix_product(
    dims: [usize; 3],
    dst: &mut [f32],
    lhs: (&[f32], [usize; 2]),
    rhs: (&[f32], [usize; 2]),
) {
    // SAFETY: the product writes f32 values only.
    kernel::Product { dims, lhs, rhs }.write_to(unsafe { buffer::as_uninit(dst) });
}

/// The kernels on plain row-major f32 slices.
#[cfg_attr(not(feature = "autodiff"), allow(dead_code))] // the backward pass serves autodiff
mod kernel {
    use std::mem::MaybeUninit;

    use super::{ConvShape, winograd};
    use crate::buffer;
    #[cfg(not(target_arch = "wasm32"))]
    use rayon::prelude::*;

    /// Columns (images x output positions) each matrix product aims for: a group's im2col
    /// columns (K x 512 floats, 2.4 MB for K = 1152) then stay closer to the core's 2 MB L2 than
    /// with 1024, which was 1-4 % slower on both backbones (A/B pairs, small CNN and ResNet-18);
    /// 256 measured the same as 512.
    pub const COLUMNS_PER_PRODUCT: usize = 512;

    /// Groups of images per core at least. One: each group multiplies by the whole weight matrix
    /// (9 MB in ResNet's last layers), so fewer, wider groups read it fewer times; 1 rather than
    /// 4 gave ResNet-18 +6-9 % images/s on 2 cores, the small CNN the same.
    const GROUPS_PER_CORE: usize = 1;

    pub(super) fn threads() -> usize {
        #[cfg(not(target_arch = "wasm32"))]
        return rayon::current_num_threads();
        #[cfg(target_arch = "wasm32")]
        1
    }

    /// Images per group: about [`COLUMNS_PER_PRODUCT`] columns, and enough groups for the cores.
    fn images_per_group(shape: &ConvShape) -> usize {
        group_size(shape.batch, shape.p(), COLUMNS_PER_PRODUCT)
    }

    /// Images per group of a batch whose images each make `per_image` columns of a product:
    /// about `per_group` columns, and at least [`GROUPS_PER_CORE`] groups for every core.
    pub(super) fn group_size(batch: usize, per_image: usize, per_group: usize) -> usize {
        let by_columns = (per_group / per_image.max(1)).max(1);
        let by_cores = (batch / (GROUPS_PER_CORE * threads())).max(1);
        by_columns.min(by_cores)
    }

    /// The operands of a matrix product lhs [m, k] rhs [k, n], each with its row and column
    /// strides.
    pub(super) struct Product<'a> {
        pub(super) dims: [usize; 3],
        pub(super) lhs: (&'a [f32], [usize; 2]),
        pub(super) rhs: (&'a [f32], [usize; 2]),
    }

    impl Product<'_> {
        /// dst [m, n] += lhs rhs.
        pub(super) fn add_to(&self, dst: &mut [f32]) {
            // SAFETY: dst is a live slice of f32 of the given length.
            unsafe { self.run(dst.as_mut_ptr(), dst.len(), true) }
        }

        /// dst [m, n] = lhs rhs, writing every element.
        pub(super) fn write_to(&self, dst: &mut [MaybeUninit<f32>]) {
            // SAFETY: as above; gemm does not read dst when told not to accumulate.
            unsafe { self.run(dst.as_mut_ptr().cast(), dst.len(), false) }
        }

        /// # Safety
        /// dst points to `len` writable f32 slots (initialised when `accumulate`).
        unsafe fn run(&self, dst: *mut f32, len: usize, accumulate: bool) {
            let [m, n, k] = self.dims;
            let ((lhs, [lhs_rs, lhs_cs]), (rhs, [rhs_rs, rhs_cs])) = (self.lhs, self.rhs);
            if m == 0 || n == 0 {
                return;
            }
            assert!(k > 0, "matmul: empty inner dimension");
            assert!(len >= m * n, "matmul: dst too small");
            assert!((m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len(), "matmul: lhs too small");
            assert!((k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len(), "matmul: rhs too small");
            // SAFETY: the asserts above keep every index of dst, lhs and rhs inside their slices.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    dst,
                    1,
                    n as isize,
                    accumulate,
                    lhs.as_ptr(),
                    lhs_cs as isize,
                    lhs_rs as isize,
                    rhs.as_ptr(),
                    rhs_cs as isize,
                    rhs_rs as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        }
    }

    /// Output positions o (along one axis of length `out`) whose input index
    /// o * stride + offset - pad lies in [0, size).
    fn valid(out: usize, size: usize, stride: usize, offset: usize, pad: usize) -> (usize, usize) {
        let lo = pad.saturating_sub(offset).div_ceil(stride);
        let hi =
            if size + pad > offset { ((size + pad - offset - 1) / stride + 1).min(out) } else { 0 };
        (lo.min(hi), hi)
    }

    /// One kernel tap (ky, kx) of a convolution: its valid output rows and columns (where it
    /// reads the input rather than the padding), and where in an input plane [h, w] it reads.
    struct Tap<'a> {
        shape: &'a ConvShape,
        at: [usize; 2],
        /// The output's [h_out, w_out].
        out: [usize; 2],
        rows: (usize, usize),
        columns: (usize, usize),
    }

    impl<'a> Tap<'a> {
        fn new(shape: &'a ConvShape, [ky, kx]: [usize; 2]) -> Self {
            let out @ [h_out, w_out] = shape.out_hw();
            let rows = valid(h_out, shape.h, shape.stride[0], ky, shape.padding[0]);
            let columns = valid(w_out, shape.w, shape.stride[1], kx, shape.padding[1]);
            Self { shape, at: [ky, kx], out, rows, columns }
        }

        fn reads_only_padding(&self) -> bool {
            self.rows.0 == self.rows.1 || self.columns.0 == self.columns.1
        }

        /// The input index (in a plane [h, w]) that output (oy, ox) reads, for oy and ox in the
        /// valid rows and columns.
        fn input(&self, oy: usize, ox: usize) -> usize {
            let ([ky, kx], [sy, sx], [py, px]) = (self.at, self.shape.stride, self.shape.padding);
            (oy * sy + ky - py) * self.shape.w + ox * sx + kx - px
        }

        /// Whether output (oy, ox) reads the input.
        fn reads(&self, oy: usize, ox: usize) -> bool {
            (self.rows.0..self.rows.1).contains(&oy)
                && (self.columns.0..self.columns.1).contains(&ox)
        }

        /// With stride 1 and output rows as long as the input's, the valid rows are one shifted
        /// block: (first, last) output positions and the input index of the first. Inside it
        /// the columns outside the valid ones wrap around a row's edge.
        fn block(&self) -> Option<((usize, usize), usize)> {
            let s = self.shape;
            if s.stride != [1, 1] || self.out[1] != s.w || self.reads_only_padding() {
                return None;
            }
            let ((y_lo, y_hi), (x_lo, x_hi)) = (self.rows, self.columns);
            Some(((y_lo * s.w + x_lo, (y_hi - 1) * s.w + x_hi), self.input(y_lo, x_lo)))
        }

        /// Zeros in the columns outside the valid ones, in every row of `planes` (one or more
        /// planes [h_out, w_out]): where [`Tap::block`]'s shifted copy wraps around a row's edge.
        /// A column at a time over all the planes of a group: one or two columns for a 3x3
        /// kernel, where a call per plane and fills per row cost more than the zeros.
        fn zero_wrapped(&self, planes: &mut [f32]) {
            let w_out = self.out[1];
            let (x_lo, x_hi) = self.columns;
            for x in (0..x_lo).chain(x_hi..w_out) {
                planes.iter_mut().skip(x).step_by(w_out).for_each(|v| *v = 0.0);
            }
        }

        /// out [images, h_out, w_out] = what the tap reads of each image's input plane
        /// (`src_of(image)`, [h, w]), zero where it reads padding.
        fn planes<'s>(&self, src_of: impl Fn(usize) -> &'s [f32], out: &mut [f32]) {
            if self.reads_only_padding() {
                out.fill(0.0);
                return;
            }
            let [h_out, w_out] = self.out;
            let (y_lo, y_hi) = self.rows;
            let block = self.block();
            for (image, out) in out.chunks_exact_mut(h_out * w_out).enumerate() {
                let src = src_of(image);
                out[..y_lo * w_out].fill(0.0);
                out[y_hi * w_out..].fill(0.0);
                match block {
                    Some(((first, last), from)) => {
                        out[first..last].copy_from_slice(&src[from..][..last - first]);
                    }
                    None => {
                        for oy in y_lo..y_hi {
                            self.row(src, oy, &mut out[oy * w_out..][..w_out]);
                        }
                    }
                }
            }
            if block.is_some() {
                self.zero_wrapped(out);
            }
        }

        /// Row oy of the tap's output from the input plane src [h, w] (zeros where it reads
        /// padding).
        fn row(&self, src: &[f32], oy: usize, row: &mut [f32]) {
            let (x_lo, x_hi) = self.columns;
            if !self.reads(oy, x_lo) {
                row.fill(0.0);
                return;
            }
            row[..x_lo].fill(0.0);
            row[x_hi..].fill(0.0);
            let input = &src[self.input(oy, x_lo)..];
            let row = &mut row[x_lo..x_hi];
            let sx = self.shape.stride[1];
            if sx == 2 {
                // Every other value, as pairs so that it vectorises; the last value alone (its
                // pair may run past the row).
                let (last, body) = row.split_last_mut().expect("x_lo < x_hi");
                for (o, pair) in body.iter_mut().zip(input.chunks_exact(2)) {
                    *o = pair[0];
                }
                *last = input[2 * body.len()];
            } else {
                for (o, &v) in row.iter_mut().zip(input.iter().step_by(sx)) {
                    *o = v;
                }
            }
        }

        /// The adjoint of [`Tap::row`]: dst [h, w] += the input positions row oy read, times d.
        fn add_row(&self, dst: &mut [f32], oy: usize, d: &[f32]) {
            let (x_lo, x_hi) = self.columns;
            if !self.reads(oy, x_lo) {
                return;
            }
            let row = &mut dst[self.input(oy, x_lo)..];
            let d = &d[x_lo..x_hi];
            match self.shape.stride[1] {
                1 => add(row, d),
                sx => row.iter_mut().step_by(sx).zip(d).for_each(|(r, v)| *r += v),
            }
        }

        /// The tap's output at (oy, ox) from the input plane src [h, w].
        fn value(&self, src: &[f32], oy: usize, ox: usize) -> f32 {
            if self.reads(oy, ox) { src[self.input(oy, ox)] } else { 0.0 }
        }

        /// The adjoint of [`Tap::value`]: dst [h, w] at the input position (oy, ox) read += d.
        fn add_value(&self, dst: &mut [f32], oy: usize, ox: usize, d: f32) {
            if self.reads(oy, ox) {
                dst[self.input(oy, ox)] += d;
            }
        }
    }

    /// cols [K, images P] of a group of images x [images, c_in, h, w]; column image P + position.
    ///
    /// Row (c, ky, kx) of cols holds, for every image, the plane of channel c shifted by
    /// (ky - pad, kx - pad) and subsampled by the stride, with zeros where it reads the padding.
    fn im2col(x: &[f32], shape: &ConvShape, images: usize, cols: &mut [f32]) {
        let (p, n) = (shape.p(), images * shape.p());
        let [h_out, w_out] = shape.out_hw();
        let [kh, kw] = shape.kernel;
        let [sy, sx] = shape.stride;
        let plane = shape.h * shape.w;
        for c in 0..shape.c_in {
            let plane_of = |image: usize| &x[(image * shape.c_in + c) * plane..][..plane];
            for ky in 0..kh {
                for kx in 0..kw {
                    let field_row = (c * kh + ky) * kw + kx;
                    let (done, rest) = cols.split_at_mut(field_row * n);
                    let out_row = &mut rest[..n];
                    let tap = Tap::new(shape, [ky, kx]);
                    if sy > 1 && ky >= sy && h_out > 1 {
                        // Strided: tap (ky, kx) at output row oy reads the input row that tap
                        // (ky - s_y, kx) reads at oy + 1, which is already in cols: one copy,
                        // then each image's last row (its copy came from the next image).
                        let source = &done[(field_row - sy * kw) * n..][..n];
                        out_row[..n - w_out].copy_from_slice(&source[w_out..]);
                        for (image, out) in out_row.chunks_exact_mut(p).enumerate() {
                            tap.row(plane_of(image), h_out - 1, &mut out[(h_out - 1) * w_out..]);
                        }
                    } else if sx > 1 && kx >= sx && w_out > 1 {
                        // Likewise along a row: tap (ky, kx - s_x) one column on; then each
                        // row's last column.
                        let source = &done[(field_row - sx) * n..][..n];
                        out_row[..n - 1].copy_from_slice(&source[1..]);
                        for (image, out) in out_row.chunks_exact_mut(p).enumerate() {
                            for (oy, row) in out.chunks_exact_mut(w_out).enumerate() {
                                row[w_out - 1] = tap.value(plane_of(image), oy, w_out - 1);
                            }
                        }
                    } else {
                        tap.planes(plane_of, out_row);
                    }
                }
            }
        }
    }

    /// dx [images, c_in, h, w] += col2im(dcols [K, images P]), the adjoint of [`im2col`].
    ///
    /// With stride 1 and rows of equal length, a tap's rows go in as one shifted add, the
    /// mirror of [`im2col`]'s copy; the columns that would wrap around a row's edge are first
    /// set to zero in dcols (which is not needed afterwards).
    fn col2im(dcols: &mut [f32], shape: &ConvShape, images: usize, dx: &mut [f32]) {
        let (p, n) = (shape.p(), images * shape.p());
        let [h_out, w_out] = shape.out_hw();
        let [kh, kw] = shape.kernel;
        let [sy, sx] = shape.stride;
        let plane = shape.h * shape.w;
        for c in 0..shape.c_in {
            let plane_at = |image: usize| (image * shape.c_in + c) * plane..;
            // Last tap first: with stride > 1 a tap hands its gradient on to the earlier tap
            // im2col copied it from, before that one is added in.
            for ky in (0..kh).rev() {
                for kx in (0..kw).rev() {
                    let tap = Tap::new(shape, [ky, kx]);
                    if tap.reads_only_padding() {
                        continue;
                    }
                    let field_row = (c * kh + ky) * kw + kx;
                    let (done, rest) = dcols.split_at_mut(field_row * n);
                    let d_row = &mut rest[..n];
                    if sy > 1 && ky >= sy && h_out > 1 {
                        // The adjoint of im2col's copy from tap (ky - s_y, kx) one row on: each
                        // image's last row goes to dx here, the rest to that tap's gradient.
                        for (image, d) in d_row.chunks_exact_mut(p).enumerate() {
                            let last = &mut d[(h_out - 1) * w_out..];
                            tap.add_row(&mut dx[plane_at(image)][..plane], h_out - 1, last);
                            last.fill(0.0);
                        }
                        let source = &mut done[(field_row - sy * kw) * n..][..n];
                        add(&mut source[w_out..], &d_row[..n - w_out]);
                    } else if sx > 1 && kx >= sx && w_out > 1 {
                        // Likewise for tap (ky, kx - s_x) one column on.
                        for (image, d) in d_row.chunks_exact_mut(p).enumerate() {
                            let dst = &mut dx[plane_at(image)][..plane];
                            for (oy, row) in d.chunks_exact_mut(w_out).enumerate() {
                                tap.add_value(dst, oy, w_out - 1, row[w_out - 1]);
                                row[w_out - 1] = 0.0;
                            }
                        }
                        let source = &mut done[(field_row - sx) * n..][..n];
                        add(&mut source[1..], &d_row[..n - 1]);
                    } else if let Some(((first, last), to)) = tap.block() {
                        tap.zero_wrapped(d_row);
                        for (image, d) in d_row.chunks_exact(p).enumerate() {
                            add(&mut dx[plane_at(image)][to..][..last - first], &d[first..last]);
                        }
                    } else {
                        for (image, d) in d_row.chunks_exact(p).enumerate() {
                            let dst = &mut dx[plane_at(image)][..plane];
                            for oy in tap.rows.0..tap.rows.1 {
                                tap.add_row(dst, oy, &d[oy * w_out..][..w_out]);
                            }
                        }
                    }
                }
            }
        }
    }

    /// dst += values, element by element.
    fn add(dst: &mut [f32], values: &[f32]) {
        dst.iter_mut().zip(values).for_each(|(d, v)| *d += v);
    }

    /// Reused buffers of one worker.
    #[derive(Default)]
    struct Scratch {
        cols: Vec<f32>,
        product: Vec<f32>,
    }

    /// y [B, c_out, P] = w [c_out, K] im2col(x), group by group.
    pub fn forward(x: &[f32], w: &[f32], shape: &ConvShape) -> Vec<f32> {
        if winograd::applies(shape) {
            return winograd::forward(x, w, shape);
        }
        let (k, p, c_out) = (shape.k(), shape.p(), shape.c_out);
        let image_in = shape.c_in * shape.h * shape.w;
        let per_group = images_per_group(shape);
        let mut y = buffer::uninit(shape.batch * c_out * p);
        let group = |scratch: &mut Scratch,
                     (y_group, x_group): (&mut [MaybeUninit<f32>], &[f32])| {
            let images = x_group.len() / image_in;
            let n = images * p;
            scratch.cols.resize(k * n, 0.0);
            im2col(x_group, shape, images, &mut scratch.cols);
            let product =
                Product { dims: [c_out, n, k], lhs: (w, [k, 1]), rhs: (&scratch.cols, [n, 1]) };
            if images == 1 {
                product.write_to(y_group);
                return;
            }
            // The product's columns are (image, position): scatter them to [image, c_out, P].
            scratch.product.resize(c_out * n, 0.0);
            // SAFETY: the product writes f32 values only.
            product.write_to(unsafe { buffer::as_uninit(&mut scratch.product) });
            for (c, row) in scratch.product.chunks_exact(n).enumerate() {
                for (image, src) in row.chunks_exact(p).enumerate() {
                    buffer::write(&mut y_group[(image * c_out + c) * p..][..p], src);
                }
            }
        };
        #[cfg(not(target_arch = "wasm32"))]
        y.par_chunks_mut(per_group * c_out * p)
            .zip(x.par_chunks(per_group * image_in))
            .for_each_init(Scratch::default, group);
        #[cfg(target_arch = "wasm32")]
        {
            let mut scratch = Scratch::default();
            y.chunks_mut(per_group * c_out * p)
                .zip(x.chunks(per_group * image_in))
                .for_each(|pair| group(&mut scratch, pair));
        }
        // SAFETY: the groups cover y, and each wrote all of its part (product or scatter).
        unsafe { buffer::assume_init(y) }
    }

    /// Whether the weight gradient is accumulated as dw^T [K, c_out] rather than dw [c_out, K]:
    /// when K > c_out (every 3x3 layer). gemm copies ("packs") the left operand of its own
    /// orientation, which is cols [K, n] for dw and dy [c_out, n] for dw^T, so dw^T copies the
    /// smaller one. Timed alone on one core (`cargo bench -p amcl-core --features x86-v4 --bench
    /// conv_products`), the 3x3 layers' products of both backbones ran 1.10-2.30x faster as dw^T;
    /// the 1x1 shortcuts (K < c_out) 0.77-0.92x, so they stay dw.
    fn dw_transposed(c_out: usize, k: usize) -> bool {
        k > c_out
    }

    /// The product that adds one group's share to the weight gradient, in the orientation
    /// [`dw_transposed`] picks: dw [c_out, K] += dy [c_out, n] cols^T [n, K], or
    /// dw^T [K, c_out] += cols [K, n] dy^T [n, c_out].
    fn weight_gradient_product<'a>(
        cols: &'a [f32],
        dy: &'a [f32],
        [c_out, k, n]: [usize; 3],
    ) -> Product<'a> {
        if dw_transposed(c_out, k) {
            Product { dims: [k, c_out, n], lhs: (cols, [n, 1]), rhs: (dy, [1, n]) }
        } else {
            Product { dims: [c_out, k, n], lhs: (dy, [n, 1]), rhs: (cols, [1, n]) }
        }
    }

    /// Rows and columns of the tiles in which [`weight_gradient`] transposes.
    const TILE: usize = 16;

    /// The weight gradient dw [c_out, K] from the cores' partial sums: their sum, read back
    /// from dw^T [K, c_out] when [`dw_transposed`] chose that orientation. Sum and transpose are
    /// one pass over blocks of [`TILE`] x [`TILE`], summed in a local block and written to dw as
    /// runs of [`TILE`] values, with the rows of dw split across the cores. For ResNet's
    /// layer 4 (a 9 MB gradient) this takes ~5 ms, where adding each value to dw where it lands
    /// took ~9 ms, and summing first, then transposing row by row more (`conv_layers` bench).
    fn weight_gradient(partials: &[Vec<f32>], [c_out, k]: [usize; 2]) -> Vec<f32> {
        let mut dw = vec![0.0; c_out * k];
        let transposed = dw_transposed(c_out, k);
        let tile = |(t, rows): (usize, &mut [f32])| {
            let (first, count) = (t * TILE, rows.len() / k);
            if !transposed {
                for partial in partials {
                    add(rows, &partial[first * k..][..count * k]);
                }
                return;
            }
            // A TILE x TILE block of every partial dw^T, summed into `block` as read (rows j,
            // contiguous), then added to dw's rows o as contiguous runs of TILE.
            let mut block = [[0.0f32; TILE]; TILE];
            for j0 in (0..k).step_by(TILE) {
                let width = TILE.min(k - j0);
                block.iter_mut().for_each(|row| *row = [0.0; TILE]);
                for partial in partials {
                    for (j, sums) in block.iter_mut().enumerate().take(width) {
                        let column = &partial[(j0 + j) * c_out + first..][..count];
                        sums.iter_mut().zip(column).for_each(|(s, v)| *s += v);
                    }
                }
                for (o, row) in rows.chunks_exact_mut(k).enumerate() {
                    for (j, d) in row[j0..j0 + width].iter_mut().enumerate() {
                        *d = block[j][o];
                    }
                }
            }
        };
        #[cfg(not(target_arch = "wasm32"))]
        dw.par_chunks_mut(TILE * k).enumerate().for_each(tile);
        #[cfg(target_arch = "wasm32")]
        dw.chunks_mut(TILE * k).enumerate().for_each(tile);
        dw
    }

    /// Gradients of x (when `want_x`) and of w, given dy [B, c_out, P].
    pub fn backward(
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        shape: &ConvShape,
        want_x: bool,
    ) -> (Option<Vec<f32>>, Vec<f32>) {
        if winograd::applies(shape) {
            let dx = want_x.then(|| winograd::input_gradient(dy, w, shape));
            return (dx, winograd::weight_gradient(x, dy, shape));
        }
        let (k, p, c_out) = (shape.k(), shape.p(), shape.c_out);
        let image_in = shape.c_in * shape.h * shape.w;
        let per_group = images_per_group(shape);
        let mut dx = buffer::uninit(if want_x { x.len() } else { 0 });
        // (first image, its dx when wanted) for every group.
        let groups: Vec<(usize, Option<&mut [MaybeUninit<f32>]>)> = if want_x {
            dx.chunks_mut(per_group * image_in)
                .enumerate()
                .map(|(g, d)| (g * per_group, Some(d)))
                .collect()
        } else {
            (0..shape.batch).step_by(per_group).map(|first| (first, None)).collect()
        };
        let group =
            |(mut scratch, mut dw): (Scratch, Vec<f32>),
             (first, dx_group): (usize, Option<&mut [MaybeUninit<f32>]>)| {
                let images = per_group.min(shape.batch - first);
                let n = images * p;
                scratch.cols.resize(k * n, 0.0);
                im2col(
                    &x[first * image_in..][..images * image_in],
                    shape,
                    images,
                    &mut scratch.cols,
                );
                // dy of the group as [c_out, images P].
                let dy_group = &dy[first * c_out * p..][..images * c_out * p];
                let dy_cols: &[f32] = if images == 1 {
                    dy_group
                } else {
                    scratch.product.resize(c_out * n, 0.0);
                    for (c, row) in scratch.product.chunks_exact_mut(n).enumerate() {
                        for (image, dst) in row.chunks_exact_mut(p).enumerate() {
                            dst.copy_from_slice(&dy_group[(image * c_out + c) * p..][..p]);
                        }
                    }
                    &scratch.product
                };
                weight_gradient_product(&scratch.cols, dy_cols, [c_out, k, n]).add_to(&mut dw);
                if let Some(dx_group) = dx_group {
                    // dcols [K, n] = w^T [K, c_out] dy [c_out, n], written over cols (no longer needed).
                    let dcols = &mut scratch.cols;
                    // SAFETY: the product writes f32 values only.
                    Product { dims: [k, n, c_out], lhs: (w, [1, k]), rhs: (dy_cols, [n, 1]) }
                        .write_to(unsafe { buffer::as_uninit(dcols) });
                    col2im(dcols, shape, images, buffer::zeroed(dx_group));
                }
                (scratch, dw)
            };
        let zeros = || (Scratch::default(), vec![0.0; c_out * k]);
        // One run of consecutive groups per core, so that there are as many partial dw (each
        // [c_out, K], 9 MB in ResNet's last layers) to zero and add up as there are cores.
        #[cfg(not(target_arch = "wasm32"))]
        let runs = groups.len().div_ceil(threads()).max(1);
        #[cfg(not(target_arch = "wasm32"))]
        let partials: Vec<Vec<f32>> = groups
            .into_par_iter()
            .with_min_len(runs)
            .fold(zeros, group)
            .map(|(_, dw)| dw)
            .collect();
        #[cfg(target_arch = "wasm32")]
        let partials = vec![groups.into_iter().fold(zeros(), group).1];
        let dw = weight_gradient(&partials, [c_out, k]);
        // SAFETY: with want_x the groups cover dx and each zeroed its part before adding to it.
        (want_x.then(|| unsafe { buffer::assume_init(dx) }), dw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
        let mut rng = crate::test_values::Rng::new(seed);
        let values: Vec<f32> = (0..shape.iter().product()).map(|_| rng.normal()).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn max_diff(x: Tensor<4>, y: Tensor<4>) -> f32 {
        let x = x.into_data().try_to_vec::<f32>().unwrap();
        let y = y.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(x.len(), y.len());
        x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max)
    }

    /// (input [B, C_in, H, W], C_out, kernel, stride, padding): the small CNN's and ResNet's
    /// layers (3x3 stride 1 and 2, 1x1 stride 2 shortcuts), odd sizes, groups of one image, and
    /// both orientations of the weight gradient (K > C_out, and K < C_out), kernel taps that
    /// read only padding (a 5x5 kernel on a plane one pixel wide), and strided taps copied from
    /// earlier taps where no padding hides a wrong first row or column (stride 2, padding 0).
    /// The Winograd path (3x3, stride 1, padding 1, even planes, 32 channels or more): one
    /// tile, rectangular planes, channel counts off the 16-lane blocks of its kernel transform,
    /// groups of images, and a batch of one (a core without a group).
    const CASES: [([usize; 4], usize, usize, usize, usize); 14] = [
        ([3, 3, 9, 9], 5, 3, 1, 1),
        ([40, 4, 8, 8], 6, 3, 2, 1),
        ([2, 5, 7, 6], 3, 3, 2, 1),
        ([33, 6, 5, 5], 4, 1, 2, 0),
        ([70, 3, 4, 4], 7, 3, 1, 1),
        ([1, 2, 3, 3], 2, 3, 1, 0),
        ([5, 2, 6, 6], 8, 1, 2, 0),
        ([2, 2, 3, 1], 3, 5, 1, 2),
        ([6, 3, 9, 9], 4, 3, 2, 0),
        ([3, 32, 2, 2], 40, 3, 1, 1),
        ([4, 33, 6, 10], 32, 3, 1, 1),
        ([2, 37, 8, 4], 47, 3, 1, 1),
        ([9, 40, 4, 4], 33, 3, 1, 1),
        ([1, 32, 4, 6], 36, 3, 1, 1),
    ];

    #[test]
    fn forward_equals_burns_convolution() {
        let device = Device::flex();
        for (i, (input, c_out, k, s, p)) in CASES.into_iter().enumerate() {
            let x = random(input, i as u64, &device);
            let w = random([c_out, input[1], k, k], 100 + i as u64, &device);
            let ours = conv2d(x.clone(), w.clone(), [s, s], [p, p]);
            let burns = composed(x, w, [s, s], [p, p]);
            assert_eq!(ours.dims(), burns.dims(), "case {i}");
            let diff = max_diff(ours, burns);
            assert!(diff < 1e-4, "case {i}: max |diff| {diff}");
        }
    }

    /// Needs the `autodiff` feature (on in workspace builds).
    #[cfg(feature = "autodiff")]
    #[test]
    fn gradients_equal_burns_convolution() {
        let device = Device::flex().autodiff();
        for (i, (input, c_out, k, s, p)) in CASES.into_iter().enumerate() {
            let grads_of = |ours: bool| {
                let x = random(input, i as u64, &device).require_grad();
                let w = random([c_out, input[1], k, k], 100 + i as u64, &device).require_grad();
                let y = if ours {
                    conv2d(x.clone(), w.clone(), [s, s], [p, p])
                } else {
                    composed(x.clone(), w.clone(), [s, s], [p, p])
                };
                // A non-uniform upstream gradient, so that every output position matters.
                let g = random(y.dims(), 200 + i as u64, &device);
                let grads = (y * g).sum().backward();
                (x.grad(&grads).unwrap(), w.grad(&grads).unwrap())
            };
            let (ours, burns) = (grads_of(true), grads_of(false));
            let (dx, dw) = (max_diff(ours.0, burns.0), max_diff(ours.1, burns.1));
            assert!(dx < 1e-4 && dw < 1e-3, "case {i}: max |diff| dx {dx}, dw {dw}");
        }
    }

    /// Without a gradient for x (the network's input), only w's is computed.
    #[cfg(feature = "autodiff")]
    #[test]
    fn weight_gradient_alone_when_the_input_is_constant() {
        let device = Device::flex().autodiff();
        let x = random([4, 3, 6, 6], 1, &device);
        let w = random([2, 3, 3, 3], 2, &device).require_grad();
        let grads = conv2d(x.clone(), w.clone(), [1, 1], [1, 1]).sum().backward();
        let w_plain = random([2, 3, 3, 3], 2, &device).require_grad();
        let expected = composed(x, w_plain.clone(), [1, 1], [1, 1]).sum().backward();
        let diff = max_diff(w.grad(&grads).unwrap(), w_plain.grad(&expected).unwrap());
        assert!(diff < 1e-3, "max |diff| {diff}");
    }
}
