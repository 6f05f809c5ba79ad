//! `pretrain`'s flags and presets, resolved into one [`TrainConfig`] that is saved with the run.
//!
//! A flag given on the command line wins over the preset; the preset fills the rest.

use std::path::PathBuf;

use amcl_core::augment::Strengths;
use amcl_core::loss::AUTHORS_TOP_K;
use amcl_core::model::TemperatureForm;
use amcl_core::prelude::*;
use anyhow::{Context, Result, bail};

use crate::data::DataSource;
use crate::device::{DeviceChoice, Precision};
use crate::optim::OptimizerKind;

/// `--preset`.
#[derive(
    clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// A small CNN for a few minutes on a laptop CPU: 8 epochs of 4,000 images.
    Quick,
    /// The authors' release exactly (docs/METHOD.md): their AMCL form (shared dot-product phi,
    /// top-100 negatives, beta 1e-4 / 1e-6 for Barlow Twins), ResNet-18, C = 3, d = 128
    /// (SimSiam and Barlow Twins: 2,048-wide projectors), batch 512, 1,000 epochs, SGD momentum
    /// 0.9, weight decay 5e-4, per-method lr, cosine schedule, gradient-norm clipping at 1.0.
    Paper,
}

/// What a preset sets for each flag left unset: the preset as data, laid under the flags.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetValues {
    pub backbone: &'static str,
    /// The projection dimension d (a method's own projector width, when the preset uses it,
    /// takes precedence: `BaseMethod::paper_projector_width`).
    pub dim: usize,
    /// Whether the methods' paper projector widths apply.
    pub paper_projectors: bool,
    /// The AMCL form (None: the method's default form, `AmclForm::default_for`).
    pub amcl_form: Option<AmclForm>,
    pub batch_size: usize,
    pub epochs: usize,
    /// The peak learning rate (None: the method's paper rate, `BaseMethod::paper_lr`).
    pub lr: Option<f64>,
    pub optimizer: OptimizerKind,
    pub warmup_epochs: usize,
    pub grad_clip: Option<f32>,
    pub moco_queue: usize,
    /// The shared CIFAR-10 folder (`DEFAULT_CIFAR10_DIR`) instead of the built-in default source.
    pub cifar10: bool,
    pub train_size: Option<usize>,
    pub test_size: Option<usize>,
    pub eval_every: usize,
}

impl Preset {
    /// This preset's values (see [`Preset`]).
    pub fn values(self) -> PresetValues {
        match self {
            Preset::Quick => PresetValues {
                backbone: "small-cnn",
                dim: 64,
                paper_projectors: false,
                amcl_form: None,
                batch_size: 128,
                epochs: 8,
                lr: Some(1e-3),
                optimizer: OptimizerKind::Adam,
                warmup_epochs: 1,
                grad_clip: None,
                moco_queue: 1024,
                cifar10: false,
                train_size: Some(4000),
                test_size: Some(1000),
                eval_every: 1,
            },
            Preset::Paper => PresetValues {
                backbone: "resnet18",
                dim: 128,
                paper_projectors: true,
                amcl_form: Some(AmclForm::Authors),
                batch_size: 512,
                epochs: 1000,
                lr: None,
                optimizer: OptimizerKind::Sgd,
                warmup_epochs: 10,
                grad_clip: Some(1.0),
                moco_queue: 4096,
                cifar10: true,
                train_size: None,
                test_size: None,
                eval_every: 10,
            },
        }
    }
}

