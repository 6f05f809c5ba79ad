//! End-to-end tests of data-parallel pretraining (`pretrain --devices`): several ranks on this
//! CPU give what one device gives with the whole batch.

mod common;

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use common::*;

/// A tiny pretrain on `devices` (`--device cpu` when "cpu"), with the small CNN without batch
/// norm unless `backbone` says otherwise: 2 epochs of 4 steps of 16 images.
fn args(out: &Path, method: &str, devices: &str, backbone: &str) -> Vec<String> {
    let out = out.to_str().unwrap();
    let mut args: Vec<String> =
        tiny_args(out, "2", "64", "16").into_iter().map(String::from).collect();
    let at = args.iter().position(|a| a == "--device").unwrap();
    args.drain(at..at + 2);
    if devices == "cpu" {
        args.extend(["--device".into(), "cpu".into()]);
    } else {
        args.extend(["--devices".into(), devices.into()]);
    }
    args.extend(["--method".into(), method.into(), "--backbone".into(), backbone.into()]);
    args
}

fn run(args: &[String]) -> std::process::Output {
    amcl_train(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Every parameter of the weights in `dir/model.bpk`, flattened in module order.
fn parameters(dir: &Path) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().convert::<f32>().iter::<f32>());
        }
    }
    let (model, _) = amcl_core::weights::load(&dir.join("model.bpk"), &Device::flex()).unwrap();
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

fn assert_close(what: &str, a: &[f64], b: &[f64], tolerance: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tolerance * x.abs().max(1.0), "{what} [{i}]: {x} vs {y}");
    }
}

