//! The AMCL objective's forward and backward pass on the CPU (flex with autodiff), timed alone at
//! the shapes of a training step: the fused kernel (flex-kernels' tempered_nll, what training runs)
//! against the same objective written with tensor ops (`composed_terms`, what the GPU backends
//! run). C = 3 heads, batch N = 128, d = 64, beta = 0.1, as `amcl-train bench`.
//!
//!     cargo bench -p amcl-core --features autodiff --bench objective
#[path = "../../flex-kernels/benches/common/mod.rs"]
mod common;

use amcl_core::loss::{
    AmclObjectiveConfig, NegativeReduction, amcl_objective_terms, composed_terms,
};
use burn::prelude::*;
use common::{filled, millis};

fn main() {
    common::keep_freed_memory();
    let device = Device::flex().autodiff();
    // (name, C, rows, K): MoCo's 2N queries (both directions) against a queue of 1,024, and
    // SimCLR's 2N anchors against their 2N - 2 in-batch negatives.
    let shapes = [("MoCo, queue 1024", 3, 256, 1024), ("SimCLR", 3, 256, 254)];
    println!("| objective | reduction | [C, rows, K] | tensor ops ms | fused ms | speed-up |");
    println!("|---|---|---|---|---|---|");
    for (name, c, n, k) in shapes {
        for reduction in [NegativeReduction::LogSumExp, NegativeReduction::Max] {
            let cfg = AmclObjectiveConfig { beta: 0.1, dim: 64, reduction };
            let inputs = (
                filled([c, n], (-1.0, 1.0), 1, &device),
                filled([c, n, k], (-1.0, 1.0), 2, &device),
                filled([c, n], (0.05, 1.0), 3, &device),
                filled([c, n, k], (0.05, 1.0), 4, &device),
            );
            let step = |fused: bool| {
                // New leaves of the same values each call: the graph starts afresh.
                let leaf2 = |t: &Tensor<2>| t.clone().detach().require_grad();
                let leaf3 = |t: &Tensor<3>| t.clone().detach().require_grad();
                let (pos_sim, neg_sim) = (leaf2(&inputs.0), leaf3(&inputs.1));
                let (pos_tau, neg_tau) = (leaf2(&inputs.2), leaf3(&inputs.3));
                let terms = if fused {
                    amcl_objective_terms(pos_sim, neg_sim.clone(), pos_tau, neg_tau, &cfg)
                        .expect("valid shapes")
                } else {
                    composed_terms(pos_sim, neg_sim.clone(), pos_tau, neg_tau, &cfg)
                };
                let grads = terms.sum_dim(0).mean().backward();
                std::hint::black_box(neg_sim.grad(&grads));
            };
            let composed = millis(0.5, || step(false));
            let fused = millis(0.5, || step(true));
            println!(
                "| {name} | {reduction:?} | [{c}, {n}, {k}] | {composed:.2} | {fused:.2} | {:.1}x |",
                composed / fused
            );
        }
    }
}
