//! What the benches share.

use std::time::Instant;

/// Milliseconds per call of f, after one call to warm up, over about `seconds`.
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
