//! `pretrain`: a training run ([`Run`]) from its start or checkpoint to its summary.
//!
//! Each step: a batch from the prefetcher, two augmented views, the learner's step (the method's
//! loss, one optimiser step, the method's post-step update: `learner.rs`, shared with `bench`). Every source of randomness is
//! derived from (seed, epoch) or (seed, step), so a run resumed from a checkpoint takes exactly
//! the steps an uninterrupted run would have taken.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use amcl_core::augment::AugmentationSet;
use amcl_core::methods::HeadDiagnostics;
use amcl_core::prelude::*;
use amcl_core::ranks::share_rows;
use amcl_core::rng::Rng;
use amcl_core::weights;
use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::{self, Position};
use crate::config::{PretrainArgs, TrainConfig};
use crate::data::loader::Prefetcher;
use crate::data::{Dataset, Split};
use crate::device;
use crate::distributed::exchange::FeatureExchange;
use crate::distributed::network::NetworkGroup;
use crate::distributed::threads::ThreadGroup;
use crate::distributed::{self, Collective};
use crate::eval::EvalReport;
use crate::files::write_json;
use crate::learner::Learner;
use crate::metrics::{self, EpochRecord, MetricsLog, Record, StepRecord};
use crate::{eval, optim, plots, spread};

/// Exit status of a run stopped by Ctrl-C (128 + SIGINT).
pub const INTERRUPTED: i32 = 130;

/// A seed for one purpose and index, derived from the run's seed.
fn derive_seed(seed: u64, purpose: u64, index: u64) -> u64 {
    Rng::new(seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.rotate_left(32)).next_u64()
}

const ORDER: u64 = 1;
const AUGMENT: u64 = 2;

/// Set by Ctrl-C; checked after every step. The handler is installed once per process (an
/// experiment runs many pretrainings), and each run starts with the flag cleared.
fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    let flag = FLAG
        .get_or_init(|| {
            let flag = Arc::new(AtomicBool::new(false));
            let handler_flag = flag.clone();
            let installed = ctrlc::set_handler(move || {
                if handler_flag.swap(true, Ordering::SeqCst) {
                    eprintln!("\nsecond Ctrl-C: stopping without a checkpoint");
                    std::process::exit(INTERRUPTED);
                }
                eprintln!(
                    "\nCtrl-C: finishing this step and writing a checkpoint (Ctrl-C again to quit now)"
                );
            });
            if let Err(err) = installed {
                eprintln!("warning: Ctrl-C will not write a checkpoint ({err})");
            }
            flag
        })
        .clone();
    flag.store(false, Ordering::SeqCst);
    flag
}

/// Runs `pretrain`; returns the process exit status.
pub fn run(args: &PretrainArgs) -> Result<i32> {
    let mut config = if args.resume { read_config(&args.out)? } else { args.resolve()? };
    let devices = match &args.devices {
        Some(list) => distributed::parse_devices(list)?,
        None => Vec::new(),
    };
    let world = args.world.unwrap_or(devices.len().max(1));
    if args.resume && config.ranks != world {
        bail!(
            "{} was trained on {} rank(s); resume it with as many (--devices), got {world}",
            args.out.display(),
            config.ranks
        );
    }
    config.ranks = world;
    let split = config.data.load(
        config.model.image_size,
        config.train_size,
        config.test_size,
        config.seed,
    )?;
    if devices.len() > 1 {
        return pretrain_on_ranks(&config, split, &devices, &args.out, args.resume);
    }
    if let (Some(rank), Some(address)) = (args.rank, &args.address) {
        return pretrain_as_process(&config, split, args, rank, world, address);
    }
    let selected = match devices.first() {
        Some(spec) => device::select_indexed(spec.choice, spec.index, config.precision)?,
        None => device::select_with(args.device, config.precision)?,
    };
    eprintln!("device: {}", selected.name);
    pretrain(&config, split, &selected, &args.out, args.resume)
}

