//! Which x86-64 vector instructions the kernels use: the widest the CPU has, capped by the
//! environment (`AMCL_CPU_SIMD`) so that one machine can run and time the copies an older CPU
//! runs. Read once per process.

/// Vector instruction sets of x86-64 that the kernels are compiled or written for, narrowest
/// first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// x86-64's baseline (SSE2).
    Baseline,
    /// AVX2 with FMA.
    Avx2,
    /// AVX-512F.
    Avx512,
}

/// The environment variable that caps [`simd_level`]: `avx512`, `avx2` or `baseline`.
pub const SIMD_VARIABLE: &str = "AMCL_CPU_SIMD";

/// The widest vector instructions amcl-core's CPU kernels use: the widest this CPU has, capped
/// by `AMCL_CPU_SIMD` when it is set, so that one machine can show how the kernels run on an
/// older CPU (burn's and the matrix products' own kernels do not read it). Read once.
pub fn simd_level() -> SimdLevel {
    static LEVEL: std::sync::OnceLock<SimdLevel> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var(SIMD_VARIABLE).as_deref() {
            Err(_) => SimdLevel::Avx512,
            Ok("avx512") => SimdLevel::Avx512,
            Ok("avx2") => SimdLevel::Avx2,
            Ok("baseline") => SimdLevel::Baseline,
            Ok(other) => {
                eprintln!(
                    "warning: {SIMD_VARIABLE}={other:?} is not one of avx512, avx2, baseline; \
                     using the CPU's widest"
                );
                SimdLevel::Avx512
            }
        };
        detected_simd_level().min(cap)
    })
}

/// The widest vector instructions this CPU has.
fn detected_simd_level() -> SimdLevel {
    use std::arch::is_x86_feature_detected as has;
    if has!("avx512f") {
        SimdLevel::Avx512
    } else if has!("avx2") && has!("fma") {
        SimdLevel::Avx2
    } else {
        SimdLevel::Baseline
    }
}
