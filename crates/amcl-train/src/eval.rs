//! Evaluation: the kNN monitor of shared/AMCL.md (cosine similarity, k nearest training
//! features, votes weighted by exp(s / t)).

use amcl_core::loss::l2_normalize;
use amcl_core::model::AmclModel;
use burn::prelude::*;

use crate::data::Dataset;

/// Backbone features of every image of `data`, unit-norm, `[len, f]`.
pub fn embed(model: &AmclModel, data: &Dataset, batch: usize, device: &Device) -> Tensor<2> {
    let indices: Vec<usize> = (0..data.len()).collect();
    let parts = indices
        .chunks(batch)
        .map(|chunk| l2_normalize(model.features(data.batch(chunk, device))))
        .collect();
    Tensor::cat(parts, 0)
}

/// kNN top-1 accuracy (fraction) of `test` features against `train` features.
pub fn knn_top1(
    train: Tensor<2>,
    train_labels: &[usize],
    test: Tensor<2>,
    test_labels: &[usize],
    classes: usize,
    k: usize,
    t: f32,
) -> anyhow::Result<f32> {
    let k = k.min(train_labels.len());
    let sim = test.matmul(train.transpose());
    let (values, indices) = sim.topk_with_indices(k, 1);
    let values: Vec<f32> = values
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let indices: Vec<i64> = indices
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut correct = 0;
    for (row, &label) in test_labels.iter().enumerate() {
        let mut votes = vec![0.0f32; classes];
        for j in 0..k {
            let neighbour = indices[row * k + j] as usize;
            votes[train_labels[neighbour]] += (values[row * k + j] / t).exp();
        }
        let predicted = (0..classes).max_by(|&a, &b| votes[a].total_cmp(&votes[b])).unwrap_or(0);
        correct += usize::from(predicted == label);
    }
    Ok(correct as f32 / test_labels.len().max(1) as f32)
}
