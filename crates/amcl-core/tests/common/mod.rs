//! Helpers shared by the integration tests.
#![allow(dead_code)]

use burn::prelude::*;
use serde_json::Value;

/// The CPU device every test runs on.
pub fn device() -> Device {
    Device::flex()
}

/// Flattens a nested JSON array of numbers, returning the values and the shape.
pub fn flatten(v: &Value) -> (Vec<f32>, Vec<usize>) {
    match v {
        Value::Array(items) => {
            let mut values = Vec::new();
            let mut inner = Vec::new();
            for item in items {
                let (v, s) = flatten(item);
                values.extend(v);
                inner = s;
            }
            let mut shape = vec![items.len()];
            shape.extend(inner);
            (values, shape)
        }
        Value::Number(n) => (vec![n.as_f64().unwrap() as f32], vec![]),
        other => panic!("not a number array: {other}"),
    }
}

/// A tensor from a nested JSON array.
pub fn tensor<const D: usize>(v: &Value, device: &Device) -> Tensor<D> {
    let (values, shape) = flatten(v);
    assert_eq!(shape.len(), D, "rank of {shape:?}");
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// A tensor from values and a shape.
pub fn from_vec<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// The values of a tensor.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// The single value of a [1] tensor.
pub fn scalar(t: Tensor<1>) -> f32 {
    values(t)[0]
}

/// Deterministic pseudo-random values in [lo, hi).
pub fn uniform(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = amcl_core::rng::Rng::new(seed);
    (0..n).map(|_| rng.range(lo, hi)).collect()
}

/// Asserts |a - b| <= tol * max(1, |b|).
pub fn assert_close(a: f32, b: f32, tol: f32, what: &str) {
    let scale = b.abs().max(1.0);
    assert!((a - b).abs() <= tol * scale, "{what}: got {a}, expected {b} (tol {tol})");
}
