//! The Winograd convolution F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional
//! Neural Networks", CVPR 2016) for 3x3 kernels with stride 1 and padding 1 on planes of even
//! height and width, 32 channels or more ([`applies`]): every such layer of both backbones but
//! the small CNN's first. All three passes: the forward; dx, which is the same kind of
//! convolution of dy with the kernels rotated by 180 degrees; and dw ([`weight_gradient`]).
//!
//! Each 2x2 block of outputs (a "tile") comes from the 4x4 block of input around it:
//!
//! ```text
//! U = G g G^T       [4, 4] for each (c_out, c_in)   g the 3x3 kernel, transformed once per call
//! V = B^T d B       [4, 4] for each (c_in, tile)    d the tile's 4x4 input (zeros off the plane)
//! M = sum_c U . V   [4, 4] for each (c_out, tile)   16 products [c_out, c_in] [c_in, tiles]
//! Y = A^T M A       [2, 2] for each (c_out, tile)
//!
//!       | 1    0    0  |          | 1  0 -1  0 |
//!   G = | 1/2  1/2  1/2|   B^T =  | 0  1  1  0 |   A^T = | 1  1  1  0 |
//!       | 1/2 -1/2  1/2|          | 0 -1  1  0 |         | 0  1 -1 -1 |
//!       | 0    0    1  |          | 0  1  0 -1 |
//! ```
//!
//! The 16 products make 16 c_out c_in multiply-adds per tile of four outputs, where im2col's
//! one product makes 36: 2.25x fewer. The transforms are additions (and halvings, for U), so
//! the results differ from the direct sum by rounding only (tests in `conv2d`).
//!
//! The rotated kernels need no transform of their own: G J = P G for the reversal J and the
//! permutation P of rows (3, 1, 2, 0), so U of a rotated kernel is U with its rows and columns
//! permuted ([`ROTATED`]); and the swapped channels are the product's transposed operand.

use std::mem::MaybeUninit;

use super::ConvShape;
use super::kernel::Product;
use crate::widest_simd;
#[cfg(not(target_arch = "wasm32"))]
use rayon::prelude::*;

/// The 16 entries of a transformed 4x4 tile, row-major: index 4 row + column.
const ENTRIES: usize = 16;

/// Entry (r, c) of a rotated kernel's U is entry (p(r), p(c)) of U, p = (3, 1, 2, 0).
const ROTATED: [usize; ENTRIES] = {
    let p = [3, 1, 2, 0];
    let mut rotated = [0; ENTRIES];
    let mut e = 0;
    while e < ENTRIES {
        rotated[e] = 4 * p[e / 4] + p[e % 4];
        e += 1;
    }
    rotated
};

/// Tiles each group of images aims for (the columns of its 16 products). ResNet-18's layers ran
/// 3-6 % faster with 128 or 256 than with 512 (`conv_layers` bench), the small CNN's the same.
const TILES_PER_PRODUCT: usize = 256;

/// Input and output channels a layer needs at least for this module to compute it. The
/// transforms cost in proportion to c_in + c_out per pixel and save in proportion to c_in c_out,
/// so narrow layers gain nothing: the small CNN's first layer (3 -> 16 channels) took 1.5x as
/// long forward as with im2col, its 32-, 64- and 128-channel layers 0.8x, 0.6x and 0.5x
/// (`conv_layers` bench). No layer of either backbone lies between.
const MIN_CHANNELS: usize = 32;

/// Whether the convolution of `shape` is one this module computes: a 3x3 kernel, stride 1,
/// padding 1, an even height and width, and at least [`MIN_CHANNELS`] in and out.
pub(super) fn applies(shape: &ConvShape) -> bool {
    shape.c_in.min(shape.c_out) >= MIN_CHANNELS
        && shape.kernel == [3, 3]
        && shape.stride == [1, 1]
        && shape.padding == [1, 1]
        && shape.h.is_multiple_of(2)
        && shape.w.is_multiple_of(2)
        && shape.h > 0
        && shape.w > 0
}

