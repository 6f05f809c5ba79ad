//! Projection heads: C independent Linear(f, h)-ReLU-Linear(h, d) maps from backbone features
//! to the spaces in which pairs are compared (shared/AMCL.md, "Idea").

use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;

/// One projection head g_c: features [B, f] -> projections [B, d].
#[derive(Module, Debug)]
pub struct ProjectionHead {
    hidden: Linear,
    relu: Relu,
    output: Linear,
}

impl ProjectionHead {
    /// Linear(f, h)-ReLU-Linear(h, d).
    pub fn new(features: usize, hidden: usize, dim: usize, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(features, hidden).init(device),
            relu: Relu::new(),
            output: LinearConfig::new(hidden, dim).init(device),
        }
    }

    /// [B, f] -> [B, d] (not normalised).
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        self.output.forward(self.relu.forward(self.hidden.forward(features)))
    }
}

impl ProjectionHead {
    /// Output dimension d.
    pub fn output_dim(&self) -> usize {
        self.output.weight.dims()[1]
    }
}
