//! `experiment`: does AMCL help? Each base method against its AMCL version in one or more forms
//! (`--forms`: the authors' release and this project's default) at equal epochs, batch, data and
//! seed, for several augmentation sets and seeds.
//!
//! Every run is an ordinary `pretrain` run folder under `--out`, named
//! `<method>[-<form>]-<augs>-seed<seed>`. A finished run (with `summary.json`) is reused and an
//! interrupted one resumed, so an experiment stopped with Ctrl-C continues where it stopped.
//! The dataset is decoded once and each run draws its seeded subset, as `pretrain` would.
//! At the end, `results.md` holds the tables (kNN and linear-probe top-1, mean +- std over seeds,
//! the paired AMCL - base difference; what the temperatures did), `results.json` the raw numbers,
//! and `knn.svg` / `linear.svg` the accuracies as bar charts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::{Value, json};

use amcl_core::methods::{HeadDiagnostics, MethodKind};

use crate::config::{AmclForm, PretrainArgs, TrainConfig};
use crate::data::{DataSource, Split};
use crate::device::{self, DeviceChoice};
use crate::plots::{self, Bar, BarGroup};
use crate::train::{self, INTERRUPTED};
use crate::{files, metrics};

/// Arguments of `experiment`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExperimentArgs {
    /// Base methods, comma-separated; each runs plain and as `amcl-<base>`.
    #[arg(long, value_delimiter = ',', default_value = "simclr,moco,barlow")]
    pub methods: Vec<String>,
    /// Augmentation sets, comma-separated (letters as in `pretrain --augs`).
    #[arg(long, value_delimiter = ',', default_value = "a,abcde")]
    pub augs: Vec<String>,
    /// Forms of the AMCL objective, comma-separated (`pretrain --amcl-form`); each base method
    /// runs once and its AMCL version once per form that applies to it (centred: simclr, moco).
    #[arg(long, value_delimiter = ',', value_enum, default_value = "authors,centred")]
    pub forms: Vec<AmclForm>,
    /// Seeds, comma-separated; each seed fixes the initial weights, the data subset and the
    /// augmentations, identically for a base method and its AMCL version.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Projection heads of the plain methods (1 = the standard single-head method, the
    /// authors' baseline).
    #[arg(long, default_value_t = 1)]
    pub base_heads: usize,
    /// Projection heads C of the AMCL methods.
    #[arg(long, default_value_t = 3)]
    pub heads: usize,
    /// Epochs of every run.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Images per batch of every run.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Dataset, as `pretrain --data` [default: ./data/cifar10, else the built-in dataset].
    #[arg(long)]
    pub data: Option<String>,
    /// Training images per run (a seeded subset).
    #[arg(long, default_value_t = 2500)]
    pub train_size: usize,
    /// Test images per run (a seeded subset).
    #[arg(long, default_value_t = 1000)]
    pub test_size: usize,
    /// Experiment folder: one run folder per (method, augs, seed), and the results.
    #[arg(long, default_value = "runs/experiment")]
    pub out: PathBuf,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// More `pretrain` flags for every run, after `--` (e.g. `-- --backbone resnet18 --lr 0.06`).
    #[arg(last = true)]
    pub pretrain_flags: Vec<String>,
}

/// `pretrain`'s flags, parsed on their own.
#[derive(Parser)]
struct PretrainFlags {
    #[command(flatten)]
    args: PretrainArgs,
}

/// One cell of the grid.
#[derive(Debug, Clone)]
struct Run {
    method: String,
    /// `base`, or the AMCL form's name.
    arm: String,
    base: String,
    augs: String,
    seed: u64,
    config: TrainConfig,
    dir: PathBuf,
}

/// What the adaptive temperatures of a finished run did, averaged over its heads.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Temperatures {
    /// Mean tau+ and tau- of the last epoch's last logged step.
    tau_pos: f64,
    tau_neg: f64,
    /// Shares of tau+ and tau- within 1 % of lo, and of hi, then.
    pos_at_lo: f64,
    neg_at_lo: f64,
    pos_at_hi: f64,
    neg_at_hi: f64,
    /// Mean tau of test pairs: two views of one image, one class, different classes.
    views: f64,
    same_class: f64,
    other_class: f64,
}

