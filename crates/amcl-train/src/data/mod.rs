//! Data: where training and test images come from (`--data`), held in memory as bytes.
//!
//! Sources: the CIFAR-10/100 binary releases ([`cifar`], downloaded by [`download`] when
//! missing), image folders ([`folder`]) and a built-in procedural dataset ([`synthetic`]) that
//! needs no files. Every source yields a [`Split`] of two [`Dataset`]s at the model's input size;
//! [`loader`] turns a dataset into batches on a worker thread.

pub mod cifar;
pub mod download;
pub mod folder;
pub mod loader;
pub mod synthetic;

use std::path::{Path, PathBuf};

use amcl_core::rng::Rng;
use anyhow::{Result, bail};
use burn::prelude::*;

/// Images `[3, S, S]` as bytes (channel-major, row-major), with class labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Pixel bytes, `len * 3 * size * size`.
    pub pixels: Vec<u8>,
    /// Class of each image.
    pub labels: Vec<usize>,
    /// Image side.
    pub size: usize,
    /// Class names; their number is the number of classes.
    pub class_names: Vec<String>,
}

/// A training and a test set.
#[derive(Debug, Clone)]
pub struct Split {
    pub train: Dataset,
    pub test: Dataset,
    /// What was loaded, for logs and manifests (e.g. `cifar10:data/cifar10`).
    pub description: String,
}

impl Dataset {
    /// An empty dataset of side `size` with these classes.
    pub fn empty(size: usize, class_names: Vec<String>) -> Self {
        Self { pixels: Vec::new(), labels: Vec::new(), size, class_names }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    fn image_bytes(&self) -> usize {
        3 * self.size * self.size
    }

    /// Appends one image (`3 * size * size` bytes) of class `label`.
    pub fn push(&mut self, pixels: &[u8], label: usize) {
        debug_assert_eq!(pixels.len(), self.image_bytes());
        self.pixels.extend_from_slice(pixels);
        self.labels.push(label);
    }

    /// The images at `indices` as floats in [0, 1], ready for [`Tensor::from_data`].
    pub fn batch_data(&self, indices: &[usize]) -> TensorData {
        let per = self.image_bytes();
        let mut values = Vec::with_capacity(indices.len() * per);
        for &i in indices {
            values.extend(self.pixels[i * per..(i + 1) * per].iter().map(|&p| p as f32 / 255.0));
        }
        TensorData::new(values, [indices.len(), 3, self.size, self.size])
    }

    /// The images at `indices` as a batch tensor `[B, 3, S, S]` in [0, 1].
    pub fn batch(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        Tensor::from_data(self.batch_data(indices), device)
    }

    /// At most `n` images, drawn without replacement with `seed` (all of them, in order, when
    /// `n >= len`).
    pub fn subset(self, n: usize, seed: u64) -> Self {
        if n >= self.len() {
            return self;
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed).shuffle(&mut order);
        order.truncate(n);
        order.sort_unstable();
        let per = self.image_bytes();
        let mut out = Self::empty(self.size, self.class_names.clone());
        for i in order {
            out.push(&self.pixels[i * per..(i + 1) * per], self.labels[i]);
        }
        out
    }
}

/// A `--data` value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "dir")]
pub enum DataSource {
    /// The CIFAR-10 binary release in a folder (downloaded when missing).
    Cifar10(PathBuf),
    /// The CIFAR-100 binary release in a folder (downloaded when missing).
    Cifar100(PathBuf),
    /// An image folder: `DIR/<class>/*.{jpg,png}`, or `DIR/train` and `DIR/test` so laid out.
    Folder(PathBuf),
    /// The built-in procedural dataset.
    Synthetic,
}

/// Where the default dataset is looked for.
pub const DEFAULT_CIFAR10_DIR: &str = "data/cifar10";

impl std::str::FromStr for DataSource {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        if s == "synthetic" {
            return Ok(Self::Synthetic);
        }
        let Some((kind, dir)) = s.split_once(':') else {
            bail!("--data {s:?}: expected cifar10:DIR, cifar100:DIR, folder:DIR or synthetic");
        };
        if dir.is_empty() {
            bail!("--data {s:?}: the folder after '{kind}:' is empty");
        }
        let dir = PathBuf::from(dir);
        match kind {
            "cifar10" => Ok(Self::Cifar10(dir)),
            "cifar100" => Ok(Self::Cifar100(dir)),
            "folder" => Ok(Self::Folder(dir)),
            other => bail!(
                "--data {s:?}: unknown kind {other:?}; expected cifar10, cifar100, folder or synthetic"
            ),
        }
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cifar10(dir) => write!(f, "cifar10:{}", dir.display()),
            Self::Cifar100(dir) => write!(f, "cifar100:{}", dir.display()),
            Self::Folder(dir) => write!(f, "folder:{}", dir.display()),
            Self::Synthetic => write!(f, "synthetic"),
        }
    }
}

impl DataSource {
    /// The source used when `--data` is absent: CIFAR-10 under `./data/cifar10` (binary release or
    /// image folder) if present, otherwise the built-in dataset, with a one-line notice.
    pub fn default_source() -> Self {
        let dir = Path::new(DEFAULT_CIFAR10_DIR);
        if cifar::find_release(dir, cifar::Variant::Cifar10).is_some() {
            Self::Cifar10(dir.to_path_buf())
        } else if dir.join("train").is_dir() {
            Self::Folder(dir.to_path_buf())
        } else {
            eprintln!(
                "note: no {DEFAULT_CIFAR10_DIR}; using the built-in synthetic dataset (choose data with --data cifar10:DIR or folder:DIR)"
            );
            Self::Synthetic
        }
    }

    /// Loads both splits at side `size`. `train_size` / `test_size` cap the number of images
    /// (a seeded random subset); the synthetic dataset generates exactly that many.
    pub fn load(
        &self,
        size: usize,
        train_size: Option<usize>,
        test_size: Option<usize>,
        seed: u64,
    ) -> Result<Split> {
        if *self == Self::Synthetic {
            let train = synthetic::generate(train_size.unwrap_or(4000), size, seed ^ 0x5eed);
            let test = synthetic::generate(test_size.unwrap_or(1000), size, seed ^ 0x7e57);
            return Ok(Split { train, test, description: self.to_string() });
        }
        self.load_all(size)?.subset(train_size, test_size, seed)
    }

    /// Loads both splits whole at side `size` (the synthetic dataset at its default sizes).
    pub fn load_all(&self, size: usize) -> Result<Split> {
        match self {
            Self::Synthetic => self.load(size, None, None, 0),
            Self::Cifar10(dir) => cifar::load(dir, cifar::Variant::Cifar10, size),
            Self::Cifar100(dir) => cifar::load(dir, cifar::Variant::Cifar100, size),
            Self::Folder(dir) => folder::load(dir, size),
        }
    }
}

impl Split {
    /// Seeded random subsets of at most `train_size` / `test_size` images, as
    /// [`DataSource::load`] draws them; an error when a split ends up empty.
    pub fn subset(
        self,
        train_size: Option<usize>,
        test_size: Option<usize>,
        seed: u64,
    ) -> Result<Split> {
        let train = self.train.subset(train_size.unwrap_or(usize::MAX), seed ^ 0x5eed);
        let test = self.test.subset(test_size.unwrap_or(usize::MAX), seed ^ 0x7e57);
        if train.is_empty() || test.is_empty() {
            bail!(
                "{}: {} training and {} test images; both splits need at least one",
                self.description,
                train.len(),
                test.len()
            );
        }
        Ok(Split { train, test, description: self.description })
    }
}

pub use amcl_core::input::rgb_to_chw as to_chw;