/// Pretrains with one rank per device, each a thread of this process (see [`distributed`]):
/// rank 0 writes the run folder. A rank that fails stops the others at their next exchange; the
/// error names it, and the last checkpoint is kept.
fn pretrain_on_ranks(
    config: &TrainConfig,
    split: Split,
    devices: &[distributed::DeviceSpec],
    run_dir: &Path,
    resume: bool,
) -> Result<i32> {
    let world = devices.len();
    let share = distributed::share_of(config.batch_size, world)?;
    let selected = devices
        .iter()
        .map(|spec| device::select_indexed(spec.choice, spec.index, config.precision))
        .collect::<Result<Vec<_>>>()?;
    let names: Vec<&str> = selected.iter().map(|s| s.name.as_str()).collect();
    eprintln!("devices: {} ranks ({}), {share} images each per step", world, names.join(", "));
    let group = ThreadGroup::new(world);
    let outcomes: Vec<Result<i32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = group
            .into_iter()
            .zip(&selected)
            .map(|(rank, selected)| {
                let split = split.clone();
                scope.spawn(move || {
                    let collective: Arc<dyn Collective> = Arc::new(rank);
                    let me = collective.rank();
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        pretrain_rank(config, split, selected, run_dir, resume, collective.clone())
                    }))
                    .unwrap_or_else(|panic| Err(anyhow::anyhow!(panic_message(&panic))));
                    if let Err(err) = &outcome {
                        collective.abort(&format!("{err:#}"));
                    }
                    outcome.with_context(|| format!("rank {me} ({})", selected.name))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a rank's thread returns")).collect()
    });
    // The first rank that failed on its own (the others report that it stopped).
    let mut errors = Vec::new();
    let mut code = 0;
    for outcome in outcomes {
        match outcome {
            Ok(c) => code = code.max(c),
            Err(err) => errors.push(err),
        }
    }
    if errors.is_empty() {
        return Ok(code);
    }
    let cause = errors.iter().position(|e| !format!("{e:#}").contains(" stopped: ")).unwrap_or(0);
    let kept = if run_dir.join("checkpoint").is_dir() {
        format!(
            "the last checkpoint is kept: continue with `amcl-train pretrain --out {} --resume --devices ...` ({world} devices)",
            run_dir.display()
        )
    } else {
        "no checkpoint had been written".to_string()
    };
    Err(errors.swap_remove(cause).context(format!("data-parallel run stopped; {kept}")))
}

/// Seeded initial weights, so that a run is reproducible from its config. The ranks of one
/// process initialise one at a time: each draws what one device would.
fn seeded_weights(config: &TrainConfig, device: &Device) -> Result<AmclModel> {
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let init = INIT.lock().unwrap_or_else(|p| p.into_inner());
    device.seed(config.seed);
    let model = config.model.init(device)?;
    draw_initial_weights(&model);
    drop(init);
    Ok(match config.tau_init {
        Some(tau) => model.with_initial_temperature(tau)?,
        None => model,
    })
}

/// The weights of `--init`: an earlier run's model of the same architecture as this run's.
fn initial_weights(path: &Path, expected: &AmclModelConfig, device: &Device) -> Result<AmclModel> {
    let bytes =
        std::fs::read(path).with_context(|| format!("--init: reading {}", path.display()))?;
    let manifest = weights::read_manifest(&bytes)
        .with_context(|| format!("--init: {} is not a weights file", path.display()))?;
    if &manifest.model != expected {
        let (file, run) = (serde_json::to_value(&manifest.model)?, serde_json::to_value(expected)?);
        let differences: Vec<String> = run
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(key, value)| file.get(key.as_str()) != Some(*value))
            .map(|(key, value)| format!("{key}: {} in the file, {value} in this run", file[key]))
            .collect();
        bail!(
            "--init: {} holds another architecture than this run's flags describe ({})",
            path.display(),
            differences.join("; ")
        );
    }
    weights::load_into(&bytes, expected, device)
        .with_context(|| format!("--init: loading {}", path.display()))
}

/// Draws every parameter's initial value now, in the module's order. burn initialises a
/// parameter when it is first used, so the weights would depend on the order the step runs
/// its parts, and on any other thread drawing from the same generator meanwhile.
pub(crate) fn draw_initial_weights(model: &AmclModel) {
    struct Draw;
    impl burn::module::ModuleVisitor for Draw {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Draw);
}

