//! Augmentations a-e of docs/METHOD.md ("Training"), selected by a string such as `"abcde"`:
//!
//! | letter | augmentation | probability |
//! |---|---|---|
//! | a | random resized crop, scale 0.08-1, ratio 3/4-4/3 | 1 |
//! | b | Gaussian blur, sigma 0.1-2.0 | 0.5 |
//! | c | grayscale | 0.2 |
//! | d | colour jitter, strength 0.5 (brightness, contrast, saturation 0.4, hue 0.1) | 0.8 |
//! | e | horizontal flip | 0.5 |
//!
//! Random parameters are drawn per image on the host from a seeded [`Rng`] ([`ViewParams`]),
//! then the whole batch is transformed with tensor operations on the model's device:
//! crop, flip and blur are linear maps of rows and columns, so they fold into two matrices per
//! image and run as two batched matmuls ([`geometry`]); the colour steps are per-pixel affine
//! maps ([`colour`]). Blur is applied with the geometry (before colour instead of after, as
//! SimCLR orders it): both are linear, so the two orders agree except where colour jitter clips.

pub mod colour;
pub mod geometry;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{AmclError, Result as AmclResult};
use crate::rng::Rng;

/// Which of the augmentations a-e are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AugmentationSet {
    /// a: random resized crop.
    pub crop: bool,
    /// b: Gaussian blur.
    pub blur: bool,
    /// c: grayscale.
    pub grayscale: bool,
    /// d: colour jitter.
    pub jitter: bool,
    /// e: horizontal flip.
    pub flip: bool,
}

impl AugmentationSet {
    /// All five augmentations.
    pub const ALL: AugmentationSet =
        AugmentationSet { crop: true, blur: true, grayscale: true, jitter: true, flip: true };

    /// The letters of the set, e.g. `"abcde"` (empty for the identity).
    pub fn letters(&self) -> String {
        [
            (self.crop, 'a'),
            (self.blur, 'b'),
            (self.grayscale, 'c'),
            (self.jitter, 'd'),
            (self.flip, 'e'),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, l)| *l)
        .collect()
    }
}

impl std::str::FromStr for AugmentationSet {
    type Err = AmclError;
    /// Parses letters a-e in any order; `""` or `"none"` is the identity.
    fn from_str(s: &str) -> AmclResult<Self> {
        let mut set = AugmentationSet::default();
        if s == "none" {
            return Ok(set);
        }
        for letter in s.chars() {
            let flag = match letter {
                'a' => &mut set.crop,
                'b' => &mut set.blur,
                'c' => &mut set.grayscale,
                'd' => &mut set.jitter,
                'e' => &mut set.flip,
                _ => {
                    return Err(AmclError::UnknownName {
                        kind: "augmentation",
                        name: letter.to_string(),
                        expected: "a (crop), b (blur), c (grayscale), d (colour jitter), e (flip)"
                            .into(),
                    });
                }
            };
            *flag = true;
        }
        Ok(set)
    }
}

impl std::fmt::Display for AugmentationSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let letters = self.letters();
        f.write_str(if letters.is_empty() { "none" } else { &letters })
    }
}

/// Strengths and probabilities of the augmentations (defaults: docs/METHOD.md, "Training").
#[derive(Config, Debug, PartialEq)]
pub struct AugmentConfig {
    /// Smallest crop area as a fraction of the image.
    #[config(default = 0.08)]
    pub crop_scale_min: f32,
    /// Probability of blurring an image.
    #[config(default = 0.5)]
    pub blur_p: f32,
    /// Blur sigma range, in pixels at 224 px, scaled to the image size.
    #[config(default = "(0.1, 2.0)")]
    pub blur_sigma: (f32, f32),
    /// Probability of converting to grayscale.
    #[config(default = 0.2)]
    pub grayscale_p: f32,
    /// Probability of colour jitter.
    #[config(default = 0.8)]
    pub jitter_p: f32,
    /// Colour-jitter strength s: brightness, contrast, saturation 0.8 s; hue 0.2 s.
    #[config(default = 0.5)]
    pub jitter_strength: f32,
    /// Probability of a horizontal flip.
    #[config(default = 0.5)]
    pub flip_p: f32,
    /// Side of each view (None: the image's own). The crop is resampled to this side, so a view
    /// smaller than the test images shows objects nearer their test-time size ("FixRes", Touvron
    /// et al., 2019) at less cost.
    #[config(default = "None")]
    pub view_size: Option<usize>,
}

