//! Evaluation of frozen representations: the kNN monitor (docs/METHOD.md, "Training": cosine similarity, the
//! k = 200 nearest training images vote with weight exp(s / t), t = 0.1) and a linear probe
//! (softmax regression on standardised features), for the backbone features and for each head.

use std::path::PathBuf;

use amcl_core::loss::l2_normalize;
use amcl_core::model::AmclModel;
use amcl_core::weights;
use anyhow::{Context, Result};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::{DataSource, Dataset};
use crate::device::{self, DeviceChoice};

/// kNN neighbours.
pub const KNN_K: usize = 200;
/// kNN vote temperature.
pub const KNN_T: f32 = 0.1;

/// Representations of a dataset: backbone features `[N, f]` and each head's unit-norm
/// projection `[N, d]`.
pub struct Embeddings {
    pub features: Tensor<2>,
    pub heads: Vec<Tensor<2>>,
}

/// Embeds every image of `data` in batches of `batch`.
pub fn embed(model: &AmclModel, data: &Dataset, batch: usize, device: &Device) -> Embeddings {
    let indices: Vec<usize> = (0..data.len()).collect();
    let bar = progress(data.len() as u64, "embedding");
    let (mut features, mut heads) = (Vec::new(), vec![Vec::new(); model.num_heads()]);
    for chunk in indices.chunks(batch) {
        let f = model.features(data.batch(chunk, device));
        let z = model.project_normalized(f.clone());
        for (c, head) in heads.iter_mut().enumerate() {
            head.push(z.clone().narrow(0, c, 1).squeeze_dim::<2>(0));
        }
        features.push(f);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Embeddings {
        features: Tensor::cat(features, 0),
        heads: heads.into_iter().map(|h| Tensor::cat(h, 0)).collect(),
    }
}

fn progress(len: u64, what: &str) -> ProgressBar {
    ProgressBar::new(len).with_style(
        ProgressStyle::with_template(&format!("{what} {{pos}}/{{len}} {{wide_bar}} {{per_sec}}"))
            .expect("valid template"),
    )
}

fn to_vec<T: burn::tensor::Element>(data: TensorData) -> Result<Vec<T>> {
    data.convert::<T>().try_into_vec::<T>().map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// kNN top-1 accuracy (fraction) of `test` against `train`; rows need not be normalised.
pub fn knn_top1(
    train: Tensor<2>,
    train_labels: &[usize],
    test: Tensor<2>,
    test_labels: &[usize],
    classes: usize,
) -> Result<f32> {
    let k = KNN_K.min(train_labels.len());
    let (train, test) = (l2_normalize(train), l2_normalize(test));
    let mut correct = 0;
    // Rows in blocks, so the similarity matrix stays small on large test sets.
    let block = 1024;
    for start in (0..test_labels.len()).step_by(block) {
        let len = block.min(test_labels.len() - start);
        let sim = test.clone().narrow(0, start, len).matmul(train.clone().transpose());
        let (values, indices) = sim.topk_with_indices(k, 1);
        let values: Vec<f32> = to_vec(values.into_data())?;
        let indices: Vec<i64> = to_vec(indices.into_data())?;
        for row in 0..len {
            let mut votes = vec![0.0f32; classes];
            for j in 0..k {
                let neighbour = indices[row * k + j] as usize;
                votes[train_labels[neighbour]] += (values[row * k + j] / KNN_T).exp();
            }
            let predicted =
                (0..classes).max_by(|&a, &b| votes[a].total_cmp(&votes[b])).unwrap_or(0);
            correct += usize::from(predicted == test_labels[start + row]);
        }
    }
    Ok(correct as f32 / test_labels.len().max(1) as f32)
}

/// Linear-probe settings: epochs of Adam over the training features.
const PROBE_EPOCHS: usize = 30;
const PROBE_BATCH: usize = 256;
const PROBE_LR: f64 = 1e-2;

/// Linear-probe top-1 accuracy (fraction): softmax regression trained on `train` features
/// (standardised with the training mean and deviation), tested on `test`.
pub fn linear_top1(
    train: Tensor<2>,
    train_labels: &[usize],
    test: Tensor<2>,
    test_labels: &[usize],
    classes: usize,
    device: &Device,
) -> Result<f32> {
    let mean = train.clone().mean_dim(0);
    let std = (train.clone() - mean.clone()).powi_scalar(2).mean_dim(0).sqrt().add_scalar(1e-6);
    let standardise = |x: Tensor<2>| (x - mean.clone()) / std.clone();
    let ad = device.clone().autodiff();
    let [n, f] = train.dims();
    let train = Tensor::<2>::from_data(standardise(train).into_data(), &ad);
    let labels = Tensor::<2, Int>::from_data(
        TensorData::new(train_labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [n, 1]),
        &ad,
    );
    ad.seed(17);
    let mut probe: Linear = LinearConfig::new(f, classes).init(&ad);
    let mut optim = AdamConfig::new().init();
    let mut rng = amcl_core::rng::Rng::new(17);
    let mut order: Vec<usize> = (0..n).collect();
    let steps = PROBE_EPOCHS * n.div_ceil(PROBE_BATCH);
    let mut step = 0;
    for _ in 0..PROBE_EPOCHS {
        rng.shuffle(&mut order);
        for chunk in order.chunks(PROBE_BATCH) {
            let idx = Tensor::<1, Int>::from_data(
                TensorData::new(chunk.iter().map(|&i| i as i64).collect::<Vec<_>>(), [chunk.len()]),
                &ad,
            );
            let x = train.clone().select(0, idx.clone());
            let y = labels.clone().select(0, idx);
            let loss = -log_softmax(probe.forward(x), 1).gather(1, y).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &probe);
            let lr = crate::optim::learning_rate(PROBE_LR, step, steps, 0);
            probe = optim.step(lr, probe, grads);
            step += 1;
        }
    }
    let probe = probe.valid();
    let test = Tensor::<2>::from_data(standardise(test).into_data(), device);
    let predicted: Vec<i64> = to_vec(probe.forward(test).argmax(1).into_data())?;
    let correct = predicted.iter().zip(test_labels).filter(|&(&p, &l)| p as usize == l).count();
    Ok(correct as f32 / test_labels.len().max(1) as f32)
}

/// Accuracy of one representation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeadEval {
    pub head: usize,
    pub knn_top1: f32,
    pub linear_top1: Option<f32>,
}

