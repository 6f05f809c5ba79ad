//! Buffers of the fused CPU kernels: flex tensors read as f32 slices, and output buffers that
//! the kernels fill completely, so that they need no zeroing first (zeroing an activation-sized
//! buffer on the calling thread, while the worker threads wait, cost about a twentieth of a
//! training step).

use std::mem::MaybeUninit;

use burn::backend::flex::FlexTensor;

/// The tensor with a contiguous layout (itself when it has one already).
pub fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
}

/// The values of a contiguous f32 tensor (from [`contiguous`]).
pub fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// `n` f32 slots, not yet written.
pub fn uninit(n: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: MaybeUninit needs no initialisation, and the capacity is n.
    unsafe { v.set_len(n) };
    v
}

/// The buffer as f32s.
///
/// # Safety
/// Every element of `v` has been written.
pub unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: MaybeUninit<f32> has f32's layout, and the caller vouches that all are written.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), v.len(), v.capacity()) }
}

/// An f32 buffer as slots to overwrite.
///
/// # Safety
/// Only initialised values are written through the result (f32s are initialised again when it
/// is dropped).
pub unsafe fn as_uninit(v: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; the caller writes only initialised values.
    unsafe { &mut *(v as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// dst[i] = src[i] for every i (they have equal lengths).
pub fn write(dst: &mut [MaybeUninit<f32>], src: &[f32]) {
    debug_assert_eq!(dst.len(), src.len());
    dst.iter_mut().zip(src).for_each(|(d, &s)| {
        d.write(s);
    });
}

/// Zeroes `dst` and gives it back as f32s.
pub fn zeroed(dst: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    dst.iter_mut().for_each(|d| {
        d.write(0.0);
    });
    // SAFETY: every element was just written.
    unsafe { &mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32]) }
}
