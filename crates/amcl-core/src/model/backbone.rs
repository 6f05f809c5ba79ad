//! Backbones: ResNet-18 with the CIFAR stem, and a small fast CNN for CPU training and the
//! browser. Both map images [B, 3, H, W] (already normalised) to features [B, f].

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d, Relu};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AmclError;

/// Which backbone to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneKind {
    /// ResNet-18, CIFAR stem (3x3 conv, stride 1, no max-pool), 512-d features.
    Resnet18,
    /// Seven 3x3 conv layers of width w, 2w, 2w, 4w, 4w, 8w, 8w with BatchNorm and ReLU,
    /// three stride-2 steps, global average pool: 8w-d features.
    SmallCnn,
    /// The small CNN with a bias in place of each batch norm: an image's features do not depend
    /// on the rest of its batch, so a batch split over data-parallel ranks gives exactly the
    /// one-device features (the tests of distributed training use it; docs/ARCHITECTURE.md).
    SmallCnnNoBn,
}

impl BackboneKind {
    /// Every backbone, by CLI name.
    pub const ALL: [(&'static str, BackboneKind); 3] = [
        ("resnet18", BackboneKind::Resnet18),
        ("small-cnn", BackboneKind::SmallCnn),
        ("small-cnn-no-bn", BackboneKind::SmallCnnNoBn),
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, k)| *k == self).map(|(n, _)| *n).unwrap_or("?")
    }
}

impl std::str::FromStr for BackboneKind {
    type Err = AmclError;
    fn from_str(s: &str) -> Result<Self, AmclError> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, k)| *k).ok_or_else(|| {
            AmclError::UnknownName {
                kind: "backbone",
                name: s.to_string(),
                expected: Self::ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            }
        })
    }
}

/// Conv 3x3 (padding 1) + BatchNorm (or, without batch norm, + a bias).
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: Option<BatchNorm>,
}

impl ConvBn {
    fn new(c_in: usize, c_out: usize, kernel: usize, stride: usize, device: &Device) -> Self {
        Self::with_norm(c_in, c_out, kernel, stride, true, device)
    }

