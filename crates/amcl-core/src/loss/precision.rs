//! The objective's float type: f32 whatever the training precision (docs/METHOD.md, "Precision",
//! as in the authors' release). Under `--precision f16/bf16` the backbone and heads run in half
//! precision; their outputs enter the objective, and the temperature networks, through
//! [`objective_precision`].

use burn::prelude::*;
use burn::tensor::{DType, FloatDType};

/// The float type of every objective, similarity and temperature.
pub const OBJECTIVE_DTYPE: FloatDType = FloatDType::F32;

/// Creation options for a new tensor of the objective on `device`: `Tensor::zeros(shape,
/// objective_tensor(&device))` (a plain `&device` would give the training precision).
pub fn objective_tensor(device: &Device) -> (&Device, DType) {
    (device, OBJECTIVE_DTYPE.into())
}

/// `x` in [`OBJECTIVE_DTYPE`]; free when it already is (the f32 default). Gradients flow back
/// through the cast in the training precision.
pub fn objective_precision<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.cast(OBJECTIVE_DTYPE)
}
