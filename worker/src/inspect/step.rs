//! `inspect step`: times whole training steps (forward, batch Dice loss, backward, the
//! trainer's Adam at lr 1e-4) on random data: the allsweep half of the training-step benchmark, whose PyTorch
//! half is `scripts/bench/pytorch_step.py`. With `--fuse N`, the step of N trials fused into
//! one network (each its own batch and loss), whose images per second the fused-group
//! benchmark sets against one trial's (`scripts/bench/fused.sh`, the GPU check).

use std::time::Instant;

use clap::Args;
use serde_json::json;
use tch::{nn, Device, Kind, Tensor};

use allsweep_config::memory::{human_bytes, StepShape};
use allsweep_config::Precision;
use allsweep_worker::gpu::GpuMonitor;
use allsweep_worker::losses::{Loss, LossConfig, Reduction};
use allsweep_worker::models::{self, Segmenter};
use allsweep_worker::train::adam::Adam;

use super::model::{model_config, ArchArg};

#[derive(Args)]
pub struct StepArgs {
    #[arg(long, value_enum)]
    pub arch: ArchArg,
    /// Input size HxW; both sides multiples of 16.
    #[arg(long, value_parser = super::parse_size)]
    pub size: (i64, i64),
    #[arg(long, default_value_t = 16)]
    pub batch: i64,
    #[arg(long, default_value_t = 3)]
    pub channels: i64,
    #[arg(long, default_value_t = 32)]
    pub width: i64,
    /// Timed steps.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// auto (CUDA when present), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = super::parse_device)]
    pub device: Device,
    /// fp32, or bf16 (convolutions in bfloat16, as `[train] precision = "bf16"`).
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: PrecisionArg,
    /// Feed the network channels-last tensors (NHWC strides), which the convolutions then keep:
    /// measured here before the trainer adopts it.
    #[arg(long)]
    pub channels_last: bool,
    /// Trials fused into one network, each with its own batch of --batch samples.
    #[arg(long, default_value_t = 1)]
    pub fuse: i64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PrecisionArg {
    Fp32,
    Bf16,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Bf16 => Precision::Bf16,
        }
    }
}

pub fn run(args: StepArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.steps > 0, "--steps must be at least 1");
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    anyhow::ensure!((1..=1024).contains(&args.fuse), "--fuse must be between 1 and 1024, got {}", args.fuse);
    let (height, width) = args.size;
    models::check_size(height, width)?;
    tch::manual_seed(0);
    let device = args.device;
    let memory = PeakMemory::start(device);
    let vs = nn::VarStore::new(device);
    let groups = args.fuse;
    let mut model = Segmenter::fused(&vs.root(), model_config(args.arch, args.width)?, args.channels, groups)?;
    let precision = Precision::from(args.precision);
    model.set_precision(precision);
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let mut optimizer = Adam::new(&vs, 1e-4);
    let loss = Loss::new(LossConfig::Dice { smooth: 1.0, reduction: Reduction::Batch });
    let input = Tensor::rand([args.batch, groups * args.channels, height, width], (Kind::Float, device));
    let input = if args.channels_last { models::channels_last(&input) } else { input };
    let target = Tensor::rand([args.batch, groups, height, width], (Kind::Float, device)).ge(0.5).to_kind(Kind::Float);
    let mut step = || -> anyhow::Result<()> {
        let pred = model.forward_t(&input, true)?;
        // Each trial's loss on its own output channel, summed: their gradients stay apart.
        let mut value = loss.compute_checked_shapes(&pred.narrow(1, 0, 1), &target.narrow(1, 0, 1))?;
        for g in 1..groups {
            value += loss.compute_checked_shapes(&pred.narrow(1, g, 1), &target.narrow(1, g, 1))?;
        }
        optimizer.zero_grad();
        value.backward();
        optimizer.step();
        Ok(())
    };
    for _ in 0..args.warmup {
        step()?;
    }
    synchronize(device);
    let mut seconds = Vec::with_capacity(args.steps);
    for _ in 0..args.steps {
        let start = Instant::now();
        step()?;
        synchronize(device);
        seconds.push(start.elapsed().as_secs_f64());
    }
    let mean = seconds.iter().sum::<f64>() / seconds.len() as f64;
    let median = median(&mut seconds);
    let parameters = models::parameter_count(&vs) / groups;
    let images_per_second = (groups * args.batch) as f64 / median;
    let measured_bytes = memory.peak_since_start();
    let estimated_bytes = StepShape {
        model: model_config(args.arch, args.width)?,
        channels: args.channels,
        size: (height, width),
        batch: args.batch,
        precision,
        keeps_best: false,
    }
    .bytes();
    // The estimate is one trial's; a fused group holds every trial's weights, moments and
    // activations, and one copy of the rest, which is a little less than this.
    let estimated_bytes = estimated_bytes * groups as u64;
    if args.json {
        return super::print_json(&json!({
            "impl": "allsweep", "arch": args.arch_name(), "height": height, "width": width, "batch": args.batch,
            "steps": args.steps, "fuse": groups, "images_per_second": images_per_second, "seconds_per_step_median": median, "seconds_per_step_mean": mean,
            "params": parameters, "device": format!("{device:?}"), "precision": format!("{}{}", precision.name(), if args.channels_last { "-cl" } else { "" }),
            "peak_memory_bytes": measured_bytes, "estimated_memory_bytes": estimated_bytes,
        }));
    }
    let fused = if groups > 1 { format!(", {groups} trials fused") } else { String::new() };
    println!(
        "{} {height}x{width} batch {} on {device:?} in {}{fused}: {median:.4} s/step (median of {}), {images_per_second:.1} images/s, {parameters} parameters per trial",
        args.arch_name(),
        args.batch,
        precision.name(),
        args.steps
    );
    let measured = measured_bytes.map_or("not measured".to_string(), human_bytes);
    println!("memory: {measured} at the peak (measured), {} estimated", human_bytes(estimated_bytes));
    Ok(())
}

/// The peak memory of a step, measured: on a CPU the process's peak resident size
/// (`VmHWM`) over its size before the model was built; on a GPU the memory in use on it
/// (NVML) over what was in use once the CUDA context existed (libtorch's caching allocator
/// keeps what the peak reserved).
struct PeakMemory {
    device: Device,
    monitor: Option<GpuMonitor>,
    before: Option<u64>,
}

impl PeakMemory {
    fn start(device: Device) -> Self {
        let monitor = GpuMonitor::open(&[device]);
        if device.is_cuda() {
            // The context first, so that it is not counted.
            let _ = Tensor::zeros([1], (Kind::Float, device));
        }
        let before = match &monitor {
            Some(m) => m.sample().first().map(|g| g.memory_used_bytes),
            None if device == Device::Cpu => proc_status_bytes("VmRSS:"),
            None => None,
        };
        Self { device, monitor, before }
    }

    fn peak_since_start(&self) -> Option<u64> {
        let before = self.before?;
        let now = match &self.monitor {
            Some(m) => m.sample().first().map(|g| g.memory_used_bytes),
            None if self.device == Device::Cpu => proc_status_bytes("VmHWM:"),
            None => None,
        }?;
        Some(now.saturating_sub(before))
    }
}

/// A `kB` line of `/proc/self/status`, in bytes.
fn proc_status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

impl StepArgs {
    fn arch_name(&self) -> &'static str {
        models::Arch::from(self.arch).name()
    }
}

fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}