/// Pretrains as rank `rank` of `world` processes that meet at `address` (see
/// [`distributed::network`]); rank 0 writes the run folder.
fn pretrain_as_process(
    config: &TrainConfig,
    split: Split,
    args: &PretrainArgs,
    rank: usize,
    world: usize,
    address: &str,
) -> Result<i32> {
    distributed::share_of(config.batch_size, world)?;
    let selected = device::select_with(args.device, config.precision)?;
    eprintln!("rank {rank} of {world}: device {}", selected.name);
    // The ranks must train the same run: rank 0 compares the others' configuration with its own.
    let run = serde_json::to_string(config)?;
    let group = NetworkGroup::join(rank, world, address, &run)
        .with_context(|| format!("rank {rank}: joining the ranks at {address}"))?;
    let collective: Arc<dyn Collective> = Arc::new(group);
    let outcome =
        pretrain_rank(config, split, &selected, &args.out, args.resume, collective.clone());
    if let Err(err) = &outcome {
        collective.abort(&format!("{err:#}"));
    }
    outcome.with_context(|| format!("rank {rank} ({})", selected.name))
}

/// A panic's message, for the error that names the rank.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    format!("panicked: {text}")
}

/// The configuration saved in a run folder, for `--resume`.
pub fn read_config(run_dir: &Path) -> Result<TrainConfig> {
    let path = run_dir.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("--resume: no run to resume in {} (missing config.json)", run_dir.display())
    })?;
    let config: TrainConfig =
        serde_json::from_str(&text).with_context(|| format!("{} is corrupt", path.display()))?;
    eprintln!("resuming {} (its config.json replaces the other flags)", run_dir.display());
    Ok(config)
}

/// Pretrains `config` on `split` into `run_dir` (continuing its checkpoint when `resume`), then
/// evaluates and writes the weights, summary and plots; returns the process exit status.
pub fn pretrain(
    config: &TrainConfig,
    split: Split,
    selected: &device::Selected,
    run_dir: &Path,
    resume: bool,
) -> Result<i32> {
    pretrain_with(config, split, selected, run_dir, resume, None)
}

/// One rank of a data-parallel pretraining (see [`pretrain_on_ranks`]); rank 0 writes the run.
pub fn pretrain_rank(
    config: &TrainConfig,
    split: Split,
    selected: &device::Selected,
    run_dir: &Path,
    resume: bool,
    ranks: Arc<dyn Collective>,
) -> Result<i32> {
    pretrain_with(config, split, selected, run_dir, resume, Some(ranks))
}

fn pretrain_with(
    config: &TrainConfig,
    split: Split,
    selected: &device::Selected,
    run_dir: &Path,
    resume: bool,
    ranks: Option<Arc<dyn Collective>>,
) -> Result<i32> {
    let mut run = Run::start(config, split, selected, run_dir, resume, ranks)?;
    let interrupted = interrupt_flag();
    let mut last_report = None;
    while run.position.epoch < config.epochs {
        if let EpochEnd::Interrupted = run.train_epoch(&interrupted)? {
            return Ok(INTERRUPTED);
        }
        last_report = run.end_epoch()?;
    }
    run.finish(last_report)?;
    Ok(0)
}

/// A pretraining run in its folder: the learner, where training stands, the data and the
/// metrics log. [`Run::start`] begins or resumes it, [`Run::train_epoch`] takes the steps of one
/// epoch, [`Run::end_epoch`] evaluates, logs and checkpoints, [`Run::finish`] writes the weights
/// and summary.
struct Run<'a> {
    config: &'a TrainConfig,
    dir: &'a Path,
    kind: MethodKind,
    augs: AugmentationSet,
    /// The augmentations' probabilities and strengths.
    augment: AugmentConfig,
    learner: Learner,
    position: Position,
    manifest: Manifest,
    /// The metrics log (rank 0 only: it alone writes the run folder).
    metrics: Option<MetricsLog>,
    /// The other ranks of a data-parallel run, and this rank's images per step (the whole
    /// batch on one device).
    ranks: Option<Arc<dyn Collective>>,
    share: usize,
    /// The training set, shared with the prefetcher thread.
    train: Arc<Dataset>,
    test: Dataset,
    description: String,
    /// The selected device, and the same with autodiff for training.
    plain: Device,
    device: Device,
    device_name: String,
    steps_per_epoch: usize,
    total_steps: usize,
    warmup: usize,
    /// What the epoch in progress has seen: its loss sum and steps, its last head statistics,
    /// its wall time (empty at the start, and again once `end_epoch` has taken it).
    epoch: EpochProgress,
}

/// The running totals of the epoch in progress.
#[derive(Default)]
struct EpochProgress {
    loss_sum: f64,
    steps: usize,
    last_loss: f32,
    heads: Vec<HeadDiagnostics>,
    seconds: f64,
}

