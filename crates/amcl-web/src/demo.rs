//! What the page computes, independent of the browser: load weights, turn uploaded image bytes
//! into (optionally augmented) views, and score them per head. Results are read from the device
//! with `into_data_async`, which WebGPU requires.

// Natively (the bin only prints a hint), this module is used by the tests alone.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use amcl_core::augment::{AugmentationSet, Augmenter, Strengths};
use amcl_core::error::AmclError;
use amcl_core::input::{decode_chw, to_tensor};
use amcl_core::model::AmclModel;
use amcl_core::score::{HeadScore, pair_score_from_table, score_table};
use amcl_core::weights::{self, Manifest};
use burn::module::Module;
use burn::prelude::*;
use serde::Serialize;

use crate::projection::{Projection, principal_components};

/// SimCLR's fixed temperature, for the single-head comparison.
pub const SIMCLR_TEMPERATURE: f32 = 0.5;

/// A loaded model on a device.
pub struct Demo {
    model: AmclModel,
    manifest: Manifest,
    device: Device,
    /// Which backend runs it, e.g. `WebGPU` or `CPU (wasm)`.
    pub backend: String,
}

/// What the page shows about the loaded model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub backend: String,
    pub method: String,
    pub heads: usize,
    pub dim: usize,
    pub backbone: String,
    pub image_size: usize,
    pub beta: f32,
    pub params: usize,
}

/// One view as the page draws it: RGBA bytes, `side x side`.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub side: usize,
    pub rgba: Vec<u8>,
}

/// What a single-head, fixed-temperature SimCLR would say (head 0, t = 0.5, the authors' tau).
#[derive(Debug, Clone, Serialize)]
pub struct SimclrScore {
    pub similarity: f32,
    pub temperature: f32,
    pub score: f32,
}

/// The score of a pair, per head and combined, with the views that were scored.
#[derive(Debug, Clone, Serialize)]
pub struct PairReport {
    pub backend: String,
    pub heads: Vec<HeadScore>,
    pub amcl_score: f32,
    pub simclr: SimclrScore,
    pub views: [View; 2],
}

/// One head's similarity matrix between view A of image i (rows) and view B of image j
/// (columns): positives on the diagonal.
#[derive(Debug, Clone, Serialize)]
pub struct HeadMatrix {
    pub head: usize,
    /// Cosine similarities, row-major `n x n`.
    pub similarity: Vec<f32>,
    /// Adaptive temperatures of each pair, row-major `n x n`.
    pub tau: Vec<f32>,
    /// Per row, the column of the hardest negative (largest s/tau off the diagonal).
    pub hardest: Vec<usize>,
    /// The head's embeddings of view A of every image, then of view B, in the plane of their
    /// two principal components (`2n` points; image i's positives are points i and n + i).
    pub projection: Projection,
}

/// Similarity matrices of several images, per head.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixReport {
    pub backend: String,
    pub n: usize,
    pub heads: Vec<HeadMatrix>,
}

async fn read(tensor: Tensor<2>) -> Result<Vec<f32>, AmclError> {
    let data = tensor
        .into_data_async()
        .await
        .map_err(|e| AmclError::NonFinite(format!("reading from the device: {e:?}")))?;
    data.convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| AmclError::NonFinite(format!("reading from the device: {e:?}")))
}

impl Demo {
    /// Loads weights (burnpack + manifest, as written by `amcl-train export`) onto `device`.
    pub fn new(bytes: &[u8], device: Device, backend: &str) -> Result<Self, AmclError> {
        let (model, manifest) = weights::from_bytes(bytes, &device)?;
        Ok(Self { model, manifest, device, backend: backend.to_string() })
    }

    /// The loaded model.
    #[cfg(all(test, not(target_arch = "wasm32")))]
    pub fn model(&self) -> &AmclModel {
        &self.model
    }

    /// The loaded model, in words.
    pub fn info(&self) -> ModelInfo {
        let m = &self.manifest.model;
        ModelInfo {
            backend: self.backend.clone(),
            method: self.manifest.method.clone(),
            heads: m.heads,
            dim: m.dim,
            backbone: m.backbone.name().to_string(),
            image_size: m.image_size,
            beta: self.manifest.beta,
            params: self.model.num_params(),
        }
    }

    fn side(&self) -> usize {
        self.manifest.model.image_size
    }

    /// Decoded images as a batch `[n, 3, S, S]`.
    fn batch(&self, images: &[(&[u8], &str)]) -> Result<Tensor<4>, AmclError> {
        let decoded: Vec<Vec<u8>> = images
            .iter()
            .map(|(bytes, name)| decode_chw(bytes, self.side(), name))
            .collect::<Result<_, _>>()?;
        let refs: Vec<&[u8]> = decoded.iter().map(Vec::as_slice).collect();
        Ok(to_tensor(&refs, self.side(), &self.device))
    }

