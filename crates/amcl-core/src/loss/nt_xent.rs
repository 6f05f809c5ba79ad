//! SimCLR's normalised-temperature cross-entropy (NT-Xent).

use burn::prelude::*;

/// Rows scaled to unit L2 norm (a small epsilon keeps zero rows finite).
pub fn l2_normalize<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let norm = x.clone().square().sum_dim(D - 1).sqrt().clamp_min(1e-8);
    x / norm
}

/// Cosine similarity of every row of `a` [N, d] with every row of `b` [M, d]: [N, M].
pub fn cosine_similarity_matrix(a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    l2_normalize(a).matmul(l2_normalize(b).transpose())
}

/// NT-Xent over the 2N views of N images: `z_a`, `z_b` are [N, d], row i of each is a view of
/// image i. Every view is an anchor; its positive is the other view of the same image and its
/// negatives the other 2N - 2 views. Returns [1], the mean over the 2N anchors of
/// `-log softmax_j(s_ij / t)[positive]`, with j ranging over all views but the anchor itself.
pub fn nt_xent(z_a: Tensor<2>, z_b: Tensor<2>, temperature: f32) -> Tensor<1> {
    let [n, _] = z_a.dims();
    let device = z_a.device();
    let z = Tensor::cat(vec![z_a, z_b], 0);
    let logits = cosine_similarity_matrix(z.clone(), z).div_scalar(temperature);
    // Remove the anchor itself from its own softmax.
    let eye = Tensor::<2>::eye(2 * n, &device).bool();
    let logits = logits.mask_fill(eye, -1e9);
    let log_norm = log_sum_exp_rows(logits.clone());
    let positive_index: Vec<i64> = (0..2 * n).map(|i| ((i + n) % (2 * n)) as i64).collect();
    let positive_index =
        Tensor::<2, Int>::from_data(TensorData::new(positive_index, [2 * n, 1]), &device);
    let positive = logits.gather(1, positive_index);
    (log_norm - positive).mean().reshape([1])
}

/// Row-wise log-sum-exp, stabilised by the row maximum: [R, K] -> [R, 1].
pub(crate) fn log_sum_exp_rows<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let max = x.clone().max_dim(D - 1).detach();
    (x - max.clone()).exp().sum_dim(D - 1).log() + max
}
