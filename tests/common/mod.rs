//! Helpers shared by the end-to-end tests: run the binary, make temporary folders and fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `amcl-train` with `args` and waits for it.
pub fn amcl_train(args: &[&str]) -> Output {
    command(args).output().expect("run amcl-train")
}

/// The `amcl-train` command with `args`, not yet started.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_amcl-train"));
    command.args(args);
    command
}

/// An empty temporary folder unique to this test and process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("amcl-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "command failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
    })
}

/// A failing run exits non-zero with a message containing `needle` and no panic trace.
pub fn assert_clean_failure(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, got success: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert!(!err.contains("panicked"), "panic trace: {err}");
}

/// Flags of a tiny pretrain on the built-in dataset (small CNN of width 4, d = 16, CPU).
pub fn tiny_args<'a>(
    out: &'a str,
    epochs: &'a str,
    train: &'a str,
    batch: &'a str,
) -> Vec<&'a str> {
    vec![
        "pretrain",
        "--data",
        "synthetic",
        "--epochs",
        epochs,
        "--train-size",
        train,
        "--test-size",
        "20",
        "--batch-size",
        batch,
        "--width",
        "4",
        "--hidden",
        "32",
        "--dim",
        "16",
        "--device",
        "cpu",
        "--out",
        out,
    ]
}

/// Runs a tiny pretrain into `dir`.
pub fn tiny_pretrain(dir: &Path, epochs: &str, train: &str, batch: &str) -> Output {
    amcl_train(&tiny_args(dir.to_str().unwrap(), epochs, train, batch))
}

/// Writes a PNG of `w x h` with a gradient tinted by `tint`.
pub fn write_png(path: &Path, w: u32, h: u32, tint: u8) {
    let image = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, tint])
    });
    image.save(path).unwrap();
}

/// Records of a CIFAR-10 batch: `n` images, label `i % 10`, pixels from `seed`.
pub fn cifar10_batch(n: usize, seed: u8) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(n * 3073);
    for i in 0..n {
        bytes.push((i % 10) as u8);
        bytes.extend((0..3072).map(|p| ((p * 7 + i * 13) as u8).wrapping_add(seed)));
    }
    bytes
}

/// A CIFAR-10 binary release in `dir/cifar-10-batches-bin`: 5 x `per_batch` training and
/// `test` test images.
pub fn write_cifar10(dir: &Path, per_batch: usize, test: usize) {
    let release = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&release).unwrap();
    for i in 1..=5u8 {
        std::fs::write(release.join(format!("data_batch_{i}.bin")), cifar10_batch(per_batch, i))
            .unwrap();
    }
    std::fs::write(release.join("test_batch.bin"), cifar10_batch(test, 9)).unwrap();
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    std::fs::write(release.join("batches.meta.txt"), names).unwrap();
}

/// Weights of a tiny model, trained for one epoch, in `dir/model.bpk`.
pub fn tiny_weights(dir: &Path) -> PathBuf {
    let out = tiny_pretrain(dir, "1", "32", "16");
    assert!(out.status.success(), "{}", stderr(&out));
    dir.join("model.bpk")
}

/// Starts `amcl-train` with `args`, waits until `ready()` (at most two minutes), interrupts it
/// with SIGINT as Ctrl-C would, and returns what it printed.
pub fn interrupt_when(args: &[&str], ready: impl Fn() -> bool) -> Output {
    let child = command(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !ready() {
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "never ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    child.wait_with_output().unwrap()
}

/// Resumes the run in `dir` (`pretrain --out dir --resume`) with the device flags `devices`.
pub fn resume(dir: &Path, devices: &[&str]) -> Output {
    let mut args = vec!["pretrain", "--out", dir.to_str().unwrap(), "--resume"];
    args.extend(devices);
    amcl_train(&args)
}

/// Per-step losses of a run, in order.
pub fn step_losses(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}
