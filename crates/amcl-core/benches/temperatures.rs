//! One head's temperature network over all pairs, forward and backward, on the CPU (flex with
//! autodiff; the fused kernel of src/model/pairwise_phi.rs), at the shapes of a training step:
//! MoCo's 2N = 256 queries against a queue of 1,024, and SimCLR's 2N = 256 views against each
//! other; d = 64, as `amcl-train bench`.
//!
//!     cargo bench -p amcl-core --features autodiff --bench temperatures
mod common;

use amcl_core::model::AmclModelConfig;
use burn::prelude::*;
use common::{filled, millis};

fn main() {
    let device = Device::flex().autodiff();
    let dim = 64;
    let model = AmclModelConfig::new().with_dim(dim).init(&device).expect("a valid config");
    println!("| pairs | [N, M] | forward ms | forward + backward ms |");
    println!("|---|---|---|---|");
    for (name, n, m) in [("MoCo, queue 1024", 256, 1024), ("SimCLR", 256, 256)] {
        let (z_a, z_b) =
            (filled([n, dim], (-1.0, 1.0), 1, &device), filled([m, dim], (-1.0, 1.0), 2, &device));
        let forward = millis(1.0, || {
            std::hint::black_box(model.pairwise_temperature(0, z_a.clone(), z_b.clone()));
        });
        let both = millis(1.0, || {
            let z_a = z_a.clone().detach().require_grad();
            let tau = model.pairwise_temperature(0, z_a.clone(), z_b.clone());
            let grads = (tau * filled([n, m], (-1.0, 1.0), 3, &device)).sum().backward();
            std::hint::black_box(z_a.grad(&grads));
        });
        println!("| {name} | [{n}, {m}] | {forward:.2} | {both:.2} |");
    }
}