/// How an epoch's steps ended.
enum EpochEnd {
    Done,
    /// Ctrl-C: a checkpoint was written.
    Interrupted,
}

impl<'a> Run<'a> {
    /// A fresh run (its config.json written, its weights initialised from the seed) or, with
    /// `resume`, the one checkpointed in `dir`.
    fn start(
        config: &'a TrainConfig,
        split: Split,
        selected: &device::Selected,
        dir: &'a Path,
        resume: bool,
        ranks: Option<Arc<dyn Collective>>,
    ) -> Result<Self> {
        let kind = config.method_kind()?;
        let (rank, world) = ranks.as_ref().map_or((0, 1), |r| (r.rank(), r.world()));
        let writer = rank == 0;
        let share = distributed::share_of(config.batch_size, world)?;
        let augs = config.augmentations()?;
        let augment = config.augment_config()?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating run folder {}", dir.display()))?;
        let plain = selected.device.clone();
        let device = plain.clone().autodiff();
        if split.train.len() < config.batch_size {
            bail!(
                "{} has {} training images, fewer than --batch-size {}",
                split.description,
                split.train.len(),
                config.batch_size
            );
        }
        if writer {
            eprintln!(
                "data: {} ({} training, {} test images, {} classes)",
                split.description,
                split.train.len(),
                split.test.len(),
                split.train.classes()
            );
        }
        let Split { train, test, description } = split;
        let manifest = Manifest::new(config.model.clone(), &kind.name(), config.beta);
        let mut method = Method::new(kind, config.method_config());
        if let Some(ranks) = &ranks {
            method = method.with_ranks(Arc::new(FeatureExchange::new(ranks.clone())));
        }
        let fresh_optimizer = || optim::build(config.optimizer, config.weight_decay);
        let (model, optimizer, position, metrics) = if resume {
            let restored = checkpoint::load(dir, fresh_optimizer(), &device)?;
            if let Some(moco) = restored.moco {
                method.set_moco_state(moco);
            }
            let position = restored.position;
            let metrics = if writer {
                eprintln!(
                    "checkpoint: epoch {} step {} ({} steps in all)",
                    position.epoch + 1,
                    position.step_in_epoch,
                    position.step
                );
                Some(MetricsLog::resume(dir, position.step)?)
            } else {
                None
            };
            (restored.model, restored.optimizer, position, metrics)
        } else {
            // The weights first, so that a bad --init leaves no run folder behind.
            let model = match &config.init {
                Some(path) => initial_weights(path, &config.model, &device)?,
                None => seeded_weights(config, &device)?,
            };
            let metrics = if writer {
                write_json(&dir.join("config.json"), config)?;
                Some(MetricsLog::create(dir)?)
            } else {
                None
            };
            let start = Position { epoch: 0, step_in_epoch: 0, step: 0 };
            (model, fresh_optimizer(), start, metrics)
        };
        let steps_per_epoch = train.len() / config.batch_size;
        let total_steps = steps_per_epoch * config.epochs;
        let mut learner = Learner::new(model, optimizer, method, config.grad_clip);
        learner.ranks = ranks.clone();
        Ok(Self {
            config,
            dir,
            kind,
            augs,
            augment,
            learner,
            position,
            manifest,
            metrics,
            ranks,
            share,
            train: Arc::new(train),
            test,
            description,
            plain,
            device,
            device_name: selected.name.clone(),
            steps_per_epoch,
            total_steps,
            warmup: (config.warmup_epochs * steps_per_epoch).min(total_steps / 2).max(1),
            epoch: EpochProgress::default(),
        })
    }

