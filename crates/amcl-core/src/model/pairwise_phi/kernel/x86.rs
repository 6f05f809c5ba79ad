//! The all-pairs loops with their x86 vector instructions written out, for phi's hidden width
//! [`H`]: one generic loop over a [`Vector`], instantiated for AVX-512 (16 lanes) and for AVX2
//! with FMA (8 lanes).
//!
//! The loops do little but vector arithmetic on values in the cores' caches, so their time
//! follows the number of vector instructions per pair and hidden unit, which here is as few as
//! the sums allow:
//!
//! - forward, in the form relu(x + y) = max(y, -x) + x,
//!   `logit[i, j] = sum_k w[k] max(b[j, k], -a[i, k]) + offset[i]` with
//!   `offset[i] = sum_k w[k] a[i, k]`: a maximum and a multiply-add, where relu(x + y) takes a
//!   sum, a maximum and a multiply-add;
//! - backward, `[a[i, k] + b[j, k] > 0] = [a[i, k] > -b[j, k]]`: a compare and two additions
//!   under its mask (AVX2 has no masked addition: an `and` more), with each row's sums kept in
//!   registers while j runs over every row of b, where the portable loop also makes the sum,
//!   selects, and loads and stores the row's sums for each pair.

use std::arch::x86_64::*;

use super::{H, LANES, plain_logits};

/// Rows of a whose logits against a panel stay in registers in the forward pass.
pub const FORWARD_ROWS: usize = 8;

/// Some rows of the logits, as the portable `forward_rows`, with AVX-512.
///
/// # Safety
/// The CPU has AVX-512F (`simd_level` is `Avx512`).
#[target_feature(enable = "avx512f")]
pub unsafe fn forward_rows_avx512(
    a_rows: &[f32],
    b: &[f32],
    panels: &[f32],
    w: &[f32],
    out_rows: &mut [f32],
) {
    // SAFETY: this CPU has AVX-512F (the caller's promise).
    unsafe { forward_rows::<__m512, FORWARD_ROWS>(a_rows, b, panels, w, out_rows) }
}

/// Some rows of the logits, as the portable `forward_rows`, with AVX2 and FMA.
///
/// # Safety
/// The CPU has AVX2 and FMA (`simd_level` is `Avx2` or wider).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn forward_rows_avx2(
    a_rows: &[f32],
    b: &[f32],
    panels: &[f32],
    w: &[f32],
    out_rows: &mut [f32],
) {
    // SAFETY: this CPU has AVX2 and FMA (the caller's promise).
    unsafe { forward_rows::<__m256, FORWARD_ROWS>(a_rows, b, panels, w, out_rows) }
}

/// Some rows' A (complete) and their share of B, as the portable `backward_rows`, from
/// neg_b = -b, with AVX-512: blocks of 8 rows.
///
/// # Safety
/// The CPU has AVX-512F (`simd_level` is `Avx512`).
#[target_feature(enable = "avx512f")]
pub unsafe fn backward_rows_avx512(
    a_rows: &[f32],
    neg_b: &[f32],
    g_rows: &[f32],
    grad_a_rows: &mut [f32],
    grad_b: &mut [f32],
) {
    // SAFETY: this CPU has AVX-512F (the caller's promise).
    unsafe { backward_rows::<__m512, 8>(a_rows, neg_b, g_rows, grad_a_rows, grad_b) }
}

/// As [`backward_rows_avx512`], with AVX2: blocks of 4 rows (16 registers, not 32).
///
/// # Safety
/// The CPU has AVX2 and FMA (`simd_level` is `Avx2` or wider).
#[target_feature(enable = "avx2,fma")]
pub unsafe fn backward_rows_avx2(
    a_rows: &[f32],
    neg_b: &[f32],
    g_rows: &[f32],
    grad_a_rows: &mut [f32],
    grad_b: &mut [f32],
) {
    // SAFETY: this CPU has AVX2 and FMA (the caller's promise).
    unsafe { backward_rows::<__m256, 4>(a_rows, neg_b, g_rows, grad_a_rows, grad_b) }
}

/// One vector register of f32 lanes and the instructions the loops use.
///
/// # Safety
/// Every method needs its type's CPU features, and is inlined into the `#[target_feature]`
/// functions above that call the loops.
trait Vector: Copy {
    /// Lanes per register.
    const WIDTH: usize;
    /// The first [`Self::WIDTH`] values of `values`.
    unsafe fn load(values: &[f32]) -> Self;
    /// Into the first [`Self::WIDTH`] values of `values`.
    unsafe fn store(self, values: &mut [f32]);
    /// x in every lane.
    unsafe fn splat(x: f32) -> Self;
    /// self + other.
    unsafe fn add(self, other: Self) -> Self;
    /// max(self, other) (`other` where either is NaN).
    unsafe fn max(self, other: Self) -> Self;
    /// self * b + c, fused.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// sum += g and sum_b += g in the lanes where x > y.
    unsafe fn add_where_greater(x: Self, y: Self, g: Self, sum: &mut Self, sum_b: &mut Self);
}

