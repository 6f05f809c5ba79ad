//! The AMCL model: a backbone, C projection heads and their temperature networks
//! (plus the SimSiam predictors or Barlow Twins temperatures when a method needs them).

mod backbone;
mod batch_norm_cpu;
mod conv_cpu;
mod normalize;
mod pairwise_phi;
mod projection;
mod temperature;

pub use backbone::{Backbone, BackboneKind, BasicBlock, ConvBn, ResNet18, SmallCnn};
#[doc(hidden)]
pub use conv_cpu::{conv2d, matrix_product};
pub use normalize::Normalization;
pub use projection::ProjectionHead;
pub use temperature::{
    StackedTemperatureNets, TEMPERATURE_HIDDEN, TemperatureNet, TemperatureRange,
};

use burn::module::Param;
use burn::prelude::*;

use crate::error::{AmclError, Result as AmclResult, ensure_dims};
use crate::loss::l2_normalize;

/// Architecture of an [`AmclModel`]. Serialised into every weights manifest.
#[derive(Config, Debug, PartialEq)]
pub struct AmclModelConfig {
    /// Backbone architecture.
    #[config(default = "BackboneKind::SmallCnn")]
    pub backbone: BackboneKind,
    /// Base width of the small CNN (features = 8 * width); ignored by ResNet-18.
    #[config(default = 32)]
    pub width: usize,
    /// Number of projection heads C.
    #[config(default = 3)]
    pub heads: usize,
    /// Hidden width h of each head.
    #[config(default = 512)]
    pub hidden: usize,
    /// Projection dimension d.
    #[config(default = 128)]
    pub dim: usize,
    /// One temperature network shared by all heads instead of one per head.
    #[config(default = false)]
    pub shared_temperature: bool,
    /// Bounds (lo, hi) of every adaptive temperature.
    #[config(default = "TemperatureRange { lo: 1e-5, hi: 2.0 }")]
    pub temperature: TemperatureRange,
    /// Input normalisation applied inside [`AmclModel::features`].
    #[config(default = "Normalization::CIFAR10")]
    pub normalization: Normalization,
    /// Side of the square input images.
    #[config(default = 32)]
    pub image_size: usize,
    /// Hidden width of the SimSiam predictor (one per head); `None` for methods without one.
    #[config(default = "None")]
    pub predictor_hidden: Option<usize>,
    /// Learned per-dimension Barlow Twins temperatures (amcl-barlow only).
    #[config(default = false)]
    pub barlow_temperatures: bool,
}

impl AmclModelConfig {
    /// Backbone feature dimension f.
    pub fn feature_dim(&self) -> usize {
        Backbone::feature_dim(self.backbone, self.width)
    }

    /// Checks ranges that would otherwise fail deep inside a forward pass.
    pub fn validate(&self) -> AmclResult<()> {
        let positive = [
            ("heads", self.heads),
            ("hidden", self.hidden),
            ("dim", self.dim),
            ("width", self.width),
            ("image_size", self.image_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(AmclError::InvalidConfig(format!("{name} must be positive")));
        }
        let TemperatureRange { lo, hi } = self.temperature;
        if !(lo > 0.0 && hi > lo && hi.is_finite()) {
            return Err(AmclError::InvalidConfig(format!(
                "temperature range must satisfy 0 < lo < hi, got lo={lo}, hi={hi}"
            )));
        }
        Ok(())
    }

    /// Builds a freshly initialised model on `device`.
    pub fn init(&self, device: &Device) -> AmclResult<AmclModel> {
        self.validate()?;
        let features = self.feature_dim();
        let temperature_nets = if self.shared_temperature { 1 } else { self.heads };
        let predictors = match self.predictor_hidden {
            Some(h) => (0..self.heads)
                .map(|_| ProjectionHead::new(self.dim, h, self.dim, device))
                .collect(),
            None => Vec::new(),
        };
        let barlow = if self.barlow_temperatures {
            (0..self.heads).map(|_| BarlowTemperatures::new(self.dim, device)).collect()
        } else {
            Vec::new()
        };
        Ok(AmclModel {
            backbone: Backbone::new(self.backbone, self.width, device),
            heads: (0..self.heads)
                .map(|_| ProjectionHead::new(features, self.hidden, self.dim, device))
                .collect(),
            temperatures: (0..temperature_nets)
                .map(|_| TemperatureNet::new(self.dim, device))
                .collect(),
            predictors,
            barlow,
            range: self.temperature,
            normalization: self.normalization,
            image_size: self.image_size,
            config: self.clone(),
        })
    }
}

/// Learned Barlow Twins temperatures of one head (shared/AMCL.md, "Other base methods").
///
/// **Decision:** the d diagonal and d x d off-diagonal temperatures are free parameters
/// (logits, initialised at 0) squashed into (lo, hi) by the same sigmoid as phi; the diagonal of
/// the off-diagonal matrix is unused.
#[derive(Module, Debug)]
pub struct BarlowTemperatures {
    /// Logits of tau_l^+ , [d].
    pub diagonal: Param<Tensor<1>>,
    /// Logits of tau_lm^- , [d, d].
    pub off_diagonal: Param<Tensor<2>>,
}

impl BarlowTemperatures {
    fn new(dim: usize, device: &Device) -> Self {
        Self {
            diagonal: Param::from_tensor(Tensor::zeros([dim], device)),
            off_diagonal: Param::from_tensor(Tensor::zeros([dim, dim], device)),
        }
    }
}

/// Backbone, C heads, temperature networks, and optional method parts.
#[derive(Module, Debug)]
pub struct AmclModel {
    /// Feature extractor.
    pub backbone: Backbone,
    /// The C projection heads.
    pub heads: Vec<ProjectionHead>,
    /// One phi per head, or a single shared phi.
    pub temperatures: Vec<TemperatureNet>,
    /// SimSiam predictors, one per head (empty for other methods).
    pub predictors: Vec<ProjectionHead>,
    /// Barlow Twins temperatures, one set per head (amcl-barlow only).
    pub barlow: Vec<BarlowTemperatures>,
    /// Temperature bounds.
    #[module(skip)]
    pub range: TemperatureRange,
    /// Input normalisation.
    #[module(skip)]
    pub normalization: Normalization,
    /// Expected input side.
    pub image_size: usize,
    /// The configuration this model was built from.
    #[module(skip)]
    pub config: AmclModelConfig,
}

impl AmclModel {
    /// Number of heads C.
    pub fn num_heads(&self) -> usize {
        self.heads.len()
    }