    /// The remaining steps of the epoch in progress, in the order of its seed, with a progress
    /// bar; stops after the step in progress at Ctrl-C and writes a checkpoint.
    fn train_epoch(&mut self, interrupted: &AtomicBool) -> Result<EpochEnd> {
        let config = self.config;
        let epoch = self.position.epoch;
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        Rng::new(derive_seed(config.seed, ORDER, epoch as u64)).shuffle(&mut order);
        let first_step = self.position.step_in_epoch;
        let order = self.share_of_order(order);
        let batches = Prefetcher::start(self.train.clone(), order, self.share, first_step);
        let bar = if self.is_writer() {
            epoch_bar(epoch, config.epochs, self.steps_per_epoch, first_step)
        } else {
            ProgressBar::hidden()
        };
        let started = Instant::now();
        for data in batches {
            let images = Tensor::<4>::from_data(data, &self.device);
            if let Err(err) = self.step(images) {
                bar.abandon();
                return Err(err);
            }
            let rate = ((self.position.step_in_epoch - first_step) * config.batch_size) as f64
                / started.elapsed().as_secs_f64();
            bar.set_message(format!(
                "loss {:.4} | {rate:.0} img/s | {}",
                self.epoch.last_loss,
                taus(&self.epoch.heads)
            ));
            bar.inc(1);
            if self.any_rank(interrupted.load(Ordering::SeqCst))? {
                bar.abandon();
                if let Some(metrics) = &mut self.metrics {
                    metrics.flush()?;
                }
                self.checkpoint()?;
                if !self.is_writer() {
                    return Ok(EpochEnd::Interrupted);
                }
                let devices = if config.ranks > 1 { " --devices (the same)" } else { "" };
                eprintln!(
                    "interrupted: checkpoint at epoch {} step {} written to {}; continue with\n  amcl-train pretrain --out {} --resume{devices}",
                    epoch + 1,
                    self.position.step_in_epoch,
                    self.dir.join("checkpoint").display(),
                    self.dir.display()
                );
                return Ok(EpochEnd::Interrupted);
            }
        }
        bar.finish_and_clear();
        self.epoch.seconds = started.elapsed().as_secs_f64();
        Ok(EpochEnd::Done)
    }
    /// One step on a batch of images: two views augmented with the step's seed, the learner's
    /// step at the schedule's learning rate, a record in metrics.jsonl. A non-finite loss is an
    /// error naming the step and each head's temperatures (nothing saved is touched).
    fn step(&mut self, images: Tensor<4>) -> Result<()> {
        let config = self.config;
        self.injected_failure()?;
        let seed = derive_seed(config.seed, AUGMENT, self.position.step as u64);
        let mut augmenter = Augmenter::new(self.augs, self.augment.clone(), seed);
        let views = match &self.ranks {
            None => augmenter.two_views(images)?,
            Some(ranks) => {
                let rows = share_rows(ranks.rank(), self.share);
                augmenter.two_views_of_share(images, config.batch_size, rows)?
            }
        };
        let lr = optim::learning_rate(config.lr, self.position.step, self.total_steps, self.warmup);
        let outcome = self.learner.step(views, lr)?;
        // Reading the heads' statistics waits for the device: every tenth step and the last.
        let read_heads = !outcome.is_finite()
            || self.position.step_in_epoch.is_multiple_of(10)
            || self.position.step_in_epoch + 1 == self.steps_per_epoch;
        if read_heads {
            self.epoch.heads = outcome.diagnostics.read();
        }
        if !outcome.is_finite() {
            bail!(non_finite_message(outcome.loss, &self.position, &self.epoch.heads, self.dir));
        }
        self.position.step += 1;
        self.position.step_in_epoch += 1;
        self.epoch.loss_sum += outcome.loss as f64;
        self.epoch.steps += 1;
        self.epoch.last_loss = outcome.loss;
        let Some(metrics) = &mut self.metrics else { return Ok(()) };
        metrics.append(&Record::Step(StepRecord {
            epoch: self.position.epoch + 1,
            step: self.position.step,
            loss: outcome.loss,
            lr,
            grad_norm: outcome.grad_norm,
        }))
    }

    /// The tests' way to make one rank fail mid-run: `AMCL_TEST_FAIL_RANK=R@S` fails rank R at
    /// its step S (1-based, counted over the run).
    fn injected_failure(&self) -> Result<()> {
        let Ok(spec) = std::env::var("AMCL_TEST_FAIL_RANK") else { return Ok(()) };
        let rank = self.ranks.as_ref().map_or(0, |r| r.rank());
        let step = self.position.step + 1;
        if spec == format!("{rank}@{step}") {
            bail!("injected failure (AMCL_TEST_FAIL_RANK={spec}) at step {step}");
        }
        Ok(())
    }

    /// Rank 0, or the only rank: the one that evaluates and writes the run folder.
    fn is_writer(&self) -> bool {
        self.ranks.as_ref().is_none_or(|r| r.rank() == 0)
    }

