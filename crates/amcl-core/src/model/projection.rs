//! Projection heads: C independent maps from backbone features to the spaces in which pairs are
//! compared (docs/METHOD.md, "Idea"), and SimSiam's predictors.
//!
//! Each base method has its authors' projector ([`ProjectorKind`]): SimCLR and MoCo
//! Linear(f, h)-ReLU-Linear(h, d); SimSiam Linear-BN-ReLU-Linear-BN-ReLU-Linear-BN with no affine
//! on the last BN; Barlow Twins Linear-BN-ReLU-Linear-BN-ReLU-Linear.

use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, Relu};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The layers of a projection head. Recorded in every weights manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProjectorKind {
    /// Linear(f, h)-ReLU-Linear(h, d) (SimCLR, MoCo v2).
    #[default]
    Mlp,
    /// Linear(f, h)-BN-ReLU-Linear(h, h)-BN-ReLU-Linear(h, d)-BN, the last BN without affine
    /// (SimSiam).
    Simsiam,
    /// Linear(f, h)-BN-ReLU-Linear(h, h)-BN-ReLU-Linear(h, d) (Barlow Twins).
    Barlow,
}

/// One projection head g_c: features [B, f] -> projections [B, d]. The field names of the
/// two-layer head are those of the first weights files, which keep loading.
#[derive(Module, Debug)]
pub struct ProjectionHead {
    hidden: Linear,
    hidden_norm: Option<BatchNorm>,
    relu: Relu,
    middle: Option<Linear>,
    middle_norm: Option<BatchNorm>,
    output: Linear,
    output_norm: Option<BatchNorm>,
}

impl ProjectionHead {
    /// Linear(f, h)-ReLU-Linear(h, d).
    pub fn new(features: usize, hidden: usize, dim: usize, device: &Device) -> Self {
        Self::of_kind(ProjectorKind::Mlp, features, hidden, dim, device)
    }

    /// A head with the layers of `kind`.
    pub fn of_kind(
        kind: ProjectorKind,
        features: usize,
        hidden: usize,
        dim: usize,
        device: &Device,
    ) -> Self {
        let bn = |n| Some(BatchNormConfig::new(n).init(device));
        let deep = kind != ProjectorKind::Mlp;
        Self {
            hidden: LinearConfig::new(features, hidden).init(device),
            hidden_norm: if deep { bn(hidden) } else { None },
            relu: Relu::new(),
            middle: deep.then(|| LinearConfig::new(hidden, hidden).init(device)),
            middle_norm: if deep { bn(hidden) } else { None },
            output: LinearConfig::new(hidden, dim).init(device),
            output_norm: (kind == ProjectorKind::Simsiam).then(|| without_affine(dim, device)),
        }
    }

    /// SimSiam's predictor, Linear(d, h)-BN-ReLU-Linear(h, d).
    pub fn predictor(dim: usize, hidden: usize, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(dim, hidden).init(device),
            hidden_norm: Some(BatchNormConfig::new(hidden).init(device)),
            relu: Relu::new(),
            middle: None,
            middle_norm: None,
            output: LinearConfig::new(hidden, dim).init(device),
            output_norm: None,
        }
    }

    /// [B, f] -> [B, d] (not normalised).
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let norm = |x: Tensor<2>, bn: &Option<BatchNorm>| match bn {
            Some(bn) => bn.forward(x),
            None => x,
        };
        let mut x = self.relu.forward(norm(self.hidden.forward(features), &self.hidden_norm));
        if let Some(middle) = &self.middle {
            x = self.relu.forward(norm(middle.forward(x), &self.middle_norm));
        }
        norm(self.output.forward(x), &self.output_norm)
    }

    /// Output dimension d.
    pub fn output_dim(&self) -> usize {
        self.output.weight.dims()[1]
    }
}

/// A batch norm without affine parameters: gamma = 1 and beta = 0, never trained.
fn without_affine(n: usize, device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(n).init(device);
    bn.gamma = bn.gamma.set_require_grad(false);
    bn.beta = bn.beta.set_require_grad(false);
    bn
}
