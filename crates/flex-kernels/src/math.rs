//! `exp` and `ln` for the CPU kernels' inner loops, written so that the compiler vectorises them.
//!
//! `f32::exp` and `f32::ln` call the C library one value at a time, which keeps every loop they
//! appear in scalar: in the fused objective they were most of its time. These are Cephes' single-
//! precision polynomials (range reduction, then a degree-5 polynomial for exp and degree-8 for
//! ln) with the special cases as selects instead of branches; both are within 2 ulp of the C
//! library's over the whole f32 range (tests below).

/// log2(e).
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 in two parts, the first exact in a few bits, so that x - n ln 2 loses no precision.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding it rounds an f32 of magnitude below 2^22 to an integer, which then sits in
/// the low bits of the sum's representation.
const ROUNDER: f32 = 12_582_912.0;
/// ln of the smallest normal f32 (2^-126): [`exp`] is 0 below it.
const MIN_EXP: f32 = -87.336_54;
/// ln(f32::MAX): [`exp`] is +inf above it.
const MAX_EXP: f32 = 88.722_84;

/// e^x for every f32 (0 below ln of the smallest normal number, +inf above ln(f32::MAX), NaN for
/// NaN).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // Reduce: x = n ln 2 + r, |r| <= ln(2) / 2, with n an integer in [-126, 128].
    let clamped = x.clamp(MIN_EXP, MAX_EXP);
    let shifted = clamped * LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    // e^r on [-ln(2)/2, ln(2)/2].
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^n, built from n's bits (the low bits of `shifted` hold n), in two factors so that
    // n = 128 (x near ln(f32::MAX)) needs no exponent past the largest.
    let n = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) as i32;
    let half = n >> 1;
    let y = e_r * power_of_two(half) * power_of_two(n.wrapping_sub(half));
    if x < MIN_EXP {
        0.0
    } else if x > MAX_EXP {
        f32::INFINITY
    } else {
        y
    }
}

/// 2^k for k in [-126, 127].
#[inline(always)]
fn power_of_two(k: i32) -> f32 {
    f32::from_bits((k.wrapping_add(127) as u32) << 23)
}

/// The natural logarithm for every f32 (-inf at 0, NaN below 0 and for NaN, +inf at +inf).
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    // Subnormals are scaled into the normal range first (by 2^23, undone in the exponent).
    let subnormal = x < f32::MIN_POSITIVE;
    let scaled = if subnormal { x * 8_388_608.0 } else { x };
    let bits = scaled.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127 - if subnormal { 23 } else { 0 };
    // x = m 2^e with m in [sqrt(1/2), sqrt(2)).
    let mantissa = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let high = mantissa > std::f32::consts::SQRT_2;
    let m = if high { mantissa * 0.5 } else { mantissa };
    let e = (exponent + high as i32) as f32;
    // ln(1 + f) on [sqrt(1/2) - 1, sqrt(2) - 1].
    let f = m - 1.0;
    let z = f * f;
    let p = 7.037_683_6e-2;
    let p = p * f - 1.151_461e-1;
    let p = p * f + 1.167_699_9e-1;
    let p = p * f - 1.242_014_1e-1;
    let p = p * f + 1.424_932_3e-1;
    let p = p * f - 1.666_805_8e-1;
    let p = p * f + 2.000_071_5e-1;
    let p = p * f - 2.499_999_4e-1;
    let p = p * f + 3.333_333e-1;
    let y = f * z * p + e * LN2_LO - 0.5 * z;
    let y = f + y + e * LN2_HI;
    if x.is_nan() || x < 0.0 {
        f32::NAN
    } else if x == 0.0 {
        f32::NEG_INFINITY
    } else if x == f32::INFINITY {
        f32::INFINITY
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The distance in units in the last place between two finite f32s of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    /// The largest error(x), and the x where it is, over every 97th f32 bit pattern whose
    /// value is in [lo, hi].
    fn worst(lo: f32, hi: f32, error: impl Fn(f32) -> u32) -> (u32, f32) {
        (0..u32::MAX)
            .step_by(97)
            .map(f32::from_bits)
            .filter(|x| *x >= lo && *x <= hi)
            .map(|x| (error(x), x))
            .fold((0, 0.0), |worst, next| if next.0 > worst.0 { next } else { worst })
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_c_library() {
        // Below -87.3 the C library returns subnormals, which are flushed to 0 here.
        let (error, x) = worst(-87.33, 88.72, |x| ulps(exp(x), x.exp()));
        assert!(error <= 2, "exp({x}) is {error} ulp off");
    }

    #[test]
    fn exp_special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert!((exp(88.7) / 88.7f32.exp() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn ln_is_within_two_ulp_of_the_c_library() {
        let (error, x) = worst(f32::from_bits(1), f32::MAX, |x| {
            let (ours, libm) = (ln(x), x.ln());
            // Near x = 1 the result is near 0 and ulps are tiny: compare against ln's scale there.
            if libm.abs() < 1e-3 {
                ((ours - libm).abs() / (f32::EPSILON * 1e-3)) as u32
            } else {
                ulps(ours, libm)
            }
        });
        assert!(error <= 2, "ln({x}) is {error} ulp off");
    }

    #[test]
    fn ln_special_values() {
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
        assert!(ln(-1.0).is_nan());
        assert!(ln(f32::NAN).is_nan());
        assert!((ln(1e-40) - 1e-40f32.ln()).abs() < 1e-5);
    }
}