    /// This rank's share of an epoch's order: of each global batch, its rows (the whole order
    /// on one device), whole batches only.
    fn share_of_order(&self, order: Vec<usize>) -> Vec<usize> {
        let Some(ranks) = &self.ranks else { return order };
        let rows = share_rows(ranks.rank(), self.share);
        order
            .chunks_exact(self.config.batch_size)
            .flat_map(|batch| batch[rows.clone()].iter().copied())
            .collect()
    }

    /// Whether `flag` is set on any rank (itself on one device).
    fn any_rank(&self, flag: bool) -> Result<bool> {
        match &self.ranks {
            None => Ok(flag),
            Some(ranks) => Ok(ranks.any(flag)?),
        }
    }

    /// After an epoch's steps: kNN every `eval_every` epochs (and the linear probe after the
    /// last), the epoch's line and record, the weights, a checkpoint and the plots. Returns the
    /// evaluation when there was one.
    fn end_epoch(&mut self) -> Result<Option<EvalReport>> {
        let config = self.config;
        let epoch = self.position.epoch;
        let progress = std::mem::take(&mut self.epoch);
        let images_per_s = (progress.steps * config.batch_size) as f64 / progress.seconds;
        let mean_loss = progress.loss_sum / progress.steps.max(1) as f64;
        self.position = Position { epoch: epoch + 1, step_in_epoch: 0, step: self.position.step };
        if !self.is_writer() {
            return Ok(None);
        }
        let last = epoch + 1 == config.epochs;
        let report = if last || (epoch + 1).is_multiple_of(config.eval_every) {
            // The linear probe runs once, after the last epoch.
            let model = self.learner.model().valid();
            Some(eval::evaluate(&model, &self.train, &self.test, &self.plain, last)?)
        } else {
            None
        };
        let knn = report.as_ref().map(|r| r.knn_top1);
        eprintln!(
            "epoch {}/{} loss {mean_loss:.4} | {images_per_s:.0} img/s | {} | kNN {} ({:.1}s)",
            epoch + 1,
            config.epochs,
            taus(&progress.heads),
            knn.map_or("-".into(), |k| format!("{:.2}%", k * 100.0)),
            progress.seconds,
        );
        let metrics = self.metrics.as_mut().expect("rank 0 keeps the metrics log");
        metrics.append(&Record::Epoch(EpochRecord {
            epoch: epoch + 1,
            step: self.position.step,
            loss: mean_loss,
            images_per_s,
            seconds: progress.seconds,
            heads: progress.heads,
            knn_top1: knn,
        }))?;
        metrics.flush()?;
        weights::save(&self.learner.model().valid(), &self.manifest, &self.dir.join("model.bpk"))?;
        self.checkpoint()?;
        plots::write_run_plots(self.dir).context("writing plots")?;
        Ok(report)
    }

    /// Writes the checkpoint of where training stands (model, optimiser, method state,
    /// position), replacing the previous one only once it is complete.
    fn checkpoint(&self) -> Result<()> {
        if !self.is_writer() {
            return Ok(());
        }
        let learner = &self.learner;
        let moco = learner.method.moco_state();
        checkpoint::save(
            self.dir,
            learner.model(),
            &self.manifest,
            &learner.optimizer,
            moco,
            self.position,
        )
    }

