//! Data: the built-in synthetic dataset, which needs no files.
//!
//! Ten classes of 32x32 striped images: a class is one of five stripe orientations times one of
//! two frequencies. Colours, phase, offset, contrast and pixel noise are drawn per image, so the
//! classes differ only in structure and colour is a nuisance, as the augmentations assume; kNN
//! accuracy on it says whether training learned structure.

use amcl_core::rng::Rng;
use burn::prelude::*;

/// Images in [0, 1], `[3, S, S]` each, flattened row-major, with class labels.
pub struct Dataset {
    /// Pixel values, `len * 3 * size * size`.
    pub pixels: Vec<f32>,
    /// Class of each image.
    pub labels: Vec<usize>,
    /// Image side.
    pub size: usize,
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Generates `len` synthetic images of side `size` from `seed`.
    pub fn synthetic(len: usize, size: usize, seed: u64) -> Self {
        let classes = 10;
        let mut rng = Rng::new(seed);
        let mut pixels = Vec::with_capacity(len * 3 * size * size);
        let mut labels = Vec::with_capacity(len);
        for i in 0..len {
            let class = i % classes;
            labels.push(class);
            let angle = (class % 5) as f32 * std::f32::consts::PI / 5.0;
            let freq = if class < 5 { 2.0 } else { 4.5 };
            let fg = palette(rng.below(10));
            let bg = palette(rng.below(10));
            let phase = rng.range(0.0, std::f32::consts::TAU);
            let contrast = rng.range(0.6, 1.0);
            let (dx, dy) = (rng.range(-4.0, 4.0), rng.range(-4.0, 4.0));
            let mut image = vec![0.0; 3 * size * size];
            for y in 0..size {
                for x in 0..size {
                    let (u, v) = ((x as f32 + dx) / size as f32, (y as f32 + dy) / size as f32);
                    let t =
                        (u * angle.cos() + v * angle.sin()) * freq * std::f32::consts::TAU + phase;
                    let mix = 0.5 + 0.5 * contrast * t.sin();
                    for c in 0..3 {
                        let value = mix * fg[c] + (1.0 - mix) * bg[c] + 0.05 * rng.normal();
                        image[(c * size + y) * size + x] = value.clamp(0.0, 1.0);
                    }
                }
            }
            pixels.extend(image);
        }
        Self { pixels, labels, size, classes }
    }

    /// The images at `indices` as a batch tensor `[B, 3, S, S]`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        let per = 3 * self.size * self.size;
        let mut values = Vec::with_capacity(indices.len() * per);
        for &i in indices {
            values.extend_from_slice(&self.pixels[i * per..(i + 1) * per]);
        }
        Tensor::from_data(TensorData::new(values, [indices.len(), 3, self.size, self.size]), device)
    }
}

fn palette(i: usize) -> [f32; 3] {
    const COLOURS: [[f32; 3]; 10] = [
        [0.9, 0.2, 0.2],
        [0.2, 0.8, 0.3],
        [0.2, 0.3, 0.9],
        [0.9, 0.8, 0.2],
        [0.7, 0.2, 0.8],
        [0.2, 0.8, 0.8],
        [0.95, 0.55, 0.1],
        [0.5, 0.5, 0.5],
        [0.1, 0.1, 0.1],
        [0.95, 0.95, 0.95],
    ];
    COLOURS[i % 10]
}
