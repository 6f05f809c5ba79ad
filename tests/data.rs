//! End-to-end tests of the data loaders through the binary: the CIFAR binary release, its
//! download (against a local HTTP server), image folders, and bad input.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use common::*;

/// The command `eval --json` (kNN only) of tiny weights on `data`.
fn eval_command(weights: &Path, data: &str) -> std::process::Command {
    command(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        data,
        "--no-linear",
        "--device",
        "cpu",
        "--json",
    ])
}

/// Runs [`eval_command`].
fn eval_on(weights: &Path, data: &str) -> std::process::Output {
    eval_command(weights, data).output().unwrap()
}

#[test]
fn cifar10_binary_release_loads_with_class_names_and_splits() {
    let dir = temp_dir("cifar");
    let weights = tiny_weights(&dir.join("run"));
    write_cifar10(&dir.join("data"), 20, 30);
    let data = format!("cifar10:{}", dir.join("data").display());
    let v = stdout_json(&eval_on(&weights, &data));
    assert_eq!(v["train_images"], 100);
    assert_eq!(v["test_images"], 30);
    assert!((0.0..=1.0).contains(&v["knn_top1"].as_f64().unwrap()));
    // Pretraining on it works too (a few steps).
    let run = dir.join("run2");
    let out = amcl_train(&[
        "pretrain",
        "--data",
        &data,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--width",
        "4",
        "--dim",
        "16",
        "--hidden",
        "32",
        "--device",
        "cpu",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("100 training, 30 test images, 10 classes"), "{}", stderr(&out));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn cifar100_binary_release_uses_the_fine_labels() {
    let dir = temp_dir("cifar100");
    let weights = tiny_weights(&dir.join("run"));
    let release = dir.join("data/cifar-100-binary");
    std::fs::create_dir_all(&release).unwrap();
    // Records: coarse label, fine label, 3072 pixels.
    let batch = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut record = vec![(i % 20) as u8, (i % 100) as u8];
                record.extend((0..3072).map(|p| (p + i) as u8));
                record
            })
            .collect()
    };
    std::fs::write(release.join("train.bin"), batch(120)).unwrap();
    std::fs::write(release.join("test.bin"), batch(40)).unwrap();
    let out = amcl_train(&[
        "eval",
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        &format!("cifar100:{}", dir.join("data").display()),
        "--no-linear",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("120 training, 40 test images, 100 classes"), "{text}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn truncated_cifar_batch_is_a_clear_error() {
    let dir = temp_dir("cifar-truncated");
    let weights = tiny_weights(&dir.join("run"));
    write_cifar10(&dir.join("data"), 20, 30);
    let batch = dir.join("data/cifar-10-batches-bin/data_batch_3.bin");
    let bytes = std::fs::read(&batch).unwrap();
    std::fs::write(&batch, &bytes[..bytes.len() - 100]).unwrap();
    let out = eval_on(&weights, &format!("cifar10:{}", dir.join("data").display()));
    assert_clean_failure(&out, "data_batch_3.bin is truncated");
    std::fs::remove_dir_all(dir).ok();
}

/// The official archive's layout as a .tar.gz, built in memory.
fn cifar10_archive() -> Vec<u8> {
    let staging = temp_dir("cifar-archive");
    write_cifar10(&staging, 10, 10);
    let mut tar =
        tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    tar.append_dir_all("cifar-10-batches-bin", staging.join("cifar-10-batches-bin")).unwrap();
    let bytes = tar.into_inner().unwrap().finish().unwrap();
    std::fs::remove_dir_all(staging).ok();
    bytes
}

/// Serves `body` to every request on a local port; returns the URL.
fn serve(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/cifar-10-binary.tar.gz", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/gzip\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    url
}

fn eval_with_env(weights: &Path, data: &str, url: &str, md5: &str) -> std::process::Output {
    eval_command(weights, data)
        .env("AMCL_CIFAR10_URL", url)
        .env("AMCL_CIFAR10_MD5", md5)
        .output()
        .unwrap()
}

#[test]
fn missing_cifar_is_downloaded_verified_and_extracted() {
    let dir = temp_dir("download");
    let weights = tiny_weights(&dir.join("run"));
    let archive = cifar10_archive();
    let md5 = format!("{:x}", md5::compute(&archive));
    let url = serve(archive);
    let target = dir.join("data");

    // A wrong checksum: refused, nothing extracted.
    let out =
        eval_with_env(&weights, &format!("cifar10:{}", target.display()), &url, &"0".repeat(32));
    assert_clean_failure(&out, "MD5");
    assert!(!target.join("cifar-10-batches-bin").exists());

    // The right one: downloaded, extracted, loaded.
    let out = eval_with_env(&weights, &format!("cifar10:{}", target.display()), &url, &md5);
    let v = stdout_json(&out);
    assert_eq!(v["train_images"], 50);
    assert_eq!(v["test_images"], 10);
    assert!(target.join("cifar-10-batches-bin/test_batch.bin").is_file());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn offline_download_names_the_flag_for_local_files() {
    let dir = temp_dir("offline");
    let weights = tiny_weights(&dir.join("run"));
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/cifar-10-binary.tar.gz");
    let out =
        eval_with_env(&weights, &format!("cifar10:{}", dir.join("data").display()), &url, "x");
    assert_clean_failure(&out, "could not download CIFAR-10");
    assert!(stderr(&out).contains("--data"), "{}", stderr(&out));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn image_folders_load_in_both_layouts_at_any_size() {
    let dir = temp_dir("folder");
    let weights = tiny_weights(&dir.join("run"));
    // DIR/<class>/*: every fifth image of a class is held out.
    for (c, class) in ["cats", "dogs"].iter().enumerate() {
        let class_dir = dir.join("flat").join(class);
        std::fs::create_dir_all(&class_dir).unwrap();
        for i in 0..10 {
            write_png(
                &class_dir.join(format!("{i}.png")),
                48 + i,
                30,
                (c * 120 + i as usize) as u8,
            );
        }
    }
    let v = stdout_json(&eval_on(&weights, &format!("folder:{}", dir.join("flat").display())));
    assert_eq!(v["train_images"], 16);
    assert_eq!(v["test_images"], 4);
    // DIR/train and DIR/test, with a JPEG.
    for split in ["train", "test"] {
        for class in ["a", "b", "c"] {
            let class_dir = dir.join("split").join(split).join(class);
            std::fs::create_dir_all(&class_dir).unwrap();
            write_png(&class_dir.join("x.png"), 64, 64, 7);
            image::RgbImage::from_pixel(20, 20, image::Rgb([9, 99, 199]))
                .save(class_dir.join("y.jpg"))
                .unwrap();
        }
    }
    let v = stdout_json(&eval_on(&weights, &format!("folder:{}", dir.join("split").display())));
    assert_eq!(v["train_images"], 6);
    assert_eq!(v["test_images"], 6);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn corrupt_jpeg_names_the_file() {
    let dir = temp_dir("corrupt");
    let weights = tiny_weights(&dir.join("run"));
    let class_dir = dir.join("images/x");
    std::fs::create_dir_all(&class_dir).unwrap();
    for i in 0..4 {
        write_png(&class_dir.join(format!("{i}.png")), 32, 32, i);
    }
    let mut jpeg = Vec::new();
    image::RgbImage::from_pixel(32, 32, image::Rgb([1, 2, 3]))
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    std::fs::write(class_dir.join("broken.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    let out = eval_on(&weights, &format!("folder:{}", dir.join("images").display()));
    assert_clean_failure(&out, "broken.jpg is not a readable PNG or JPEG image");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn missing_data_folder_is_a_clear_error() {
    let out =
        amcl_train(&["pretrain", "--data", "folder:/nonexistent/images", "--out", "/tmp/unused"]);
    assert_clean_failure(&out, "folder:/nonexistent/images: no such folder");
}