    /// The two views of a pair exactly as `amcl-train score` makes them: image B, or a copy of
    /// image A when there is none; each augmented in turn by one augmenter seeded with `seed`
    /// when `augs` is not empty.
    fn views(
        &self,
        a: (&[u8], &str),
        b: Option<(&[u8], &str)>,
        augs: &str,
        seed: u64,
        strengths: &Strengths,
    ) -> Result<(Tensor<4>, Tensor<4>), AmclError> {
        let image_a = self.batch(&[a])?;
        let image_b = match b {
            Some(b) => self.batch(&[b])?,
            None if !augs.is_empty() => image_a.clone(),
            None => {
                return Err(AmclError::InvalidConfig(
                    "give a second image, or choose augmentations to score two views of one".into(),
                ));
            }
        };
        if augs.is_empty() {
            return Ok((image_a, image_b));
        }
        let set: AugmentationSet = augs.parse()?;
        let mut augmenter = Augmenter::new(set, strengths.config()?, seed);
        Ok((augmenter.view(image_a)?, augmenter.view(image_b)?))
    }

    async fn view_rgba(&self, view: Tensor<4>) -> Result<View, AmclError> {
        let side = self.side();
        let values = read(view.reshape([3, side * side])).await?;
        let mut rgba = vec![255u8; 4 * side * side];
        for p in 0..side * side {
            for c in 0..3 {
                rgba[4 * p + c] =
                    (values[c * side * side + p].clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
        Ok(View { side, rgba })
    }

    /// Scores a pair: per head s, tau+, s/tau+, beta*Omega; the AMCL score; the SimCLR view.
    pub async fn score(
        &self,
        a: (&[u8], &str),
        b: Option<(&[u8], &str)>,
        augs: &str,
        seed: u64,
        strengths: &Strengths,
    ) -> Result<PairReport, AmclError> {
        let (view_a, view_b) = self.views(a, b, augs, seed, strengths)?;
        let table = score_table(&self.model, view_a.clone(), view_b.clone(), self.manifest.beta)?;
        let score = pair_score_from_table(&read(table).await?);
        let first = score.heads[0].similarity;
        Ok(PairReport {
            backend: self.backend.clone(),
            simclr: SimclrScore {
                similarity: first,
                temperature: SIMCLR_TEMPERATURE,
                score: first / SIMCLR_TEMPERATURE,
            },
            heads: score.heads,
            amcl_score: score.amcl_score,
            views: [self.view_rgba(view_a).await?, self.view_rgba(view_b).await?],
        })
    }

    /// Per head, the similarity and temperature of view A of every image against view B of
    /// every image (two augmented views per image from `augs`, `strengths` and `seed`), and the
    /// views' embeddings projected onto their two principal components.
    pub async fn matrix(
        &self,
        images: &[(&[u8], &str)],
        augs: &str,
        seed: u64,
        strengths: &Strengths,
    ) -> Result<MatrixReport, AmclError> {
        let n = images.len();
        if n < 2 {
            return Err(AmclError::InvalidConfig(
                "a similarity matrix needs at least two images".into(),
            ));
        }
        let batch = self.batch(images)?;
        let (view_a, view_b) = if augs.is_empty() {
            (batch.clone(), batch)
        } else {
            let mut augmenter = Augmenter::new(augs.parse()?, strengths.config()?, seed);
            augmenter.two_views(batch)?
        };
        let features = self.model.try_features(Tensor::cat(vec![view_a, view_b], 0))?;
        let z = self.model.project_normalized(features);
        let [c, _, d] = z.dims();
        let mut heads = Vec::with_capacity(c);
        for head in 0..c {
            let zc = z.clone().narrow(0, head, 1).reshape([2 * n, d]);
            let projection = principal_components(&read(zc.clone()).await?, d)?;
            let (za, zb) = (zc.clone().narrow(0, 0, n), zc.narrow(0, n, n));
            let similarity = za.clone().matmul(zb.clone().transpose());
            let tau = self.model.pairwise_temperature(head, za, zb);
            let similarity = read(similarity).await?;
            let tau = read(tau).await?;
            let hardest = (0..n)
                .map(|i| {
                    (0..n)
                        .filter(|&j| j != i)
                        .max_by(|&x, &y| {
                            let sx = similarity[i * n + x] / tau[i * n + x];
                            let sy = similarity[i * n + y] / tau[i * n + y];
                            sx.total_cmp(&sy)
                        })
                        .unwrap_or(0)
                })
                .collect();
            heads.push(HeadMatrix { head, similarity, tau, hardest, projection });
        }
        Ok(MatrixReport { backend: self.backend.clone(), n, heads })
    }
}
