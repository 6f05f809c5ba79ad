//! `bench`: training-step throughput and peak memory of methods and backbones on a device, the
//! cost of AMCL over its base method, and the speed of the data pipeline.
//!
//! One method on one backbone is measured in this process. Several (`--method all`, `--backbone
//! small-cnn,resnet18`) are each measured in a child process, so that every figure has its own
//! peak memory; with `--rounds R` the children take turns R times and the median is reported,
//! which keeps a busy machine from favouring whichever ran first. AMCL's overhead over its base
//! method is the median of each round's ratio (see [`add_overheads`]).
//!
//! Warm-up steps are timed apart (`warmup_seconds`) and each is reported on stderr as it ends:
//! on a GPU they compile and autotune the kernels, which can take minutes.

use std::process::{Command, Stdio};
use std::time::Instant;

use crate::learner::Learner;
use amcl_core::prelude::*;
use anyhow::{Context, Result, bail};
use burn::prelude::*;
use serde_json::{Value, json};

use crate::config::{AmclForm, Reduction};
use crate::data::DataSource;
use crate::data::loader::Prefetcher;
use crate::device::{self, DeviceChoice, Precision};
use crate::optim::{self, OptimizerKind};

/// Arguments of `bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Methods, comma-separated, or `all` (every method of `pretrain --method`).
    #[arg(long, value_delimiter = ',', default_value = "amcl-simclr")]
    pub method: Vec<String>,
    /// Backbones, comma-separated (small-cnn, resnet18), or `all`.
    #[arg(long, value_delimiter = ',', default_value = "small-cnn")]
    pub backbone: Vec<String>,
    /// Width of the small CNN.
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Projection heads C.
    #[arg(long, default_value_t = 3)]
    pub heads: usize,
    /// Projection dimension d.
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Hidden width of the projection heads.
    #[arg(long, default_value_t = 512)]
    pub hidden: usize,
    /// Negative reduction of the AMCL objective.
    #[arg(long, value_enum, default_value_t = Reduction::Logsumexp)]
    pub reduction: Reduction,
    /// Temperature network of the amcl-* methods as in `pretrain --amcl-form` (the reduction is
    /// --reduction's) [default: each method's default form: centred for amcl-simclr and
    /// amcl-moco, the plain network otherwise].
    #[arg(long, value_enum)]
    pub amcl_form: Option<AmclForm>,
    /// Negatives per anchor of `--reduction topk`.
    #[arg(long, default_value_t = amcl_core::loss::AUTHORS_TOP_K)]
    pub top_k: usize,
    /// Images per batch (two views each).
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Augmentations that make the two views (timed separately from the training step).
    #[arg(long, default_value = "abcde")]
    pub augs: String,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed warm-up steps (kernel compilation, allocator growth).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Measurement rounds over all combinations, taking turns; the median is reported.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Measure the data pipeline instead (decode, batch gathering, augmentation) on `--data`.
    #[arg(long)]
    pub pipeline: bool,
    /// Dataset for `--pipeline`, as `pretrain --data` [default: the built-in dataset].
    #[arg(long)]
    pub data: Option<String>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Float type of the step, as `pretrain --precision`.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Print JSON instead of sentences.
    #[arg(long)]
    pub json: bool,
}

