//! Each convolution layer of both backbones on the CPU (src/conv2d.rs, flex with
//! autodiff), forward alone and forward + backward (dx, except for the first layer, and dw), at
//! the batch of `amcl-train bench`: the small CNN of width 16 at 128 images, ResNet-18 at 32.
//! Each figure is the fastest of several calls, which on a shared host is steadier than a mean.
//! The backward starts from `y.sum()`, so it also makes and copies y's gradient (one pass over
//! y) and adds burn's autodiff bookkeeping.
//!
//!     cargo bench -p flex-kernels --features autodiff,x86-v4 --bench conv_layers
//!     cargo bench -p flex-kernels --features autodiff,x86-v4 --bench conv_layers -- layer4  # names containing it
mod common;

use burn::prelude::*;
use common::{best_millis, filled};
use flex_kernels::conv2d;

fn main() {
    common::keep_freed_memory();
    let device = Device::flex().autodiff();
    // (name, batch, C_in, side, C_out, stride): every distinct 3x3 layer, and ResNet's 1x1
    // shortcuts.
    let layers = [
        ("small CNN conv1", 128, 3, 32, 16, 1),
        ("small CNN conv2", 128, 16, 32, 32, 2),
        ("small CNN conv3", 128, 32, 16, 32, 1),
        ("small CNN conv4", 128, 32, 16, 64, 2),
        ("small CNN conv5", 128, 64, 8, 64, 1),
        ("small CNN conv6", 128, 64, 8, 128, 2),
        ("small CNN conv7", 128, 128, 4, 128, 1),
        ("ResNet-18 layer1", 32, 64, 32, 64, 1),
        ("ResNet-18 layer2 first", 32, 64, 32, 128, 2),
        ("ResNet-18 layer2", 32, 128, 16, 128, 1),
        ("ResNet-18 layer3", 32, 256, 8, 256, 1),
        ("ResNet-18 layer4", 32, 512, 4, 512, 1),
        ("ResNet-18 shortcut 2", 32, 64, 32, 128, 2),
    ];
    // Layers whose name contains the first argument (all without one; cargo bench passes --bench).
    let only = std::env::args().skip(1).find(|a| !a.starts_with("--")).unwrap_or_default();
    println!("| layer | x | C_out, stride | forward ms | forward + backward ms |");
    println!("|---|---|---|---|---|");
    for (name, batch, c_in, side, c_out, stride) in layers {
        if !name.contains(&only) {
            continue;
        }
        let kernel = if name.contains("shortcut") { 1 } else { 3 };
        let x = filled([batch, c_in, side, side], (-1.0, 1.0), 1, &device);
        let w = filled([c_out, c_in, kernel, kernel], (-0.1, 0.1), 2, &device);
        let padding = [kernel / 2; 2];
        let calls = if batch * c_in * side * side * c_out > 1 << 27 { 5 } else { 20 };
        let forward = best_millis(calls, || {
            std::hint::black_box(conv2d(x.clone(), w.clone(), [stride; 2], padding));
        });
        // The first layer reads the images, which need no gradient.
        let dx = !name.ends_with("conv1");
        let both = best_millis(calls, || {
            let x = if dx { x.clone().detach().require_grad() } else { x.clone().detach() };
            let w = w.clone().detach().require_grad();
            let y = conv2d(x.clone(), w.clone(), [stride; 2], padding);
            let grads = y.sum().backward();
            std::hint::black_box((x.grad(&grads), w.grad(&grads)));
        });
        let shape = format!("[{batch}, {c_in}, {side}, {side}]");
        println!("| {name} | {shape} | {c_out}, {stride} | {forward:.2} | {both:.2} |");
    }
}