/// `--amcl-form`: a named set of the AMCL objective's choices (temperature network, reduction,
/// beta, initial temperature, bounds); each of them can still be set by its own flag.
#[derive(
    clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AmclForm {
    /// The authors' release exactly: shared dot-product phi, top-100 negatives, beta 1e-4
    /// (1e-6 for Barlow Twins), phi at its default initialisation (tau ~ 1), tau in (1e-5, 2).
    Authors,
    /// The previous default (docs/RESULTS.md): the authors' shared dot-product phi and beta, the
    /// soft log-sum-exp reduction over all negatives, phi started at the base method's
    /// temperature. Its temperatures stay inside their bounds but sink together, alike for
    /// every pair.
    Soft,
    /// This project's default, the measured variant closest to the authors' whose temperatures
    /// adapt pair by pair (docs/RESULTS.md): the soft form with phi's projections centred over
    /// the batch, so that an anchor's logits average to zero and the temperatures' common level
    /// stays at the middle of the range, (lo, hi) = (1e-5, 2 tau_0) with tau_0 the base method's
    /// temperature; phi shapes only which pairs are warmer or colder than tau_0.
    Centred,
}

impl AmclForm {
    /// The default form of `kind` outside the paper preset: centred for the methods with
    /// negatives (SimCLR, MoCo), soft for SimSiam and Barlow Twins.
    pub fn default_for(kind: MethodKind) -> Self {
        if AmclForm::Centred.applies_to(kind) { AmclForm::Centred } else { AmclForm::Soft }
    }

    /// Whether this form applies to `kind`: every form does, except the centred one to SimSiam
    /// and Barlow Twins (it centres the temperatures of an anchor's negatives; they have none).
    /// For a plain method the form is irrelevant and its model keeps the plain network.
    pub fn applies_to(self, kind: MethodKind) -> bool {
        self != AmclForm::Centred || !kind.adaptive || kind.base.pair_temperatures()
    }

    /// The negative reduction of this form.
    fn reduction(self) -> Reduction {
        match self {
            AmclForm::Authors => Reduction::Topk,
            AmclForm::Soft | AmclForm::Centred => Reduction::Logsumexp,
        }
    }

    /// The initial temperature of this form for `kind` (None: phi's default initialisation).
    fn tau_init(self, kind: MethodKind) -> Option<f32> {
        match self {
            AmclForm::Authors => None,
            AmclForm::Soft if kind.base.pair_temperatures() => Some(kind.base_temperature()),
            // No base temperature to start from (it is 1): phi's default start, tau ~ 1.
            AmclForm::Soft => None,
            // Centring cancels phi's output bias: the level is the middle of the range instead.
            AmclForm::Centred => None,
        }
    }

    /// The temperature network of this form for `kind` (plain methods use none: the plain one).
    pub fn temperature_form(self, kind: MethodKind) -> TemperatureForm {
        match self {
            AmclForm::Centred if kind.adaptive => TemperatureForm::Centred,
            _ => TemperatureForm::Dot,
        }
    }

    /// The upper bound hi of this form's temperatures for `kind` (None: the authors' 2.0). The
    /// centred form's level, the middle of (lo, hi), is the base method's temperature.
    fn tau_max(self, kind: MethodKind) -> Option<f32> {
        (self == AmclForm::Centred && kind.adaptive).then(|| 2.0 * kind.base_temperature())
    }
}

/// `--reduction`.
#[derive(
    clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// The k most similar negatives (`--top-k`), the authors' release (Eq. 5).
    Topk,
    /// Log-sum-exp over all negatives (soft form; NT-Xent's limit).
    Logsumexp,
    /// Hardest negative only (the literal Eq. 2.1; collapses, see docs/METHOD.md).
    Max,
}

impl Reduction {
    /// The library's reduction, with `k` negatives for `Topk`.
    pub fn with_k(self, k: usize) -> NegativeReduction {
        match self {
            Reduction::Topk => NegativeReduction::TopK(k),
            Reduction::Max => NegativeReduction::Max,
            Reduction::Logsumexp => NegativeReduction::LogSumExp,
        }
    }
}