/// Runs `bench`.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.batch_size < 2 || args.steps == 0 || args.rounds == 0 {
        bail!("--batch-size must be at least 2, --steps and --rounds at least 1");
    }
    if args.pipeline {
        return pipeline(args);
    }
    let method_names = MethodKind::names();
    let method_names: Vec<&str> = method_names.iter().map(String::as_str).collect();
    let methods =
        expand(&args.method, &method_names, "method", |m| m.parse::<MethodKind>().map(|_| ()))?;
    let names: Vec<&str> = BackboneKind::ALL.iter().map(|(n, _)| *n).collect();
    let backbones =
        expand(&args.backbone, &names, "backbone", |b| b.parse::<BackboneKind>().map(|_| ()))?;
    args.augs.parse::<AugmentationSet>().context("--augs")?;
    let combinations: Vec<(String, String)> = backbones
        .iter()
        .flat_map(|b| methods.iter().map(move |m| (m.clone(), b.clone())))
        .collect();
    if let [(method, backbone)] = combinations.as_slice()
        && args.rounds == 1
    {
        let value = measure(args, method, backbone)?;
        print(args, &[value]);
        return Ok(());
    }
    let mut rounds: Vec<Vec<Value>> = vec![Vec::new(); combinations.len()];
    for round in 0..args.rounds {
        for (i, (method, backbone)) in combinations.iter().enumerate() {
            eprintln!(
                "round {}/{}: {method} on {backbone} ({}/{})",
                round + 1,
                args.rounds,
                i + 1,
                combinations.len()
            );
            let value = child(args, method, backbone)?;
            // As each child ends, so that a run cut short still shows what it measured.
            eprintln!(
                "{method} on {backbone}: {:.1} images/s",
                value["images_per_s"].as_f64().unwrap_or(f64::NAN)
            );
            rounds[i].push(value);
        }
    }
    let mut results: Vec<Value> = rounds.into_iter().map(median).collect();
    add_overheads(&mut results);
    print(args, &results);
    Ok(())
}

/// `all`, or a list whose every entry `check` accepts.
fn expand(
    given: &[String],
    all: &[&str],
    what: &str,
    check: impl Fn(&str) -> Result<(), AmclError>,
) -> Result<Vec<String>> {
    if given.iter().any(|g| g == "all") {
        return Ok(all.iter().map(|s| s.to_string()).collect());
    }
    for g in given {
        check(g).with_context(|| format!("--{what}"))?;
    }
    if given.is_empty() {
        bail!("--{what} needs at least one value");
    }
    Ok(given.to_vec())
}