/// The three strengths a user turns (the demo's augmentation explorer, `amcl-train score`): the
/// smallest crop area (a), the colour-jitter strength (d) and the largest blur sigma (b). The
/// probabilities stay the authors'.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Strengths {
    /// Smallest crop area as a fraction of the image, in (0, 1] (authors': 0.08).
    pub crop_scale_min: f32,
    /// Colour-jitter strength s, in [0, 1] (authors': 0.5).
    pub jitter_strength: f32,
    /// Largest blur sigma (pixels at 224 px), in [0.1, 5] (authors': 2.0).
    pub blur_sigma_max: f32,
}

impl Default for Strengths {
    fn default() -> Self {
        let c = AugmentConfig::new();
        Self {
            crop_scale_min: c.crop_scale_min,
            jitter_strength: c.jitter_strength,
            blur_sigma_max: c.blur_sigma.1,
        }
    }
}

impl Strengths {
    /// The augmentation settings with these strengths, or an error naming the one out of range.
    pub fn config(&self) -> AmclResult<AugmentConfig> {
        let check = |name: &str, value: f32, ok: bool, range: &str| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(AmclError::InvalidConfig(format!("{name} must lie in {range}, got {value}")))
            }
        };
        let Self { crop_scale_min: crop, jitter_strength: jitter, blur_sigma_max: blur } = *self;
        check("the crop scale", crop, crop > 0.0 && crop <= 1.0, "(0, 1]")?;
        check("the jitter strength", jitter, (0.0..=1.0).contains(&jitter), "[0, 1]")?;
        check("the largest blur sigma", blur, (0.1..=5.0).contains(&blur), "[0.1, 5]")?;
        let defaults = AugmentConfig::new();
        Ok(defaults
            .with_crop_scale_min(crop)
            .with_jitter_strength(jitter)
            .with_blur_sigma((0.1, blur)))
    }
}

/// The random parameters of one augmented view of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewParams {
    /// Crop box (top, left, height, width) in input pixels (continuous).
    pub crop: (f32, f32, f32, f32),
    /// Mirror horizontally.
    pub flip: bool,
    /// Gaussian blur sigma in output pixels, if blurred.
    pub blur_sigma: Option<f32>,
    /// Colour jitter factors, if jittered.
    pub jitter: Option<colour::JitterFactors>,
    /// Convert to grayscale.
    pub grayscale: bool,
}

impl ViewParams {
    /// The identity view of an `h` x `w` image.
    pub fn identity(h: usize, w: usize) -> Self {
        Self {
            crop: (0.0, 0.0, h as f32, w as f32),
            flip: false,
            blur_sigma: None,
            jitter: None,
            grayscale: false,
        }
    }

    /// Draws the parameters of one view of an `h` x `w` image.
    pub fn sample(
        set: AugmentationSet,
        cfg: &AugmentConfig,
        h: usize,
        w: usize,
        rng: &mut Rng,
    ) -> Self {
        let mut view = Self::identity(h, w);
        if set.crop {
            view.crop = geometry::sample_crop(h, w, cfg.crop_scale_min, rng);
        }
        if set.flip {
            view.flip = rng.bernoulli(cfg.flip_p);
        }
        if set.jitter && rng.bernoulli(cfg.jitter_p) {
            view.jitter = Some(colour::JitterFactors::sample(cfg.jitter_strength, rng));
        }
        if set.grayscale {
            view.grayscale = rng.bernoulli(cfg.grayscale_p);
        }
        if set.blur && rng.bernoulli(cfg.blur_p) {
            // Sigma is specified for 224 px images (SimCLR); scale it to this image size.
            let scale = h.max(w) as f32 / 224.0;
            view.blur_sigma = Some(rng.range(cfg.blur_sigma.0, cfg.blur_sigma.1) * scale.max(0.15));
        }
        view
    }
}