/// Flags of `pretrain`. Unset ones come from `--preset`.
#[derive(clap::Args, Debug, Clone)]
pub struct PretrainArgs {
    /// Starting point for every flag not given.
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    pub preset: Preset,
    /// Method: simclr, amcl-simclr, moco, amcl-moco, simsiam, amcl-simsiam, barlow, amcl-barlow
    /// [default: amcl-simclr].
    #[arg(long)]
    pub method: Option<String>,
    /// Backbone: small-cnn or resnet18 [quick: small-cnn, paper: resnet18].
    #[arg(long)]
    pub backbone: Option<String>,
    /// Width of the small CNN; features = 8 x width [default: 16].
    #[arg(long)]
    pub width: Option<usize>,
    /// Number of projection heads C [default: 3].
    #[arg(long)]
    pub heads: Option<usize>,
    /// Hidden width of each projection head [default: 512].
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Projection dimension d [quick: 64, paper: 128].
    #[arg(long)]
    pub dim: Option<usize>,
    /// Augmentations, letters a-e: a crop, b blur, c grayscale, d colour jitter, e flip
    /// [default: abcde].
    #[arg(long)]
    pub augs: Option<String>,
    /// Smallest crop area of augmentation a, as a fraction of the image, in (0, 1]
    /// [default: 0.08, the authors'].
    #[arg(long)]
    pub crop_scale: Option<f32>,
    /// Colour-jitter strength of augmentation d, in [0, 1] [default: 0.5, the authors'].
    #[arg(long)]
    pub jitter_strength: Option<f32>,
    /// Largest blur sigma of augmentation b (pixels at 224 px, scaled to the image), in [0.1, 5]
    /// [default: 2.0, the authors'].
    #[arg(long)]
    pub blur_max: Option<f32>,
    /// Side of the training views, at least 8: each crop is resampled to it (evaluation stays at
    /// the images' side); smaller than the images, objects in the views are nearer their test
    /// size and a step costs less ("FixRes") [default: the images' side].
    #[arg(long)]
    pub view_size: Option<usize>,
    /// Epochs [quick: 8, paper: 1000].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per batch, two views each [quick: 128, paper: 512].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate [quick: 1e-3 (adam); paper: simclr 0.06, moco 0.08, simsiam 0.05,
    /// barlow 0.11].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Optimiser [quick: adam, paper: sgd].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Weight decay of sgd and lars [default: 5e-4].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Epochs of linear learning-rate warm-up before the cosine decay [quick: 1, paper: 10].
    #[arg(long)]
    pub warmup_epochs: Option<usize>,
    /// The AMCL objective's form; the flags below override its parts [quick: centred, paper:
    /// authors]. centred: phi's projections centred over the batch, level tau-max / 2.
    #[arg(long, value_enum)]
    pub amcl_form: Option<AmclForm>,
    /// Negative reduction of the AMCL objective [centred and soft: logsumexp, authors: topk].
    #[arg(long, value_enum)]
    pub reduction: Option<Reduction>,
    /// Negatives per anchor of `--reduction topk` [default: 100].
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Weight beta of the Omega regulariser [default: 1e-4; barlow 1e-6].
    #[arg(long)]
    pub beta: Option<f32>,
    /// A candidate form (amcl-simclr only): Omega's weight on the positive pairs instead of
    /// --beta there (1 = the Gaussian likelihood's) [default: --beta].
    #[arg(long)]
    pub beta_positive: Option<f32>,
    /// Start every adaptive temperature near this value (phi's output bias) instead of near 1
    /// [soft: the base method's tau (simclr 0.5, moco 0.1); authors: none, tau ~ 1; centred:
    /// does not apply, see --tau-max].
    #[arg(long, value_name = "TAU")]
    pub tau_init: Option<f32>,
    /// Lower bound lo of every adaptive temperature [default: 1e-5].
    #[arg(long)]
    pub tau_min: Option<f32>,
    /// Upper bound hi of every adaptive temperature [default: 2.0; centred: twice the base
    /// method's tau].
    #[arg(long)]
    pub tau_max: Option<f32>,
    /// Fixed temperature of plain simclr and moco [default: simclr 0.5, moco 0.1].
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Clip the gradient's global norm (over all parameters) at this value; 0 turns it off
    /// [quick: off, paper: 1.0].
    #[arg(long)]
    pub grad_clip: Option<f32>,
    /// Dataset: cifar10:DIR, cifar100:DIR, folder:DIR or synthetic [default: data/cifar10 if
    /// present, else synthetic].
    #[arg(long)]
    pub data: Option<String>,
    /// Use at most this many training images [quick: 4000, paper: all].
    #[arg(long)]
    pub train_size: Option<usize>,
    /// Use at most this many test images [quick: 1000, paper: all].
    #[arg(long)]
    pub test_size: Option<usize>,
    /// Evaluate (kNN) every this many epochs, and after the last [quick: 1, paper: 10].
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Random seed: data order, augmentations, initialisation of the MoCo queue [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Start from the weights of an earlier run (its model.bpk) instead of random ones: a second
    /// learning-rate cycle (warm restart) or a longer run on top of a finished one. The
    /// architecture flags must describe the same model [default: random initialisation].
    #[arg(long, value_name = "WEIGHTS", conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Data-parallel training over several devices, one rank each, e.g. `cuda:0,cuda:1` or
    /// `cpu,cpu`: every step's batch is split evenly over them, negatives come from the whole
    /// batch, and the result is that of one device (up to batch norm; see README). Replaces
    /// --device.
    #[arg(long, value_name = "LIST", conflicts_with = "device")]
    pub devices: Option<String>,
    /// Several processes, on this machine or others, as ranks of one data-parallel run: this
    /// process's rank (0 listens at --address and writes the run folder). Needs --world and
    /// --address; each process uses its own --device.
    #[arg(long, requires_all = ["world", "address"], conflicts_with = "devices")]
    pub rank: Option<usize>,
    /// The number of processes (ranks) in the run (with --rank).
    #[arg(long, requires_all = ["rank", "address"])]
    pub world: Option<usize>,
    /// Where rank 0 listens and the others connect, host:port (with --rank), e.g.
    /// 10.0.0.1:29500.
    #[arg(long, requires_all = ["rank", "world"])]
    pub address: Option<String>,
    /// Float type of the training step (the loss and temperatures stay f32); f16/bf16 halve
    /// memory and are faster on GPUs with half-precision units (no automatic mixed precision in
    /// burn 0.22) [default: f32].
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// Run folder: config.json, metrics.jsonl, checkpoint/, model.bpk, plots.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint, with its saved configuration.
    #[arg(long)]
    pub resume: bool,
}

/// Everything that determines a run (saved as `config.json`, reloaded by `--resume`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub preset: Preset,
    pub method: String,
    pub model: AmclModelConfig,
    pub augs: String,
    /// The augmentations' strengths (`--crop-scale`, `--jitter-strength`, `--blur-max`); older
    /// run folders: the authors'.
    #[serde(default)]
    pub strengths: Strengths,
    /// Side of the training views (`--view-size`; None, and older run folders: the images').
    #[serde(default)]
    pub view_size: Option<usize>,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: OptimizerKind,
    pub weight_decay: f64,
    pub warmup_epochs: usize,
    pub beta: f32,
    /// Data-parallel ranks the run trains on (`--devices`); older run folders: 1.
    #[serde(default = "one_rank")]
    pub ranks: usize,
    /// Initial temperature (`--tau-init`); older run folders have none.
    #[serde(default)]
    pub tau_init: Option<f32>,
    pub reduction: Reduction,
    /// Negatives per anchor of the top-k reduction.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Fixed temperature of plain SimCLR and MoCo (older run folders: 0.2).
    #[serde(default = "earlier_temperature")]
    pub temperature: f32,
    /// Global gradient-norm clipping (None: off).
    #[serde(default)]
    pub grad_clip: Option<f32>,
    /// Omega's weight on the positives, when not beta (a candidate; amcl-simclr only).
    #[serde(default)]
    pub beta_positive: Option<f32>,
    pub moco_queue: usize,
    pub data: DataSource,
    pub train_size: Option<usize>,
    pub test_size: Option<usize>,
    pub eval_every: usize,
    pub seed: u64,
    /// The weights the run started from (`--init`); None: seeded random weights.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Older run folders have no precision: they ran in f32.
    #[serde(default)]
    pub precision: Precision,
}

