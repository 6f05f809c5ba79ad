//! Do the temperatures adapt to the pair? Each head's similarity s and temperature tau for three
//! kinds of pairs of test images: two augmented views of one image (the positives of training),
//! views of two images of one class, and views of images of different classes.

use amcl_core::prelude::*;
use anyhow::Result;
use burn::prelude::*;

use crate::data::Dataset;

/// Mean and spread of one quantity over the pairs of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Moments {
    /// Mean.
    pub mean: f32,
    /// Standard deviation over the pairs.
    pub std: f32,
}

impl Moments {
    fn of(values: &[f32]) -> Self {
        if values.is_empty() {
            return Self { mean: f32::NAN, std: f32::NAN };
        }
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        Self { mean: mean as f32, std: var.sqrt() as f32 }
    }
}

/// s and tau of one kind of pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairKind {
    /// Cosine similarity.
    pub similarity: Moments,
    /// Adaptive temperature.
    pub tau: Moments,
    /// Number of pairs.
    pub pairs: usize,
}

/// One head's pairs by kind.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeadSpread {
    pub head: usize,
    /// Two views of one image.
    pub views: PairKind,
    /// Views of two images of one class.
    pub same_class: PairKind,
    /// Views of images of different classes.
    pub other_class: PairKind,
}

/// Images used: a seeded sample of the test set (folders list their images class by class, so
/// the first ones would all be of one class).
pub const IMAGES: usize = 512;

/// Embeds two augmented views (seeded, `augs`) of [`IMAGES`] test images drawn with `seed` with
/// `model` (inference mode) and sorts every pair (view a of image i, view b of image j) into a
/// kind. A kind without pairs (a test set of one class) has `pairs` 0 and NaN moments.
pub fn temperature_spread(
    model: &AmclModel,
    test: &Dataset,
    augs: AugmentationSet,
    seed: u64,
    device: &Device,
) -> Result<Vec<HeadSpread>> {
    let n = IMAGES.min(test.len());
    let mut indices: Vec<usize> = (0..test.len()).collect();
    amcl_core::rng::Rng::new(seed).shuffle(&mut indices);
    indices.truncate(n);
    let images = test.batch(&indices, device);
    let mut augmenter = Augmenter::new(augs, AugmentConfig::new(), seed);
    let (a, b) = augmenter.two_views(images)?;
    let z_a = model.project_normalized(model.features(a));
    let z_b = model.project_normalized(model.features(b));
    let similarity = z_a.clone().matmul(z_b.clone().transpose());
    let tau = model.pairwise_temperatures(z_a, z_b);
    let read = |t: Tensor<3>| -> Result<Vec<f32>> {
        t.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))
    };
    let (similarity, tau) = (read(similarity)?, read(tau)?);
    let labels: Vec<usize> = indices.iter().map(|&i| test.labels[i]).collect();
    let heads = model.num_heads();
    Ok((0..heads)
        .map(|c| {
            let mut kinds: [(Vec<f32>, Vec<f32>); 3] = Default::default();
            for i in 0..n {
                for j in 0..n {
                    let kind = if i == j {
                        0
                    } else if labels[i] == labels[j] {
                        1
                    } else {
                        2
                    };
                    let at = (c * n + i) * n + j;
                    kinds[kind].0.push(similarity[at]);
                    kinds[kind].1.push(tau[at]);
                }
            }
            let kind = |(s, t): &(Vec<f32>, Vec<f32>)| PairKind {
                similarity: Moments::of(s),
                tau: Moments::of(t),
                pairs: s.len(),
            };
            HeadSpread {
                head: c,
                views: kind(&kinds[0]),
                same_class: kind(&kinds[1]),
                other_class: kind(&kinds[2]),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_the_mean_and_population_std() {
        let m = Moments::of(&[1.0, 3.0]);
        assert_eq!((m.mean, m.std), (2.0, 1.0));
    }
}
