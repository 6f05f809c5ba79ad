//! The model, the methods on it, scoring and the weight format.

mod common;

use amcl_core::methods::{Method, MethodConfig, MethodKind};
use amcl_core::model::{AmclModelConfig, BackboneKind, SmallCnn, TemperatureForm};
use amcl_core::prelude::*;
use amcl_core::weights;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use common::*;

/// The tests' batch size (amcl-barlow's channel network is built for it).
const BATCH: usize = 8;

fn small(method: &MethodKind) -> AmclModelConfig {
    method.model_config(
        AmclModelConfig::new().with_width(4).with_hidden(32).with_dim(16).with_image_size(16),
        BATCH,
    )
}

fn batch(b: usize, seed: u64, device: &Device) -> Tensor<4> {
    from_vec(uniform(b * 3 * 16 * 16, 0.0, 1.0, seed), [b, 3, 16, 16], device)
}

#[test]
fn temperatures_stay_within_bounds() {
    let d = device();
    let model = AmclModelConfig::new().with_width(4).with_dim(8).init(&d).unwrap();
    // Large inputs push the logits far into both tails of the sigmoid.
    let z_a = from_vec(uniform(6 * 8, -50.0, 50.0, 1), [6, 8], &d);
    let z_b = from_vec(uniform(5 * 8, -50.0, 50.0, 2), [5, 8], &d);
    for c in 0..3 {
        let tau = values(model.pairwise_temperature(c, z_a.clone(), z_b.clone()));
        assert_eq!(tau.len(), 30);
        assert!(tau.iter().all(|t| *t >= 1e-5 && *t <= 2.0), "{tau:?}");
    }
    // The pairwise shortcut equals scoring each pair on its own.
    let all = values(model.pairwise_temperature(1, z_a.clone(), z_b.clone()));
    let row = values(model.paired_temperature(1, z_a.slice([2..3, 0..8]), z_b.slice([4..5, 0..8])));
    assert!((all[2 * 5 + 4] - row[0]).abs() < 1e-5 * all[2 * 5 + 4].max(1.0));
}

/// The authors' form: one phi for every head, tau = lo + (hi - lo) sigmoid(-<phi(z_a), phi(z_b)>)
/// for all pairs at once and for aligned pairs, symmetric in the pair.
#[test]
fn dot_temperatures_are_one_shared_phi_on_both_sides_of_a_pair() {
    let d = device();
    let (c, n, m, dim) = (3, 4, 5, 8);
    let model = AmclModelConfig::new().with_width(4).with_dim(dim).init(&d).unwrap();
    assert_eq!(model.config.temperature_form, TemperatureForm::Dot);
    let z_a = from_vec(uniform(c * n * dim, -1.0, 1.0, 21), [c, n, dim], &d);
    let z_b = from_vec(uniform(c * m * dim, -1.0, 1.0, 22), [c, m, dim], &d);
    let all = values(model.pairwise_temperatures(z_a.clone(), z_b.clone()));
    let phi = &model.phi;
    let (pa, pb) = (values(phi.project(z_a.clone())), values(phi.project(z_b.clone())));
    let range = model.range;
    for h in 0..c {
        for i in 0..n {
            for j in 0..m {
                let a = &pa[(h * n + i) * dim..(h * n + i + 1) * dim];
                let b = &pb[(h * m + j) * dim..(h * m + j + 1) * dim];
                let r: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                let want = range.lo + (range.hi - range.lo) / (1.0 + r.exp());
                let got = all[(h * n + i) * m + j];
                assert!((got - want).abs() < 1e-5, "head {h} pair ({i}, {j}): {got} vs {want}");
            }
        }
    }
    let aligned_b = z_b.clone().slice([0..c, 0..n, 0..dim]);
    let aligned = values(model.paired_temperatures(z_a.clone(), aligned_b.clone()));
    let swapped = values(model.paired_temperatures(aligned_b, z_a));
    for k in 0..c * n {
        let (h, i) = (k / n, k % n);
        assert!((aligned[k] - all[(h * n + i) * m + i]).abs() < 1e-5);
        assert!((aligned[k] - swapped[k]).abs() < 1e-6, "tau(a, b) = tau(b, a)");
    }
}