/// y [B, c_out, h, w] = conv2d(x [B, c_in, h, w], w [c_out, c_in, 3, 3]), for [`applies`].
pub(super) fn forward(x: &[f32], w: &[f32], shape: &ConvShape) -> Vec<f32> {
    let kernels = Kernels::new(w, shape.c_out, shape.c_in);
    convolve(x, shape, &kernels, false)
}

/// dx [B, c_in, h, w] for dy [B, c_out, h, w]: the adjoint of [`forward`], the convolution of
/// dy with the kernels rotated by 180 degrees and their channels swapped.
pub(super) fn input_gradient(dy: &[f32], w: &[f32], shape: &ConvShape) -> Vec<f32> {
    let kernels = Kernels::new(w, shape.c_out, shape.c_in);
    convolve(dy, shape, &kernels, true)
}

/// dw [c_out, c_in, 3, 3] for x [B, c_in, h, w] and dy [B, c_out, h, w]: the gradient of
/// [`forward`]'s weights. With Y = A^T M A and M = sum_c U . V per tile,
///
/// ```text
/// dM = A dY A^T                      [4, 4] for each (c_out, tile)
/// dU = sum_tiles dM . V              16 products [c_out, tiles] [tiles, c_in]
/// dg = G^T dU G                      [3, 3] for each (c_out, c_in)
/// ```
///
/// so the weight gradient makes the same 2.25x fewer multiply-adds. Each core sums its groups'
/// dU; the last pass adds the cores' sums and transforms them back.
pub(super) fn weight_gradient(x: &[f32], dy: &[f32], shape: &ConvShape) -> Vec<f32> {
    let (c_in, c_out) = (shape.c_in, shape.c_out);
    let planes = Planes { from: c_in, to: c_out, h: shape.h, w: shape.w };
    let (plane_in, plane_out) = (c_in * shape.h * shape.w, c_out * shape.h * shape.w);
    let (_, tiles) = planes.tiles();
    let per_group = super::kernel::group_size(shape.batch, tiles, TILES_PER_PRODUCT);
    let size = ENTRIES * c_out * c_in;
    let group = |(mut scratch, mut du): (Scratch, Vec<f32>), (x, dy): (&[f32], &[f32])| {
        let n = x.len() / plane_in * tiles;
        scratch.v.resize(ENTRIES * c_in * n, 0.0);
        scratch.m.resize(ENTRIES * c_out * n, 0.0);
        transform_input_simd(x, planes, &mut scratch.v, &mut scratch.work);
        transform_output_adjoint_simd(dy, planes, &mut scratch.m, &mut scratch.work);
        let product = |e: usize| Product {
            dims: [c_out, c_in, n],
            lhs: (&scratch.m[e * c_out * n..][..c_out * n], [n, 1]),
            rhs: (&scratch.v[e * c_in * n..][..c_in * n], [1, n]),
        };
        if du.is_empty() {
            // A core's first group writes its sums, so that they need no zeroing.
            let mut first = crate::buffer::uninit(size);
            for (e, du) in first.chunks_exact_mut(c_out * c_in).enumerate() {
                product(e).write_to(du);
            }
            // SAFETY: the 16 products wrote every value.
            du = unsafe { crate::buffer::assume_init(first) };
        } else {
            for (e, du) in du.chunks_exact_mut(c_out * c_in).enumerate() {
                product(e).add_to(du);
            }
        }
        (scratch, du)
    };
    let no_sums = || (Scratch::default(), Vec::new());
    let pairs = x.chunks(per_group * plane_in).zip(dy.chunks(per_group * plane_out));
    // One run of consecutive groups per core, each with its own dU.
    #[cfg(not(target_arch = "wasm32"))]
    let partials: Vec<Vec<f32>> = {
        let groups: Vec<_> = pairs.collect();
        let runs = groups.len().div_ceil(super::kernel::threads()).max(1);
        groups.into_par_iter().with_min_len(runs).fold(no_sums, group).map(|(_, du)| du).collect()
    };
    #[cfg(target_arch = "wasm32")]
    let partials = vec![pairs.fold(no_sums(), group).1];
    // A fold that met no group (an empty batch) has no sums.
    let partials: Vec<Vec<f32>> = partials.into_iter().filter(|du| !du.is_empty()).collect();
    let mut dw = vec![0.0; c_out * c_in * 9];
    let back = |(o, dw_o): (usize, &mut [f32])| {
        transform_kernels_adjoint_simd(&partials, [o, c_out, c_in], dw_o);
    };
    #[cfg(not(target_arch = "wasm32"))]
    dw.par_chunks_mut(c_in * 9).enumerate().for_each(back);
    #[cfg(target_arch = "wasm32")]
    dw.chunks_mut(c_in * 9).enumerate().for_each(back);
    dw
}