fn default_top_k() -> usize {
    AUTHORS_TOP_K
}

fn earlier_temperature() -> f32 {
    0.2
}

impl TrainConfig {
    /// The method's hyper-parameters.
    pub fn method_config(&self) -> MethodConfig {
        MethodConfig::new()
            .with_beta(self.beta)
            .with_reduction(self.reduction.with_k(self.top_k))
            .with_temperature(self.temperature)
            .with_positive_beta(self.beta_positive)
            .with_moco_queue(self.moco_queue)
            .with_seed(self.seed)
    }

    /// The parsed method.
    pub fn method_kind(&self) -> Result<MethodKind> {
        Ok(self.method.parse()?)
    }

    /// The parsed augmentations.
    pub fn augmentations(&self) -> Result<AugmentationSet> {
        self.augs.parse().context("--augs")
    }

    /// The augmentations' settings: the authors' probabilities at the run's strengths.
    pub fn augment_config(&self) -> Result<AugmentConfig> {
        let config =
            self.strengths.config().context("--crop-scale, --jitter-strength, --blur-max")?;
        Ok(config.with_view_size(self.view_size))
    }
}

impl PretrainArgs {
    /// Resolves flags over the preset, validating every value.
    pub fn resolve(&self) -> Result<TrainConfig> {
        let preset = self.preset.values();
        let method = self.method.clone().unwrap_or_else(|| "amcl-simclr".into());
        let kind: MethodKind = method.parse()?;
        let backbone: BackboneKind = self.backbone.as_deref().unwrap_or(preset.backbone).parse()?;
        let form =
            self.amcl_form.or(preset.amcl_form).unwrap_or_else(|| AmclForm::default_for(kind));
        if !form.applies_to(kind) {
            bail!(
                "--amcl-form centred applies to amcl-simclr and amcl-moco (the methods with \
                 negatives), not {method}"
            );
        }
        let batch_size = self.batch_size.unwrap_or(preset.batch_size);
        // The authors' SimSiam and Barlow Twins projectors are 2,048 wide, to 2,048.
        let wide = if preset.paper_projectors { kind.base.paper_projector_width() } else { None };
        let range = TemperatureRange {
            lo: self.tau_min.unwrap_or(TemperatureRange::default().lo),
            hi: self.tau_max.or(form.tau_max(kind)).unwrap_or(TemperatureRange::default().hi),
        };
        if form == AmclForm::Centred && kind.adaptive && self.tau_init.is_some() {
            bail!(
                "--tau-init does not apply to --amcl-form centred: its temperatures start, and \
                 stay on average, at the middle of the range (set it with --tau-max = 2 x tau)"
            );
        }
        let model = kind.model_config(
            AmclModelConfig::new()
                .with_backbone(backbone)
                .with_width(self.width.unwrap_or(16))
                .with_heads(self.heads.unwrap_or(3))
                .with_hidden(self.hidden.or(wide).unwrap_or(512))
                .with_dim(self.dim.or(wide).unwrap_or(preset.dim))
                .with_temperature(range)
                .with_temperature_form(form.temperature_form(kind)),
            batch_size,
        );
        model.validate().context("--tau-min / --tau-max")?;
        let augs = self.augs.clone().unwrap_or_else(|| "abcde".into());
        augs.parse::<AugmentationSet>().context("--augs")?;
        let authors = Strengths::default();
        let strengths = Strengths {
            crop_scale_min: self.crop_scale.unwrap_or(authors.crop_scale_min),
            jitter_strength: self.jitter_strength.unwrap_or(authors.jitter_strength),
            blur_sigma_max: self.blur_max.unwrap_or(authors.blur_sigma_max),
        };
        let data = match &self.data {
            Some(spec) => spec.parse()?,
            None if preset.cifar10 => DataSource::Cifar10(crate::data::DEFAULT_CIFAR10_DIR.into()),
            None => DataSource::default_source(),
        };
        let config = TrainConfig {
            preset: self.preset,
            method,
            model,
            augs,
            strengths,
            view_size: self.view_size,
            epochs: self.epochs.unwrap_or(preset.epochs),
            batch_size,
            lr: self.lr.or(preset.lr).unwrap_or_else(|| kind.base.paper_lr()),
            optimizer: self.optimizer.unwrap_or(preset.optimizer),
            weight_decay: self.weight_decay.unwrap_or(5e-4),
            warmup_epochs: self.warmup_epochs.unwrap_or(preset.warmup_epochs),
            beta: self.beta.unwrap_or(kind.authors_beta()),
            tau_init: self.tau_init.or(if kind.adaptive { form.tau_init(kind) } else { None }),
            reduction: self.reduction.unwrap_or(form.reduction()),
            top_k: self.top_k.unwrap_or(AUTHORS_TOP_K),
            temperature: self.temperature.unwrap_or(kind.base_temperature()),
            beta_positive: self.beta_positive,
            // --grad-clip 0 turns the preset's clipping off.
            grad_clip: match self.grad_clip {
                Some(0.0) => None,
                Some(c) => Some(c),
                None => preset.grad_clip,
            },
            moco_queue: preset.moco_queue,
            data,
            train_size: self.train_size.or(preset.train_size),
            test_size: self.test_size.or(preset.test_size),
            eval_every: self.eval_every.unwrap_or(preset.eval_every),
            seed: self.seed.unwrap_or(0),
            init: self.init.clone(),
            precision: self.precision.unwrap_or_default(),
            ranks: 1,
        };
        config.check()?;
        config.augment_config()?;
        Ok(config)
    }
}

