//! Which burn backend trains: flex (pure Rust on the CPU, always built) or, when this binary
//! was built with the cargo features of the same names, wgpu or CUDA.

use anyhow::bail;
use burn::tensor::Device;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// A backend the command line can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-flex on the CPU (the default; deterministic run to run on one machine).
    Flex,
    /// burn-wgpu: Vulkan, Metal or DirectX through wgpu (cargo feature `wgpu`).
    Wgpu,
    /// burn-cuda on an NVIDIA GPU (cargo feature `cuda`).
    Cuda,
}

impl BackendKind {
    /// The device training runs on, without autodiff (call `.autodiff()` to train).
    ///
    /// `index` selects the GPU for CUDA (0 = first); it is ignored elsewhere.
    pub fn device(self, index: usize) -> anyhow::Result<Device> {
        let _ = index;
        match self {
            BackendKind::Flex => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "wgpu"))]
            BackendKind::Wgpu => {
                bail!("this pulmoseg was built without wgpu: rebuild with `--features wgpu`")
            }
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Ok(Device::cuda(index)),
            #[cfg(not(feature = "cuda"))]
            BackendKind::Cuda => {
                bail!("this pulmoseg was built without CUDA: rebuild with `--features cuda`")
            }
        }
    }

    /// Lower-case name, as the flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }

    /// The hardware, for the model card: the CPU's model name for flex, the GPU's name where
    /// the driver exposes it.
    pub fn hardware(self) -> String {
        let cpu = || {
            std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|info| {
                    info.lines()
                        .find(|l| l.starts_with("model name"))
                        .and_then(|l| l.split(':').nth(1))
                        .map(|m| m.trim().to_string())
                })
                .unwrap_or_else(|| "unknown CPU".to_string())
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        match self {
            BackendKind::Flex => format!("{} ({cores} threads)", cpu()),
            BackendKind::Wgpu | BackendKind::Cuda => nvidia_gpu_name()
                .unwrap_or_else(|| format!("{} GPU (name not exposed)", self.name())),
        }
    }
}

/// The first NVIDIA GPU's model name from the driver's `/proc` entry.
fn nvidia_gpu_name() -> Option<String> {
    let dir = std::fs::read_dir("/proc/driver/nvidia/gpus").ok()?;
    let first = dir.filter_map(Result::ok).map(|e| e.path()).min()?;
    let info = std::fs::read_to_string(first.join("information")).ok()?;
    info.lines()
        .find(|l| l.starts_with("Model:"))
        .map(|l| l.trim_start_matches("Model:").trim().to_string())
}