#[test]
fn backbones_give_the_documented_feature_sizes() {
    let d = device();
    let x = batch(2, 1, &d);
    for (kind, f) in [(BackboneKind::SmallCnn, 32), (BackboneKind::Resnet18, 512)] {
        let model = AmclModelConfig::new()
            .with_backbone(kind)
            .with_width(4)
            .with_image_size(16)
            .init(&d)
            .unwrap();
        assert_eq!(model.features(x.clone()).dims(), [2, f], "{kind:?}");
    }
    // Width 32: 8*32 = 256 features; the sizes and costs quoted in README.md.
    assert_eq!(SmallCnn::macs(32, 32), 43_352_064);
    // num_params counts BatchNorm running statistics too.
    assert_eq!(SmallCnn::new(32, true, &d).num_params(), 1_165_792);
    assert_eq!(amcl_core::model::ResNet18::new(&d).num_params(), 11_178_432);
}

#[test]
fn wrong_input_shape_is_an_error() {
    let d = device();
    let model = small(&"amcl-simclr".parse().unwrap()).init(&d).unwrap();
    let err = model.try_features(Tensor::zeros([2, 3, 8, 8], &d)).unwrap_err();
    assert!(err.to_string().contains("[2, 3, 16, 16]"), "{err}");
    let mut method = Method::from_name("amcl-simclr", MethodConfig::new()).unwrap();
    assert!(method.loss(&model, batch(2, 1, &d), batch(3, 2, &d)).is_err());
}

#[test]
fn unknown_method_names_list_the_known_ones() {
    let err = "amcl-byol".parse::<MethodKind>().unwrap_err().to_string();
    assert!(err.contains("amcl-simclr") && err.contains("byol"), "{err}");
}

/// Every method, plain and AMCL, gives a finite loss, gradients and C rows of diagnostics.
#[test]
fn every_method_runs_a_step() {
    let d = device().autodiff();
    for name in MethodKind::names() {
        let kind: MethodKind = name.parse().unwrap();
        let model = small(&kind).init(&d).unwrap();
        let mut method = Method::new(kind, MethodConfig::new().with_moco_queue(32));
        let out = method.loss(&model, batch(BATCH, 1, &d), batch(BATCH, 2, &d)).unwrap();
        let loss = out.loss.clone().into_scalar::<f32>();
        assert!(loss.is_finite(), "{name}: {loss}");
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        assert!(!grads.is_empty(), "{name}: no gradients");
        let heads = out.diagnostics.read();
        assert_eq!(heads.len(), 3, "{name}");
        for h in heads {
            assert!(h.tau_pos_min >= 0.0 && h.tau_pos_max <= 2.0, "{name}: {h:?}");
        }
        method.after_step(&model);
    }
}