/// The ranks of a run folder written before `--devices`.
fn one_rank() -> usize {
    1
}

impl TrainConfig {
    /// Rejects values no run can use.
    pub fn check(&self) -> Result<()> {
        if self.batch_size < 2 {
            bail!(
                "--batch-size must be at least 2 (contrastive methods need negatives), got {}",
                self.batch_size
            );
        }
        if self.epochs == 0 {
            bail!("--epochs must be at least 1");
        }
        if let Some(side) = self.view_size
            && side < 8
        {
            bail!(
                "--view-size must be at least 8 (the small CNN halves it three times), got {side}"
            );
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("--lr must be a positive number, got {}", self.lr);
        }
        if !self.beta.is_finite() || self.beta < 0.0 {
            bail!("--beta must be a non-negative number, got {}", self.beta);
        }
        if let Some(b) = self.beta_positive
            && !(b.is_finite() && b >= 0.0 && self.method == "amcl-simclr")
        {
            bail!("--beta-positive must be a non-negative number, and applies to amcl-simclr only");
        }
        if self.reduction == Reduction::Topk && self.top_k == 0 {
            bail!("--top-k must be at least 1");
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            bail!("--temperature must be a positive number, got {}", self.temperature);
        }
        if let Some(clip) = self.grad_clip
            && !(clip.is_finite() && clip > 0.0)
        {
            bail!("--grad-clip must be a positive number (0 turns clipping off), got {clip}");
        }
        if let Some(tau) = self.tau_init {
            // Checked here, before any data is loaded, with the rule the model applies.
            let range = self.model.temperature;
            if range.initial_logit(tau).is_none() {
                bail!(
                    "--tau-init must lie strictly between the lower bound {} and the middle of the \
                     temperature range {} (bounds {} to {}), got {tau}",
                    range.lo,
                    (range.lo + range.hi) / 2.0,
                    range.lo,
                    range.hi
                );
            }
        }
        if self.eval_every == 0 {
            bail!("--eval-every must be at least 1");
        }
        if let Some(n) = self.train_size
            && n < self.batch_size
        {
            bail!("--train-size ({n}) must be at least --batch-size ({})", self.batch_size);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PretrainArgs,
    }

    fn resolve(flags: &[&str]) -> TrainConfig {
        let argv = std::iter::once("pretrain").chain(flags.iter().copied());
        Cli::parse_from(argv).args.resolve().expect("a valid configuration")
    }

    /// The quick preset: a small CNN with Adam on 4,000 images, the centred form by default.
    #[test]
    fn quick_preset_lies_under_unset_flags() {
        let c = resolve(&["--method", "amcl-simclr"]);
        assert_eq!(c.model.backbone, BackboneKind::SmallCnn);
        assert_eq!(
            (c.batch_size, c.epochs, c.lr, c.optimizer),
            (128, 8, 1e-3, OptimizerKind::Adam)
        );
        assert_eq!(
            (c.model.dim, c.model.hidden, c.train_size, c.test_size),
            (64, 512, Some(4000), Some(1000))
        );
        assert_eq!(c.model.temperature_form, TemperatureForm::Centred);
        assert_eq!((c.model.temperature.hi, c.grad_clip, c.moco_queue), (1.0, None, 1024));
    }

    /// The paper preset: the method's own learning rate, beta and projector width, the
    /// authors' form, clipping at 1; a flag still wins, and --grad-clip 0 turns clipping off.
    #[test]
    fn paper_preset_takes_each_methods_values_and_yields_to_flags() {
        let c = resolve(&["--preset", "paper", "--method", "amcl-barlow"]);
        assert_eq!(c.model.backbone, BackboneKind::Resnet18);
        assert_eq!((c.model.hidden, c.model.dim, c.lr, c.beta), (2048, 2048, 0.11, 1e-6));
        assert_eq!((c.batch_size, c.epochs, c.optimizer), (512, 1000, OptimizerKind::Sgd));
        assert_eq!(
            (c.reduction, c.model.temperature_form),
            (Reduction::Topk, TemperatureForm::Dot)
        );
        assert_eq!((c.grad_clip, c.moco_queue, c.train_size), (Some(1.0), 4096, None));
        let c =
            resolve(&["--preset", "paper", "--method", "moco", "--lr", "0.5", "--grad-clip", "0"]);
        assert_eq!((c.lr, c.grad_clip, c.model.dim, c.temperature), (0.5, None, 128, 0.1));
    }

    /// The augmentations' strengths: the authors' unless a flag sets one; a value out of range
    /// is an error naming its flag; a run folder written before the flags reads as the authors'.
    #[test]
    fn augmentation_strengths_come_from_flags() {
        assert_eq!(resolve(&[]).strengths, Strengths::default());
        let c = resolve(&["--crop-scale", "0.2", "--jitter-strength", "0.4", "--blur-max", "1"]);
        let set = Strengths { crop_scale_min: 0.2, jitter_strength: 0.4, blur_sigma_max: 1.0 };
        assert_eq!(c.strengths, set);
        let augment = c.augment_config().expect("valid strengths");
        assert_eq!((augment.crop_scale_min, augment.blur_sigma.1), (0.2, 1.0));

        let argv = ["pretrain", "--crop-scale", "0"];
        let err = Cli::parse_from(argv).args.resolve().expect_err("crop scale 0");
        let message = format!("{err:#}");
        assert!(message.contains("--crop-scale") && message.contains("crop scale"), "{message}");

        let mut earlier = serde_json::to_value(&c).expect("serialisable");
        earlier.as_object_mut().expect("an object").remove("strengths");
        let earlier: TrainConfig = serde_json::from_value(earlier).expect("an older config.json");
        assert_eq!(earlier.strengths, Strengths::default());
    }
}
