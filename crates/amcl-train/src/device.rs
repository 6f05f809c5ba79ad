//! Choosing where tensors live (`--device`). All other code is device-agnostic: the backend is a
//! property of the [`Device`] value.

use anyhow::{Result, bail};
use burn::prelude::*;

/// A `--device` value.
#[derive(
    clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA if built with it and a GPU is present, then a discrete or integrated GPU through
    /// wgpu, then the CPU.
    Auto,
    /// NVIDIA GPU 0 (needs the `cuda` cargo feature).
    Cuda,
    /// Any wgpu adapter (Vulkan, Metal, DX12), the best one first; may be a software renderer.
    Wgpu,
    /// The CPU, with burn's flex backend (SIMD, all cores).
    Cpu,
}

/// A device and a human name for it.
pub struct Selected {
    pub device: Device,
    pub name: String,
}

/// Resolves `choice` to a device, printing nothing; the caller reports `name`.
pub fn select(choice: DeviceChoice) -> Result<Selected> {
    let cpu = || Selected { device: Device::flex(), name: "cpu (flex)".into() };
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Cuda => cuda().ok_or_else(|| {
            if cfg!(feature = "cuda") {
                anyhow::anyhow!("--device cuda: no CUDA GPU could be initialised")
            } else {
                anyhow::anyhow!(
                    "--device cuda: this binary was built without CUDA; rebuild with \
                     `cargo run -p amcl-train --release --features cuda`"
                )
            }
        }),
        DeviceChoice::Wgpu => wgpu(None),
        DeviceChoice::Auto => Ok(cuda().or_else(gpu_through_wgpu).unwrap_or_else(cpu)),
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> Option<Selected> {
    // Initialising CUDA without a driver or GPU panics inside the runtime: probe it with a tiny op.
    let device = std::panic::catch_unwind(|| {
        let device = Device::cuda(0);
        let _ = Tensor::<1>::ones([1], &device).into_data();
        device
    })
    .ok()?;
    Some(Selected { device, name: "cuda:0".into() })
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Option<Selected> {
    None
}

/// A hardware GPU through wgpu (software adapters are skipped: the CPU backend is faster).
fn gpu_through_wgpu() -> Option<Selected> {
    #[cfg(feature = "wgpu")]
    {
        use burn::tensor::DeviceKind;
        for kind in [DeviceKind::DiscreteGpu(0), DeviceKind::IntegratedGpu(0)] {
            if let Ok(selected) = wgpu(Some(kind)) {
                return Some(selected);
            }
        }
    }
    None
}

#[cfg(feature = "wgpu")]
fn wgpu(kind: Option<burn::tensor::DeviceKind>) -> Result<Selected> {
    let name =
        format!("wgpu ({})", kind.as_ref().map_or("best adapter".into(), |k| format!("{k:?}")));
    let options = match kind {
        Some(kind) => Device::wgpu_options().device_kind(kind),
        None => Device::wgpu_options(),
    };
    match options.init() {
        Ok(device) => Ok(Selected { device, name }),
        Err(err) => bail!("--device wgpu: no usable adapter: {err}"),
    }
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_: Option<()>) -> Result<Selected> {
    bail!("--device wgpu: this binary was built without the `wgpu` feature")
}

/// Bytes the device's allocator holds (GPU backends), or the process's peak resident memory
/// (CPU), as the best available "peak memory" figure.
pub fn peak_memory_bytes(device: &Device) -> u64 {
    if let Some(usage) = device.memory_pool_usage() {
        return usage.bytes_reserved;
    }
    peak_rss_bytes().unwrap_or(0)
}

/// `VmHWM` of /proc/self/status (Linux), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
