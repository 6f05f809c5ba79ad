//! # flex-kernels
//!
//! Fused CPU kernels for burn's CPU backend (flex), each with its backward pass as a node of
//! burn's autodiff graph:
//!
//! - [`conv2d`]: convolutions as im2col + matrix products per group of images, and Winograd
//!   F(2x2, 3x3) for the 3x3 stride-1 layers;
//! - [`batch_norm`]: batch normalisation (+ ReLU) while training, two passes each way;
//! - [`select_columns`]: some columns of every row (a parallel `gather` and its scatter-add);
//! - [`tempered_nll`]: the negative log-likelihood of one positive among negatives, each logit
//!   s/t with its own temperature t and a penalty on t, one pass per row each way.
//!
//! Each one takes burn tensors and runs only where it is faster: f32 tensors on flex, plain or
//! under autodiff with `NoCheckpointing` ([`flex_path`]). Anywhere else (WebGPU, CUDA, another
//! dtype, gradient checkpointing) it calls burn's own op, which is also its reference in the
//! tests: both compute the same values and gradients.
//!
//! What the kernels share: [`custom_op`] (the autodiff node of a kernel's backward pass),
//! `buffer` (outputs the kernels fill completely, so they need no zeroing), `math` (an `exp`
//! and `ln` that vectorise) and `widest_simd!`, which compiles a kernel's loops for the widest
//! vector instructions the CPU has (capped by `AMCL_CPU_SIMD`, see [`simd`]).
#![cfg_attr(target_arch = "wasm32", allow(dead_code, unused_imports))]

pub mod batch_norm;
pub(crate) mod buffer;
pub mod conv2d;
#[cfg(feature = "autodiff")]
pub mod custom_op;
pub(crate) mod math;
pub mod select_columns;
#[cfg(target_arch = "x86_64")]
pub mod simd;
pub mod tempered_nll;
#[cfg(test)]
mod test_values;

pub use batch_norm::batch_norm;
pub use conv2d::conv2d;
pub use select_columns::{Columns, select_columns};

use burn::backend::DispatchDevice;
use burn::prelude::*;

/// Where a fused CPU kernel can run for tensors on a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlexPath {
    /// Flex without autodiff: the kernel's forward alone.
    Plain,
    /// Flex under autodiff: the kernel's forward and its backward node.
    #[cfg_attr(not(feature = "autodiff"), allow(dead_code))]
    Tracked,
    /// Any other device (WebGPU, CUDA, wgpu): burn's tensor ops.
    Elsewhere,
}

/// The path tensors on `device` take.
pub fn flex_path(device: &Device) -> FlexPath {
    match device.as_dispatch() {
        DispatchDevice::Flex(_) => FlexPath::Plain,
        #[cfg(feature = "autodiff")]
        DispatchDevice::Autodiff(inner) if matches!(**inner, DispatchDevice::Flex(_)) => {
            FlexPath::Tracked
        }
        // Unreachable in a build whose only backend is flex (the demo's native tests).
        #[allow(unreachable_patterns)]
        _ => FlexPath::Elsewhere,
    }
}

/// Defines `$name`, which calls `$body` (an `#[inline(always)]` function) compiled for the widest
/// vector instructions of [`simd::simd_level`], through pulp's dispatch (the crate gemm, and so
/// burn's flex backend, uses): AVX-512 (pulp's `V4`, with the `x86-v4` feature), else AVX2 with
/// FMA (`V3`), else the baseline (and the baseline alone off x86-64).
macro_rules! widest_simd {
    ($vis:vis fn $name:ident => $body:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::simd::{SimdLevel, simd_level};
                let level = simd_level();
                #[cfg(feature = "x86-v4")]
                if level >= SimdLevel::Avx512
                    && let Some(simd) = pulp::x86::V4::try_new()
                {
                    return simd.vectorize(|| $body($($arg),*));
                }
                if level >= SimdLevel::Avx2
                    && let Some(simd) = pulp::x86::V3::try_new()
                {
                    return simd.vectorize(|| $body($($arg),*));
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use widest_simd;