    /// Backbone features of images in [0, 1]: [B, 3, S, S] -> [B, f].
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone.forward(self.normalization.apply(images))
    }

    /// Like [`features`](Self::features), but checks the input shape first.
    pub fn try_features(&self, images: Tensor<4>) -> AmclResult<Tensor<2>> {
        let [b, _, _, _] = images.dims();
        ensure_dims(
            "model input [B, 3, S, S]",
            &[b, 3, self.image_size, self.image_size],
            &images.dims(),
        )?;
        Ok(self.features(images))
    }

    /// Unnormalised projections of every head: features [B, f] -> C x [B, d].
    pub fn project(&self, features: Tensor<2>) -> Vec<Tensor<2>> {
        self.heads.iter().map(|head| head.forward(features.clone())).collect()
    }

    /// Unit-norm projections of every head, stacked: [B, f] -> [C, B, d].
    pub fn project_normalized(&self, features: Tensor<2>) -> Tensor<3> {
        let heads = self.project(features).into_iter().map(l2_normalize).collect();
        Tensor::stack(heads, 0)
    }

    /// Starts every adaptive temperature near `tau` instead of near (lo + hi) / 2 (~1 with the
    /// paper's bounds): each phi's output bias, and the Barlow Twins temperature logits, are set
    /// to the logit of `tau`. The paper does not say how phi is initialised; fixed-temperature
    /// baselines start at their tuned tau (0.2 for SimCLR), which this lets AMCL match.
    pub fn with_initial_temperature(mut self, tau: f32) -> AmclResult<Self> {
        let logit = self.range.logit(tau).ok_or_else(|| {
            AmclError::InvalidConfig(format!(
                "the initial temperature must lie strictly between the bounds {} and {}, got {tau}",
                self.range.lo, self.range.hi
            ))
        })?;
        self.temperatures =
            self.temperatures.into_iter().map(|t| t.with_output_bias(logit)).collect();
        for barlow in &mut self.barlow {
            barlow.diagonal = barlow.diagonal.clone().map(|t| t.zeros_like().add_scalar(logit));
            barlow.off_diagonal =
                barlow.off_diagonal.clone().map(|t| t.zeros_like().add_scalar(logit));
        }
        Ok(self)
    }

    /// The temperature network of head `c`.
    pub fn temperature_net(&self, c: usize) -> &TemperatureNet {
        &self.temperatures[c.min(self.temperatures.len() - 1)]
    }

    /// Every head's temperature network, stacked in head order (a shared network once per head).
    pub fn stacked_temperatures(&self) -> StackedTemperatureNets {
        let nets: Vec<&TemperatureNet> =
            (0..self.num_heads()).map(|c| self.temperature_net(c)).collect();
        StackedTemperatureNets::new(&nets)
    }

    /// Adaptive temperatures of aligned pairs in every head, each by its own network:
    /// [C, N, d] x [C, N, d] -> [C, N], in (lo, hi).
    pub fn paired_temperatures(&self, z_a: Tensor<3>, z_b: Tensor<3>) -> Tensor<2> {
        let phi = self.stacked_temperatures();
        let (a, b) = phi.project(z_a, z_b);
        phi.paired_temperatures(a, b, &self.range)
    }

    /// Adaptive temperatures of all pairs in every head, each by its own network:
    /// [C, N, d] x [C, M, d] -> [C, N, M], in (lo, hi).
    pub fn pairwise_temperatures(&self, z_a: Tensor<3>, z_b: Tensor<3>) -> Tensor<3> {
        let phi = self.stacked_temperatures();
        let (a, b) = phi.project(z_a, z_b);
        phi.pairwise_temperatures(a, b, &self.range)
    }

    /// Adaptive temperatures of aligned pairs in head `c`: [B, d] x [B, d] -> [B], in (lo, hi).
    pub fn paired_temperature(&self, c: usize, z_a: Tensor<2>, z_b: Tensor<2>) -> Tensor<1> {
        self.range.squash(self.temperature_net(c).paired_logits(z_a, z_b))
    }

    /// Adaptive temperatures of all pairs in head `c`: [N, d] x [M, d] -> [N, M], in (lo, hi).
    pub fn pairwise_temperature(&self, c: usize, z_a: Tensor<2>, z_b: Tensor<2>) -> Tensor<2> {
        self.temperature_net(c).pairwise_temperatures(z_a, z_b, &self.range)
    }
}
