//! The temperature network on the CPU (flex with autodiff), the authors' shared dot-product phi,
//! forward and backward, at the shapes of a training step: MoCo's
//! 2N = 256 queries against a queue of 1,024, and SimCLR's 2N = 256 views against each other;
//! d = 64, as `amcl-train bench`. First one head alone, then what they add to a whole MoCo
//! objective (C = 3): `moco_symmetric_objective` adaptive against plain, forward and backward.
//! Each figure is the fastest of 50 calls (on a shared host steadier than a mean).
//!
//!     cargo bench -p amcl-core --features autodiff --bench temperatures
#[path = "../../flex-kernels/benches/common/mod.rs"]
mod common;

use amcl_core::loss::{AmclObjectiveConfig, NegativeReduction, l2_normalize};
use amcl_core::methods::moco_symmetric_objective;
use amcl_core::model::AmclModelConfig;
use burn::prelude::*;
use common::{best_millis, filled};

fn main() {
    common::keep_freed_memory();
    let device = Device::flex().autodiff();
    let dim = 64;
    let model = AmclModelConfig::new().with_dim(dim).init(&device).expect("a valid config");
    one_head(&model, &device);
    moco_objective(&model, &device);
}

/// One head's temperatures of all pairs, forward and forward + backward.
fn one_head(model: &amcl_core::model::AmclModel, device: &Device) {
    let dim = model.heads[0].output_dim();
    println!("| pairs | [N, M] | forward ms | forward + backward ms |");
    println!("|---|---|---|---|");
    for (name, n, m) in [("MoCo, queue 1024", 256, 1024), ("SimCLR", 256, 256)] {
        let (z_a, z_b) =
            (filled([n, dim], (-1.0, 1.0), 1, device), filled([m, dim], (-1.0, 1.0), 2, device));
        let forward = best_millis(50, || {
            std::hint::black_box(model.pairwise_temperature(0, z_a.clone(), z_b.clone()));
        });
        // An upstream gradient that is not uniform, made once.
        let upstream = filled([n, m], (-1.0, 1.0), 3, device);
        let both = best_millis(50, || {
            let z_a = z_a.clone().detach().require_grad();
            let tau = model.pairwise_temperature(0, z_a.clone(), z_b.clone());
            let grads = (tau * upstream.clone()).sum().backward();
            std::hint::black_box(z_a.grad(&grads));
        });
        println!("| {name} | [{n}, {m}] | {forward:.2} | {both:.2} |");
    }
}

/// The MoCo objective of one step (C = 3, 2N = 256 queries, queue 1,024), plain and adaptive:
/// their difference is what the temperature networks cost a step.
fn moco_objective(model: &amcl_core::model::AmclModel, device: &Device) {
    let (c, n, len, dim) = (model.num_heads(), 128, 1024, model.heads[0].output_dim());
    let unit =
        |rows: usize, seed: usize| l2_normalize(filled([c, rows, dim], (-1.0, 1.0), seed, device));
    let (q_a, q_b, k_a, k_b) = (unit(n, 1), unit(n, 2), unit(n, 3), unit(n, 4));
    let queue = unit(len, 5).detach();
    let cfg = AmclObjectiveConfig { beta: 0.1, dim, reduction: NegativeReduction::LogSumExp };
    let step = |adaptive: bool| {
        let (q_a, q_b) = (q_a.clone().detach().require_grad(), q_b.clone().detach().require_grad());
        let keys = (k_a.clone().detach(), k_b.clone().detach());
        let (loss, _) =
            moco_symmetric_objective(model, (q_a.clone(), q_b), keys, &queue, adaptive, 0.2, &cfg)
                .expect("valid shapes");
        std::hint::black_box(q_a.grad(&loss.backward()));
    };
    let plain = best_millis(50, || step(false));
    let adaptive = best_millis(50, || step(true));
    println!();
    println!("| MoCo objective, C = {c}, [2N, queue] | plain ms | adaptive ms | temperatures ms |");
    println!("|---|---|---|---|");
    println!("| [{}, {len}] | {plain:.2} | {adaptive:.2} | {:.2} |", 2 * n, adaptive - plain);
}
