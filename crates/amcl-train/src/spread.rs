//! Do the temperatures adapt to the pair? Each head's similarity s and temperature tau for three
//! kinds of pairs of test images: two augmented views of one image (the positives of training),
//! views of two images of one class, and views of images of different classes; and by difficulty:
//! each anchor's hardest negatives (the views of other images it is most similar to, which the
//! top-k form trains on) against its easiest, and the correlation of tau with s.

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
    /// Each anchor's [`HARD`] most similar views of other images (hard negatives).
    #[serde(default)]
    pub hardest: PairKind,
    /// Each anchor's [`HARD`] least similar views of other images (easy negatives).
    #[serde(default)]
    pub easiest: PairKind,
    /// Pearson correlation of tau with s over all pairs of views of two images (0 when tau
    /// does not depend on how similar a pair is; negative when more similar pairs get lower
    /// temperatures).
    #[serde(default)]
    pub tau_similarity_correlation: f32,
}

/// Negatives per anchor in [`HeadSpread::hardest`] and [`HeadSpread::easiest`].
pub const HARD: usize = 10;

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
            let mut ranked: [(Vec<f32>, Vec<f32>); 2] = Default::default();
            for i in 0..n {
                // This anchor's negatives, most similar first.
                let row = (c * n + i) * n;
                let mut negatives: Vec<usize> = (0..n).filter(|&j| j != i).collect();
                negatives.sort_by(|&x, &y| similarity[row + y].total_cmp(&similarity[row + x]));
                let k = HARD.min(negatives.len());
                let ends = [&negatives[..k], &negatives[negatives.len() - k..]];
                for (end, js) in ranked.iter_mut().zip(ends) {
                    end.0.extend(js.iter().map(|&j| similarity[row + j]));
                    end.1.extend(js.iter().map(|&j| tau[row + j]));
                }
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
            let (mut s, mut t) = kinds[1].clone();
            s.extend(&kinds[2].0);
            t.extend(&kinds[2].1);
            HeadSpread {
                head: c,
                views: kind(&kinds[0]),
                same_class: kind(&kinds[1]),
                other_class: kind(&kinds[2]),
                hardest: kind(&ranked[0]),
                easiest: kind(&ranked[1]),
                tau_similarity_correlation: correlation(&s, &t),
            }
        })
        .collect())
}

/// Pearson correlation of `x` and `y`; 0 when either is constant.
fn correlation(x: &[f32], y: &[f32]) -> f32 {
    let (mx, my) = (Moments::of(x), Moments::of(y));
    if x.is_empty() || mx.std == 0.0 || my.std == 0.0 {
        return 0.0;
    }
    let cov =
        x.iter().zip(y).map(|(&a, &b)| (a - mx.mean) as f64 * (b - my.mean) as f64).sum::<f64>()
            / x.len() as f64;
    (cov / (mx.std as f64 * my.std as f64)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_is_pearsons() {
        assert!((correlation(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-6);
        assert!((correlation(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-6);
        assert_eq!(correlation(&[1.0, 2.0, 3.0], &[5.0, 5.0, 5.0]), 0.0);
    }

    #[test]
    fn moments_are_the_mean_and_population_std() {
        let m = Moments::of(&[1.0, 3.0]);
        assert_eq!((m.mean, m.std), (2.0, 1.0));
    }
}