/// What a finished run measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Outcome {
    method: String,
    arm: String,
    base: String,
    augs: String,
    seed: u64,
    knn_top1: f64,
    linear_top1: f64,
    wall_seconds: f64,
    temperatures: Option<Temperatures>,
}

/// Runs `experiment`; returns the process exit status.
pub fn run(args: &ExperimentArgs) -> Result<i32> {
    let runs = plan(args)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating experiment folder {}", args.out.display()))?;
    let selected = device::select(args.device)?;
    eprintln!("device: {}", selected.name);
    eprintln!(
        "experiment: {} runs ({} methods x {} augmentation sets x {} seeds), {} epochs each, in {}",
        runs.len(),
        (1 + args.forms.len()) * args.methods.len(),
        args.augs.len(),
        args.seeds.len(),
        args.epochs,
        args.out.display()
    );
    let first = &runs[0].config;
    let image_size = first.model.image_size;
    let mut whole: Option<Split> = None;
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        if let Some(done) = finished(run)? {
            eprintln!("[{}/{}] {} (done before, reused)", i + 1, runs.len(), run_name(run));
            outcomes.push(done);
            continue;
        }
        let resume = run.dir.join("config.json").exists();
        if resume {
            let saved = serde_json::to_value(train::read_config(&run.dir)?)?;
            if saved != serde_json::to_value(&run.config)? {
                bail!(
                    "{} holds a run with other settings than this experiment's; delete it or choose another --out",
                    run.dir.display()
                );
            }
        }
        eprintln!("[{}/{}] {}", i + 1, runs.len(), run_name(run));
        let split = match &run.config.data {
            DataSource::Synthetic => run.config.data.load(
                image_size,
                run.config.train_size,
                run.config.test_size,
                run.seed,
            )?,
            source => {
                if whole.is_none() {
                    eprintln!("loading {source} once for every run");
                    whole = Some(source.load_all(image_size)?);
                }
                let whole = whole.clone().expect("loaded above");
                whole.subset(run.config.train_size, run.config.test_size, run.seed)?
            }
        };
        let run_started = Instant::now();
        let code = train::pretrain(&run.config, split, &selected, &run.dir, resume)?;
        if code == INTERRUPTED {
            eprintln!(
                "experiment interrupted; run the same command again to continue (finished runs are kept)"
            );
            return Ok(INTERRUPTED);
        }
        let wall = run_started.elapsed().as_secs_f64();
        files::write_json(&run.dir.join("experiment.json"), &json!({ "wall_seconds": wall }))?;
        outcomes.push(finished(run)?.context("the run finished without a summary.json")?);
    }
    let total = started.elapsed().as_secs_f64();
    write_results(args, &outcomes, total)?;
    println!(
        "results: {} (and results.json, knn.svg, linear.svg); {:.1} min",
        args.out.join("results.md").display(),
        total / 60.0
    );
    Ok(0)
}

fn run_name(run: &Run) -> String {
    format!("{} ({}) augs {} seed {}", run.method, run.arm, run.augs, run.seed)
}