/// U = G g G^T of every kernel g [3, 3] of w [c_out, c_in, 3, 3], stored as [c_out][16][c_in]
/// so that each output channel's entries are written together.
struct Kernels {
    u: Vec<f32>,
    c_out: usize,
    c_in: usize,
}

impl Kernels {
    fn new(w: &[f32], c_out: usize, c_in: usize) -> Self {
        let mut u = vec![0.0; c_out * ENTRIES * c_in];
        let transform = |(o, u_o): (usize, &mut [f32])| {
            transform_kernels_simd(&w[o * c_in * 9..][..c_in * 9], u_o);
        };
        #[cfg(not(target_arch = "wasm32"))]
        u.par_chunks_mut(ENTRIES * c_in).enumerate().for_each(transform);
        #[cfg(target_arch = "wasm32")]
        u.chunks_mut(ENTRIES * c_in).enumerate().for_each(transform);
        Self { u, c_out, c_in }
    }

    /// The left operand of entry e's product, with its (row, column) strides: U_e [c_out, c_in]
    /// for the convolution, or for its adjoint U of the rotated kernels with the channels
    /// swapped, [c_in, c_out].
    fn operand(&self, e: usize, adjoint: bool) -> (&[f32], [usize; 2]) {
        let row = ENTRIES * self.c_in;
        if adjoint {
            (&self.u[ROTATED[e] * self.c_in..], [1, row])
        } else {
            (&self.u[e * self.c_in..], [row, 1])
        }
    }
}

widest_simd!(fn transform_kernels_simd => transform_kernels(w: &[f32], u: &mut [f32]));

/// u [16, c_in] = G g G^T for one output channel's kernels w [c_in, 3, 3], a block of input
/// channels at a time (their taps gathered first, so that the arithmetic runs across channels).
#[inline(always)]
fn transform_kernels(w: &[f32], u: &mut [f32]) {
    const LANES: usize = 16;
    let c_in = w.len() / 9;
    for first in (0..c_in).step_by(LANES) {
        let lanes = LANES.min(c_in - first);
        let mut g = [[0.0f32; LANES]; 9];
        for (l, taps) in w[first * 9..][..lanes * 9].chunks_exact(9).enumerate() {
            for (t, &v) in taps.iter().enumerate() {
                g[t][l] = v;
            }
        }
        // G g: rows g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2 of the kernel's rows.
        let mut gg = [[[0.0f32; LANES]; 3]; 4];
        for l in 0..LANES {
            for c in 0..3 {
                let (a, b, d) = (g[c][l], g[3 + c][l], g[6 + c][l]);
                gg[0][c][l] = a;
                gg[1][c][l] = 0.5 * (a + b + d);
                gg[2][c][l] = 0.5 * (a - b + d);
                gg[3][c][l] = d;
            }
        }
        // (G g) G^T: the same combination of each row's three columns.
        let mut out = [[0.0f32; LANES]; ENTRIES];
        for r in 0..4 {
            for l in 0..LANES {
                let (a, b, d) = (gg[r][0][l], gg[r][1][l], gg[r][2][l]);
                out[4 * r][l] = a;
                out[4 * r + 1][l] = 0.5 * (a + b + d);
                out[4 * r + 2][l] = 0.5 * (a - b + d);
                out[4 * r + 3][l] = d;
            }
        }
        for (e, values) in out.iter().enumerate() {
            u[e * c_in + first..][..lanes].copy_from_slice(&values[..lanes]);
        }
    }
}

