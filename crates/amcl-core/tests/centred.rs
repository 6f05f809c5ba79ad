//! The centred temperature form (docs/METHOD.md, "the centred form"): phi's projections centred
//! over the batch while training, by their running mean otherwise.

mod common;

use amcl_core::methods::{Method, MethodConfig};
use amcl_core::model::{AmclModel, AmclModelConfig, TemperatureForm, TemperatureRange};
use amcl_core::weights::{self, Manifest};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;
use common::*;

const RANGE: TemperatureRange = TemperatureRange { lo: 1e-5, hi: 1.0 };

fn centred(device: &Device) -> AmclModel {
    AmclModelConfig::new()
        .with_width(4)
        .with_hidden(32)
        .with_dim(8)
        .with_image_size(16)
        .with_temperature(RANGE)
        .with_temperature_form(TemperatureForm::Centred)
        .init(device)
        .unwrap()
}

/// The logit behind a temperature: the inverse of Eq. 3's squashing.
fn logit(tau: f32) -> f32 {
    let p = (tau - RANGE.lo) / (RANGE.hi - RANGE.lo);
    (p / (1.0 - p)).ln()
}

fn views(c: usize, n: usize, seed: u64, device: &Device) -> Tensor<3> {
    from_vec(uniform(c * n * 8, -1.0, 1.0, seed), [c, n, 8], device)
}

/// mean_j <phi_i - phi_bar, phi_j - phi_bar> = 0 for every anchor i of the batch, whatever phi's
/// output bias: the temperatures' common level cannot move, only their differences.
#[test]
fn every_anchors_logits_average_to_zero_while_training() {
    let d = device().autodiff();
    let (c, n) = (3, 10);
    let z = views(c, n, 3, &d);
    let plain = centred(&d);
    // An output bias that would start every uncentred pair at tau = 0.05 is cancelled.
    let biased = plain.clone().with_initial_temperature(0.05).unwrap();
    let (p, q) = (values(plain.phi.project(z.clone())), values(biased.phi.project(z.clone())));
    assert!(p.iter().zip(&q).all(|(a, b)| (b - a) > 0.1), "the bias is there before centring");
    let tau = values(plain.pairwise_temperatures(z.clone(), z.clone()));
    let tau_biased = values(biased.pairwise_temperatures(z.clone(), z));
    for (a, b) in tau.iter().zip(&tau_biased) {
        assert!((a - b).abs() < 1e-4 * a.max(0.01), "the bias cancels: {a} vs {b}");
    }
    for row in tau.chunks(n) {
        let mean: f32 = row.iter().map(|t| logit(*t)).sum::<f32>() / n as f32;
        assert!(mean.abs() < 1e-3, "an anchor's mean logit {mean}");
        assert!(row.iter().any(|t| (t - 0.5).abs() > 1e-4), "phi still tells pairs apart: {row:?}");
    }
}

/// Training batches move the running mean by 0.1 of their mean phi-projection (from 0); evaluation
/// centres by the running mean, so a single pair has a temperature of its own.
#[test]
fn the_running_centre_follows_training_and_serves_evaluation() {
    let d = device().autodiff();
    let (c, n) = (3, 6);
    let model = centred(&d);
    let z = views(c, n, 5, &d);
    let _ = model.pairwise_temperatures(z.clone(), z.clone());
    let phi_bar = values(model.phi.project(z.clone()).mean_dim(1));
    let running = values(model.phi_centre.as_ref().unwrap().running());
    for (r, m) in running.iter().zip(&phi_bar) {
        assert!((r - 0.1 * m).abs() < 1e-5, "running {r} vs 0.1 x batch mean {m}");
    }
    // Evaluation: the inner (non-autodiff) model, one pair of head 1.
    let inner = model.valid();
    let e = device();
    let head = |t: &Tensor<3>, i: usize| {
        Tensor::<2>::from_data(
            t.clone().slice([1..2, i..i + 1, 0..8]).reshape([1, 8]).into_data(),
            &e,
        )
    };
    let (a, b) = (head(&z, 0), head(&z, 1));
    let got = values(inner.paired_temperature(1, a.clone(), b.clone()))[0];
    let centre = &running[8..16];
    let pa: Vec<f32> =
        values(inner.phi.project(a)).iter().zip(centre).map(|(p, c)| p - c).collect();
    let pb: Vec<f32> =
        values(inner.phi.project(b)).iter().zip(centre).map(|(p, c)| p - c).collect();
    let r: f32 = pa.iter().zip(&pb).map(|(x, y)| x * y).sum();
    let want = RANGE.lo + (RANGE.hi - RANGE.lo) / (1.0 + r.exp());
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    // Evaluating does not move the running mean.
    let _ = inner.pairwise_temperature(0, head(&z, 2), head(&z, 3));
    assert_eq!(values(inner.phi_centre.as_ref().unwrap().running()), running);
}

/// A training step of amcl-simclr and amcl-moco on the centred form: finite, and phi learns.
#[test]
fn centred_amcl_trains_phi_in_simclr_and_moco() {
    let d = device().autodiff();
    for name in ["amcl-simclr", "amcl-moco"] {
        let model = centred(&d);
        let mut method = Method::from_name(name, MethodConfig::new().with_moco_queue(16)).unwrap();
        let a = from_vec(uniform(8 * 3 * 16 * 16, 0.0, 1.0, 7), [8, 3, 16, 16], &d);
        let b = from_vec(uniform(8 * 3 * 16 * 16, 0.0, 1.0, 8), [8, 3, 16, 16], &d);
        let out = method.loss(&model, a, b).unwrap();
        let loss = scalar(out.loss.clone());
        assert!(loss.is_finite(), "{name}: {loss}");
        let grads = GradientsParams::from_grads(out.loss.backward(), &model.phi);
        assert_eq!(grads.len(), 4, "{name}: every weight and bias of phi has a gradient");
    }
}

/// The weights file records the form and keeps the running centre (in f32, also in half-size
/// files), so a loaded model scores pairs as the trained one did.
#[test]
fn weights_keep_the_form_and_the_running_centre() {
    let d = device().autodiff();
    let model = centred(&d);
    let z = views(3, 6, 11, &d);
    let _ = model.pairwise_temperatures(z.clone(), z);
    let model = model.valid();
    let manifest = Manifest::new(model.config.clone(), "amcl-simclr", 1e-4);
    let bytes = weights::to_bytes(&model, &manifest).unwrap();
    let (loaded, read) = weights::from_bytes(&bytes, &device()).unwrap();
    assert_eq!(read.model.temperature_form, TemperatureForm::Centred);
    let running = |m: &AmclModel| values(m.phi_centre.as_ref().unwrap().running());
    assert_eq!(running(&loaded), running(&model));
    assert!(running(&model).iter().any(|v| *v != 0.0));
}
