//! The AMCL model: a backbone, C projection heads and their temperature networks
//! (plus the SimSiam predictors or Barlow Twins temperatures when a method needs them).

mod backbone;
mod normalize;
mod projection;
mod temperature;

pub use backbone::{Backbone, BackboneKind, BasicBlock, ConvBn, ResNet18, SmallCnn};
pub use normalize::Normalization;
pub use projection::{ProjectionHead, ProjectorKind};
pub use temperature::{
    CENTRE_MOMENTUM, DotTemperatureNet, SATURATION, TEMPERATURE_HIDDEN, TemperatureCentre,
    TemperatureForm, TemperatureRange, paired_logits, pairwise_logits,
};

use std::ops::Range;

use burn::prelude::*;

use crate::error::{AmclError, Result as AmclResult, ensure_dims};
use crate::loss::{l2_normalize, objective_precision};

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
    /// The temperature network: the authors' phi shared by all heads, with a dot product
    /// (`Dot`), or its projections centred over the batch first (`Centred`).
    #[config(default = "TemperatureForm::Dot")]
    pub temperature_form: TemperatureForm,
    /// The layers of each projection head.
    #[config(default = "ProjectorKind::Mlp")]
    pub projector: ProjectorKind,
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
    /// amcl-barlow only: the batch size B of its channel temperature network R^B -> R^B, which
    /// fixes the batch size of training.
    #[config(default = "None")]
    pub barlow_batch: Option<usize>,
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
        if self.barlow_batch == Some(0) {
            return Err(AmclError::InvalidConfig("barlow_batch must be positive".into()));
        }
        let features = self.feature_dim();
        let predictors = match self.predictor_hidden {
            Some(h) => {
                (0..self.heads).map(|_| ProjectionHead::predictor(self.dim, h, device)).collect()
            }
            None => Vec::new(),
        };
        Ok(AmclModel {
            backbone: Backbone::new(self.backbone, self.width, device),
            heads: (0..self.heads)
                .map(|_| {
                    ProjectionHead::of_kind(self.projector, features, self.hidden, self.dim, device)
                })
                .collect(),
            phi: DotTemperatureNet::new(self.dim, device),
            phi_centre: (self.temperature_form == TemperatureForm::Centred)
                .then(|| TemperatureCentre::new(self.heads, self.dim, device)),
            predictors,
            channel_phi: self.barlow_batch.map(|b| DotTemperatureNet::new(b, device)),
            range: self.temperature,
            normalization: self.normalization,
            image_size: self.image_size,
            config: self.clone(),
        })
    }
}

/// Backbone, C heads, temperature networks, and optional method parts.
#[derive(Module, Debug)]
pub struct AmclModel {
    /// Feature extractor.
    pub backbone: Backbone,
    /// The C projection heads.
    pub heads: Vec<ProjectionHead>,
    /// The temperature network phi, shared by all heads (the authors' release).
    pub phi: DotTemperatureNet,
    /// The centred form's running mean of phi's projections per head (None for the `Dot` form).
    pub phi_centre: Option<TemperatureCentre>,
    /// SimSiam predictors, one per head (empty for other methods).
    pub predictors: Vec<ProjectionHead>,
    /// amcl-barlow's channel temperature network R^B -> R^B, shared by the heads.
    pub channel_phi: Option<DotTemperatureNet>,
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

    /// Like [`features`](Self::features) for training views, which may be of any square side
    /// (`AugmentConfig::view_size`): checks [B, 3, S', S'].
    pub fn try_view_features(&self, views: Tensor<4>) -> AmclResult<Tensor<2>> {
        let [b, _, side, _] = views.dims();
        ensure_dims("training views [B, 3, S', S']", &[b, 3, side, side], &views.dims())?;
        Ok(self.features(views))
    }

    /// Unnormalised projections of every head: features [B, f] -> C x [B, d].
    pub fn project(&self, features: Tensor<2>) -> Vec<Tensor<2>> {
        self.heads.iter().map(|head| head.forward(features.clone())).collect()
    }

    /// Unit-norm projections of every head, stacked: [B, f] -> [C, B, d], in the objective's f32
    /// whatever the training precision.
    pub fn project_normalized(&self, features: Tensor<2>) -> Tensor<3> {
        let heads =
            self.project(features).into_iter().map(|z| l2_normalize(objective_precision(z)));
        let heads = heads.collect();
        Tensor::stack(heads, 0)
    }

