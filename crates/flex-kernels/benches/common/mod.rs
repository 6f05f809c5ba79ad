//! What the benches share.

use std::time::Instant;

use burn::prelude::*;

/// The allocator amcl-train uses (crates/amcl-train/src/main.rs): with the system allocator
/// every call of a bench paid page faults for its large buffers, which a training step does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3's `mi_option_purge_delay` (its position in `mi_option_e`, mimalloc.h).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed memory to the OS, as amcl-train does: call first in `main`.
pub fn keep_freed_memory() {
    // SAFETY: sets a process-wide allocator option, before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// Milliseconds per call of f, after one call to warm up, over about `seconds`.
#[allow(dead_code)] // not every bench takes means
pub fn millis(seconds: f64, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed().as_secs_f64() < seconds {
        f();
        calls += 1;
    }
    start.elapsed().as_secs_f64() * 1e3 / calls as f64
}

/// The fastest of `calls` calls of f in milliseconds, after one to warm up: on a shared host,
/// where the mean of a second's calls moves by 10-20 % between runs, the minimum moves far less.
#[allow(dead_code)] // not every bench takes minima
pub fn best_millis(calls: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..calls)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

/// A tensor of values in [lo, hi) from a fixed pattern, shifted by `seed`.
#[allow(dead_code)] // not every bench builds tensors
pub fn filled<const D: usize>(
    shape: [usize; D],
    (lo, hi): (f32, f32),
    seed: usize,
    device: &Device,
) -> Tensor<D> {
    let count: usize = shape.iter().product();
    let values =
        (0..count).map(|i| lo + (hi - lo) * (((i * 7919 + seed) % 1009) as f32 / 1009.0)).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}