impl Vector for __m512 {
    const WIDTH: usize = 16;

    #[inline(always)]
    unsafe fn load(values: &[f32]) -> Self {
        // SAFETY: 16 values in the slice; AVX-512F (the trait's contract).
        unsafe { _mm512_loadu_ps(values[..16].as_ptr()) }
    }

    #[inline(always)]
    unsafe fn store(self, values: &mut [f32]) {
        // SAFETY: as in `load`.
        unsafe { _mm512_storeu_ps(values[..16].as_mut_ptr(), self) }
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: AVX-512F (the trait's contract).
        unsafe { _mm512_set1_ps(x) }
    }

    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        // SAFETY: as in `splat`.
        unsafe { _mm512_add_ps(self, other) }
    }

    #[inline(always)]
    unsafe fn max(self, other: Self) -> Self {
        // SAFETY: as in `splat`.
        unsafe { _mm512_max_ps(self, other) }
    }

    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: as in `splat`.
        unsafe { _mm512_fmadd_ps(self, b, c) }
    }

    #[inline(always)]
    unsafe fn add_where_greater(x: Self, y: Self, g: Self, sum: &mut Self, sum_b: &mut Self) {
        // SAFETY: as in `splat`.
        unsafe {
            let greater = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, y);
            *sum = _mm512_mask_add_ps(*sum, greater, *sum, g);
            *sum_b = _mm512_mask_add_ps(*sum_b, greater, *sum_b, g);
        }
    }
}

impl Vector for __m256 {
    const WIDTH: usize = 8;

    #[inline(always)]
    unsafe fn load(values: &[f32]) -> Self {
        // SAFETY: 8 values in the slice; AVX (the trait's contract).
        unsafe { _mm256_loadu_ps(values[..8].as_ptr()) }
    }

    #[inline(always)]
    unsafe fn store(self, values: &mut [f32]) {
        // SAFETY: as in `load`.
        unsafe { _mm256_storeu_ps(values[..8].as_mut_ptr(), self) }
    }

    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: AVX (the trait's contract).
        unsafe { _mm256_set1_ps(x) }
    }

    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        // SAFETY: as in `splat`.
        unsafe { _mm256_add_ps(self, other) }
    }

    #[inline(always)]
    unsafe fn max(self, other: Self) -> Self {
        // SAFETY: as in `splat`.
        unsafe { _mm256_max_ps(self, other) }
    }

    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: FMA (the trait's contract).
        unsafe { _mm256_fmadd_ps(self, b, c) }
    }

    #[inline(always)]
    unsafe fn add_where_greater(x: Self, y: Self, g: Self, sum: &mut Self, sum_b: &mut Self) {
        // SAFETY: AVX (the trait's contract).
        unsafe {
            let greater = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(x, y), g);
            *sum = _mm256_add_ps(*sum, greater);
            *sum_b = _mm256_add_ps(*sum_b, greater);
        }
    }
}

/// Some rows of the logits in blocks of R rows: for each, -a and the offsets once, then the
/// block against every whole panel ([`forward_block`]); columns past the last whole panel and a
/// last block of fewer rows take the plain loop.
///
/// # Safety
/// The CPU has `V`'s features.
#[inline(always)]
unsafe fn forward_rows<V: Vector, const R: usize>(
    a_rows: &[f32],
    b: &[f32],
    panels: &[f32],
    w: &[f32],
    out_rows: &mut [f32],
) {
    let m = b.len() / H;
    let w: &[f32; H] = w.try_into().expect("the hidden width H");
    for (a_block, out_block) in a_rows.chunks(R * H).zip(out_rows.chunks_mut(R * m)) {
        if a_block.len() < R * H {
            plain_logits(a_block, b, w, out_block, 0);
            continue;
        }
        let neg_a: [[f32; H]; R] =
            std::array::from_fn(|r| std::array::from_fn(|k| -a_block[r * H + k]));
        let offsets: [f32; R] = std::array::from_fn(|r| {
            a_block[r * H..(r + 1) * H].iter().zip(w).map(|(a, w)| a * w).sum()
        });
        let panels = panels.chunks_exact(LANES * H);
        let done = panels.len() * LANES;
        for (p, panel) in panels.enumerate() {
            let panel: &[f32; H * LANES] = panel.try_into().expect("a whole panel");
            for first in (0..LANES).step_by(V::WIDTH) {
                // SAFETY: the CPU has V's features (the caller's promise).
                let sums: [V; R] = unsafe { forward_block(&neg_a, panel, first, w) };
                for (r, (sums, offset)) in sums.into_iter().zip(offsets).enumerate() {
                    let out = &mut out_block[r * m + p * LANES + first..];
                    // SAFETY: as above.
                    unsafe { sums.add(V::splat(offset)).store(out) };
                }
            }
        }
        plain_logits(a_block, b, w, out_block, done);
    }
}

