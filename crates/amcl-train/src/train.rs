//! `pretrain`: the training loop.
//!
//! Each step: a batch from the prefetcher, two augmented views, the method's loss, one optimiser
//! step, the method's post-step update (MoCo's momentum encoder). Every source of randomness is
//! derived from (seed, epoch) or (seed, step), so a run resumed from a checkpoint takes exactly
//! the steps an uninterrupted run would have taken.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use amcl_core::methods::HeadDiagnostics;
use amcl_core::prelude::*;
use amcl_core::rng::Rng;
use amcl_core::weights;
use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::{self, Position};
use crate::config::{PretrainArgs, TrainConfig};
use crate::data::Split;
use crate::data::loader::Prefetcher;
use crate::device;
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
    let config = if args.resume { read_config(&args.out)? } else { args.resolve()? };
    let selected = device::select_with(args.device, config.precision)?;
    eprintln!("device: {}", selected.name);
    let split = config.data.load(
        config.model.image_size,
        config.train_size,
        config.test_size,
        config.seed,
    )?;
    pretrain(&config, split, &selected, &args.out, args.resume)
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
    let kind = config.method_kind()?;
    let augs = config.augmentations()?;
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("creating run folder {}", run_dir.display()))?;
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
    eprintln!(
        "data: {} ({} training, {} test images, {} classes)",
        split.description,
        split.train.len(),
        split.test.len(),
        split.train.classes()
    );
    // The training set is shared with the prefetcher thread, not copied.
    let Split { train, test, description } = split;
    let train = Arc::new(train);

    let manifest = Manifest::new(config.model.clone(), &kind.name(), config.beta);
    let mut method = Method::new(kind, config.method_config());
    let fresh_optimizer = || optim::build(config.optimizer, config.weight_decay);
    let (mut model, mut optimizer, mut position) = if resume {
        let restored = checkpoint::load(run_dir, fresh_optimizer(), &device)?;
        if let Some(moco) = restored.moco {
            method.set_moco_state(moco);
        }
        eprintln!(
            "checkpoint: epoch {} step {} ({} steps in all)",
            restored.position.epoch + 1,
            restored.position.step_in_epoch,
            restored.position.step
        );
        (restored.model, restored.optimizer, restored.position)
    } else {
        write_json(&run_dir.join("config.json"), config)?;
        std::fs::write(run_dir.join("metrics.jsonl"), "").context("creating metrics.jsonl")?;
        // Seeded initial weights, so that a run is reproducible from its config.
        device.seed(config.seed);
        let mut model = config.model.init(&device)?;
        if let Some(tau) = config.tau_init {
            model = model.with_initial_temperature(tau)?;
        }
        (model, fresh_optimizer(), Position { epoch: 0, step_in_epoch: 0, step: 0 })
    };
    let mut metrics = open_metrics(run_dir, position.step)?;

    let steps_per_epoch = train.len() / config.batch_size;
    let total_steps = steps_per_epoch * config.epochs;
    let warmup = (config.warmup_epochs * steps_per_epoch).min(total_steps / 2).max(1);
    let interrupted = interrupt_flag();
    let mut last_report = None;

    while position.epoch < config.epochs {
        let epoch = position.epoch;
        let mut order: Vec<usize> = (0..train.len()).collect();
        Rng::new(derive_seed(config.seed, ORDER, epoch as u64)).shuffle(&mut order);
        let batches =
            Prefetcher::start(train.clone(), order, config.batch_size, position.step_in_epoch);
        let bar = epoch_bar(epoch, config.epochs, steps_per_epoch, position.step_in_epoch);
        let started = Instant::now();
        let (mut loss_sum, mut loss_count) = (0.0f64, 0usize);
        let mut heads: Vec<HeadDiagnostics> = Vec::new();
        let first_step = position.step_in_epoch;
        for data in batches {
            let images = Tensor::<4>::from_data(data, &device);
            let mut augmenter = Augmenter::new(
                augs,
                AugmentConfig::new(),
                derive_seed(config.seed, AUGMENT, position.step as u64),
            );
            let (a, b) = augmenter.two_views(images)?;
            let out = method.loss(&model, a, b)?;
            let loss = out.loss.clone().into_scalar::<f32>();
            let read_heads = !loss.is_finite()
                || position.step_in_epoch % 10 == 0
                || position.step_in_epoch + 1 == steps_per_epoch;
            if read_heads {
                heads = out.diagnostics.read();
            }
            if !loss.is_finite() {
                bar.abandon();
                bail!(non_finite_message(loss, &position, &heads, run_dir));
            }
            let lr = optim::learning_rate(config.lr, position.step, total_steps, warmup);
            let mut grads = GradientsParams::from_grads(out.loss.backward(), &model);
            let mut grad_norm = None;
            if let Some(max_norm) = config.grad_clip {
                let (clipped, norm) = optim::clip_global_norm(grads, &model, max_norm);
                grads = clipped;
                grad_norm = norm.map(|n| n.into_scalar::<f32>());
            }
            model = optimizer.step(lr, model, grads);
            method.after_step(&model);
            position.step += 1;
            position.step_in_epoch += 1;
            loss_sum += loss as f64;
            loss_count += 1;
            append_record(
                &mut metrics,
                serde_json::json!({"kind": "step", "epoch": epoch + 1, "step": position.step, "loss": loss, "lr": lr, "grad_norm": grad_norm}),
            )?;
            let rate = ((position.step_in_epoch - first_step) * config.batch_size) as f64
                / started.elapsed().as_secs_f64();
            bar.set_message(format!("loss {loss:.4} | {rate:.0} img/s | {}", taus(&heads)));
            bar.inc(1);
            if interrupted.load(Ordering::SeqCst) {
                bar.abandon();
                metrics.flush()?;
                checkpoint::save(
                    run_dir,
                    &model,
                    &manifest,
                    &optimizer,
                    method.moco_state(),
                    position,
                )?;
                eprintln!(
                    "interrupted: checkpoint at epoch {} step {} written to {}; continue with\n  amcl-train pretrain --out {} --resume",
                    epoch + 1,
                    position.step_in_epoch,
                    run_dir.join("checkpoint").display(),
                    run_dir.display()
                );
                return Ok(INTERRUPTED);
            }
        }
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        let images_per_s = (loss_count * config.batch_size) as f64 / seconds;
        let mean_loss = loss_sum / loss_count.max(1) as f64;
        position = Position { epoch: epoch + 1, step_in_epoch: 0, step: position.step };
        let last = epoch + 1 == config.epochs;
        let report = if last || (epoch + 1) % config.eval_every == 0 {
            // The linear probe runs once, after the last epoch.
            Some(eval::evaluate(&model.valid(), &train, &test, &plain, last)?)
        } else {
            None
        };
        let knn = report.as_ref().map(|r| r.knn_top1);
        eprintln!(
            "epoch {}/{} loss {mean_loss:.4} | {images_per_s:.0} img/s | {} | kNN {} ({seconds:.1}s)",
            epoch + 1,
            config.epochs,
            taus(&heads),
            knn.map_or("-".into(), |k| format!("{:.2}%", k * 100.0)),
        );
        append_record(
            &mut metrics,
            serde_json::json!({"kind": "epoch", "epoch": epoch + 1, "step": position.step, "loss": mean_loss,
                "images_per_s": images_per_s, "seconds": seconds, "heads": heads, "knn_top1": knn}),
        )?;
        metrics.flush()?;
        let valid = model.valid();
        weights::save(&valid, &manifest, &run_dir.join("model.bpk"))?;
        checkpoint::save(run_dir, &model, &manifest, &optimizer, method.moco_state(), position)?;
        plots::write_run_plots(run_dir).context("writing plots")?;
        last_report = report;
    }

    let valid = model.valid();
    let report = match last_report {
        Some(report) => report,
        // Resuming a run that had already finished.
        None => eval::evaluate(&valid, &train, &test, &plain, true)?,
    };
    let mut manifest = manifest;
    manifest.training = serde_json::json!({
        "epochs": config.epochs,
        "steps": position.step,
        "data": description,
        "knn_top1": report.knn_top1,
        "linear_top1": report.linear_top1,
        "heads": report.heads,
    });
    weights::save(&valid, &manifest, &run_dir.join("model.bpk"))?;
    let final_loss = last_epoch_loss(run_dir);
    let mut summary = manifest.training.clone();
    // Pair temperatures by kind of pair; Barlow Twins' temperatures are between channels.
    if kind.has_pair_temperatures() {
        let spread = spread::temperature_spread(&valid, &test, augs, config.seed, &plain)?;
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
    summary["method"] = kind.name().into();
    summary["device"] = selected.name.clone().into();
    write_json(&run_dir.join("summary.json"), &summary)?;
    println!(
        "kNN top-1 (k={}, t={}) on {}: {:.2}%; linear probe {:.2}%",
        eval::KNN_K,
        eval::KNN_T,
        description,
        report.knn_top1 * 100.0,
        report.linear_top1.unwrap_or(0.0) * 100.0
    );
    for h in &report.heads {
        println!("  head {}: kNN {:.2}%", h.head, h.knn_top1 * 100.0);
    }
    println!("weights: {}", run_dir.join("model.bpk").display());
    println!("plots: {}/{{loss,temperatures,accuracy}}.svg", run_dir.display());
    Ok(0)
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

/// Appends one record to metrics.jsonl as one write of the whole line, so that a reader (a
/// test or a user following the run) never sees part of one: `writeln!` of a JSON value writes
/// it in many small pieces, and a test that read the file mid-record failed on the fragment.
fn append_record(metrics: &mut std::fs::File, record: serde_json::Value) -> std::io::Result<()> {
    metrics.write_all(format!("{record}\n").as_bytes())
}

/// Opens metrics.jsonl for appending, first dropping records past `step` (left by an
/// interrupted run after its last checkpoint).
fn open_metrics(run: &Path, step: usize) -> Result<std::fs::File> {
    let path = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s as usize <= step)
        })
        .map(|line| format!("{line}\n"))
        .collect();
    weights::write_atomic(&path, kept.as_bytes())?;
    std::fs::OpenOptions::new().append(true).open(&path).context("opening metrics.jsonl")
}

fn last_epoch_loss(run: &Path) -> f64 {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "epoch")
        .find_map(|v| v["loss"].as_f64())
        .unwrap_or(f64::NAN)
}

pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    weights::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
