//! Training in bf16 or f16 (`--precision`): the backbone and heads run in half precision, the
//! objective and the temperatures in f32 (docs/METHOD.md, "Precision").
//!
//! Configuring the device's float type is global to the CPU backend and must come before its
//! first tensor, so this test lives in a test binary of its own.

mod common;

use amcl_core::loss::OBJECTIVE_DTYPE;
use amcl_core::methods::{Method, MethodConfig, MethodKind};
use amcl_core::model::AmclModelConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{DType, FloatDType};
use common::*;

const BATCH: usize = 8;

#[test]
fn half_precision_training_keeps_objective_and_temperatures_in_f32() {
    let mut d = device();
    d.configure(FloatDType::BF16).expect("the CPU backend trains in bf16");
    d.seed(1);
    let d = d.autodiff();
    let images =
        |seed| from_vec(uniform(BATCH * 3 * 16 * 16, 0.0, 1.0, seed), [BATCH, 3, 16, 16], &d);
    let (a, b) = (images(1), images(2));
    assert_eq!(a.dtype(), DType::BF16, "the inputs follow the device's float type");
    for name in ["amcl-simclr", "amcl-moco", "amcl-simsiam", "amcl-barlow", "simclr", "moco"] {
        let kind: MethodKind = name.parse().unwrap();
        let config = AmclModelConfig::new().with_width(4).with_hidden(32).with_dim(16);
        let mut model = kind.model_config(config.with_image_size(16), BATCH).init(&d).unwrap();
        let config = MethodConfig::new().with_moco_queue(32);
        let mut method = Method::new(kind, config);
        let mut optim = SgdConfig::new().init();
        let mut losses = Vec::new();
        for _ in 0..3 {
            let out = method.loss(&model, a.clone(), b.clone()).unwrap();
            assert_eq!(out.loss.dtype(), DType::from(OBJECTIVE_DTYPE), "{name}: the loss");
            losses.push(out.loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(out.loss.backward(), &model);
            model = optim.step(0.05, model, grads);
            method.after_step(&model);
        }
        assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
        // The backbone stays in bf16; projections and temperatures come out in f32.
        let features = model.features(a.clone());
        assert_eq!(features.dtype(), DType::BF16, "{name}: backbone features");
        let z = model.project_normalized(features);
        assert_eq!(z.dtype(), DType::from(OBJECTIVE_DTYPE), "{name}: projections");
        let tau = model.pairwise_temperatures(z.clone(), z);
        assert_eq!(tau.dtype(), DType::from(OBJECTIVE_DTYPE), "{name}: temperatures");
    }
}