#[test]
fn two_ranks_reproduce_one_device_with_the_whole_batch() {
    for method in ["amcl-simclr", "amcl-moco"] {
        let dir = temp_dir(&format!("ddp-{method}"));
        let (one, two) = (dir.join("one"), dir.join("two"));
        let out = run(&args(&one, method, "cpu", "small-cnn-no-bn"));
        assert!(out.status.success(), "{}", stderr(&out));
        let out = run(&args(&two, method, "cpu,cpu", "small-cnn-no-bn"));
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("2 ranks"), "{}", stderr(&out));

        // Eight steps: the same losses and, at the end, the same parameters. Only the order of
        // two sums differs (the backbone's gradient is added over the ranks' shares).
        let (a, b) = (step_losses(&one), step_losses(&two));
        assert_eq!(a.len(), 8);
        assert_close(&format!("{method} step losses"), &a, &b, 1e-5);
        let (pa, pb) = (parameters(&one), parameters(&two));
        let (pa, pb): (Vec<f64>, Vec<f64>) =
            pa.iter().zip(&pb).map(|(x, y)| (*x as f64, *y as f64)).unzip();
        assert_close(&format!("{method} parameters"), &pa, &pb, 1e-4);
        // Written once, by rank 0.
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(two.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["ranks"], 2);
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn batch_norm_in_the_backbone_normalises_each_rank_on_its_share() {
    // Stated in README and docs/ARCHITECTURE.md: the backbone's batch norm is not synchronised,
    // so with it two ranks differ from one device from the first step (each share has its own
    // batch statistics), while the heads (on the gathered features) are unaffected.
    let dir = temp_dir("ddp-bn");
    let (one, two) = (dir.join("one"), dir.join("two"));
    let out = run(&args(&one, "amcl-simclr", "cpu", "small-cnn"));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&args(&two, "amcl-simclr", "cpu,cpu", "small-cnn"));
    assert!(out.status.success(), "{}", stderr(&out));
    let (a, b) = (step_losses(&one), step_losses(&two));
    assert!((a[0] - b[0]).abs() > 1e-6, "batch norm seems synchronised: {} vs {}", a[0], b[0]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn two_ranks_resume_after_ctrl_c_where_they_stopped() {
    let dir = temp_dir("ddp-resume");
    let (whole, cut) = (dir.join("whole"), dir.join("cut"));
    let long = |out: &Path| {
        let mut a = args(out, "amcl-moco", "cpu,cpu", "small-cnn-no-bn");
        let at = a.iter().position(|x| x == "--epochs").unwrap();
        a[at + 1] = "8".into();
        a
    };
    let out = run(&long(&whole));
    assert!(out.status.success(), "{}", stderr(&out));

    let a = long(&cut);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = interrupt_when(&a, || cut.join("checkpoint/state.json").exists());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("--resume --devices"), "{err}");

    // The same number of ranks, or a clear error.
    assert_clean_failure(&resume(&cut, &["--device", "cpu"]), "trained on 2 rank(s)");
    let out = resume(&cut, &["--devices", "cpu,cpu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_close("resumed step losses", &step_losses(&whole), &step_losses(&cut), 1e-5);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_failing_rank_stops_the_run_naming_it_and_keeps_the_checkpoint() {
    let dir = temp_dir("ddp-fail");
    let a = args(&dir, "amcl-simclr", "cpu,cpu", "small-cnn-no-bn");
    // Rank 1 fails at its 6th step (in the second epoch, after the first checkpoint).
    let out = command(&a.iter().map(String::as_str).collect::<Vec<_>>())
        .env("AMCL_TEST_FAIL_RANK", "1@6")
        .output()
        .unwrap();
    assert_clean_failure(&out, "rank 1 (cpu (flex))");
    assert!(stderr(&out).contains("injected failure"), "{}", stderr(&out));
    let state = std::fs::read_to_string(dir.join("checkpoint/state.json")).unwrap();
    assert!(state.contains("\"epoch\": 1") || state.contains("\"epoch\":1"), "{state}");
    // The kept checkpoint resumes.
    let out = resume(&dir, &["--devices", "cpu,cpu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(step_losses(&dir).len(), 8);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_device_lists_are_clear_errors() {
    let dir = temp_dir("ddp-bad");
    let d = dir.to_str().unwrap();
    let mut a = args(&dir, "amcl-simclr", "cpu,cpu,cpu", "small-cnn-no-bn");
    let out = run(&a);
    assert_clean_failure(&out, "--batch-size 16 cannot be split evenly over 3 devices");
    let at = a.iter().position(|x| x == "--devices").unwrap();
    a[at + 1] = "cpu,tpu".into();
    assert_clean_failure(&run(&a), "unknown device 'tpu'");
    let out = amcl_train(&["pretrain", "--out", d, "--device", "cpu", "--devices", "cpu,cpu"]);
    assert_clean_failure(&out, "--devices");
    std::fs::remove_dir_all(dir).ok();
}

/// A free TCP port on the loopback interface.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The same tiny run as two processes (`--rank --world --address`), each on the CPU.
fn process_args(out: &Path, rank: usize, port: u16) -> Vec<String> {
    let mut a = args(out, "amcl-simclr", "cpu", "small-cnn-no-bn");
    a.extend([
        "--rank".into(),
        rank.to_string(),
        "--world".into(),
        "2".into(),
        "--address".into(),
        format!("127.0.0.1:{port}"),
    ]);
    a
}

fn spawn(args: &[String]) -> std::process::Child {
    command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_processes_over_loopback_reproduce_one_device() {
    let dir = temp_dir("ddp-processes");
    let (one, two) = (dir.join("one"), dir.join("two"));
    let out = run(&args(&one, "amcl-simclr", "cpu", "small-cnn-no-bn"));
    assert!(out.status.success(), "{}", stderr(&out));

    // Rank 1 starts first and waits for rank 0 to listen.
    let port = free_port();
    let second = spawn(&process_args(&two, 1, port));
    let first = spawn(&process_args(&two, 0, port));
    let (first, second) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
    assert!(first.status.success(), "rank 0: {}", stderr(&first));
    assert!(second.status.success(), "rank 1: {}", stderr(&second));
    assert!(stderr(&first).contains("rank 1 joined"), "{}", stderr(&first));
    assert_close("two processes' step losses", &step_losses(&one), &step_losses(&two), 1e-5);

    // A process that fails stops the other, which names it.
    let three = dir.join("three");
    let port = free_port();
    let failing = process_args(&three, 1, port);
    let second = command(&failing.iter().map(String::as_str).collect::<Vec<_>>())
        .env("AMCL_TEST_FAIL_RANK", "1@6")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first = spawn(&process_args(&three, 0, port)).wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    assert_clean_failure(&second, "injected failure");
    assert_clean_failure(&first, "rank 1 stopped");
    assert!(three.join("checkpoint/state.json").is_file(), "the first epoch's checkpoint is kept");
    std::fs::remove_dir_all(dir).ok();
}