/// sum_k w[k] max(b[j, k], -a[r, k]) for R rows r against the columns first..first + WIDTH of
/// a panel: the sums in registers, one lane per column, while k runs over the hidden units.
///
/// # Safety
/// The CPU has `V`'s features.
#[inline(always)]
unsafe fn forward_block<V: Vector, const R: usize>(
    neg_a: &[[f32; H]; R],
    panel: &[f32; H * LANES],
    first: usize,
    w: &[f32; H],
) -> [V; R] {
    // SAFETY: the CPU has V's features (the caller's promise), here and below.
    let mut sums = [unsafe { V::splat(0.0) }; R];
    for k in 0..H {
        let row = &panel[k * LANES..(k + 1) * LANES];
        let (y, w_k) = unsafe { (V::load(&row[first..]), V::splat(w[k])) };
        for (sums, neg_a) in sums.iter_mut().zip(neg_a) {
            *sums = unsafe { w_k.mul_add(y.max(V::splat(neg_a[k])), *sums) };
        }
    }
    sums
}

/// Some rows' A and their share of B, WIDTH hidden units at a time: blocks of R rows
/// ([`backward_block`]), then the rows left over one by one.
///
/// # Safety
/// The CPU has `V`'s features.
#[inline(always)]
unsafe fn backward_rows<V: Vector, const R: usize>(
    a_rows: &[f32],
    neg_b: &[f32],
    g_rows: &[f32],
    grad_a_rows: &mut [f32],
    grad_b: &mut [f32],
) {
    let m = grad_b.len() / H;
    let whole = a_rows.len() / (R * H);
    for c in (0..H).step_by(V::WIDTH) {
        for r in (0..whole * R).step_by(R) {
            let (a, g, grad_a) = rows(a_rows, g_rows, grad_a_rows, r..r + R, m);
            // SAFETY: the CPU has V's features (the caller's promise).
            unsafe { backward_block::<V, R>(a, neg_b, g, c, grad_a, grad_b) };
        }
        for r in whole * R..a_rows.len() / H {
            let (a, g, grad_a) = rows(a_rows, g_rows, grad_a_rows, r..r + 1, m);
            // SAFETY: as above.
            unsafe { backward_block::<V, 1>(a, neg_b, g, c, grad_a, grad_b) };
        }
    }
}

/// Rows `range` of a [_, H], g [_, m] and grad_a [_, H].
#[inline(always)]
fn rows<'a>(
    a: &'a [f32],
    g: &'a [f32],
    grad_a: &'a mut [f32],
    range: std::ops::Range<usize>,
    m: usize,
) -> (&'a [f32], &'a [f32], &'a mut [f32]) {
    let (start, end) = (range.start, range.end);
    (&a[start * H..end * H], &g[start * m..end * m], &mut grad_a[start * H..end * H])
}

/// Hidden units c..c + WIDTH of R rows against every b_j: A_r = sum_j g_rj [a_r > neg_b_j] in
/// registers, and B_j += sum_r g_rj [a_r > neg_b_j] through memory.
///
/// # Safety
/// The CPU has `V`'s features.
#[inline(always)]
unsafe fn backward_block<V: Vector, const R: usize>(
    a: &[f32],
    neg_b: &[f32],
    g: &[f32],
    c: usize,
    grad_a: &mut [f32],
    grad_b: &mut [f32],
) {
    let m = g.len() / R;
    // SAFETY: the CPU has V's features (the caller's promise), here and below.
    let x: [V; R] = std::array::from_fn(|r| unsafe { V::load(&a[r * H + c..]) });
    let g: [&[f32]; R] = std::array::from_fn(|r| &g[r * m..(r + 1) * m]);
    let mut sums = [unsafe { V::splat(0.0) }; R];
    for (j, (y, grad_b_j)) in neg_b.chunks_exact(H).zip(grad_b.chunks_exact_mut(H)).enumerate() {
        let grad_b_j = &mut grad_b_j[c..];
        let y = unsafe { V::load(&y[c..]) };
        // B_j's sum in two chains (even and odd rows), which halves its latency.
        let mut sum_b = unsafe { [V::load(grad_b_j), V::splat(0.0)] };
        for r in 0..R {
            let g_rj = unsafe { V::splat(g[r][j]) };
            unsafe { V::add_where_greater(x[r], y, g_rj, &mut sums[r], &mut sum_b[r % 2]) };
        }
        unsafe { sum_b[0].add(sum_b[1]).store(grad_b_j) };
    }
    for (r, sums) in sums.into_iter().enumerate() {
        unsafe { sums.store(&mut grad_a[r * H + c..]) };
    }
}