/// A few Adam steps of amcl-simclr on a fixed random batch lower the loss.
#[test]
fn training_steps_lower_the_amcl_simclr_loss() {
    let d = device().autodiff();
    let kind: MethodKind = "amcl-simclr".parse().unwrap();
    let mut model = small(&kind).init(&d).unwrap();
    let mut method = Method::new(kind, MethodConfig::new());
    let mut optim = AdamConfig::new().init();
    let (a, b) = (batch(8, 3, &d), batch(8, 4, &d));
    let mut losses = Vec::new();
    for _ in 0..5 {
        let out = method.loss(&model, a.clone(), b.clone()).unwrap();
        losses.push(out.loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses[4] < losses[0], "loss did not decrease: {losses:?}");
}

#[test]
fn scoring_reports_every_head_and_sums_the_amcl_score() {
    let d = device();
    let model = small(&"amcl-simclr".parse().unwrap()).init(&d).unwrap();
    let x = batch(2, 5, &d);
    let a = x.clone().slice([0..1, 0..3, 0..16, 0..16]);
    let b = x.slice([1..2, 0..3, 0..16, 0..16]);
    let score = amcl_core::score::score_pair(&model, a.clone(), b, 0.1).unwrap();
    assert_eq!(score.heads.len(), 3);
    let total: f32 = score.heads.iter().map(|h| h.scaled - h.omega).sum();
    assert!((total - score.amcl_score).abs() < 1e-3 * total.abs().max(1.0));
    for h in &score.heads {
        assert!((h.similarity / h.tau_pos - h.scaled).abs() < 1e-3 * h.scaled.abs().max(1.0));
        assert!((-1.0..=1.0001).contains(&h.similarity));
    }
    // An image with itself has similarity 1 in every head.
    let same = amcl_core::score::score_pair(&model, a.clone(), a, 0.1).unwrap();
    assert!(same.heads.iter().all(|h| (h.similarity - 1.0).abs() < 1e-4));
}

/// Weights written before the authors' temperature network existed (their manifest has no
/// `temperature_form`: the per-head concatenated-pair networks, since removed) are refused with
/// a message that names the difference, not a list of tensors.
#[test]
fn weights_of_the_removed_concat_form_are_refused_by_name() {
    use burn_store::{BurnpackStore, ModuleSnapshot};
    let d = device();
    let config = small(&kind("amcl-simclr"));
    let model = config.init(&d).unwrap();
    let manifest = serde_json::to_value(Manifest::new(config, "amcl-simclr", 0.1)).unwrap();
    let written = |manifest: &serde_json::Value| {
        let mut store =
            BurnpackStore::from_bytes(None).metadata(weights::MANIFEST_KEY, manifest.to_string());
        model.save_into(&mut store).unwrap();
        store.get_bytes().unwrap().to_vec()
    };
    assert!(weights::from_bytes(&written(&manifest), &d).is_ok());
    for form in [None, Some("concat")] {
        let mut earlier = manifest.clone();
        let fields = earlier["model"].as_object_mut().unwrap();
        match form {
            None => fields.remove("temperature_form"),
            Some(form) => fields.insert("temperature_form".into(), form.into()),
        };
        let err = weights::from_bytes(&written(&earlier), &d).unwrap_err().to_string();
        assert!(err.contains("phi_c([z_a ; z_b])") && err.contains("retrain"), "{err}");
    }
}

#[test]
fn weights_round_trip_with_manifest() {
    let d = device();
    let config = small(&"amcl-simclr".parse().unwrap());
    let model = config.init(&d).unwrap();
    let manifest = Manifest::new(config.clone(), "amcl-simclr", 0.1);
    let dir = std::env::temp_dir().join(format!("amcl-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.bpk");
    weights::save(&model, &manifest, &path).unwrap();
    let (loaded, read) = weights::load(&path, &d).unwrap();
    assert_eq!(read, manifest);
    let x = batch(2, 6, &d);
    let (f1, f2) = (values(model.valid().features(x.clone())), values(loaded.valid().features(x)));
    assert_eq!(f1, f2);

    // Truncated: a clear error, not a panic.
    let bytes = std::fs::read(&path).unwrap();
    let err = weights::from_bytes(&bytes[..bytes.len() / 2], &d).unwrap_err().to_string();
    assert!(err.contains("weights"), "{err}");

    // Tensors from another architecture under this manifest: the difference is named.
    let other = small(&"amcl-simclr".parse().unwrap()).with_dim(8);
    let other_bytes =
        weights::to_bytes(&other.init(&d).unwrap(), &Manifest::new(other, "amcl-simclr", 0.1))
            .unwrap();
    let err = weights::load_into(&other_bytes, &config, &d).unwrap_err().to_string();
    assert!(err.contains("does not match") && err.contains("heads.0.output.weight"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn half_precision_weights_are_about_half_the_size_and_load_as_f32() {
    let d = device();
    let config = small(&"amcl-simclr".parse().unwrap()).with_hidden(64);
    let model = config.init(&d).unwrap();
    let manifest = Manifest::new(config, "amcl-simclr", 0.1);
    let full = weights::to_bytes(&model, &manifest).unwrap();
    let half = weights::to_bytes_with(&model, &manifest, weights::Precision::F16).unwrap();
    assert!(half.len() * 10 < full.len() * 6, "{} vs {} bytes", half.len(), full.len());
    let (loaded, read) = weights::from_bytes(&half, &d).unwrap();
    assert_eq!(read, manifest);
    let x = batch(3, 7, &d);
    let z = |m: &amcl_core::model::AmclModel| {
        values(m.valid().project_normalized(m.valid().features(x.clone())))
    };
    let (exact, rounded) = (z(&model), z(&loaded));
    assert_ne!(exact, rounded, "f16 storage must round something");
    let worst = exact.iter().zip(&rounded).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-2, "f16 weights move unit-norm projections by {worst}");
}

#[test]
fn not_a_weights_file_is_an_error() {
    let err = weights::from_bytes(b"hello, I am not a model", &device()).unwrap_err().to_string();
    assert!(err.starts_with("weights:"), "{err}");
}

#[test]
fn invalid_temperature_range_is_rejected() {
    let bad = AmclModelConfig::new().with_temperature(TemperatureRange { lo: 2.0, hi: 1.0 });
    let err = bad.init(&device()).unwrap_err().to_string();
    assert!(err.contains("0 < lo < hi"), "{err}");
}

fn kind(name: &str) -> MethodKind {
    name.parse().unwrap()
}

/// MoCo's symmetric objective runs both directions as one objective over 2N anchors; that
/// equals the mean of the two directions computed apart (q_a against k_b, q_b against k_a), plain
/// and adaptive, in both reductions.
#[test]
fn moco_symmetric_objective_is_the_mean_of_its_two_directions() {
    use amcl_core::loss::{AmclObjectiveConfig, NegativeReduction, l2_normalize};
    use amcl_core::methods::{moco_objective, moco_symmetric_objective};
    let d = device();
    let kind: MethodKind = "amcl-moco".parse().unwrap();
    let model = small(&kind).init(&d).unwrap();
    let (c, n, q, dim) = (model.num_heads(), 4, 32, model.heads[0].output_dim());
    let unit = |rows: usize, seed: u64| {
        l2_normalize(from_vec(uniform(c * rows * dim, -1.0, 1.0, seed), [c, rows, dim], &d))
    };
    let (q_a, q_b, k_a, k_b, queue) = (unit(n, 1), unit(n, 2), unit(n, 3), unit(n, 4), unit(q, 5));
    let head = |t: &Tensor<3>, h: usize| {
        let [_, rows, dim] = t.dims();
        t.clone().slice([h..h + 1, 0..rows, 0..dim]).reshape([rows, dim])
    };
    let one_direction =
        |q: &Tensor<3>, k: &Tensor<3>, adaptive: bool, cfg: &AmclObjectiveConfig| {
            let taus = adaptive.then(|| {
                let pos = (0..c).map(|h| model.paired_temperature(h, head(q, h), head(k, h)));
                let neg =
                    (0..c).map(|h| model.pairwise_temperature(h, head(q, h), head(&queue, h)));
                (Tensor::stack(pos.collect(), 0), Tensor::stack(neg.collect(), 0))
            });
            let (loss, _) =
                moco_objective(q.clone(), k.clone(), queue.clone(), taus, 0.2, cfg, model.range)
                    .unwrap();
            loss.into_scalar::<f32>()
        };
    for reduction in
        [NegativeReduction::LogSumExp, NegativeReduction::Max, NegativeReduction::TopK(5)]
    {
        let cfg = AmclObjectiveConfig { beta: 0.1, dim, reduction };
        for adaptive in [false, true] {
            let (loss, diagnostics) = moco_symmetric_objective(
                &model,
                (q_a.clone(), q_b.clone()),
                (k_a.clone(), k_b.clone()),
                &queue,
                adaptive,
                0.2,
                &cfg,
            )
            .unwrap();
            let ab = one_direction(&q_a, &k_b, adaptive, &cfg);
            let ba = one_direction(&q_b, &k_a, adaptive, &cfg);
            let got = loss.into_scalar::<f32>();
            let what = format!("{reduction:?}, adaptive {adaptive}");
            // One direction alone would miss the mean by |ab - ba| / 2, which must stay well
            // above the tolerance below (the weights, drawn from the tests' shared generator,
            // vary with the order the tests run in).
            assert!((ab - ba).abs() > 1e-4, "{what}: the directions should differ ({ab}, {ba})");
            let expected = 0.5 * (ab + ba);
            assert!(
                (got - expected).abs() < 1e-5 * expected.abs().max(1.0),
                "{what}: {got} vs {expected}"
            );
            assert_eq!(diagnostics.read().len(), c);
        }
    }
}