widest_simd!(fn transform_kernels_adjoint_simd => transform_kernels_adjoint(
    partials: &[Vec<f32>], at: [usize; 3], dw: &mut [f32]
));

/// dw [c_in, 3, 3] = G^T dU G for output channel o, dU the sum of the `partials` [16][c_out][c_in];
/// a block of input channels at a time, as in [`transform_kernels`].
#[inline(always)]
fn transform_kernels_adjoint(partials: &[Vec<f32>], [o, c_out, c_in]: [usize; 3], dw: &mut [f32]) {
    const LANES: usize = 16;
    // G^T (a, b, c, d) = (a + (b + c) / 2, (b - c) / 2, (b + c) / 2 + d).
    let contract = |[a, b, c, d]: [f32; 4]| [a + 0.5 * (b + c), 0.5 * (b - c), 0.5 * (b + c) + d];
    for first in (0..c_in).step_by(LANES) {
        let lanes = LANES.min(c_in - first);
        let mut du = [[0.0f32; LANES]; ENTRIES];
        for partial in partials {
            for (e, sums) in du.iter_mut().enumerate() {
                let row = &partial[(e * c_out + o) * c_in + first..][..lanes];
                sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
        }
        // G^T dU: each column's four entries to three; then (G^T dU) G: each row's.
        let mut rows = [[[0.0f32; LANES]; 4]; 3];
        for c in 0..4 {
            for l in 0..LANES {
                let column = contract([du[c][l], du[4 + c][l], du[8 + c][l], du[12 + c][l]]);
                for (r, v) in column.into_iter().enumerate() {
                    rows[r][c][l] = v;
                }
            }
        }
        let mut taps = [[0.0f32; 9]; LANES];
        for (r, row) in rows.iter().enumerate() {
            for (l, taps) in taps.iter_mut().enumerate() {
                let values = contract([row[0][l], row[1][l], row[2][l], row[3][l]]);
                taps[3 * r..3 * r + 3].copy_from_slice(&values);
            }
        }
        for (out, taps) in dw[first * 9..][..lanes * 9].chunks_exact_mut(9).zip(&taps) {
            out.copy_from_slice(taps);
        }
    }
}

/// The sizes of one convolution as this module sees it: `from` channels in, `to` out.
#[derive(Clone, Copy)]
struct Planes {
    from: usize,
    to: usize,
    h: usize,
    w: usize,
}

impl Planes {
    /// The index of tile (ty, tx) of an image among a group's tiles: (ty, tx, image) in
    /// row-major order, so that the same tile of every image sits together and the transforms
    /// run over rows of w / 2 x images values, long even for 4x4 planes.
    #[inline(always)]
    fn tile(&self, images: usize, image: usize, ty: usize, tx: usize) -> usize {
        (ty * (self.w / 2) + tx) * images + image
    }

    /// Tiles across a row (w / 2) and in a plane.
    fn tiles(&self) -> (usize, usize) {
        (self.w / 2, self.h / 2 * (self.w / 2))
    }
}

/// Reused buffers of one worker: the transformed input V [16][from][tiles], the products
/// M [16][to][tiles], and the transforms' intermediate values.
#[derive(Default)]
struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
    work: Vec<f32>,
}

