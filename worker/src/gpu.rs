//! Each GPU's name, memory and utilisation, read from NVML (the library behind `nvidia-smi`)
//! through `nvml-wrapper`, which loads it at run time: a CPU machine, or a GPU machine without
//! the driver's library, simply has no monitor and the worker runs on slots alone.
//!
//! NVML numbers GPUs its own way; the worker trains on CUDA's `cuda:N`. With
//! `CUDA_VISIBLE_DEVICES` set, `cuda:N` is its N-th entry (an NVML index or a `GPU-` UUID);
//! without it, `cuda:N` is NVML's N (set `CUDA_DEVICE_ORDER=PCI_BUS_ID` on a host that mixes
//! GPU models, so that CUDA counts as NVML does). A MIG instance is not monitored.

use nvml_wrapper::Nvml;
use tch::Device;

/// How NVML finds the GPU behind one `cuda:N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NvmlTarget {
    Index(u32),
    Uuid(String),
}

/// The NVML GPU behind `cuda:{cuda_index}`, given `CUDA_VISIBLE_DEVICES` (`visible`).
pub fn nvml_target(cuda_index: usize, visible: Option<&str>) -> Option<NvmlTarget> {
    let Some(visible) = visible else { return u32::try_from(cuda_index).ok().map(NvmlTarget::Index) };
    let entry = visible.split(',').map(str::trim).filter(|e| !e.is_empty()).nth(cuda_index)?;
    if let Ok(index) = entry.parse::<u32>() {
        Some(NvmlTarget::Index(index))
    } else if entry.starts_with("GPU-") {
        Some(NvmlTarget::Uuid(entry.to_string()))
    } else {
        None
    }
}

/// One GPU now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuSample {
    /// Its CUDA index (`cuda:N`).
    pub index: u32,
    pub name: String,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    pub memory_free_bytes: u64,
    pub utilization_percent: u32,
}

/// The worker's GPUs, as NVML sees them.
pub struct GpuMonitor {
    nvml: Nvml,
    gpus: Vec<(u32, NvmlTarget)>,
}

impl GpuMonitor {
    /// A monitor of the CUDA devices among `devices`; `None` without any, or without NVML
    /// (said once in the log).
    pub fn open(devices: &[Device]) -> Option<Self> {
        let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        let gpus: Vec<(u32, NvmlTarget)> = devices
            .iter()
            .filter_map(|d| match d {
                Device::Cuda(n) => Some((*n as u32, nvml_target(*n, visible.as_deref())?)),
                _ => None,
            })
            .collect();
        if gpus.is_empty() {
            return None;
        }
        match Nvml::init() {
            Ok(nvml) => Some(Self { nvml, gpus }),
            Err(error) => {
                tracing::info!(%error, "NVML is not available: no GPU telemetry, and leases go by --slots (or --memory-budget)");
                None
            }
        }
    }

    /// Each monitored GPU now; a GPU NVML cannot read is left out.
    pub fn sample(&self) -> Vec<GpuSample> {
        self.gpus.iter().filter_map(|(index, target)| self.read(*index, target)).collect()
    }

    fn read(&self, index: u32, target: &NvmlTarget) -> Option<GpuSample> {
        let device = match target {
            NvmlTarget::Index(i) => self.nvml.device_by_index(*i),
            NvmlTarget::Uuid(uuid) => self.nvml.device_by_uuid(uuid.as_str()),
        }
        .ok()?;
        let memory = device.memory_info().ok()?;
        Some(GpuSample {
            index,
            name: device.name().unwrap_or_default(),
            memory_total_bytes: memory.total,
            memory_used_bytes: memory.used.min(memory.total),
            memory_free_bytes: memory.free,
            utilization_percent: device.utilization_rates().map(|u| u.gpu.min(100)).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_indexes_map_to_nvml_through_cuda_visible_devices() {
        assert_eq!(nvml_target(2, None), Some(NvmlTarget::Index(2)));
        assert_eq!(nvml_target(1, Some("3,5")), Some(NvmlTarget::Index(5)));
        assert_eq!(nvml_target(0, Some("GPU-8d0c6b1e-aaaa")), Some(NvmlTarget::Uuid("GPU-8d0c6b1e-aaaa".into())));
        assert_eq!(nvml_target(2, Some("3,5")), None, "not visible");
        assert_eq!(nvml_target(0, Some("MIG-1234")), None, "MIG instances are not monitored");
    }

    #[test]
    fn a_machine_without_cuda_devices_has_no_monitor() {
        assert!(GpuMonitor::open(&[Device::Cpu]).is_none());
    }
}
