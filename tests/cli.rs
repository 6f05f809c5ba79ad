//! End-to-end tests: the `amcl-train` binary run as a user runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn amcl_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amcl-train")).args(args).output().expect("run amcl-train")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("amcl-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A tiny pretrain (small CNN of width 4, d = 16) into `dir`.
fn tiny_pretrain(dir: &std::path::Path, epochs: &str, train_size: &str, batch: &str) -> Output {
    let out = dir.to_str().unwrap();
    amcl_train(&[
        "pretrain",
        "--epochs",
        epochs,
        "--train-size",
        train_size,
        "--test-size",
        "10",
        "--batch-size",
        batch,
        "--width",
        "4",
        "--dim",
        "16",
        "--out",
        out,
    ])
}

/// A failing run exits non-zero with one clear line and no panic trace.
fn assert_clean_failure(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, got success: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert!(!err.contains("panicked"), "panic trace: {err}");
}

#[test]
fn tiny_pretrain_writes_a_run_folder_with_loadable_weights() {
    let dir = temp_dir("pretrain");
    let out = tiny_pretrain(&dir, "2", "64", "32");
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kNN top-1"), "{stdout}");
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);
    for line in metrics.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["loss"].as_f64().unwrap().is_finite());
        assert_eq!(v["heads"].as_array().unwrap().len(), 3);
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["args"]["method"], "amcl-simclr");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let knn = summary["knn_top1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&knn));
    let (_, manifest) =
        amcl_core::weights::load(&dir.join("model.bpk"), &burn::tensor::Device::flex()).unwrap();
    assert_eq!(manifest.method, "amcl-simclr");
    assert_eq!(manifest.model.dim, 16);
    std::fs::remove_dir_all(dir).ok();
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
}

/// Writes a 40x40 PNG with a colour gradient (its own fixture; nothing is downloaded).
fn write_png(path: &std::path::Path, tint: u8) {
    let image =
        image::RgbImage::from_fn(40, 40, |x, y| image::Rgb([(x * 6) as u8, (y * 6) as u8, tint]));
    image.save(path).unwrap();
}

#[test]
fn score_prints_the_documented_json() {
    let dir = temp_dir("score");
    let out = tiny_pretrain(&dir, "1", "32", "16");
    assert!(out.status.success(), "{}", stderr(&out));
    let (a, b) = (dir.join("a.png"), dir.join("b.png"));
    write_png(&a, 10);
    write_png(&b, 200);
    let weights = dir.join("model.bpk");
    let out = amcl_train(&[
        "score",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