    fn with_norm(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        norm: bool,
        device: &Device,
    ) -> Self {
        let pad = kernel / 2;
        Self {
            conv: Conv2dConfig::new([c_in, c_out], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(!norm)
                .init(device),
            bn: norm.then(|| BatchNormConfig::new(c_out).init(device)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_then(x, false)
    }

    /// relu(conv + bn), fused with the batch norm on the CPU.
    fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_then(x, true)
    }

    fn forward_then(&self, x: Tensor<4>, relu: bool) -> Tensor<4> {
        // The padding is the module's own (symmetric, set in `new`); the convolution and batch
        // norm are burn's, except on the CPU backend, where flex-kernels fuses them.
        let padding = match self.conv.padding {
            PaddingConfig2d::Explicit(top, left, _, _) => [top, left],
            _ => [self.conv.kernel_size[0] / 2, self.conv.kernel_size[1] / 2],
        };
        let y = flex_kernels::conv2d(x, self.conv.weight.val(), self.conv.stride, padding);
        match (&self.bn, &self.conv.bias) {
            (Some(bn), _) => flex_kernels::batch_norm(bn, y, relu),
            (None, bias) => {
                let y = match bias {
                    Some(bias) => y + bias.val().reshape([1, -1, 1, 1]),
                    None => y,
                };
                if relu { burn::tensor::activation::relu(y) } else { y }
            }
        }
    }
}

/// ResNet basic block: two 3x3 ConvBn with a (projected when needed) identity shortcut.
#[derive(Module, Debug)]
pub struct BasicBlock {
    first: ConvBn,
    second: ConvBn,
    shortcut: Option<ConvBn>,
    relu: Relu,
}

impl BasicBlock {
    fn new(c_in: usize, c_out: usize, stride: usize, device: &Device) -> Self {
        let shortcut =
            (stride != 1 || c_in != c_out).then(|| ConvBn::new(c_in, c_out, 1, stride, device));
        Self {
            first: ConvBn::new(c_in, c_out, 3, stride, device),
            second: ConvBn::new(c_out, c_out, 3, 1, device),
            shortcut,
            relu: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.shortcut {
            Some(projection) => projection.forward(x.clone()),
            None => x.clone(),
        };
        let y = self.first.forward_relu(x);
        self.relu.forward(self.second.forward(y) + identity)
    }
}

/// ResNet-18 with the CIFAR stem.
#[derive(Module, Debug)]
pub struct ResNet18 {
    stem: ConvBn,
    blocks: Vec<BasicBlock>,
    relu: Relu,
}

impl ResNet18 {
    /// A freshly initialised ResNet-18 (11.2M parameters, 512-d features).
    pub fn new(device: &Device) -> Self {
        let mut blocks = Vec::new();
        let mut c_in = 64;
        for (c_out, stride) in [(64, 1), (128, 2), (256, 2), (512, 2)] {
            blocks.push(BasicBlock::new(c_in, c_out, stride, device));
            blocks.push(BasicBlock::new(c_out, c_out, 1, device));
            c_in = c_out;
        }
        Self { stem: ConvBn::new(3, 64, 3, 1, device), blocks, relu: Relu::new() }
    }

    /// [B, 3, H, W] -> [B, 512].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem.forward_relu(x);
        for block in &self.blocks {
            x = block.forward(x);
        }
        global_average_pool(x)
    }
}

/// The small CNN (see [`BackboneKind::SmallCnn`]).
#[derive(Module, Debug)]
pub struct SmallCnn {
    layers: Vec<ConvBn>,
    relu: Relu,
}

impl SmallCnn {
    /// Layer plan as (output channels as a multiple of the width, stride).
    const PLAN: [(usize, usize); 7] = [(1, 1), (2, 2), (2, 1), (4, 2), (4, 1), (8, 2), (8, 1)];

    /// A small CNN of the given width (features: 8 * width), with batch norm or without.
    pub fn new(width: usize, norm: bool, device: &Device) -> Self {
        let mut c_in = 3;
        let layers = Self::PLAN
            .iter()
            .map(|&(mult, stride)| {
                let layer = ConvBn::with_norm(c_in, mult * width, 3, stride, norm, device);
                c_in = mult * width;
                layer
            })
            .collect();
        Self { layers, relu: Relu::new() }
    }

    /// [B, 3, H, W] -> [B, 8 * width].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.layers.iter().fold(x, |x, layer| layer.forward_relu(x));
        global_average_pool(x)
    }

    /// Multiply-accumulates of one forward pass on a `size` x `size` image (convs only).
    pub fn macs(width: usize, size: usize) -> usize {
        let mut c_in = 3;
        let mut side = size;
        let mut total = 0;
        for &(mult, stride) in &Self::PLAN {
            side = side.div_ceil(stride);
            total += side * side * 9 * c_in * mult * width;
            c_in = mult * width;
        }
        total
    }
}

/// One of the backbones.
// A model holds one backbone, so the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Backbone {
    /// See [`ResNet18`].
    Resnet18(ResNet18),
    /// See [`SmallCnn`].
    SmallCnn(SmallCnn),
}

impl Backbone {
    /// Builds `kind`; `width` is used by the small CNN only.
    pub fn new(kind: BackboneKind, width: usize, device: &Device) -> Self {
        match kind {
            BackboneKind::Resnet18 => Backbone::Resnet18(ResNet18::new(device)),
            BackboneKind::SmallCnn => Backbone::SmallCnn(SmallCnn::new(width, true, device)),
            BackboneKind::SmallCnnNoBn => Backbone::SmallCnn(SmallCnn::new(width, false, device)),
        }
    }

    /// Feature dimension of `kind`.
    pub fn feature_dim(kind: BackboneKind, width: usize) -> usize {
        match kind {
            BackboneKind::Resnet18 => 512,
            BackboneKind::SmallCnn | BackboneKind::SmallCnnNoBn => 8 * width,
        }
    }

    /// [B, 3, H, W] -> [B, f].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Backbone::Resnet18(net) => net.forward(x),
            Backbone::SmallCnn(net) => net.forward(x),
        }
    }
}

/// [B, C, H, W] -> [B, C], the mean over the spatial positions.
fn global_average_pool(x: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
}