/// A seeded augmenter that turns a batch into randomly augmented views.
#[derive(Debug, Clone)]
pub struct Augmenter {
    /// Which augmentations are on.
    pub set: AugmentationSet,
    /// Their strengths.
    pub config: AugmentConfig,
    rng: Rng,
}

impl Augmenter {
    /// An augmenter drawing from `seed`.
    pub fn new(set: AugmentationSet, config: AugmentConfig, seed: u64) -> Self {
        Self { set, config, rng: Rng::new(seed) }
    }

    /// Draws the parameters of one view for each of `batch` images of size `h` x `w`.
    pub fn sample(&mut self, batch: usize, h: usize, w: usize) -> Vec<ViewParams> {
        (0..batch)
            .map(|_| ViewParams::sample(self.set, &self.config, h, w, &mut self.rng))
            .collect()
    }

    /// The side of the views of `h` x `w` images: [`AugmentConfig::view_size`], or their own.
    fn view_side(&self, h: usize, w: usize) -> (usize, usize) {
        self.config.view_size.map_or((h, w), |side| (side, side))
    }

    /// One random view of every image of `images` [B, 3, H, W] in [0, 1], at the same size (or
    /// at [`AugmentConfig::view_size`]).
    pub fn view(&mut self, images: Tensor<4>) -> AmclResult<Tensor<4>> {
        let [b, c, h, w] = images.dims();
        if c != 3 {
            return Err(AmclError::Shape {
                context: "augment: images [B, 3, H, W]".into(),
                expected: "3 channels".into(),
                actual: format!("{:?}", images.dims()),
            });
        }
        let params = self.sample(b, h, w);
        let (out_h, out_w) = self.view_side(h, w);
        Ok(apply(images, &params, out_h, out_w))
    }

    /// Two independent views of every image (a positive pair per image).
    pub fn two_views(&mut self, images: Tensor<4>) -> AmclResult<(Tensor<4>, Tensor<4>)> {
        Ok((self.view(images.clone())?, self.view(images)?))
    }

    /// The two views [`Augmenter::two_views`] gives rows `rows` of a batch of `batch` images,
    /// from those rows alone (`share` [rows.len(), 3, H, W]): the random draws of the whole batch
    /// are made, and the share's applied. A data-parallel rank augments its share this way.
    pub fn two_views_of_share(
        &mut self,
        share: Tensor<4>,
        batch: usize,
        rows: std::ops::Range<usize>,
    ) -> AmclResult<(Tensor<4>, Tensor<4>)> {
        let [b, _, h, w] = share.dims();
        if rows.end > batch || rows.len() != b {
            return Err(AmclError::Shape {
                context: "augment: a share of a batch".into(),
                expected: format!("rows {rows:?} of a batch of {batch}"),
                actual: format!("{:?}", share.dims()),
            });
        }
        let first = self.sample(batch, h, w);
        let second = self.sample(batch, h, w);
        let (oh, ow) = self.view_side(h, w);
        Ok((
            apply(share.clone(), &first[rows.clone()], oh, ow),
            apply(share, &second[rows], oh, ow),
        ))
    }
}

/// Applies per-image `params` to `images` [B, 3, H, W], producing [B, 3, out_h, out_w] in [0, 1].
pub fn apply(images: Tensor<4>, params: &[ViewParams], out_h: usize, out_w: usize) -> Tensor<4> {
    let x = geometry::apply(images, params, out_h, out_w);
    colour::apply(x, params)
}
