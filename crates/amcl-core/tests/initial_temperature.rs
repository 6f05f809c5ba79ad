//! Where the dot-form temperature network starts, by default and with `--tau-init`.
//!
//! The start depends on phi's random weights, so this test seeds the generator and lives in a
//! test binary of its own: no other test draws from the generator between the seed and the draw,
//! and the check is the same on every run. The bounds below hold over the 40 seeds 0..40 (tau-init
//! 0.2 gave per-pair values 0.09-0.33 and means 0.13-0.26; the default start gave means
//! 0.88-0.98), so they test the rule, not one lucky draw.

mod common;

use amcl_core::methods::MethodKind;
use amcl_core::model::AmclModelConfig;
use common::*;

/// The tests' batch size (amcl-barlow's channel network is built for it).
const BATCH: usize = 8;

fn small(method: &str) -> AmclModelConfig {
    let kind: MethodKind = method.parse().unwrap();
    kind.model_config(
        AmclModelConfig::new().with_width(4).with_hidden(32).with_dim(16).with_image_size(16),
        BATCH,
    )
}

fn mean(t: &[f32]) -> f32 {
    t.iter().sum::<f32>() / t.len() as f32
}

#[test]
fn initial_temperature_starts_every_tau_near_it() {
    let d = device();
    d.seed(7);
    let z = amcl_core::loss::l2_normalize(from_vec(uniform(6 * 16, -1.0, 1.0, 4), [6, 16], &d));
    // Default initialisation: tau just below (lo + hi) / 2 ~ 1. The logit is -<phi(a), phi(b)>,
    // and phi's random output bias b adds |b|^2 >= 0 to every pair's product, so the mean sits
    // a little below 1.
    let model = small("amcl-simclr").init(&d).unwrap();
    let tau = values(model.pairwise_temperature(0, z.clone(), z.clone()));
    assert!((0.8..=1.0).contains(&mean(&tau)), "{tau:?}");
    // --tau-init 0.2: every head, every pair near 0.2 (and far from the default ~1). The output
    // bias sets the mean; the layers' random initial weights move each pair's logit by a few
    // tenths, so single pairs lie within about 0.1-0.35.
    let model = model.with_initial_temperature(0.2).unwrap();
    for c in 0..3 {
        let tau = values(model.pairwise_temperature(c, z.clone(), z.clone()));
        assert!((mean(&tau) - 0.2).abs() < 0.07, "head {c}: mean {} of {tau:?}", mean(&tau));
        assert!(tau.iter().all(|t| (0.05..0.4).contains(t)), "head {c}: {tau:?}");
    }
    // Barlow Twins' channel network too: every pair of channels near 0.5. Its input is a
    // channel's column over the batch, not a unit vector, so the random layers move it further
    // (over the 40 seeds: means 0.30-0.60, single pairs 0.22-0.70), still far from the default 1.
    let barlow = small("amcl-barlow").init(&d).unwrap().with_initial_temperature(0.5).unwrap();
    let z1 = from_vec(uniform(3 * BATCH * 16, -1.0, 1.0, 5), [3, BATCH, 16], &d);
    let z2 = from_vec(uniform(3 * BATCH * 16, -1.0, 1.0, 6), [3, BATCH, 16], &d);
    let (diagonal, _) = amcl_core::methods::channel_temperatures(&barlow, z1, z2).unwrap();
    let diagonal = values(diagonal);
    assert!((mean(&diagonal) - 0.5).abs() < 0.25, "mean {} of {diagonal:?}", mean(&diagonal));
    assert!(diagonal.iter().all(|t| (0.15..0.8).contains(t)), "{diagonal:?}");
    // The output bias reaches only the lower half of the range (a squared norm); outside: an
    // error naming the limits.
    for tau in [1.5, 3.0, 0.0] {
        let model = small("amcl-simclr").init(&d).unwrap();
        let err = model.with_initial_temperature(tau).unwrap_err();
        assert!(err.to_string().contains("middle of the range"), "{tau}: {err}");
    }
}
