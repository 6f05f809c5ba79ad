//! The matrix products of one group of images in the CPU convolution (src/conv2d.rs),
//! timed alone on one core for the layers of both backbones:
//!
//! ```text
//! forward   y     [C_out, n] = w [C_out, K] cols [K, n]
//! dw        dw    [C_out, K] = dy [C_out, n] cols^T [n, K]
//! dw^T      dw^T  [K, C_out] = cols [K, n] dy^T [n, C_out]
//! dx        dcols [K, n]     = w^T [K, C_out] dy [C_out, n]
//! ```
//!
//! The dw and dw^T columns decide `dw_transposed` in conv2d.rs.
//!
//!     cargo bench -p flex-kernels --features x86-v4 --bench conv_products
mod common;

use std::hint::black_box;

use common::millis;
use flex_kernels::conv2d::matrix_product as product;

fn main() {
    common::keep_freed_memory();
    // (name, C_out, K, n): n = the columns of one group (512 per product in conv2d.rs, at
    // least one image).
    let layers = [
        ("small CNN w16 conv1", 16, 27, 1024),
        ("small CNN w16 conv2", 32, 144, 512),
        ("small CNN w16 conv3", 32, 288, 512),
        ("small CNN w16 conv5", 64, 576, 512),
        ("small CNN w16 conv7", 128, 1152, 512),
        ("ResNet-18 layer1", 64, 576, 1024),
        ("ResNet-18 layer2", 128, 1152, 512),
        ("ResNet-18 layer3", 256, 2304, 512),
        ("ResNet-18 layer4", 512, 4608, 512),
        ("ResNet-18 shortcut 2", 128, 64, 512),
        ("ResNet-18 shortcut 4", 512, 256, 512),
    ];
    println!("| layer | C_out | K | n | forward ms | dw ms | dw^T ms | dx ms | dw / dw^T |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, c_out, k, n) in layers {
        let fill = |len: usize, seed: usize| -> Vec<f32> {
            (0..len).map(|i| ((i * 7 + seed) % 13) as f32 / 13.0 - 0.5).collect()
        };
        let (w, cols, dy) = (fill(c_out * k, 1), fill(k * n, 2), fill(c_out * n, 3));
        let (mut small, mut large) = (vec![0.0; c_out * k], vec![0.0; (k * n).max(c_out * n)]);
        let forward = millis(0.3, || {
            product([c_out, n, k], &mut large[..c_out * n], (&w, [k, 1]), (&cols, [n, 1]));
            black_box(&large);
        });
        let dw = millis(0.3, || {
            product([c_out, k, n], &mut small, (&dy, [n, 1]), (&cols, [1, n]));
            black_box(&small);
        });
        let dw_t = millis(0.3, || {
            product([k, c_out, n], &mut small, (&cols, [n, 1]), (&dy, [1, n]));
            black_box(&small);
        });
        let dx = millis(0.3, || {
            product([k, n, c_out], &mut large[..k * n], (&w, [1, k]), (&dy, [n, 1]));
            black_box(&large);
        });
        println!(
            "| {name} | {c_out} | {k} | {n} | {forward:.3} | {dw:.3} | {dw_t:.3} | {dx:.3} | {:.2} |",
            dw / dw_t
        );
    }
}