/// out [B, to, h, w] = the convolution of x [B, from, h, w] with `kernels` (or, with `adjoint`,
/// with their rotations and swapped channels), group by group of images.
fn convolve(x: &[f32], shape: &ConvShape, kernels: &Kernels, adjoint: bool) -> Vec<f32> {
    let (from, to) =
        if adjoint { (kernels.c_out, kernels.c_in) } else { (kernels.c_in, kernels.c_out) };
    let planes = Planes { from, to, h: shape.h, w: shape.w };
    let (plane_in, plane_out) = (from * shape.h * shape.w, to * shape.h * shape.w);
    let (_, tiles) = planes.tiles();
    let per_group = super::kernel::group_size(shape.batch, tiles, TILES_PER_PRODUCT);
    let mut out = crate::buffer::uninit(shape.batch * plane_out);
    let group = |scratch: &mut Scratch, (out, x): (&mut [MaybeUninit<f32>], &[f32])| {
        let images = x.len() / plane_in;
        let n = images * tiles;
        scratch.v.resize(ENTRIES * from * n, 0.0);
        scratch.m.resize(ENTRIES * to * n, 0.0);
        transform_input_simd(x, planes, &mut scratch.v, &mut scratch.work);
        for e in 0..ENTRIES {
            let product = Product {
                dims: [to, n, from],
                lhs: kernels.operand(e, adjoint),
                rhs: (&scratch.v[e * from * n..][..from * n], [n, 1]),
            };
            let m = &mut scratch.m[e * to * n..][..to * n];
            // SAFETY: the product writes f32 values only.
            product.write_to(unsafe { crate::buffer::as_uninit(m) });
        }
        transform_output_simd(&scratch.m, planes, images, out, &mut scratch.work);
    };
    #[cfg(not(target_arch = "wasm32"))]
    out.par_chunks_mut(per_group * plane_out)
        .zip(x.par_chunks(per_group * plane_in))
        .for_each_init(Scratch::default, group);
    #[cfg(target_arch = "wasm32")]
    {
        let mut scratch = Scratch::default();
        out.chunks_mut(per_group * plane_out)
            .zip(x.chunks(per_group * plane_in))
            .for_each(|pair| group(&mut scratch, pair));
    }
    // SAFETY: the groups cover `out`, and each output transform writes every value of its part.
    unsafe { crate::buffer::assume_init(out) }
}

widest_simd!(fn transform_input_simd => transform_input(
    x: &[f32], planes: Planes, v: &mut [f32], work: &mut Vec<f32>
));

/// v [16][from][images tiles] = B^T d B of every tile d of the images x [images, from, h, w],
/// tiles in [`Planes::tile`]'s order.
///
/// One input channel at a time, all images of the group together, so that the arithmetic runs
/// over long rows even for 4x4 planes. The padded planes (p[y][x] = x[y - 1][x - 1], zero off
/// the plane) are split into four phases q_ab[i][k] = p[2i + a][2k + b], laid out as
/// [i][k][image] with k up to w / 2 (one past the last tile column): entry (j, c) of tile
/// (ty, tx) is then q_{j mod 2, c mod 2} one row or one column on from (ty, tx) for j, c >= 2,
/// so d B is one pass over the phases (the images of the last column are never read), and
/// B^T (d B) one pass per row of tiles.
#[inline(always)]
fn transform_input(x: &[f32], planes: Planes, v: &mut [f32], work: &mut Vec<f32>) {
    let Planes { from, h, w, .. } = planes;
    let (across, tiles) = planes.tiles();
    let images = x.len() / (from * h * w);
    let n = images * tiles;
    let column = images;
    let row = (across + 1) * column;
    let len = (h / 2 + 1) * row;
    // q: 4 phases, then d B: [a][c] for row phase a, each `len` long.
    work.resize((4 + 8) * len, 0.0);
    let (q, db) = work.split_at_mut(4 * len);
    for ch in 0..from {
        for i in 0..=h / 2 {
            for a in 0..2 {
                let (even, odd) = q[2 * a * len..][..2 * len].split_at_mut(len);
                let (even, odd) = (&mut even[i * row..][..row], &mut odd[i * row..][..row]);
                // Input row 2i + a - 1: p's even columns are [0, x1, x3, ...], its odd
                // columns [x0, x2, ..., 0].
                let Some(y) = (2 * i + a).checked_sub(1).filter(|&y| y < h) else {
                    even.fill(0.0);
                    odd.fill(0.0);
                    continue;
                };
                even[..column].fill(0.0);
                odd[across * column..].fill(0.0);
                for image in 0..images {
                    let input = &x[((image * from + ch) * h + y) * w..][..w];
                    let even = even[column + image..].iter_mut().step_by(column);
                    let odd = odd[image..].iter_mut().step_by(column);
                    for ((e, o), pair) in even.zip(odd).zip(input.chunks_exact(2)) {
                        *o = pair[0];
                        *e = pair[1];
                    }
                }
            }
        }
        // d B along the columns: (a0, a1, a2, a3) = (q_a0[k], q_a1[k], q_a0[k + 1], q_a1[k + 1]).
        let last = len - column;
        for a in 0..2 {
            let (q0, q1) = (&q[2 * a * len..][..len], &q[(2 * a + 1) * len..][..len]);
            let (a0, a1, a2, a3) = (&q0[..last], &q1[..last], &q0[column..], &q1[column..]);
            let out = |c: usize| (4 * a + c) * len;
            combine(&mut db[out(0)..][..last], a0, a2, |a0, a2| a0 - a2);
            combine(&mut db[out(1)..][..last], a1, a2, |a1, a2| a1 + a2);
            combine(&mut db[out(2)..][..last], a2, a1, |a2, a1| a2 - a1);
            combine(&mut db[out(3)..][..last], a1, a3, |a1, a3| a1 - a3);
        }
        // B^T along the rows, a row of tiles at a time into its place in v: rows j = 0..4 of
        // a tile are phase (j mod 2), (j / 2) rows on.
        let span = across * column;
        for ty in 0..h / 2 {
            for c in 0..4 {
                let d = |a: usize, on: usize| &db[(4 * a + c) * len + (ty + on) * row..][..span];
                let (d0, d1, d2, d3) = (d(0, 0), d(1, 0), d(0, 1), d(1, 1));
                let out = |r: usize| ((4 * r + c) * from + ch) * n + ty * span;
                combine(&mut v[out(0)..][..span], d0, d2, |d0, d2| d0 - d2);
                combine(&mut v[out(1)..][..span], d1, d2, |d1, d2| d1 + d2);
                combine(&mut v[out(2)..][..span], d2, d1, |d2, d1| d2 - d1);
                combine(&mut v[out(3)..][..span], d1, d3, |d1, d3| d1 - d3);
            }
        }
    }
}

