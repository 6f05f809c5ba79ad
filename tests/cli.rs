//! End-to-end tests: the `amcl-train` binary run as a user runs it (pretrain, resume, eval,
//! export, score, bench, and bad input). Data loaders are tested in `data.rs`.

mod common;

use std::path::Path;

use common::*;

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn epoch_records(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "epoch")
        .collect()
}

#[test]
fn tiny_pretrain_writes_a_run_folder_with_loadable_weights() {
    let dir = temp_dir("pretrain");
    let out = tiny_pretrain(&dir, "2", "64", "32");
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kNN top-1"), "{stdout}");
    let epochs = epoch_records(&dir);
    assert_eq!(epochs.len(), 2);
    for v in &epochs {
        assert!(v["loss"].as_f64().unwrap().is_finite());
        assert_eq!(v["heads"].as_array().unwrap().len(), 3);
        let knn = v["knn_top1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&knn));
    }
    let config = read_json(&dir.join("config.json"));
    assert_eq!(config["method"], "amcl-simclr");
    assert_eq!(config["data"]["kind"], "synthetic");
    let summary = read_json(&dir.join("summary.json"));
    for key in ["knn_top1", "linear_top1"] {
        assert!((0.0..=1.0).contains(&summary[key].as_f64().unwrap()), "{key}");
    }
    // Each plot has its series: a legend entry is drawn only for a series with points.
    for (plot, series) in [
        ("loss.svg", "epoch mean"),
        ("temperatures.svg", "head 2 tau-"),
        ("accuracy.svg", "kNN top-1"),
    ] {
        let svg = std::fs::read_to_string(dir.join(plot)).unwrap();
        let legend_entry = svg.lines().any(|line| line == series);
        assert!(svg.starts_with("<svg") && legend_entry, "{plot} has no {series:?}");
    }
    assert!(dir.join("checkpoint/state.json").is_file());
    let (_, manifest) =
        amcl_core::weights::load(&dir.join("model.bpk"), &burn::tensor::Device::flex()).unwrap();
    assert_eq!(manifest.method, "amcl-simclr");
    assert_eq!(manifest.model.dim, 16);
    assert!(manifest.training["knn_top1"].is_number());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn tau_init_starts_the_temperatures_there() {
    let dir = temp_dir("tau-init");
    let mut args = tiny_args(dir.to_str().unwrap(), "1", "64", "32");
    args.extend(["--amcl-form", "soft", "--tau-init", "0.2"]);
    let out = amcl_train(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let tau_init = read_json(&dir.join("config.json"))["tau_init"].as_f64().unwrap();
    assert!((tau_init - 0.2).abs() < 1e-6, "{tau_init}");
    // After one tiny epoch every head's temperatures are still near 0.2, not near 1.
    let heads = epoch_records(&dir)[0]["heads"].as_array().unwrap().clone();
    assert_eq!(heads.len(), 3);
    for head in heads {
        for key in ["tau_pos_mean", "tau_neg_mean"] {
            let tau = head[key].as_f64().unwrap();
            assert!((0.1..0.35).contains(&tau), "{key}: {head}");
        }
    }
    // The rest of the initial weights are untouched: plain SimCLR (whose phi is unused) takes
    // exactly the same steps with and without --tau-init.
    let step_losses = |sub: &str, extra: &[&'static str]| {
        let out_dir = dir.join(sub);
        let mut args = tiny_args(out_dir.to_str().unwrap(), "1", "64", "32");
        args.extend(["--method", "simclr"]);
        args.extend(extra);
        assert!(amcl_train(&args).status.success());
        let metrics = std::fs::read_to_string(out_dir.join("metrics.jsonl")).unwrap();
        metrics
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["kind"] == "step")
            .map(|v| v["loss"].as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    let plain = step_losses("plain", &[]);
    assert!(!plain.is_empty());
    assert_eq!(plain, step_losses("plain-tau", &["--tau-init", "0.2"]));
    let dir_arg = dir.to_str().unwrap();
    let out = amcl_train(&["pretrain", "--amcl-form", "soft", "--tau-init", "3", "--out", dir_arg]);
    assert_clean_failure(&out, "--tau-init must lie strictly between");
    std::fs::remove_dir_all(dir).ok();
}

/// `--amcl-form centred`: the centred temperature network with its level at the base method's
/// temperature (hi = 2 tau_0), recorded in the configuration and the weights; the temperatures
/// start there and `score` reads the form back. `--tau-init` does not apply and says so.
#[test]
fn centred_form_keeps_its_level_at_the_base_temperature() {
    let dir = temp_dir("centred-form");
    for (method, hi) in [("amcl-simclr", 1.0), ("amcl-moco", 0.2)] {
        let out_dir = dir.join(method);
        let mut args = tiny_args(out_dir.to_str().unwrap(), "1", "64", "32");
        args.extend(["--method", method, "--amcl-form", "centred"]);
        let out = amcl_train(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let config = read_json(&out_dir.join("config.json"));
        assert_eq!(config["model"]["temperature_form"], "centred");
        assert_eq!(config["reduction"], "logsumexp");
        let got = config["model"]["temperature"]["hi"].as_f64().unwrap();
        assert!((got - hi).abs() < 1e-6, "{method}: hi {got}");
        // After one tiny epoch the temperatures are near their level hi / 2 on average.
        for head in epoch_records(&out_dir)[0]["heads"].as_array().unwrap() {
            let tau = head["tau_neg_mean"].as_f64().unwrap();
            assert!((tau - hi / 2.0).abs() < 0.1 * hi, "{method}: {head}");
        }
    }
    let score = score_grey_pair(&dir, &dir.join("amcl-simclr").join("model.bpk"));
    assert_eq!(score["temperature_form"], "centred", "{score}");
    let out = amcl_train(&[
        "pretrain",
        "--amcl-form",
        "centred",
        "--tau-init",
        "0.2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_clean_failure(&out, "--tau-init does not apply to --amcl-form centred");
    std::fs::remove_dir_all(dir).ok();
}

/// The authors' form with their gradient clipping: the configuration names every part, every step
/// records the gradient's norm before clipping, every epoch the share of temperatures at each
/// bound, and the end of the run the temperatures by kind of pair.
#[test]
fn authors_form_records_clipping_and_saturation() {
    let dir = temp_dir("authors-form");
    let mut args = tiny_args(dir.to_str().unwrap(), "1", "64", "32");
    args.extend([
        "--amcl-form",
        "authors",
        "--optimizer",
        "sgd",
        "--lr",
        "0.06",
        "--grad-clip",
        "1",
    ]);
    let out = amcl_train(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = read_json(&dir.join("config.json"));
    assert_eq!(config["reduction"], "topk");
    assert_eq!(config["top_k"], 100);
    assert_eq!(config["grad_clip"], 1.0);
    assert!(config["tau_init"].is_null(), "{config}");
    assert!((config["beta"].as_f64().unwrap() - 1e-4).abs() < 1e-9);
    assert_eq!(config["model"]["temperature_form"], "dot");
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let steps: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .collect();
    assert_eq!(steps.len(), 2);
    assert!(steps.iter().all(|s| s["grad_norm"].as_f64().is_some_and(|n| n > 0.0)), "{metrics}");
    let heads = epoch_records(&dir)[0]["heads"].as_array().unwrap().clone();
    for head in heads {
        for key in ["tau_pos_at_lo", "tau_pos_at_hi", "tau_neg_at_lo", "tau_neg_at_hi"] {
            let share = head[key].as_f64().unwrap_or(-1.0);
            assert!((0.0..=1.0).contains(&share), "{key}: {head}");
        }
    }
    let spread = read_json(&dir.join("summary.json"))["temperature_spread"].clone();
    let spread = spread.as_array().expect("temperature_spread");
    assert_eq!(spread.len(), 3);
    for kind in ["views", "same_class", "other_class", "hardest", "easiest"] {
        let tau = spread[0][kind]["tau"]["mean"].as_f64().unwrap();
        assert!(tau > 0.0 && tau < 2.0, "{kind}: {tau}");
    }
    // Each of the 20 test images' 10 most and 10 least similar other images, the hardest
    // more similar than the easiest.
    let (hard, easy) = (&spread[0]["hardest"], &spread[0]["easiest"]);
    assert_eq!((hard["pairs"].as_u64(), easy["pairs"].as_u64()), (Some(200), Some(200)));
    let s = |k: &serde_json::Value| k["similarity"]["mean"].as_f64().unwrap();
    assert!(s(hard) > s(easy), "{spread:?}");
    let r = spread[0]["tau_similarity_correlation"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&r), "{r}");
    // Bad values of the new flags are clean errors.
    for (flag, value, needle) in [
        ("--grad-clip", "-1", "--grad-clip must be a positive number"),
        ("--grad-clip", "nan", "--grad-clip must be a positive number"),
        ("--tau-init", "1.5", "--tau-init does not apply to --amcl-form centred"),
        ("--temperature", "0", "--temperature must be a positive number"),
    ] {
        let flag = format!("{flag}={value}");
        let out = amcl_train(&["pretrain", &flag, "--out", dir.to_str().unwrap()]);
        assert_clean_failure(&out, needle);
    }
    let out = amcl_train(&[
        "pretrain",
        "--reduction",
        "topk",
        "--top-k",
        "0",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_clean_failure(&out, "--top-k must be at least 1");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn half_precision_trains_in_bf16_and_saves_half_size_weights() {
    let dir = temp_dir("bf16");
    let (half, full) = (dir.join("bf16"), dir.join("f32"));
    let mut args = tiny_args(half.to_str().unwrap(), "2", "64", "32");
    args.extend(["--precision", "bf16"]);
    let out = amcl_train(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("cpu (flex) in bf16"), "{}", stderr(&out));
    assert_eq!(read_json(&half.join("config.json"))["precision"], "bf16");
    for v in epoch_records(&half) {
        assert!(v["loss"].as_f64().unwrap().is_finite());
    }
    let out = tiny_pretrain(&full, "2", "64", "32");
    assert!(out.status.success(), "{}", stderr(&out));
    // Parameters are bf16: the weights file is about half the f32 one, and loads as f32.
    let size = |d: &Path| std::fs::metadata(d.join("model.bpk")).unwrap().len() as f64;
    assert!(size(&half) < 0.6 * size(&full), "{} vs {}", size(&half), size(&full));
    amcl_core::weights::load(&half.join("model.bpk"), &burn::tensor::Device::flex()).unwrap();
    std::fs::remove_dir_all(dir).ok();
}

fn refs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

#[test]
fn resume_after_ctrl_c_continues_to_the_uninterrupted_result() {
    // bf16: the checkpoint's weights and optimiser state load back in the training precision,
    // and the MoCo queue in the objective's f32.
    for (method, precision) in [("amcl-simclr", "f32"), ("amcl-moco", "f32"), ("amcl-moco", "bf16")]
    {
        let dir = temp_dir(&format!("resume-{method}-{precision}"));
        let (whole, cut) = (dir.join("whole"), dir.join("cut"));
        let args = |out: &Path| {
            let out = out.to_str().unwrap().to_string();
            let mut a: Vec<String> =
                tiny_args(&out, "8", "128", "16").into_iter().map(String::from).collect();
            a.extend(["--method".into(), method.into(), "--precision".into(), precision.into()]);
            a
        };

        let out = amcl_train(&refs(&args(&whole)));
        assert!(out.status.success(), "{}", stderr(&out));

        // Interrupt the same run with SIGINT once its first epoch is recorded.
        let out = interrupt_when(&refs(&args(&cut)), || !epoch_records(&cut).is_empty());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(130), "{err}");
        assert!(err.contains("--resume"), "{err}");
        let done = epoch_records(&cut).len();
        assert!(done < 8, "the run finished before the interrupt");

        let out = resume(&cut, &["--device", "cpu"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let (a, b) = (step_losses(&whole), step_losses(&cut));
        assert_eq!(a.len(), b.len());
        for (step, (x, y)) in a.iter().zip(&b).enumerate() {
            let what = format!("{method} in {precision}, step {step}");
            assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{what}: {x} vs {y}");
        }
        let (sa, sb) =
            (read_json(&whole.join("summary.json")), read_json(&cut.join("summary.json")));
        assert_eq!(sa["knn_top1"], sb["knn_top1"], "{method} in {precision}");
        std::fs::remove_dir_all(dir).ok();
    }
}

/// `--init` starts a run from an earlier run's weights: its first steps continue at the level the
/// earlier run ended at, not at a fresh start's; another architecture, a missing file and a file
/// that holds no weights are clear errors.
#[test]
fn init_starts_from_an_earlier_runs_weights() {
    let dir = temp_dir("init");
    let (first, second) = (dir.join("first"), dir.join("second"));
    let out = tiny_pretrain(&first, "6", "128", "32");
    assert!(out.status.success(), "{}", stderr(&out));
    let weights = first.join("model.bpk");
    let weights_arg = weights.to_str().unwrap();

    let mut args = tiny_args(second.to_str().unwrap(), "1", "128", "32");
    args.extend(["--init", weights_arg]);
    let out = amcl_train(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_json(&second.join("config.json"))["init"], weights_arg);
    let (fresh, trained, continued) =
        (step_losses(&first)[0], step_losses(&first), step_losses(&second)[0]);
    let ended = trained[trained.len() - 4..].iter().sum::<f64>() / 4.0;
    assert!(ended < fresh, "the first run did not learn: {fresh} -> {ended}");
    assert!(
        (continued - ended).abs() < (continued - fresh).abs(),
        "--init's first loss {continued} is nearer a fresh start's {fresh} than the end {ended}"
    );

    let (missing, text) = (dir.join("missing.bpk"), dir.join("notes.txt"));
    std::fs::write(&text, "not weights").unwrap();
    let other = dir.join("other");
    for (flags, needle) in [
        (["--heads", "2", "--init", weights_arg], "holds another architecture"),
        (["--heads", "3", "--init", missing.to_str().unwrap()], "missing.bpk"),
        (["--heads", "3", "--init", text.to_str().unwrap()], "notes.txt is not a weights file"),
    ] {
        let mut args = tiny_args(other.to_str().unwrap(), "1", "128", "32");
        args.extend(flags);
        assert_clean_failure(&amcl_train(&args), needle);
        // A bad --init leaves no run folder behind.
        assert!(!other.join("config.json").exists(), "{needle}: config.json written");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// `--crop-scale` reaches the training views: with crops alone (`--augs a`) and the smallest
/// crop the whole image, the two views of an image are the same, so the first step's loss is
/// below the authors' crops' on the same images and weights; config.json records the strengths.
#[test]
fn crop_scale_sets_the_training_views() {
    let dir = temp_dir("crop-scale");
    let first_loss = |name: &str, crop: &str| {
        let out = dir.join(name);
        let mut args = tiny_args(out.to_str().unwrap(), "1", "32", "32");
        args.extend(["--augs", "a", "--crop-scale", crop]);
        let run = amcl_train(&args);
        assert!(run.status.success(), "{}", stderr(&run));
        let config = read_json(&out.join("config.json"));
        assert_eq!(config["strengths"]["crop_scale_min"].as_f64(), Some(crop.parse().unwrap()));
        step_losses(&out)[0]
    };
    let (same_views, authors) = (first_loss("whole", "1"), first_loss("authors", "0.08"));
    assert!(same_views < authors, "identical views' loss {same_views} not below {authors}");
    std::fs::remove_dir_all(dir).ok();
}

/// `--view-size` reaches the training views (at a smaller side the first step's loss on the same
/// images and weights is another), config.json records it, and the run still evaluates at the
/// images' side (its summary has a kNN); below 8 it is a clear error.
#[test]
fn view_size_sets_the_training_views() {
    let dir = temp_dir("view-size");
    let run = |name: &str, extra: &[&'static str]| {
        let out = dir.join(name);
        let mut args = tiny_args(out.to_str().unwrap(), "1", "32", "32");
        args.extend(extra);
        let run = amcl_train(&args);
        assert!(run.status.success(), "{}", stderr(&run));
        let knn = read_json(&out.join("summary.json"))["knn_top1"].as_f64();
        assert!(knn.is_some_and(|k| (0.0..=1.0).contains(&k)), "{name}: no kNN in the summary");
        (read_json(&out.join("config.json"))["view_size"].clone(), step_losses(&out)[0])
    };
    let (own_side, own) = run("own", &[]);
    let (small_side, small) = run("small", &["--view-size", "16"]);
    assert!(own_side.is_null(), "{own_side}");
    assert_eq!(small_side.as_u64(), Some(16));
    assert_ne!(own, small, "--view-size 16 left the first loss as it was");
    let out = amcl_train(&["pretrain", "--view-size", "4", "--out", "/tmp/unused"]);
    assert_clean_failure(&out, "--view-size must be at least 8");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn resume_without_a_run_is_a_clear_error() {
    let dir = temp_dir("resume-none");
    let out = amcl_train(&["pretrain", "--out", dir.to_str().unwrap(), "--resume"]);
    assert_clean_failure(&out, "no run to resume");
}

#[test]
fn non_finite_loss_stops_with_step_head_and_tau_range_and_keeps_the_checkpoint() {
    let dir = temp_dir("nan");
    let d = dir.to_str().unwrap();
    let mut args = tiny_args(d, "3", "64", "16");
    args.extend(["--lr", "1e30", "--warmup-epochs", "0"]);
    let out = amcl_train(&args);
    assert_clean_failure(&out, "non-finite loss");
    let err = stderr(&out);
    assert!(err.contains("at step") && err.contains("head 0") && err.contains("tau+ in"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn eval_reports_knn_and_linear_top1_for_backbone_and_heads() {
    let dir = temp_dir("eval");
    let weights = tiny_weights(&dir);
    let out = amcl_train(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        "synthetic",
        "--train-size",
        "100",
        "--test-size",
        "50",
        "--device",
        "cpu",
        "--json",
    ]);
    let v = stdout_json(&out);
    for key in ["knn_top1", "linear_top1"] {
        assert!((0.0..=1.0).contains(&v[key].as_f64().unwrap()), "{key}: {v}");
    }
    let heads = v["heads"].as_array().unwrap();
    assert_eq!(heads.len(), 3);
    for (c, h) in heads.iter().enumerate() {
        assert_eq!(h["head"].as_u64(), Some(c as u64));
        assert!((0.0..=1.0).contains(&h["knn_top1"].as_f64().unwrap()));
    }
    assert_eq!(v["test_images"], 50);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn export_writes_weights_the_demo_loads() {
    let dir = temp_dir("export");
    let weights = tiny_weights(&dir);
    let target = dir.join("web/model.bpk");
    let out = amcl_train(&[
        "export",
        "--weights",
        weights.to_str().unwrap(),
        "--out",
        target.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("gzipped"));
    let (_, manifest) = amcl_core::weights::load(&target, &burn::tensor::Device::flex()).unwrap();
    assert_eq!(manifest.model.heads, 3);
    // Half precision by default: well under the f32 file; `--precision f32` is exact.
    let exact = dir.join("exact.bpk");
    let out = amcl_train(&[
        "export",
        "--weights",
        weights.to_str().unwrap(),
        "--out",
        exact.to_str().unwrap(),
        "--precision",
        "f32",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&target) * 10 < size(&exact) * 7, "{} vs {}", size(&target), size(&exact));
    let device = burn::tensor::Device::flex();
    let features = |p: &Path| {
        let (model, _) = amcl_core::weights::load(p, &device).unwrap();
        let x = burn::tensor::Tensor::<4>::ones([2, 3, 32, 32], &device).mul_scalar(0.3);
        model.features(x).into_data().try_to_vec::<f32>().unwrap()
    };
    assert_eq!(features(&exact), features(&weights), "f32 export is exact");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn weights_from_another_architecture_are_a_clear_error() {
    use amcl_core::prelude::*;
    let dir = temp_dir("arch");
    let device = burn::tensor::Device::flex();
    // Tensors of a d = 16 model under a manifest that claims d = 32.
    let config = AmclModelConfig::new().with_width(4).with_dim(16);
    let model = config.init(&device).unwrap();
    let manifest = Manifest::new(config.with_dim(32), "amcl-simclr", 0.1);
    let path = dir.join("other.bpk");
    amcl_core::weights::save(&model, &manifest, &path).unwrap();
    let out = amcl_train(&[
        "eval",
        "--weights",
        path.to_str().unwrap(),
        "--data",
        "synthetic",
        "--device",
        "cpu",
    ]);
    assert_clean_failure(&out, "other.bpk");
    let err = stderr(&out);
    assert!(err.contains("shape") || err.contains("differ") || err.contains("mismatch"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bench_prints_the_documented_json() {
    let out = amcl_train(&[
        "bench",
        "--width",
        "4",
        "--dim",
        "16",
        "--batch-size",
        "8",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--device",
        "cpu",
        "--json",
    ]);
    let v = stdout_json(&out);
    assert_eq!(v["method"], "amcl-simclr");
    assert_eq!(v["backbone"], "small-cnn");
    assert_eq!(v["batch_size"], 8);
    assert_eq!(v["precision"], "f32");
    assert!(v["images_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["peak_memory_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn bench_compares_methods_in_turns_and_reports_amcl_overhead() {
    let out = amcl_train(&[
        "bench",
        "--method",
        "simclr,amcl-simclr",
        "--width",
        "4",
        "--dim",
        "16",
        "--hidden",
        "32",
        "--batch-size",
        "8",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--rounds",
        "2",
        "--device",
        "cpu",
        "--json",
    ]);
    let v = stdout_json(&out);
    let results = v.as_array().expect("a list, one entry per method");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["method"], "simclr");
    assert_eq!(results[0]["rounds_images_per_s"].as_array().unwrap().len(), 2);
    let amcl = &results[1];
    assert_eq!(amcl["method"], "amcl-simclr");
    // The overhead is the median (here the mean of two) of each round's own ratio.
    let rounds = |v: &serde_json::Value| -> Vec<f64> {
        let all = v["rounds_images_per_s"].as_array().unwrap();
        all.iter().map(|r| r.as_f64().unwrap()).collect()
    };
    let ratios: Vec<f64> = rounds(&results[0])
        .iter()
        .zip(rounds(amcl))
        .map(|(base, ours)| base / ours - 1.0)
        .collect();
    let overhead = amcl["overhead_vs_base"].as_f64().unwrap();
    assert!((overhead - (ratios[0] + ratios[1]) / 2.0).abs() < 1e-9, "{overhead} {ratios:?}");
    assert_eq!(amcl["overhead_rounds"].as_array().unwrap().len(), 2);
    assert!(amcl["augment_images_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_pipeline_measures_decoding_gathering_and_augmenting() {
    let dir = temp_dir("bench-pipeline");
    for class in ["cat", "dog"] {
        for i in 0..6 {
            let path = dir.join("train").join(class).join(format!("{i}.png"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            write_png(&path, 40, 36, (i * 30) as u8);
        }
        let path = dir.join("test").join(class).join("0.png");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_png(&path, 32, 32, 9);
    }
    let data = format!("folder:{}", dir.display());
    let out = amcl_train(&[
        "bench",
        "--pipeline",
        "--data",
        &data,
        "--batch-size",
        "4",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--device",
        "cpu",
        "--json",
    ]);
    let v = stdout_json(&out);
    assert_eq!(v["images"], 14);
    for key in ["decode_images_per_s", "gather_images_per_s", "augment_images_per_s"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}: {v}");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bench_rejects_an_unknown_backbone() {
    let out = amcl_train(&["bench", "--backbone", "vgg", "--device", "cpu"]);
    assert_clean_failure(&out, "unknown backbone 'vgg'");
}

#[test]
fn unknown_method_is_a_clear_error() {
    let out = amcl_train(&["pretrain", "--method", "byol", "--out", "/tmp/unused"]);
    assert_clean_failure(&out, "unknown method 'byol'");
}

#[test]
fn unknown_augmentation_letter_is_a_clear_error() {
    let out = amcl_train(&["pretrain", "--augs", "abx", "--out", "/tmp/unused"]);
    assert_clean_failure(&out, "unknown augmentation 'x'");
}

#[test]
fn batch_of_one_is_a_clear_error() {
    let out = amcl_train(&["pretrain", "--batch-size", "1", "--out", "/tmp/unused"]);
    assert_clean_failure(&out, "--batch-size must be at least 2");
}

#[test]
fn bad_flag_value_is_a_usage_error() {
    let out = amcl_train(&["pretrain", "--epochs", "many"]);
    assert_clean_failure(&out, "--epochs");
    let out = amcl_train(&["pretrain", "--data", "imagenet:/x"]);
    assert_clean_failure(&out, "unknown kind \"imagenet\"");
}

/// `score --json` of two grey images (written into `dir`) with `weights`.
fn score_grey_pair(dir: &Path, weights: &Path) -> serde_json::Value {
    let (a, b) = (dir.join("a.png"), dir.join("b.png"));
    write_png(&a, 40, 40, 10);
    write_png(&b, 40, 40, 200);
    let out = amcl_train(&[
        "score",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn score_prints_the_documented_json() {
    let dir = temp_dir("score");
    let weights = tiny_weights(&dir);
    let v = score_grey_pair(&dir, &weights);
    let (a, b) = (dir.join("a.png"), dir.join("b.png"));
    assert!(v["backend"].is_string());
    let heads = v["heads"].as_array().unwrap();
    assert_eq!(heads.len(), 3);
    let mut total = 0.0;
    for (c, h) in heads.iter().enumerate() {
        assert_eq!(h["head"].as_u64().unwrap() as usize, c);
        let s = h["similarity"].as_f64().unwrap();
        let tau = h["tau_pos"].as_f64().unwrap();
        assert!((-1.0..=1.0001).contains(&s) && tau > 0.0 && tau < 2.0);
        assert!((h["scaled"].as_f64().unwrap() - s / tau).abs() < 1e-3 * (s / tau).abs().max(1.0));
        total += h["scaled"].as_f64().unwrap() - h["omega"].as_f64().unwrap();
    }
    assert!((v["amcl_score"].as_f64().unwrap() - total).abs() < 1e-3 * total.abs().max(1.0));

    // Two augmented views of one image, reproducible under a seed.
    let views = |seed: &str| {
        amcl_train(&[
            "score",
            a.to_str().unwrap(),
            "--augs",
            "abcde",
            "--seed",
            seed,
            "--weights",
            weights.to_str().unwrap(),
            "--json",
        ])
    };
    let (first, again) = (views("3"), views("3"));
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(first.stdout, again.stdout);

    // The explorer's strengths: a whole-image crop changes the views; out of range, a clean error.
    let with = |flag: &str, value: &str| {
        let flag = format!("{flag}={value}");
        let (a, w) = (a.to_str().unwrap(), weights.to_str().unwrap());
        amcl_train(&["score", a, "--augs", "abcde", "--seed", "3", &flag, "--weights", w, "--json"])
    };
    let whole = with("--crop-scale", "1");
    assert!(whole.status.success(), "{}", stderr(&whole));
    assert_ne!(whole.stdout, first.stdout, "--crop-scale 1 left the views as they were");
    assert_clean_failure(&with("--jitter-strength", "2"), "the jitter strength must lie in [0, 1]");
    assert_clean_failure(&with("--blur-max", "0"), "the largest blur sigma must lie in [0.1, 5]");

    // Bad input: a file that is not an image, and missing weights.
    let bogus = dir.join("bogus.jpg");
    std::fs::write(&bogus, b"not an image").unwrap();
    let out = amcl_train(&[
        "score",
        bogus.to_str().unwrap(),
        a.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
    ]);
    assert_clean_failure(&out, "bogus.jpg is not a readable PNG or JPEG image");
    let out = amcl_train(&[
        "score",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--weights",
        "/nonexistent/w.bpk",
    ]);
    assert_clean_failure(&out, "/nonexistent/w.bpk");
    std::fs::remove_dir_all(dir).ok();
}

fn experiment_args(out: &Path) -> Vec<String> {
    let out = out.to_str().unwrap();
    [
        "experiment",
        "--methods",
        "simclr",
        "--augs",
        "a,ab",
        "--seeds",
        "0,1",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--train-size",
        "32",
        "--test-size",
        "16",
        "--data",
        "synthetic",
        "--device",
        "cpu",
        "--out",
        out,
        "--",
        "--width",
        "4",
        "--dim",
        "16",
        "--hidden",
        "32",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

#[test]
fn experiment_tables_base_against_amcl_over_seeds_and_reuses_finished_runs() {
    let dir = temp_dir("experiment");
    let out = amcl_train(&refs(&experiment_args(&dir)));
    assert!(out.status.success(), "{}", stderr(&out));
    let results = read_json(&dir.join("results.json"));
    let runs = results["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 12, "(base + 2 AMCL forms) x 2 augmentation sets x 2 seeds");
    for (method, arm, name) in [
        ("simclr", "base", "simclr"),
        ("amcl-simclr", "authors", "amcl-simclr-authors"),
        ("amcl-simclr", "centred", "amcl-simclr-centred"),
    ] {
        for augs in ["a", "ab"] {
            for seed in [0, 1] {
                let run = format!("{name}-{augs}-seed{seed}");
                let summary = read_json(&dir.join(&run).join("summary.json"));
                let listed = runs
                    .iter()
                    .find(|r| {
                        r["method"] == method
                            && r["arm"] == arm
                            && r["augs"] == augs
                            && r["seed"] == seed
                    })
                    .unwrap_or_else(|| panic!("{run} missing from results.json"));
                let knn = summary["knn_top1"].as_f64().unwrap() * 100.0;
                assert!((listed["knn_top1"].as_f64().unwrap() - knn).abs() < 1e-6, "{run}");
                // AMCL runs report their temperatures by kind of pair.
                assert_eq!(arm != "base", summary["temperature_spread"].is_array(), "{run}");
                assert_eq!(arm != "base", listed["temperatures"].is_object(), "{run}");
            }
        }
    }
    // The plain runs use one head, the AMCL runs three, in the form they name.
    let config = read_json(&dir.join("simclr-a-seed0/config.json"));
    assert_eq!(config["model"]["heads"], 1);
    let config = read_json(&dir.join("amcl-simclr-authors-a-seed0/config.json"));
    assert_eq!(config["model"]["heads"], 3);
    assert_eq!(config["epochs"], 1);
    assert_eq!(config["reduction"], "topk");
    let centred = read_json(&dir.join("amcl-simclr-centred-a-seed0/config.json"));
    assert_eq!(centred["reduction"], "logsumexp");
    assert_eq!(centred["model"]["temperature_form"], "centred");
    let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
    for row in ["| simclr | a | authors |", "| simclr | ab | centred |"] {
        assert!(md.contains(row), "{row} missing: {md}");
    }
    assert!(md.contains(" ± ") && md.contains("What the temperatures did"), "{md}");
    for svg in ["knn.svg", "linear.svg"] {
        let svg = std::fs::read_to_string(dir.join(svg)).unwrap();
        assert!(svg.starts_with("<svg") && svg.matches("<rect x=").count() >= 4, "{svg}");
    }

    // Run again: every run is reused, and the table is the same.
    let again = amcl_train(&refs(&experiment_args(&dir)));
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stderr(&again).matches("done before, reused").count(), 12, "{}", stderr(&again));
    let md_again = std::fs::read_to_string(dir.join("results.md")).unwrap();
    let table =
        |s: &str| s.lines().filter(|l| l.starts_with("| simclr")).collect::<Vec<_>>().join("\n");
    assert_eq!(table(&md), table(&md_again));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn experiment_rejects_amcl_names_and_bad_pretrain_flags() {
    let dir = temp_dir("experiment-bad");
    let out =
        amcl_train(&["experiment", "--methods", "amcl-simclr", "--out", dir.to_str().unwrap()]);
    assert_clean_failure(&out, "drop the 'amcl-' prefix");
    let out = amcl_train(&[
        "experiment",
        "--data",
        "synthetic",
        "--out",
        dir.to_str().unwrap(),
        "--",
        "--augs",
        "xyz",
    ]);
    assert_clean_failure(&out, "the experiment sets it for every run");
    let out = amcl_train(&[
        "experiment",
        "--data",
        "synthetic",
        "--out",
        dir.to_str().unwrap(),
        "--",
        "--width",
        "wide",
    ]);
    assert_clean_failure(&out, "--width");
    assert!(!dir.join("results.md").exists());
}