    /// Starts every adaptive temperature near `tau` (docs/METHOD.md, "Temperatures"): the output
    /// bias of phi (and of amcl-barlow's channel network) is set so that, while phi's other terms
    /// are small, every pair scores `tau`. Fixed-temperature base methods start at their tuned
    /// tau, which this lets AMCL match; the authors leave phi at its default initialisation
    /// (tau ~ (lo + hi) / 2 ~ 1).
    pub fn with_initial_temperature(mut self, tau: f32) -> AmclResult<Self> {
        let range = self.range;
        self.phi = self.phi.with_initial_temperature(tau, &range)?;
        if let Some(phi) = self.channel_phi.take() {
            self.channel_phi = Some(phi.with_initial_temperature(tau, &range)?);
        }
        Ok(self)
    }

    /// phi's projections of sets of views of the heads `heads` ([C', N_k, d] each -> [C', N_k, d]),
    /// for Eq. 3's logits. The centred form subtracts phi_bar, the mean over the rows of the
    /// first `batch` sets while training (the running mean otherwise; [`TemperatureCentre`]).
    pub fn phi_projections(
        &self,
        sets: Vec<Tensor<3>>,
        batch: usize,
        heads: Range<usize>,
    ) -> Vec<Tensor<3>> {
        let projected: Vec<_> = sets.into_iter().map(|z| self.phi.project(z)).collect();
        match &self.phi_centre {
            None => projected,
            Some(centre) => {
                let phi_bar = centre.of(&projected[..batch.max(1)], heads);
                projected.into_iter().map(|p| p - phi_bar.clone()).collect()
            }
        }
    }

    /// Adaptive temperatures of aligned pairs in every head:
    /// [C, N, d] x [C, N, d] -> [C, N], in (lo, hi). Centred form: centred over both sets.
    pub fn paired_temperatures(&self, z_a: Tensor<3>, z_b: Tensor<3>) -> Tensor<2> {
        let c = z_a.dims()[0];
        self.paired_temperatures_of(z_a, z_b, 0..c)
    }

    /// Adaptive temperatures of all pairs in every head:
    /// [C, N, d] x [C, M, d] -> [C, N, M], in (lo, hi). Centred form: centred over both sets.
    pub fn pairwise_temperatures(&self, z_a: Tensor<3>, z_b: Tensor<3>) -> Tensor<3> {
        let c = z_a.dims()[0];
        self.pairwise_temperatures_of(z_a, z_b, 0..c)
    }

    /// Adaptive temperatures of aligned pairs in one head: [B, d] x [B, d] -> [B], in (lo, hi).
    /// Every head shares phi; the head names where the projections come from (and, in the
    /// centred form, which head's centre applies).
    pub fn paired_temperature(&self, head: usize, z_a: Tensor<2>, z_b: Tensor<2>) -> Tensor<1> {
        let [n, _] = z_a.dims();
        self.paired_temperatures_of(z_a.unsqueeze(), z_b.unsqueeze(), head..head + 1).reshape([n])
    }

    /// Adaptive temperatures of all pairs in one head: [N, d] x [M, d] -> [N, M], in (lo, hi).
    pub fn pairwise_temperature(&self, head: usize, z_a: Tensor<2>, z_b: Tensor<2>) -> Tensor<2> {
        let ([n, _], [m, _]) = (z_a.dims(), z_b.dims());
        self.pairwise_temperatures_of(z_a.unsqueeze(), z_b.unsqueeze(), head..head + 1)
            .reshape([n, m])
    }

    fn paired_temperatures_of(&self, a: Tensor<3>, b: Tensor<3>, heads: Range<usize>) -> Tensor<2> {
        let [pa, pb]: [Tensor<3>; 2] =
            self.phi_projections(vec![a, b], 2, heads).try_into().expect("two sets");
        self.range.squash(paired_logits(pa, pb))
    }

    fn pairwise_temperatures_of(
        &self,
        a: Tensor<3>,
        b: Tensor<3>,
        heads: Range<usize>,
    ) -> Tensor<3> {
        let [pa, pb]: [Tensor<3>; 2] =
            self.phi_projections(vec![a, b], 2, heads).try_into().expect("two sets");
        self.range.squash(pairwise_logits(pa, pb))
    }
}
