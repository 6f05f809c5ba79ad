//! What the fused CPU kernels share (model/conv_cpu, batch_norm_cpu, methods/select_columns,
//! loss/amcl_fused): which path a device takes ([`flex_path`]), their
//! buffers ([`buffer`]), a vectorisable `exp` and `ln` ([`math`]), and [`widest_simd`], which
//! compiles a kernel's loops for the widest vector instructions the CPU has (on x86-64 capped by
//! `AMCL_CPU_SIMD`: `simd`).
//!
//! Each kernel runs on flex (burn's CPU backend), plain or under autodiff; on every other device
//! its caller uses burn's tensor ops, which compute the same values.

pub(crate) mod buffer;
pub(crate) mod math;
#[cfg(target_arch = "x86_64")]
pub(crate) mod simd;

use burn::backend::DispatchDevice;
use burn::prelude::*;

/// Where a fused CPU kernel can run for tensors on a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlexPath {
    /// Flex without autodiff: the kernel's forward alone.
    Plain,
    /// Flex under autodiff: the kernel's forward and its backward node.
    #[cfg_attr(not(feature = "autodiff"), allow(dead_code))]
    Tracked,
    /// Any other device (WebGPU, CUDA, wgpu): burn's tensor ops.
    Elsewhere,
}

/// The path tensors on `device` take.
pub(crate) fn flex_path(device: &Device) -> FlexPath {
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

/// Defines `$name`, which calls `$body` (an `#[inline(always)]` function) through a copy of it
/// compiled for the widest vector instructions of [`simd::simd_level`]: AVX-512, else AVX2 with FMA,
/// else the baseline (and the baseline alone off x86-64).
macro_rules! widest_simd {
    ($vis:vis fn $name:ident => $body:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn v4($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn v3($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                let level = $crate::cpu::simd::simd_level();
                if level >= $crate::cpu::simd::SimdLevel::Avx512 {
                    // SAFETY: the CPU has AVX-512F (`simd_level` is never above it).
                    return unsafe { v4($($arg),*) };
                }
                if level >= $crate::cpu::simd::SimdLevel::Avx2 {
                    // SAFETY: the CPU has AVX2 and FMA (as above).
                    return unsafe { v3($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use widest_simd;