/// out[i] = f(a[i], b[i]).
#[inline(always)]
fn combine(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&a, &b))| *o = f(a, b));
}

widest_simd!(fn transform_output_simd => transform_output(
    m: &[f32], planes: Planes, images: usize, out: &mut [MaybeUninit<f32>], work: &mut Vec<f32>
));

/// out [images, to, h, w] = A^T M A of every tile, from m [16][to][images tiles]: one output
/// channel at a time, over all tiles of the group at once.
#[inline(always)]
fn transform_output(
    m: &[f32],
    planes: Planes,
    images: usize,
    out: &mut [MaybeUninit<f32>],
    work: &mut Vec<f32>,
) {
    let Planes { to, h, w, .. } = planes;
    let (_, tiles) = planes.tiles();
    let n = images * tiles;
    // A^T M: [r][c] for rows r = 0, 1; then (A^T M) A: [r][c] for r, c = 0, 1; each n long.
    work.resize((8 + 4) * n, 0.0);
    let (atm, y) = work.split_at_mut(8 * n);
    for o in 0..to {
        let entry = |r: usize, c: usize| &m[((4 * r + c) * to + o) * n..][..n];
        // Row 0 = M0 + M1 + M2, row 1 = M1 - M2 - M3 (M's rows, column by column).
        for c in 0..4 {
            let (m0, m1, m2, m3) = (entry(0, c), entry(1, c), entry(2, c), entry(3, c));
            let (row0, row1) = atm.split_at_mut(4 * n);
            let (row0, row1) = (&mut row0[c * n..][..n], &mut row1[c * n..][..n]);
            for (((s0, s1), (&a, &b)), (&c, &d)) in
                row0.iter_mut().zip(row1.iter_mut()).zip(m0.iter().zip(m1)).zip(m2.iter().zip(m3))
            {
                *s0 = a + b + c;
                *s1 = b - c - d;
            }
        }
        // The same combination of each row's columns.
        for r in 0..2 {
            let column = |c: usize| &atm[(4 * r + c) * n..][..n];
            let (c0, c1, c2, c3) = (column(0), column(1), column(2), column(3));
            let (left, right) = y[2 * r * n..][..2 * n].split_at_mut(n);
            for (((l, r), (&a, &b)), (&c, &d)) in
                left.iter_mut().zip(right.iter_mut()).zip(c0.iter().zip(c1)).zip(c2.iter().zip(c3))
            {
                *l = a + b + c;
                *r = b - c - d;
            }
        }
        // Each tile's 2x2 outputs to its place: rows 2 ty and 2 ty + 1, columns 2 tx, 2 tx + 1.
        let [y00, y01, y10, y11] = [0, 1, 2, 3].map(|k| &y[k * n..][..n]);
        for image in 0..images {
            let plane = &mut out[(image * to + o) * h * w..][..h * w];
            for (ty, rows) in plane.chunks_exact_mut(2 * w).enumerate() {
                let (top, bottom) = rows.split_at_mut(w);
                let (top, bottom) = (top.chunks_exact_mut(2), bottom.chunks_exact_mut(2));
                for (tx, (top, bottom)) in top.zip(bottom).enumerate() {
                    let t = planes.tile(images, image, ty, tx);
                    top[0].write(y00[t]);
                    top[1].write(y01[t]);
                    bottom[0].write(y10[t]);
                    bottom[1].write(y11[t]);
                }
            }
        }
    }
}

