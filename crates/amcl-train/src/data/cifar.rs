//! The CIFAR-10 and CIFAR-100 binary releases (<https://www.cs.toronto.edu/~kriz/cifar.html>).
//!
//! CIFAR-10: `cifar-10-batches-bin/data_batch_{1..5}.bin` and `test_batch.bin`, records of
//! 1 label byte + 3072 pixel bytes (1024 red, 1024 green, 1024 blue, row-major 32x32).
//! CIFAR-100: `cifar-100-binary/train.bin` and `test.bin`, records of a coarse and a fine label
//! byte + 3072 pixel bytes; the fine label (100 classes) is used.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{Dataset, Split, download, to_chw};

/// Which release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Cifar10,
    Cifar100,
}

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;

impl Variant {
    /// The folder the official archive extracts to.
    pub fn folder(self) -> &'static str {
        match self {
            Self::Cifar10 => "cifar-10-batches-bin",
            Self::Cifar100 => "cifar-100-binary",
        }
    }

    /// The official archive and its MD5 checksum, as published on the CIFAR page.
    pub fn archive(self) -> download::Archive {
        match self {
            Self::Cifar10 => download::Archive {
                name: "CIFAR-10",
                url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                md5: "c32a1d4ab5d03f1284b67883e8d87530",
                env_prefix: "AMCL_CIFAR10",
            },
            Self::Cifar100 => download::Archive {
                name: "CIFAR-100",
                url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                md5: "03b5dce01913d631647c71ecec9e9cb8",
                env_prefix: "AMCL_CIFAR100",
            },
        }
    }

    fn train_files(self) -> Vec<String> {
        match self {
            Self::Cifar10 => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            Self::Cifar100 => vec!["train.bin".into()],
        }
    }

    fn test_file(self) -> &'static str {
        match self {
            Self::Cifar10 => "test_batch.bin",
            Self::Cifar100 => "test.bin",
        }
    }

    fn label_bytes(self) -> usize {
        match self {
            Self::Cifar10 => 1,
            Self::Cifar100 => 2,
        }
    }

    fn class_names(self, dir: &Path) -> Vec<String> {
        let (file, count) = match self {
            Self::Cifar10 => ("batches.meta.txt", 10),
            Self::Cifar100 => ("fine_label_names.txt", 100),
        };
        let names: Vec<String> = std::fs::read_to_string(dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if names.len() == count {
            names
        } else {
            (0..count).map(|i| format!("class-{i}")).collect()
        }
    }
}

/// The folder holding the release's `.bin` files under `dir` (either `dir` itself or the
/// archive's folder inside it), if its test file is there.
pub fn find_release(dir: &Path, variant: Variant) -> Option<PathBuf> {
    [dir.join(variant.folder()), dir.to_path_buf()]
        .into_iter()
        .find(|d| d.join(variant.test_file()).is_file())
}

/// Loads the release from `dir`, downloading it there first when it is missing.
pub fn load(dir: &Path, variant: Variant, size: usize) -> Result<Split> {
    let release = match find_release(dir, variant) {
        Some(release) => release,
        None => {
            download::fetch_and_extract(&variant.archive(), dir)?;
            find_release(dir, variant).with_context(|| {
                format!(
                    "the downloaded archive did not contain {}/{}",
                    variant.folder(),
                    variant.test_file()
                )
            })?
        }
    };
    let names = variant.class_names(&release);
    let mut train = Dataset::empty(size, names.clone());
    for file in variant.train_files() {
        read_batch(&release.join(file), variant, &mut train)?;
    }
    let mut test = Dataset::empty(size, names);
    read_batch(&release.join(variant.test_file()), variant, &mut test)?;
    let description = format!("{}:{}", variant_name(variant), dir.display());
    Ok(Split { train, test, description })
}

fn variant_name(variant: Variant) -> &'static str {
    match variant {
        Variant::Cifar10 => "cifar10",
        Variant::Cifar100 => "cifar100",
    }
}

/// Appends the records of one `.bin` file to `out`, checking its length and labels.
pub fn read_batch(path: &Path, variant: Variant, out: &mut Dataset) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let record = variant.label_bytes() + PIXELS;
    if bytes.is_empty() || bytes.len() % record != 0 {
        bail!(
            "{} is truncated or not a {} batch: {} bytes is not a whole number of {record}-byte records",
            path.display(),
            variant.archive().name,
            bytes.len()
        );
    }
    let classes = out.classes();
    for (i, chunk) in bytes.chunks_exact(record).enumerate() {
        let label = chunk[variant.label_bytes() - 1] as usize;
        if label >= classes {
            bail!(
                "{}: record {i} has label {label}, but there are {classes} classes",
                path.display()
            );
        }
        let pixels = &chunk[variant.label_bytes()..];
        if out.size == SIDE {
            out.push(pixels, label);
        } else {
            let image = image::RgbImage::from_fn(SIDE as u32, SIDE as u32, |x, y| {
                let at = |c: usize| pixels[(c * SIDE + y as usize) * SIDE + x as usize];
                image::Rgb([at(0), at(1), at(2)])
            });
            out.push(&to_chw(&image, out.size), label);
        }
    }
    Ok(())
}
