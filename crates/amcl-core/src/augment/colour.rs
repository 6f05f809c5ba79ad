//! Colour jitter and grayscale as per-pixel maps on [B, 3, H, W] images in [0, 1].
//!
//! Jitter applies brightness, contrast, saturation, then hue, in this fixed order (torchvision
//! shuffles the order; a fixed order keeps the batch one set of tensor ops). Hue is a rotation
//! about the gray axis in YIQ space, a linear stand-in for the HSV hue shift. Grayscale uses the
//! ITU-R 601 luma weights and is folded with hue into one 3x3 matrix per image.

use burn::prelude::*;

use super::ViewParams;
use crate::rng::Rng;

/// ITU-R 601 luma weights (R, G, B).
pub const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// Multiplicative factors of one colour jitter (1 = unchanged) and the hue shift in turns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterFactors {
    /// Brightness factor.
    pub brightness: f32,
    /// Contrast factor.
    pub contrast: f32,
    /// Saturation factor.
    pub saturation: f32,
    /// Hue shift in [-0.5, 0.5] turns.
    pub hue: f32,
}

impl JitterFactors {
    /// No change.
    pub const IDENTITY: JitterFactors =
        JitterFactors { brightness: 1.0, contrast: 1.0, saturation: 1.0, hue: 0.0 };

    /// SimCLR's jitter of strength s: factors in [1 - 0.8 s, 1 + 0.8 s], hue in [-0.2 s, 0.2 s].
    pub fn sample(strength: f32, rng: &mut Rng) -> Self {
        let spread = 0.8 * strength;
        Self {
            brightness: rng.range(1.0 - spread, 1.0 + spread),
            contrast: rng.range(1.0 - spread, 1.0 + spread),
            saturation: rng.range(1.0 - spread, 1.0 + spread),
            hue: rng.range(-0.2 * strength, 0.2 * strength),
        }
    }
}

/// 3x3 RGB matrix (row-major) rotating hue by `turns` about the gray axis (via YIQ).
pub fn hue_matrix(turns: f32) -> [f32; 9] {
    let (s, c) = (2.0 * std::f32::consts::PI * turns).sin_cos();
    const TO_YIQ: [f32; 9] = [0.299, 0.587, 0.114, 0.596, -0.274, -0.322, 0.211, -0.523, 0.312];
    const FROM_YIQ: [f32; 9] = [1.0, 0.956, 0.621, 1.0, -0.272, -0.647, 1.0, -1.106, 1.703];
    let rotate = [1.0, 0.0, 0.0, 0.0, c, -s, 0.0, s, c];
    mat3(&FROM_YIQ, &mat3(&rotate, &TO_YIQ))
}

fn mat3(a: &[f32; 9], b: &[f32; 9]) -> [f32; 9] {
    let mut out = [0.0; 9];
    for i in 0..3 {
        for j in 0..3 {
            out[i * 3 + j] = (0..3).map(|k| a[i * 3 + k] * b[k * 3 + j]).sum();
        }
    }
    out
}

/// The per-image 3x3 colour matrix: hue rotation, then grayscale if chosen.
fn channel_matrix(p: &ViewParams) -> [f32; 9] {
    let hue = p.jitter.map_or(JitterFactors::IDENTITY.hue, |j| j.hue);
    let m = hue_matrix(hue);
    if p.grayscale {
        let gray =
            [LUMA[0], LUMA[1], LUMA[2], LUMA[0], LUMA[1], LUMA[2], LUMA[0], LUMA[1], LUMA[2]];
        mat3(&gray, &m)
    } else {
        m
    }
}

/// Luma of [B, 3, H, W] images: [B, 1, H, W].
pub fn luma(x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let w = Tensor::<1>::from_floats(LUMA, &device).reshape([1, 3, 1, 1]);
    (x * w).sum_dim(1)
}

/// Applies each image's jitter and grayscale to `x` [B, 3, H, W]; the result stays in [0, 1].
pub fn apply(x: Tensor<4>, params: &[ViewParams]) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let device = x.device();
    let factors: Vec<JitterFactors> =
        params.iter().map(|p| p.jitter.unwrap_or(JitterFactors::IDENTITY)).collect();
    let per_image = |f: fn(&JitterFactors) -> f32| {
        let values: Vec<f32> = factors.iter().map(f).collect();
        Tensor::<4>::from_data(TensorData::new(values, [b, 1, 1, 1]), &device)
    };
    let mut x = x.clamp(0.0, 1.0);
    if params.iter().any(|p| p.jitter.is_some()) {
        // Brightness: x * f.
        x = (x * per_image(|f| f.brightness)).clamp(0.0, 1.0);
        // Contrast: blend with the mean luma of the image.
        let f = per_image(|f| f.contrast);
        let mean = luma(x.clone()).mean_dims(&[2, 3]);
        x = (x * f.clone() + mean * (f.neg().add_scalar(1.0))).clamp(0.0, 1.0);
        // Saturation: blend with the pixel's luma.
        let f = per_image(|f| f.saturation);
        let gray = luma(x.clone());
        x = (x * f.clone() + gray * (f.neg().add_scalar(1.0))).clamp(0.0, 1.0);
    }
    if params.iter().any(|p| p.grayscale || p.jitter.is_some_and(|j| j.hue != 0.0)) {
        let matrices: Vec<f32> = params.iter().flat_map(channel_matrix).collect();
        let m = Tensor::<3>::from_data(TensorData::new(matrices, [b, 3, 3]), &device);
        x = m.matmul(x.reshape([b, c, h * w])).reshape([b, c, h, w]).clamp(0.0, 1.0);
    }
    x
}