/// Accuracy of the backbone features and of every head.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    pub knn_top1: f32,
    pub linear_top1: Option<f32>,
    pub heads: Vec<HeadEval>,
}

/// Evaluates `model` with `train` as the kNN bank and probe training set, on `test`: kNN always,
/// the linear probe when `linear`.
pub fn evaluate(
    model: &AmclModel,
    train_set: &Dataset,
    test_set: &Dataset,
    device: &Device,
    linear: bool,
) -> Result<EvalReport> {
    let train = embed(model, train_set, 256, device);
    let test = embed(model, test_set, 256, device);
    let classes = train_set.classes();
    let (tl, vl) = (&train_set.labels, &test_set.labels);
    let score = |a: Tensor<2>, b: Tensor<2>| -> Result<(f32, Option<f32>)> {
        let knn = knn_top1(a.clone(), tl, b.clone(), vl, classes)?;
        let lin = if linear { Some(linear_top1(a, tl, b, vl, classes, device)?) } else { None };
        Ok((knn, lin))
    };
    let (knn_top1, linear_top1) = score(train.features, test.features)?;
    let mut heads = Vec::new();
    for (c, (a, b)) in train.heads.into_iter().zip(test.heads).enumerate() {
        let (knn_top1, linear_top1) = score(a, b)?;
        heads.push(HeadEval { head: c, knn_top1, linear_top1 });
    }
    Ok(EvalReport { knn_top1, linear_top1, heads })
}

/// Arguments of `eval`.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// Weights file written by `pretrain` or `export`.
    #[arg(long, default_value = "runs/latest/model.bpk")]
    pub weights: PathBuf,
    /// Dataset: cifar10:DIR, cifar100:DIR, folder:DIR or synthetic [default: data/cifar10 if
    /// present, else synthetic].
    #[arg(long)]
    pub data: Option<String>,
    /// Use at most this many training images (the kNN bank and probe training set).
    #[arg(long)]
    pub train_size: Option<usize>,
    /// Use at most this many test images.
    #[arg(long)]
    pub test_size: Option<usize>,
    /// Seed of the subsets (and of the synthetic dataset).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skip the linear probe (kNN only).
    #[arg(long)]
    pub no_linear: bool,
    /// Augmentations of the two views whose temperatures are reported by kind of pair (AMCL
    /// weights of SimCLR, MoCo and SimSiam).
    #[arg(long, default_value = "abcde")]
    pub augs: String,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    let selected = device::select(args.device)?;
    let (model, manifest) = weights::load(&args.weights, &selected.device)
        .with_context(|| format!("loading --weights {}", args.weights.display()))?;
    let source: DataSource = match &args.data {
        Some(spec) => spec.parse()?,
        None => DataSource::default_source(),
    };
    let split =
        source.load(manifest.model.image_size, args.train_size, args.test_size, args.seed)?;
    let report = evaluate(&model, &split.train, &split.test, &selected.device, !args.no_linear)?;
    let kind: amcl_core::methods::MethodKind = manifest.method.parse()?;
    let spread = if kind.has_pair_temperatures() {
        let augs = args.augs.parse().context("--augs")?;
        Some(crate::spread::temperature_spread(
            &model,
            &split.test,
            augs,
            args.seed,
            &selected.device,
        )?)
    } else {
        None
    };
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["temperature_spread"] = serde_json::to_value(&spread)?;
        value["data"] = split.description.clone().into();
        value["train_images"] = split.train.len().into();
        value["test_images"] = split.test.len().into();
        value["method"] = manifest.method.clone().into();
        value["backend"] = selected.name.clone().into();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "{} ({} weights) on {}: {} training, {} test images, {} classes; backend {}",
            args.weights.display(),
            manifest.method,
            split.description,
            split.train.len(),
            split.test.len(),
            split.train.classes(),
            selected.name
        );
        let pct = |v: Option<f32>| v.map_or("-".into(), |v| format!("{:.2}%", v * 100.0));
        println!("{:<12} {:>10} {:>12}", "features", "kNN top-1", "linear top-1");
        println!(
            "{:<12} {:>10} {:>12}",
            "backbone",
            pct(Some(report.knn_top1)),
            pct(report.linear_top1)
        );
        for h in &report.heads {
            println!(
                "{:<12} {:>10} {:>12}",
                format!("head {}", h.head),
                pct(Some(h.knn_top1)),
                pct(h.linear_top1)
            );
        }
        for h in spread.iter().flatten() {
            println!(
                "head {}: mean tau of two views of one image {:.4}, of one class {:.4}, of different classes {:.4}; \
                 of each view's {} hardest negatives {:.4} (s {:.3}), easiest {:.4} (s {:.3}); corr(s, tau) {:+.3}",
                h.head,
                h.views.tau.mean,
                h.same_class.tau.mean,
                h.other_class.tau.mean,
                crate::spread::HARD,
                h.hardest.tau.mean,
                h.hardest.similarity.mean,
                h.easiest.tau.mean,
                h.easiest.similarity.mean,
                h.tau_similarity_correlation
            );
        }
    }
    Ok(())
}