widest_simd!(fn transform_output_adjoint_simd => transform_output_adjoint(
    dy: &[f32], planes: Planes, dm: &mut [f32], work: &mut Vec<f32>
));

/// dm [16][to][images tiles] = A dY A^T of every tile's 2x2 gradient dY, from
/// dy [images, to, h, w]: the adjoint of [`transform_output`], one output channel at a time.
#[inline(always)]
fn transform_output_adjoint(dy: &[f32], planes: Planes, dm: &mut [f32], work: &mut Vec<f32>) {
    let Planes { to, h, w, .. } = planes;
    let (_, tiles) = planes.tiles();
    let images = dy.len() / (to * h * w);
    let n = images * tiles;
    // The tiles' dY [r][c] (r, c = 0, 1), then A along the columns: [r][c] for c = 0..4.
    work.resize((4 + 8) * n, 0.0);
    let (tile, da) = work.split_at_mut(4 * n);
    for o in 0..to {
        let (d00, rest) = tile.split_at_mut(n);
        let (d01, rest) = rest.split_at_mut(n);
        let (d10, d11) = rest.split_at_mut(n);
        for image in 0..images {
            let plane = &dy[(image * to + o) * h * w..][..h * w];
            for (ty, rows) in plane.chunks_exact(2 * w).enumerate() {
                let (top, bottom) = rows.split_at(w);
                let (top, bottom) = (top.chunks_exact(2), bottom.chunks_exact(2));
                for (tx, (top, bottom)) in top.zip(bottom).enumerate() {
                    let t = planes.tile(images, image, ty, tx);
                    (d00[t], d01[t], d10[t], d11[t]) = (top[0], top[1], bottom[0], bottom[1]);
                }
            }
        }
        // A (a, b) = (a, a + b, a - b, -b), along each row's two columns, then each column's
        // two rows.
        for r in 0..2 {
            let (a, b) = (&tile[2 * r * n..][..n], &tile[(2 * r + 1) * n..][..n]);
            let out = &mut da[4 * r * n..][..4 * n];
            let (c0, rest) = out.split_at_mut(n);
            let (c1, rest) = rest.split_at_mut(n);
            let (c2, c3) = rest.split_at_mut(n);
            c0.copy_from_slice(a);
            combine(c1, a, b, |a, b| a + b);
            combine(c2, a, b, |a, b| a - b);
            c3.iter_mut().zip(b).for_each(|(o, &b)| *o = -b);
        }
        for c in 0..4 {
            let (a, b) = (&da[c * n..][..n], &da[(4 + c) * n..][..n]);
            let at = |r: usize| ((4 * r + c) * to + o) * n;
            dm[at(0)..][..n].copy_from_slice(a);
            combine(&mut dm[at(1)..][..n], a, b, |a, b| a + b);
            combine(&mut dm[at(2)..][..n], a, b, |a, b| a - b);
            dm[at(3)..][..n].iter_mut().zip(b).for_each(|(o, &b)| *o = -b);
        }
    }
}
