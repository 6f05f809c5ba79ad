//! Checks amcl-core against the independent pure-Python reference in tests/reference/.

mod common;

use amcl_core::loss::{AmclObjectiveConfig, NegativeReduction, amcl_objective, nt_xent};
use amcl_core::methods::{
    barlow_objective, channel_vectors, moco_objective, simclr_amcl_objective, simsiam_objective,
};
use amcl_core::model::{AmclModelConfig, DotTemperatureNet, TemperatureForm, TemperatureRange};
use burn::prelude::*;
use common::*;
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/reference/golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("golden.json")).unwrap()
}

fn objective_config(case: &Value) -> AmclObjectiveConfig {
    AmclObjectiveConfig {
        beta: case["beta"].as_f64().unwrap() as f32,
        dim: case["dim"].as_u64().unwrap() as usize,
        reduction: match case["reduction"].as_str().unwrap() {
            "Max" => NegativeReduction::Max,
            "LogSumExp" => NegativeReduction::LogSumExp,
            top_k => NegativeReduction::TopK(top_k["TopK:".len()..].parse().unwrap()),
        },
    }
}

/// The reference's temperature network, from the case's weights.
fn temperature_net(case: &Value, d: &Device) -> DotTemperatureNet {
    DotTemperatureNet::from_weights(
        tensor(&case["w1"], d),
        tensor(&case["b1"], d),
        tensor(&case["w2"], d),
        tensor(&case["b2"], d),
    )
}

fn expected(case: &Value) -> f32 {
    case["loss"].as_f64().unwrap() as f32
}

/// Runs the objective on every case of `key` in golden.json (expecting `count` of them) and
/// compares each loss with the reference's.
fn check_objective_cases(key: &str, count: usize) {
    let d = device();
    let cases = golden()[key].as_array().unwrap().clone();
    assert_eq!(cases.len(), count, "{key}");
    for (i, case) in cases.iter().enumerate() {
        let loss = amcl_objective(
            tensor(&case["pos_sim"], &d),
            tensor(&case["neg_sim"], &d),
            tensor(&case["pos_tau"], &d),
            tensor(&case["neg_tau"], &d),
            &objective_config(case),
        );
        let got = scalar(loss);
        assert!(got.is_finite(), "{key} case {i} not finite");
        let what = format!("{key} case {i} ({}, beta {})", case["reduction"], case["beta"]);
        assert_close(got, expected(case), 1e-5, &what);
    }
}

#[test]
fn objective_matches_reference_in_both_reductions_and_several_betas() {
    check_objective_cases("objective", 12);
}

#[test]
fn top_k_matches_reference_below_at_and_above_the_number_of_negatives() {
    check_objective_cases("top_k", 9);
}

#[test]
fn shared_temperature_network_matches_reference() {
    let d = device();
    for case in golden()["temperature"].as_array().unwrap() {
        let phi = temperature_net(case, &d);
        let z_a: Tensor<2> = tensor(&case["z_a"], &d);
        let z_b: Tensor<2> = tensor(&case["z_b"], &d);
        let tau = phi.pairwise_temperatures(
            z_a.unsqueeze(),
            z_b.unsqueeze(),
            &TemperatureRange::default(),
        );
        let (want, _) = flatten(&case["tau"]);
        for (got, want) in values(tau).into_iter().zip(want) {
            assert_close(got, want, 1e-5, "dot-product temperature");
        }
    }
}

/// The centred form while training (an autodiff device): the set of views is the batch whose mean
/// phi-projection is subtracted before the dot product.
#[test]
fn centred_temperature_network_matches_reference() {
    let d = device().autodiff();
    let cases = golden()["centred_temperature"].as_array().unwrap().clone();
    assert_eq!(cases.len(), 2);
    for case in cases {
        let hi = case["hi"].as_f64().unwrap() as f32;
        let mut model = AmclModelConfig::new()
            .with_width(4)
            .with_heads(1)
            .with_dim(4)
            .with_temperature(TemperatureRange { lo: 1e-5, hi })
            .with_temperature_form(TemperatureForm::Centred)
            .init(&d)
            .unwrap();
        model.phi = temperature_net(&case, &d);
        let z: Tensor<2> = tensor(&case["z"], &d);
        let tau = model.pairwise_temperatures(z.clone().unsqueeze(), z.unsqueeze());
        let (want, _) = flatten(&case["tau"]);
        assert_eq!(want.len(), 36);
        for (got, want) in values(tau).into_iter().zip(want) {
            assert_close(got, want, 1e-5, "centred temperature");
        }
    }
}

