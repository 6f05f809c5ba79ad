//! Pair scoring: how each head and its adaptive temperature score one pair of images. Used by
//! `amcl-train score` and the browser demo, identically on every device.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{AmclError, Result};
use crate::loss::{l2_normalize, omega};
use crate::model::AmclModel;

/// One head's view of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeadScore {
    /// Head index c (0-based).
    pub head: usize,
    /// Cosine similarity s of the two projections.
    pub similarity: f32,
    /// Adaptive positive temperature tau+ of the pair in this head (the model's phi).
    pub tau_pos: f32,
    /// Scaled score s / tau+.
    pub scaled: f32,
    /// The Omega term as it enters the objective, beta * Omega(tau+).
    pub omega: f32,
}

/// The whole score of a pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairScore {
    /// Per head.
    pub heads: Vec<HeadScore>,
    /// Combined AMCL score: sum_c (s_c / tau_c - beta Omega(tau_c)), the negated positive part of
    /// the objective, i.e. the head-wise Gaussian log-likelihood of the pair up to a constant.
    pub amcl_score: f32,
}

/// The device-side part of [`score_pair`]: a [C, 4] table (s, tau+, s/tau+, beta Omega(tau+)).
pub fn score_table(
    model: &AmclModel,
    image_a: Tensor<4>,
    image_b: Tensor<4>,
    beta: f32,
) -> Result<Tensor<2>> {
    let [b, _, _, _] = image_a.dims();
    if b != 1 || image_b.dims() != image_a.dims() {
        return Err(AmclError::Shape {
            context: "score_pair: two images [1, 3, S, S]".into(),
            expected: format!("{:?} twice", [1, 3, model.image_size, model.image_size]),
            actual: format!("{:?} and {:?}", image_a.dims(), image_b.dims()),
        });
    }
    let images = Tensor::cat(vec![image_a, image_b], 0);
    let features = model.try_features(images)?;
    let mut rows = Vec::with_capacity(model.num_heads());
    for (c, z) in model.project(features).into_iter().enumerate() {
        let [_, d] = z.dims();
        let z = l2_normalize(z);
        let z_a = z.clone().slice([0..1, 0..d]);
        let z_b = z.slice([1..2, 0..d]);
        let similarity = (z_a.clone() * z_b.clone()).sum_dim(1).reshape([1]);
        let tau = model.paired_temperature(c, z_a, z_b);
        let scaled = similarity.clone() / tau.clone();
        let omega_term = omega(tau.clone(), d).mul_scalar(beta);
        rows.push(Tensor::cat(vec![similarity, tau, scaled, omega_term], 0));
    }
    Ok(Tensor::stack(rows, 0))
}

/// Turns the [C, 4] table of [`score_table`] into a [`PairScore`].
pub fn pair_score_from_table(values: &[f32]) -> PairScore {
    let heads: Vec<HeadScore> = values
        .chunks(4)
        .enumerate()
        .map(|(head, r)| HeadScore {
            head,
            similarity: r[0],
            tau_pos: r[1],
            scaled: r[2],
            omega: r[3],
        })
        .collect();
    let amcl_score = heads.iter().map(|h| h.scaled - h.omega).sum();
    PairScore { heads, amcl_score }
}

/// Scores a pair of images [1, 3, S, S] in [0, 1] (synchronous read; use [`score_table`] and
/// `into_data_async` on WebGPU).
pub fn score_pair(
    model: &AmclModel,
    image_a: Tensor<4>,
    image_b: Tensor<4>,
    beta: f32,
) -> Result<PairScore> {
    let table = score_table(model, image_a, image_b, beta)?;
    let values = table
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| AmclError::NonFinite(format!("reading scores: {e:?}")))?;
    Ok(pair_score_from_table(&values))
}