    /// After the last epoch: the weights with the training summary in their manifest, the
    /// temperatures of test pairs by kind (methods with pair temperatures), summary.json and
    /// the summary lines. `last_report`: the last epoch's evaluation (None when resuming a run
    /// that had finished: it is measured again).
    fn finish(self, last_report: Option<EvalReport>) -> Result<()> {
        if !self.is_writer() {
            return Ok(());
        }
        let config = self.config;
        let valid = self.learner.model().valid();
        let report = match last_report {
            Some(report) => report,
            None => eval::evaluate(&valid, &self.train, &self.test, &self.plain, true)?,
        };
        let mut manifest = self.manifest;
        manifest.training = serde_json::json!({
            "epochs": config.epochs,
            "steps": self.position.step,
            "data": self.description,
            "knn_top1": report.knn_top1,
            "linear_top1": report.linear_top1,
            "heads": report.heads,
        });
        weights::save(&valid, &manifest, &self.dir.join("model.bpk"))?;
        let final_loss = metrics::epochs(self.dir).last().map_or(f64::NAN, |e| e.loss);
        let mut summary = manifest.training.clone();
        // Pair temperatures by kind of pair; Barlow Twins' temperatures are between channels.
        if self.kind.has_pair_temperatures() {
            let spread = spread::temperature_spread(
                &valid,
                &self.test,
                self.augs,
                config.seed,
                &self.plain,
            )?;
            for h in &spread {
                println!(
                    "  head {}: tau of two views of one image {:.3}, of one class {:.3}, of different classes {:.3}; \
                     hardest negatives {:.3}, easiest {:.3}; corr(s, tau) {:+.2}",
                    h.head,
                    h.views.tau.mean,
                    h.same_class.tau.mean,
                    h.other_class.tau.mean,
                    h.hardest.tau.mean,
                    h.easiest.tau.mean,
                    h.tau_similarity_correlation
                );
            }
            summary["temperature_spread"] = serde_json::to_value(&spread)?;
        }
        summary["final_loss"] = final_loss.into();
        summary["method"] = self.kind.name().into();
        summary["device"] = self.device_name.clone().into();
        write_json(&self.dir.join("summary.json"), &summary)?;
        println!(
            "kNN top-1 (k={}, t={}) on {}: {:.2}%; linear probe {:.2}%",
            eval::KNN_K,
            eval::KNN_T,
            self.description,
            report.knn_top1 * 100.0,
            report.linear_top1.unwrap_or(0.0) * 100.0
        );
        for h in &report.heads {
            println!("  head {}: kNN {:.2}%", h.head, h.knn_top1 * 100.0);
        }
        println!("weights: {}", self.dir.join("model.bpk").display());
        println!("plots: {}/{{loss,temperatures,accuracy}}.svg", self.dir.display());
        Ok(())
    }
}

fn epoch_bar(epoch: usize, epochs: usize, steps: usize, done: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64).with_style(
        ProgressStyle::with_template(&format!(
            "epoch {}/{epochs} {{bar:30}} {{pos}}/{{len}} {{msg}} ETA {{eta}}",
            epoch + 1
        ))
        .expect("valid template"),
    );
    bar.set_position(done as u64);
    bar.reset_eta();
    bar
}

/// `tau+/tau-` means per head, and the share of temperatures at a bound (within 1 % of lo or
/// hi, the largest over the heads) when any is, e.g.
/// `tau+/- 0.61/1.25 0.60/1.30 | at lo: tau+ 98% tau- 40%`.
fn taus(heads: &[HeadDiagnostics]) -> String {
    let parts: Vec<String> =
        heads.iter().map(|h| format!("{:.3}/{:.3}", h.tau_pos_mean, h.tau_neg_mean)).collect();
    let worst = |share: fn(&HeadDiagnostics) -> f32| heads.iter().map(share).fold(0.0f32, f32::max);
    let mut line = format!("tau+/- {}", parts.join(" "));
    for (bound, pos, neg) in [
        ("lo", worst(|h| h.tau_pos_at_lo), worst(|h| h.tau_neg_at_lo)),
        ("hi", worst(|h| h.tau_pos_at_hi), worst(|h| h.tau_neg_at_hi)),
    ] {
        if pos > 0.0 || neg > 0.0 {
            line += &format!(" | at {bound}: tau+ {:.0}% tau- {:.0}%", pos * 100.0, neg * 100.0);
        }
    }
    line
}

/// The error of a non-finite loss: the step, and each head's temperature ranges, flagging
/// heads whose statistics are themselves non-finite or whose temperatures sit at a bound.
fn non_finite_message(
    loss: f32,
    position: &Position,
    heads: &[HeadDiagnostics],
    run: &Path,
) -> String {
    let detail: Vec<String> = heads
        .iter()
        .enumerate()
        .map(|(c, h)| {
            let values =
                [h.tau_pos_min, h.tau_pos_max, h.tau_neg_min, h.tau_neg_max, h.pos_sim_mean];
            let flag = if values.iter().any(|v| !v.is_finite()) { " (non-finite)" } else { "" };
            format!(
                "head {c}{flag}: tau+ in [{:.2e}, {:.2e}], tau- in [{:.2e}, {:.2e}]",
                h.tau_pos_min, h.tau_pos_max, h.tau_neg_min, h.tau_neg_max
            )
        })
        .collect();
    format!(
        "non-finite loss ({loss}) at step {} (epoch {}, step {} of the epoch); {}. Try a lower --lr. \
         The last good checkpoint and weights are kept in {}",
        position.step + 1,
        position.epoch + 1,
        position.step_in_epoch + 1,
        detail.join("; "),
        run.display()
    )
}