/// The name of an AMCL form, as `--forms` takes it.
fn form_name(form: AmclForm) -> String {
    serde_json::to_value(form).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// Every run of the grid, base method before its AMCL version, resolved and validated up front
/// so that a bad flag fails before the first run.
fn plan(args: &ExperimentArgs) -> Result<Vec<Run>> {
    if args.methods.is_empty() || args.augs.is_empty() || args.seeds.is_empty() {
        bail!("--methods, --augs and --seeds each need at least one value");
    }
    if args.forms.is_empty() {
        bail!("--forms needs at least one value");
    }
    // The default dataset is looked up once (it prints a notice when it falls back).
    let data = match &args.data {
        Some(data) => data.clone(),
        None => DataSource::default_source().to_string(),
    };
    let mut runs = Vec::new();
    for base in &args.methods {
        if base.starts_with("amcl-") {
            bail!(
                "--methods takes base methods ({base:?}: drop the 'amcl-' prefix; both versions run)"
            );
        }
        for augs in &args.augs {
            for &seed in &args.seeds {
                let mut arms = vec![(base.clone(), "base".to_string(), args.base_heads, None)];
                let kind: MethodKind = format!("amcl-{base}").parse()?;
                for &form in args.forms.iter().filter(|f| f.applies_to(kind)) {
                    arms.push((format!("amcl-{base}"), form_name(form), args.heads, Some(form)));
                }
                for (method, arm, heads, form) in arms {
                    let config = resolve(args, &data, &method, heads, augs, seed, form)?;
                    let name = match form {
                        Some(_) => format!("{method}-{arm}-{augs}-seed{seed}"),
                        None => format!("{method}-{augs}-seed{seed}"),
                    };
                    let dir = args.out.join(name);
                    let (base, augs) = (base.clone(), augs.clone());
                    runs.push(Run { method, arm, base, augs, seed, config, dir });
                }
            }
        }
    }
    Ok(runs)
}

/// `pretrain` flags the experiment sets itself.
const OWNED: [&str; 12] = [
    "method",
    "amcl-form",
    "heads",
    "augs",
    "seed",
    "epochs",
    "batch-size",
    "train-size",
    "test-size",
    "eval-every",
    "data",
    "out",
];

/// The `pretrain` configuration of one run: the experiment's settings, then `pretrain_flags`.
fn resolve(
    args: &ExperimentArgs,
    data: &str,
    method: &str,
    heads: usize,
    augs: &str,
    seed: u64,
    form: Option<AmclForm>,
) -> Result<TrainConfig> {
    let mut flags: Vec<String> = vec!["pretrain".into()];
    let mut set = |name: &str, value: String| flags.extend([format!("--{name}"), value]);
    set("method", method.into());
    if let Some(form) = form {
        set("amcl-form", form_name(form));
    }
    set("heads", heads.to_string());
    set("augs", augs.into());
    set("seed", seed.to_string());
    set("epochs", args.epochs.to_string());
    set("batch-size", args.batch_size.to_string());
    set("train-size", args.train_size.to_string());
    set("test-size", args.test_size.to_string());
    // kNN once, after the last epoch, with the linear probe.
    set("eval-every", args.epochs.to_string());
    set("data", data.into());
    for flag in &args.pretrain_flags {
        let name = flag.split('=').next().unwrap_or_default();
        if OWNED.iter().any(|owned| name == format!("--{owned}")) {
            bail!(
                "{name} after `--`: the experiment sets it for every run; use `experiment {name}` \
                 (experiment flags go before `--`)"
            );
        }
    }
    flags.extend(args.pretrain_flags.iter().cloned());
    let parsed = PretrainFlags::try_parse_from(&flags)
        .map_err(|e| anyhow::anyhow!("{}", e.render().to_string().trim()))
        .context("the flags after `--`")?;
    parsed.args.resolve().with_context(|| format!("{method} augs {augs} seed {seed}"))
}

/// The outcome of a run that has finished, if it has.
fn finished(run: &Run) -> Result<Option<Outcome>> {
    let path = run.dir.join("summary.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let summary: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is corrupt", path.display()))?;
    let wall = std::fs::read_to_string(run.dir.join("experiment.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["wall_seconds"].as_f64())
        .unwrap_or(f64::NAN);
    let number = |key: &str| {
        summary[key].as_f64().with_context(|| format!("{} has no {key}", path.display()))
    };
    let temperatures = (run.arm != "base").then(|| temperatures(&run.dir, &summary));
    Ok(Some(Outcome {
        method: run.method.clone(),
        arm: run.arm.clone(),
        base: run.base.clone(),
        augs: run.augs.clone(),
        seed: run.seed,
        knn_top1: number("knn_top1")? * 100.0,
        linear_top1: number("linear_top1")? * 100.0,
        wall_seconds: wall,
        temperatures,
    }))
}

/// The temperatures of a finished AMCL run: the last epoch's per-head statistics in
/// metrics.jsonl, and the pair kinds of summary.json, each averaged over the heads.
fn temperatures(dir: &Path, summary: &Value) -> Temperatures {
    let heads = metrics::epochs(dir).pop().map(|e| e.heads).unwrap_or_default();
    let mean = |values: Vec<f64>| {
        if values.is_empty() { f64::NAN } else { values.iter().sum::<f64>() / values.len() as f64 }
    };
    let stat = |of: fn(&HeadDiagnostics) -> f32| mean(heads.iter().map(|h| of(h) as f64).collect());
    let spread = summary["temperature_spread"].as_array().cloned().unwrap_or_default();
    let kind =
        |name: &str| mean(spread.iter().filter_map(|h| h[name]["tau"]["mean"].as_f64()).collect());
    Temperatures {
        tau_pos: stat(|h| h.tau_pos_mean),
        tau_neg: stat(|h| h.tau_neg_mean),
        pos_at_lo: stat(|h| h.tau_pos_at_lo),
        neg_at_lo: stat(|h| h.tau_neg_at_lo),
        pos_at_hi: stat(|h| h.tau_pos_at_hi),
        neg_at_hi: stat(|h| h.tau_neg_at_hi),
        views: kind("views"),
        same_class: kind("same_class"),
        other_class: kind("other_class"),
    }
}

/// Mean and sample standard deviation (0 for a single value).
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

fn pm((mean, std): (f64, f64)) -> String {
    format!("{mean:.2} ± {std:.2}")
}

/// The values of `metric` for `base`'s `arm` and `augs`, in seed order.
fn values(
    outcomes: &[Outcome],
    (base, arm): (&str, &str),
    augs: &str,
    metric: &dyn Fn(&Outcome) -> f64,
) -> Vec<f64> {
    outcomes
        .iter()
        .filter(|o| o.base == base && o.arm == arm && o.augs == augs)
        .map(metric)
        .collect()
}

/// A reported metric: its title, its file stem, and how to read it from an outcome.
type Metric = (&'static str, &'static str, fn(&Outcome) -> f64);

/// Writes results.md, results.json, knn.svg and linear.svg.
fn write_results(args: &ExperimentArgs, outcomes: &[Outcome], total_seconds: f64) -> Result<()> {
    let out = &args.out;
    let metrics: [Metric; 2] =
        [("kNN", "knn", |o| o.knn_top1), ("linear probe", "linear", |o| o.linear_top1)];
    let forms: Vec<String> = args.forms.iter().map(|&f| form_name(f)).collect();
    let mut md = String::new();
    let _ = writeln!(md, "# AMCL vs its base method\n");
    let _ = writeln!(
        md,
        "Top-1 accuracy (%) on the test subset, mean ± sample std over seeds {:?}; Δ is AMCL − base, \
         paired by seed (the same seed draws the data subset, the augmentations and the initial weights). Base methods \
         use {} head(s), AMCL {} heads, in the forms {} (`pretrain --amcl-form`). {} epochs, batch {}, {} training / {} test images. kNN: \
         k = 200, t = 0.1 on backbone features; linear probe on the same features.\n",
        args.seeds,
        args.base_heads,
        args.heads,
        forms.join(", "),
        args.epochs,
        args.batch_size,
        args.train_size,
        args.test_size
    );
    let _ = writeln!(
        md,
        "| base | augs | AMCL form | base kNN | AMCL kNN | Δ kNN | base linear | AMCL linear | Δ linear | AMCL better (kNN, seeds) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    let mut groups: [Vec<BarGroup>; 2] = [Vec::new(), Vec::new()];
    for base in &args.methods {
        for augs in &args.augs {
            let mut bars: [Vec<Bar>; 2] = [Vec::new(), Vec::new()];
            for (f, form) in forms.iter().enumerate() {
                let mut row = format!("| {base} | {augs} | {form} |");
                let mut seed_wins = 0;
                for (m, (_, _, metric)) in metrics.iter().enumerate() {
                    let b = values(outcomes, (base, "base"), augs, metric);
                    let a = values(outcomes, (base, form), augs, metric);
                    let diff: Vec<f64> = a.iter().zip(&b).map(|(a, b)| a - b).collect();
                    let (delta, delta_std) = mean_std(&diff);
                    let _ = write!(
                        row,
                        " {} | {} | {delta:+.2} ± {delta_std:.2} |",
                        pm(mean_std(&b)),
                        pm(mean_std(&a))
                    );
                    if m == 0 {
                        seed_wins = diff.iter().filter(|d| **d > 0.0).count();
                    }
                    let bar = |label: &str, v: &[f64], colour| {
                        let (mean, std) = mean_std(v);
                        Bar { label: label.to_string(), mean, std, colour }
                    };
                    if f == 0 {
                        bars[m].push(bar("base", &b, 0));
                    }
                    bars[m].push(bar(&format!("AMCL {form}"), &a, f + 1));
                }
                let _ = writeln!(md, "{row} {seed_wins} of {} |", args.seeds.len());
            }
            for (m, bars) in bars.into_iter().enumerate() {
                groups[m].push(BarGroup { label: format!("{base} / {augs}"), bars });
            }
        }
    }
    let _ = writeln!(md, "\n![kNN top-1](knn.svg) ![linear-probe top-1](linear.svg)\n");
    write_temperature_table(&mut md, args, &forms, outcomes);
    let _ = writeln!(md, "\nPer-head adaptive temperatures over training, first seed:\n");
    for base in &args.methods {
        for augs in &args.augs {
            for form in &forms {
                let run = format!("amcl-{base}-{form}-{augs}-seed{}", args.seeds[0]);
                let _ = writeln!(md, "- {run}: [temperatures]({run}/temperatures.svg)");
            }
        }
    }
    let _ = writeln!(md, "\n## Every run\n");
    let _ = writeln!(md, "| method | form | augs | seed | kNN | linear | wall time (s) |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for o in outcomes {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.0} |",
            o.method, o.arm, o.augs, o.seed, o.knn_top1, o.linear_top1, o.wall_seconds
        );
    }
    let runs_seconds: f64 = outcomes.iter().map(|o| o.wall_seconds).filter(|s| s.is_finite()).sum();
    let _ = writeln!(
        md,
        "\nWall time: {:.1} min for the runs (each timed when it ran), {:.1} min for this invocation \
         (finished runs are reused).",
        runs_seconds / 60.0,
        total_seconds / 60.0
    );
    crate::files::write_json(
        &out.join("results.json"),
        &json!({ "runs": outcomes, "total_seconds": total_seconds }),
    )?;
    write_text(&out.join("results.md"), &md)?;
    for (m, (title, file, _)) in metrics.iter().enumerate() {
        let svg = plots::bar_chart(
            &format!("{title} top-1, mean ± std over {} seeds", args.seeds.len()),
            "top-1 (%)",
            &groups[m],
        )?;
        write_text(&out.join(format!("{file}.svg")), &svg)?;
    }
    Ok(())
}

/// What the temperatures did in each AMCL form, mean over seeds and heads: tau+ and tau- at the
/// end of training, their shares at the bounds, and tau of three kinds of test pairs.
fn write_temperature_table(
    md: &mut String,
    args: &ExperimentArgs,
    forms: &[String],
    outcomes: &[Outcome],
) {
    let _ = writeln!(md, "## What the temperatures did\n");
    let _ = writeln!(
        md,
        "At the end of training (the last logged step), mean over seeds and heads: tau+ and tau- \
         (the negatives the objective uses), the share of each within 1 % of the floor lo and of \
         the ceiling hi; and on {} test images, tau of two views of one image, of two images of \
         one class, and of images of different classes.\n",
        crate::spread::IMAGES
    );
    let _ = writeln!(
        md,
        "| base | augs | form | tau+ | tau- | tau+ at lo | tau- at lo | tau+ at hi | tau- at hi | tau, views of one image | tau, one class | tau, different classes |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for base in &args.methods {
        for augs in &args.augs {
            for form in forms {
                let t = |f: fn(&Temperatures) -> f64| {
                    let v = values(outcomes, (base, form), augs, &|o: &Outcome| {
                        o.temperatures.as_ref().map_or(f64::NAN, f)
                    });
                    mean_std(&v).0
                };
                let pct = |v: f64| format!("{:.0} %", v * 100.0);
                let _ = writeln!(
                    md,
                    "| {base} | {augs} | {form} | {:.4} | {:.4} | {} | {} | {} | {} | {:.4} | {:.4} | {:.4} |",
                    t(|t| t.tau_pos),
                    t(|t| t.tau_neg),
                    pct(t(|t| t.pos_at_lo)),
                    pct(t(|t| t.neg_at_lo)),
                    pct(t(|t| t.pos_at_hi)),
                    pct(t(|t| t.neg_at_hi)),
                    t(|t| t.views),
                    t(|t| t.same_class),
                    t(|t| t.other_class),
                );
            }
        }
    }
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    crate::files::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[4.0]), (4.0, 0.0));
    }
}