#[test]
fn nt_xent_matches_reference() {
    let d = device();
    for case in golden()["nt_xent"].as_array().unwrap() {
        let t = case["temperature"].as_f64().unwrap() as f32;
        let got = scalar(nt_xent(tensor(&case["z_a"], &d), tensor(&case["z_b"], &d), t));
        assert_close(got, expected(case), 1e-5, "nt_xent");
    }
}

#[test]
fn amcl_simclr_matches_reference() {
    let d = device();
    for case in golden()["simclr"].as_array().unwrap() {
        let (loss, _) = simclr_amcl_objective(
            tensor(&case["z_a"], &d),
            tensor(&case["z_b"], &d),
            tensor(&case["tau"], &d),
            &objective_config(case),
            TemperatureRange::default(),
        )
        .unwrap();
        assert_close(
            scalar(loss),
            expected(case),
            1e-5,
            &format!("amcl-simclr {}", case["reduction"]),
        );
    }
}

#[test]
fn moco_plain_and_amcl_match_reference() {
    let d = device();
    for case in golden()["moco"].as_array().unwrap() {
        let taus = (!case["pos_tau"].is_null())
            .then(|| (tensor(&case["pos_tau"], &d), tensor(&case["neg_tau"], &d)));
        let (loss, _) = moco_objective(
            tensor(&case["q"], &d),
            tensor(&case["k"], &d),
            tensor(&case["queue"], &d),
            taus,
            case["temperature"].as_f64().unwrap() as f32,
            &objective_config(case),
            TemperatureRange::default(),
        )
        .unwrap();
        assert_close(scalar(loss), expected(case), 1e-5, "moco");
    }
}

#[test]
fn simsiam_plain_and_amcl_match_reference() {
    let d = device();
    for case in golden()["simsiam"].as_array().unwrap() {
        let taus = (!case["tau1"].is_null())
            .then(|| (tensor(&case["tau1"], &d), tensor(&case["tau2"], &d)));
        let (loss, _) = simsiam_objective(
            tensor(&case["p1"], &d),
            tensor(&case["p2"], &d),
            tensor(&case["z1"], &d),
            tensor(&case["z2"], &d),
            taus,
            case["beta"].as_f64().unwrap() as f32,
            case["dim"].as_u64().unwrap() as usize,
            TemperatureRange::default(),
        );
        assert_close(scalar(loss), expected(case), 1e-5, "simsiam");
    }
}

#[test]
fn barlow_plain_and_amcl_with_channel_temperatures_match_reference() {
    let d = device();
    let range = TemperatureRange::default();
    for case in golden()["barlow"].as_array().unwrap() {
        let (z1, z2): (Tensor<3>, Tensor<3>) = (tensor(&case["z1"], &d), tensor(&case["z2"], &d));
        let taus = (!case["tau_diag"].is_null()).then(|| {
            // The channel network's temperatures, from the projections themselves.
            let phi = temperature_net(case, &d);
            let tau = phi.pairwise_temperatures(
                channel_vectors(z1.clone()),
                channel_vectors(z2.clone()),
                &range,
            );
            for (got, want) in values(tau.clone()).into_iter().zip(flatten(&case["tau_off"]).0) {
                assert_close(got, want, 1e-5, "channel temperature");
            }
            (tensor(&case["tau_diag"], &d), tau)
        });
        let (loss, _) = barlow_objective(
            z1,
            z2,
            taus,
            case["lambda_"].as_f64().unwrap() as f32,
            case["beta"].as_f64().unwrap() as f32,
            range,
        );
        assert_close(scalar(loss), expected(case), 1e-4, "barlow");
    }
}