/// Measures one combination in a child process of this binary and returns its JSON.
fn child(args: &BenchArgs, method: &str, backbone: &str) -> Result<Value> {
    let exe = std::env::current_exe().context("locating the amcl-train binary")?;
    let (device, reduction) = (flag_name(&args.device), flag_name(&args.reduction));
    let flags: Vec<String> = vec![
        "bench".into(),
        "--json".into(),
        format!("--method={method}"),
        format!("--backbone={backbone}"),
        format!("--width={}", args.width),
        format!("--heads={}", args.heads),
        format!("--dim={}", args.dim),
        format!("--hidden={}", args.hidden),
        format!("--reduction={reduction}"),
        format!("--top-k={}", args.top_k),
        format!("--batch-size={}", args.batch_size),
        format!("--augs={}", args.augs),
        format!("--steps={}", args.steps),
        format!("--warmup={}", args.warmup),
        format!("--device={device}"),
        format!("--precision={}", flag_name(&args.precision)),
    ];
    // The child's stderr (its warm-up progress, its error if any) goes straight to ours.
    let out = Command::new(exe)
        .args(&flags)
        .stderr(Stdio::inherit())
        .output()
        .context("running a bench child process")?;
    if !out.status.success() {
        bail!("bench of {method} on {backbone} failed ({}; its error is above)", out.status);
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading the bench output of {method} on {backbone}"))
}

/// A choice as clap parses it, so that a child process reads back exactly this value.
fn flag_name(value: &impl clap::ValueEnum) -> String {
    value.to_possible_value().expect("no skipped variants").get_name().to_string()
}

/// The round with the median training throughput, with every round's figure (in the order of
/// the rounds) and the largest peak memory.
fn median(rounds: Vec<Value>) -> Value {
    let rate = |v: &Value| v["images_per_s"].as_f64().unwrap_or(0.0);
    let all: Vec<f64> = rounds.iter().map(rate).collect();
    let peak = rounds.iter().filter_map(|v| v["peak_memory_bytes"].as_u64()).max();
    let mut sorted = rounds;
    sorted.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    let mut value = sorted[sorted.len() / 2].clone();
    value["rounds_images_per_s"] = json!(all);
    value["peak_memory_bytes"] = json!(peak);
    value
}

/// For every `amcl-X` measured with its base `X` on the same backbone: how much more a step
/// costs, `rate(X) / rate(amcl-X) - 1` in each round (`overhead_rounds`) and its median over
/// the rounds (`overhead_vs_base`). A round runs the two one after the other, so a machine
/// that is slower for a while slows both: on a shared 2-core host the ratio of the two medians
/// moved by more than the effect measured, the median of the rounds' own ratios much less.
fn add_overheads(results: &mut [Value]) {
    let rounds = |v: &Value| -> Vec<f64> {
        let all = v["rounds_images_per_s"].as_array().cloned().unwrap_or_default();
        all.iter().map(|r| r.as_f64().unwrap_or(f64::NAN)).collect()
    };
    let snapshot = results.to_vec();
    for value in results.iter_mut() {
        let Some(base) = value["method"].as_str().and_then(|m| m.strip_prefix("amcl-")) else {
            continue;
        };
        let base =
            snapshot.iter().find(|v| v["method"] == base && v["backbone"] == value["backbone"]);
        if let Some(base) = base {
            let ratios: Vec<f64> = rounds(base)
                .iter()
                .zip(rounds(value))
                .map(|(base, ours)| base / ours - 1.0)
                .collect();
            value["overhead_vs_base"] = json!(median_of(&ratios));
            value["overhead_rounds"] = json!(ratios);
        }
    }
}

/// The median of some numbers (the mean of the middle two for an even count; NaN for none).
fn median_of(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Measures `steps` training steps of `method` on `backbone` in this process.
fn measure(args: &BenchArgs, method: &str, backbone: &str) -> Result<Value> {
    let kind: MethodKind = method.parse()?;
    let backbone: BackboneKind = backbone.parse()?;
    let augs: AugmentationSet = args.augs.parse()?;
    let selected = device::select_with(args.device, args.precision)?;
    let device = selected.device.clone().autodiff();
    let form = args.amcl_form.filter(|f| f.applies_to(kind));
    let form = form.unwrap_or_else(|| AmclForm::default_for(kind));
    let config = kind.model_config(
        AmclModelConfig::new()
            .with_backbone(backbone)
            .with_width(args.width)
            .with_heads(args.heads)
            .with_dim(args.dim)
            .with_hidden(args.hidden)
            .with_temperature_form(form.temperature_form(kind)),
        args.batch_size,
    );
    let model = config.init(&device)?;
    let method = Method::new(
        kind,
        MethodConfig::new()
            .with_moco_queue(1024)
            .with_beta(kind.authors_beta())
            .with_reduction(args.reduction.with_k(args.top_k)),
    );
    let optimizer = optim::build(OptimizerKind::Sgd, 5e-4);
    // The step `pretrain` takes (without gradient clipping), at a fixed learning rate.
    let mut learner = Learner::new(model, optimizer, method, None);
    let mut augmenter = Augmenter::new(augs, AugmentConfig::new(), 0);
    let size = config.image_size;
    let images = Tensor::<4>::random(
        [args.batch_size, 3, size, size],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        &device,
    );
    let sync = |what: &str| device.sync().map_err(|e| anyhow::anyhow!("{what}: {e:?}"));
    let (mut step_seconds, mut augment_seconds, mut warmup_seconds) = (0.0, 0.0, 0.0);
    for step in 0..args.warmup + args.steps {
        let timed = step >= args.warmup;
        let started = Instant::now();
        let (a, b) = augmenter.two_views(images.clone())?;
        let (a, b) = (a.detach(), b.detach());
        sync("augmenting")?;
        let augmented = Instant::now();
        let outcome = learner.step((a, b), 1e-3)?;
        if !outcome.is_finite() {
            bail!("non-finite loss at bench step {step}");
        }
        sync("training step")?;
        if timed {
            augment_seconds += (augmented - started).as_secs_f64();
            step_seconds += augmented.elapsed().as_secs_f64();
        } else {
            let seconds = started.elapsed().as_secs_f64();
            warmup_seconds += seconds;
            eprintln!(
                "{} on {}: warm-up step {}/{} took {seconds:.1} s",
                kind.name(),
                backbone.name(),
                step + 1,
                args.warmup
            );
        }
    }
    let images = (args.steps * args.batch_size) as f64;
    Ok(json!({
        "method": kind.name(),
        "temperature_form": config.temperature_form,
        "backbone": backbone.name(),
        "batch_size": args.batch_size,
        "heads": args.heads,
        "precision": args.precision.name(),
        "images_per_s": images / step_seconds,
        "seconds_per_step": step_seconds / args.steps as f64,
        "warmup_seconds": warmup_seconds,
        "augment_images_per_s": images / augment_seconds,
        "peak_memory_bytes": device::peak_memory_bytes(&selected.device),
        "device": selected.name,
        "steps": args.steps,
        "params": learner.model().num_params(),
    }))
}

fn print(args: &BenchArgs, results: &[Value]) {
    if args.json {
        let text = if let [single] = results { single.clone() } else { json!(results) };
        println!("{}", serde_json::to_string_pretty(&text).expect("JSON values print"));
        return;
    }
    for v in results {
        let overhead = v["overhead_vs_base"]
            .as_f64()
            .map_or(String::new(), |o| format!(", {:+.1}% per step vs its base", o * 100.0));
        println!(
            "{} / {} / batch {} on {}: {:.1} images/s ({:.3} s/step), peak memory {:.1} MiB; augmentation {:.0} images/s{overhead}",
            v["method"].as_str().unwrap_or("?"),
            v["backbone"].as_str().unwrap_or("?"),
            v["batch_size"],
            v["device"].as_str().unwrap_or("?"),
            v["images_per_s"].as_f64().unwrap_or(0.0),
            v["seconds_per_step"].as_f64().unwrap_or(0.0),
            v["peak_memory_bytes"].as_f64().unwrap_or(0.0) / (1 << 20) as f64,
            v["augment_images_per_s"].as_f64().unwrap_or(0.0),
        );
    }
}

/// The data pipeline alone: decoding the dataset (all cores), gathering batches on the
/// prefetcher thread, and making two augmented views on the device.
fn pipeline(args: &BenchArgs) -> Result<()> {
    let source: DataSource = args.data.as_deref().unwrap_or("synthetic").parse()?;
    let augs: AugmentationSet = args.augs.parse().context("--augs")?;
    let selected = device::select(args.device)?;
    let device = selected.device.clone();
    let size = AmclModelConfig::new().image_size;

    let started = Instant::now();
    let split = source.load_all(size)?;
    let decode_seconds = started.elapsed().as_secs_f64();
    let loaded = split.train.len() + split.test.len();
    let train = std::sync::Arc::new(split.train);
    let batches = (args.steps * args.batch_size).min(train.len()) / args.batch_size;
    if batches == 0 {
        bail!("{source} has {} training images, fewer than --batch-size", train.len());
    }
    let order: Vec<usize> = (0..batches * args.batch_size).collect();

    let started = Instant::now();
    let gathered: Vec<TensorData> =
        Prefetcher::start(train.clone(), order, args.batch_size, 0).collect();
    let gather_seconds = started.elapsed().as_secs_f64();

    let mut augmenter = Augmenter::new(augs, AugmentConfig::new(), 0);
    let mut augment_seconds = 0.0;
    for (i, data) in gathered.into_iter().enumerate() {
        let images = Tensor::<4>::from_data(data, &device);
        device.sync().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let started = Instant::now();
        let _views = augmenter.two_views(images)?;
        device.sync().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        if i >= args.warmup.min(batches - 1) {
            augment_seconds += started.elapsed().as_secs_f64();
        }
    }
    let timed = (batches - args.warmup.min(batches - 1)) * args.batch_size;
    // The built-in dataset is generated, not decoded.
    let decode_rate = match source {
        DataSource::Synthetic => Value::Null,
        _ => json!(loaded as f64 / decode_seconds),
    };
    let value = json!({
        "data": source.to_string(),
        "images": loaded,
        "decode_images_per_s": decode_rate,
        "gather_images_per_s": (batches * args.batch_size) as f64 / gather_seconds,
        "augment_images_per_s": timed as f64 / augment_seconds,
        "augs": args.augs,
        "batch_size": args.batch_size,
        "device": selected.name,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let rate = |k: &str| value[k].as_f64().map_or("-".into(), |r| format!("{r:.0}"));
        println!(
            "{} ({} images) on {}: decode {} images/s (all cores, once per run), gather {} images/s, augment '{}' {} images/s (two views)",
            value["data"].as_str().unwrap_or("?"),
            loaded,
            selected.name,
            rate("decode_images_per_s"),
            rate("gather_images_per_s"),
            args.augs,
            rate("augment_images_per_s")
        );
    }
    Ok(())
}
