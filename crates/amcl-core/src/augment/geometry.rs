//! Crop, flip and blur as per-image linear maps of rows and columns:
//! `out = L_b X R_b`, with L_b = G_y A_y ([out_h, H]) and R_b = A_x^T G_x^T ([W, out_w]),
//! where A resamples the crop box bilinearly (flipped for a mirror) and G is a Gaussian blur with
//! reflected borders.

use burn::prelude::*;

use super::ViewParams;
use crate::rng::Rng;

/// torchvision's RandomResizedCrop box (top, left, height, width), scale in [min_scale, 1],
/// aspect ratio in [3/4, 4/3] (log-uniform); falls back to the whole image after 10 tries.
pub fn sample_crop(h: usize, w: usize, min_scale: f32, rng: &mut Rng) -> (f32, f32, f32, f32) {
    let (hf, wf) = (h as f32, w as f32);
    let area = hf * wf;
    let (log_lo, log_hi) = ((3.0f32 / 4.0).ln(), (4.0f32 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.range(min_scale, 1.0);
        let ratio = rng.range(log_lo, log_hi).exp();
        let cw = (target * ratio).sqrt();
        let ch = (target / ratio).sqrt();
        if cw <= wf && ch <= hf {
            let top = rng.uniform() * (hf - ch);
            let left = rng.uniform() * (wf - cw);
            return (top, left, ch, cw);
        }
    }
    (0.0, 0.0, hf, wf)
}

/// Bilinear resampling matrix [out, len]: output pixel o samples the input at
/// `start + (o + 0.5) * extent / out - 0.5` (half-pixel centres), clamped to the image.
pub fn resample_matrix(len: usize, start: f32, extent: f32, out: usize, flip: bool) -> Vec<f32> {
    let mut m = vec![0.0; out * len];
    for o in 0..out {
        let src_o = if flip { out - 1 - o } else { o };
        let pos =
            (start + (src_o as f32 + 0.5) * extent / out as f32 - 0.5).clamp(0.0, (len - 1) as f32);
        let i0 = pos.floor() as usize;
        let i1 = (i0 + 1).min(len - 1);
        let t = pos - i0 as f32;
        m[o * len + i0] += 1.0 - t;
        m[o * len + i1] += t;
    }
    m
}

/// Gaussian blur matrix [len, len] with reflected borders; kernel radius ceil(3 sigma).
pub fn blur_matrix(len: usize, sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil().max(1.0) as isize;
    let weights: Vec<f32> =
        (-radius..=radius).map(|k| (-(k * k) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = weights.iter().sum();
    let mut m = vec![0.0; len * len];
    for o in 0..len as isize {
        for (k, wk) in (-radius..=radius).zip(&weights) {
            let j = reflect(o + k, len as isize);
            m[o as usize * len + j] += wk / total;
        }
    }
    m
}

fn reflect(i: isize, len: isize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len - 1);
    let r = i.rem_euclid(period);
    (if r < len { r } else { period - r }) as usize
}

/// Row-major product of [n, k] and [k, m].
fn matmul(a: &[f32], b: &[f32], n: usize, k: usize, m: usize) -> Vec<f32> {
    let mut out = vec![0.0; n * m];
    for i in 0..n {
        for p in 0..k {
            let a_ip = a[i * k + p];
            if a_ip != 0.0 {
                for j in 0..m {
                    out[i * m + j] += a_ip * b[p * m + j];
                }
            }
        }
    }
    out
}

fn transpose(a: &[f32], n: usize, m: usize) -> Vec<f32> {
    let mut t = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            t[j * n + i] = a[i * m + j];
        }
    }
    t
}

/// The left [out_h, H] and right [W, out_w] matrices of one view.
pub fn view_matrices(
    p: &ViewParams,
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (top, left, ch, cw) = p.crop;
    let mut rows = resample_matrix(h, top, ch, out_h, false);
    let mut cols = resample_matrix(w, left, cw, out_w, p.flip);
    if let Some(sigma) = p.blur_sigma {
        rows = matmul(&blur_matrix(out_h, sigma), &rows, out_h, out_h, h);
        cols = matmul(&blur_matrix(out_w, sigma), &cols, out_w, out_w, w);
    }
    (rows, transpose(&cols, out_w, w))
}

/// Crops, flips and blurs each image of `images` [B, C, H, W] to [B, C, out_h, out_w].
pub fn apply(images: Tensor<4>, params: &[ViewParams], out_h: usize, out_w: usize) -> Tensor<4> {
    let [b, c, h, w] = images.dims();
    let device = images.device();
    let mut left = Vec::with_capacity(b * out_h * h);
    let mut right = Vec::with_capacity(b * w * out_w);
    for p in params {
        let (l, r) = view_matrices(p, h, w, out_h, out_w);
        left.extend(l);
        right.extend(r);
    }
    let left = Tensor::<4>::from_data(TensorData::new(left, [b, 1, out_h, h]), &device)
        .expand([b, c, out_h, h]);
    let right = Tensor::<4>::from_data(TensorData::new(right, [b, 1, w, out_w]), &device)
        .expand([b, c, w, out_w]);
    left.matmul(images).matmul(right)
}
