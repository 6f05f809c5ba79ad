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

/// A `--precision` value: the float type of parameters, activations, gradients and optimiser
/// state. burn 0.22 has no automatic mixed precision (f32 master weights under f16 compute), so
/// the step runs in the chosen type, except the objective and the temperatures, which amcl-core
/// computes in f32 (`amcl_core::loss::objective_precision`); half precision pays off on GPUs with
/// fast f16/bf16.
#[derive(
    clap::ValueEnum,
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    F32,
    /// IEEE half precision (5-bit exponent: keep learning rates and temperatures moderate).
    F16,
    /// bfloat16 (f32's range, 8-bit mantissa).
    Bf16,
}

impl Precision {
    fn dtype(self) -> burn::tensor::FloatDType {
        use burn::tensor::FloatDType;
        match self {
            Self::F32 => FloatDType::F32,
            Self::F16 => FloatDType::F16,
            Self::Bf16 => FloatDType::BF16,
        }
    }

    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        }
    }

    /// Makes this precision `device`'s default float type; must run before any tensor is
    /// created on it. f32 (the backends' default) leaves the device untouched.
    fn configure(self, device: &mut Device, name: &str) -> Result<()> {
        if self == Self::F32 {
            return Ok(());
        }
        device.configure(self.dtype()).map_err(|err| {
            anyhow::anyhow!("--precision {}: {name} cannot use it ({err:?})", self.name())
        })
    }
}

/// A device and a human name for it.
pub struct Selected {
    pub device: Device,
    pub name: String,
}

/// Resolves `choice` to a device in f32, printing nothing; the caller reports `name`.
pub fn select(choice: DeviceChoice) -> Result<Selected> {
    select_with(choice, Precision::F32)
}

/// Resolves `choice` to a device whose default float type is `precision`.
pub fn select_with(choice: DeviceChoice, precision: Precision) -> Result<Selected> {
    let mut selected = select_device(choice, precision)?;
    if precision != Precision::F32 {
        selected.name = format!("{} in {}", selected.name, precision.name());
    }
    Ok(selected)
}

/// Resolves one entry of `--devices`: `choice` with a device index (CUDA's GPU number; the CPU
/// and wgpu take 0).
pub fn select_indexed(
    choice: DeviceChoice,
    index: usize,
    precision: Precision,
) -> Result<Selected> {
    if choice == DeviceChoice::Cuda && index > 0 {
        let selected = cuda_at(index, precision)?.ok_or_else(|| {
            anyhow::anyhow!("--devices cuda:{index}: no such CUDA GPU could be initialised")
        })?;
        return Ok(selected);
    }
    if index > 0 && choice != DeviceChoice::Cuda {
        bail!("--devices: only CUDA devices take an index other than 0");
    }
    select_with(choice, precision)
}

fn select_device(choice: DeviceChoice, precision: Precision) -> Result<Selected> {
    let cpu = || -> Result<Selected> {
        let mut device = Device::flex();
        precision.configure(&mut device, "the CPU (flex)")?;
        Ok(Selected { device, name: "cpu (flex)".into() })
    };
    match choice {
        DeviceChoice::Cpu => cpu(),
        DeviceChoice::Cuda => cuda(precision)?.ok_or_else(|| {
            if cfg!(feature = "cuda") {
                anyhow::anyhow!("--device cuda: no CUDA GPU could be initialised")
            } else {
                anyhow::anyhow!(
                    "--device cuda: this binary was built without CUDA; rebuild with \
                     `cargo run -p amcl-train --release --features cuda`"
                )
            }
        }),
        DeviceChoice::Wgpu => wgpu(None, precision),
        DeviceChoice::Auto => match cuda(precision)? {
            Some(selected) => Ok(selected),
            None => gpu_through_wgpu(precision).map_or_else(cpu, Ok),
        },
    }
}

/// CUDA GPU 0 if it can be initialised; an error when it can but not in `precision`.
fn cuda(precision: Precision) -> Result<Option<Selected>> {
    cuda_at(0, precision)
}

/// CUDA GPU `index` if it can be initialised; an error when it can but not in `precision`.
#[cfg(feature = "cuda")]
fn cuda_at(index: usize, precision: Precision) -> Result<Option<Selected>> {
    // Initialising CUDA without a driver or GPU panics inside the runtime (on its own thread):
    // probe it with a tiny op (after setting the precision, which the first tensor fixes), with
    // panic messages silenced so that a machine without CUDA just falls through.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let probe = std::panic::catch_unwind(|| {
        let mut device = Device::cuda(index);
        let configured = precision.configure(&mut device, &format!("cuda:{index}"));
        let _ = Tensor::<1>::ones([1], &device).into_data();
        (device, configured)
    });
    std::panic::set_hook(previous_hook);
    match probe {
        Ok((device, configured)) => {
            configured?;
            Ok(Some(Selected { device, name: format!("cuda:{index}") }))
        }
        Err(_) => Ok(None),
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_at(_: usize, _: Precision) -> Result<Option<Selected>> {
    Ok(None)
}

/// A hardware GPU through wgpu (software adapters are skipped: the CPU backend is faster).
fn gpu_through_wgpu(precision: Precision) -> Option<Selected> {
    #[cfg(feature = "wgpu")]
    {
        use burn::tensor::DeviceKind;
        for kind in [DeviceKind::DiscreteGpu(0), DeviceKind::IntegratedGpu(0)] {
            if let Ok(selected) = wgpu(Some(kind), precision) {
                return Some(selected);
            }
        }
    }
    let _ = precision;
    None
}

#[cfg(feature = "wgpu")]
fn wgpu(kind: Option<burn::tensor::DeviceKind>, precision: Precision) -> Result<Selected> {
    let name =
        format!("wgpu ({})", kind.as_ref().map_or("best adapter".into(), |k| format!("{k:?}")));
    let options = match kind {
        Some(kind) => Device::wgpu_options().device_kind(kind),
        None => Device::wgpu_options(),
    };
    match options.init() {
        Ok(mut device) => {
            precision.configure(&mut device, &name)?;
            Ok(Selected { device, name })
        }
        Err(err) => bail!("--device wgpu: no usable adapter: {err}"),
    }
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_: Option<()>, _: Precision) -> Result<Selected> {
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
