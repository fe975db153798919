//! `inspect step`: times whole training steps (forward, batch Dice loss, backward, the
//! trainer's Adam at lr 1e-4) on random data: the allsweep half of the training-step benchmark, whose PyTorch
//! half is `scripts/bench/pytorch_step.py`.

use std::time::Instant;

use clap::Args;
use serde_json::json;
use tch::{nn, Device, Kind, Tensor};

use allsweep_config::Precision;
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
    let (height, width) = args.size;
    models::check_size(height, width)?;
    tch::manual_seed(0);
    let device = args.device;
    let vs = nn::VarStore::new(device);
    let mut model = Segmenter::new(&vs.root(), model_config(args.arch, args.width)?, args.channels)?;
    let precision = Precision::from(args.precision);
    model.set_precision(precision);
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let mut optimizer = Adam::new(&vs, 1e-4);
    let loss = Loss::new(LossConfig::Dice { smooth: 1.0, reduction: Reduction::Batch });
    let input = Tensor::rand([args.batch, args.channels, height, width], (Kind::Float, device));
    let target = Tensor::rand([args.batch, 1, height, width], (Kind::Float, device)).ge(0.5).to_kind(Kind::Float);
    let mut step = || -> anyhow::Result<()> {
        let pred = model.forward_t(&input, true)?;
        let value = loss.compute_checked_shapes(&pred, &target)?;
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
    let parameters = models::parameter_count(&vs);
    if args.json {
        return super::print_json(&json!({
            "impl": "allsweep", "arch": args.arch_name(), "height": height, "width": width, "batch": args.batch,
            "steps": args.steps, "seconds_per_step_median": median, "seconds_per_step_mean": mean,
            "params": parameters, "device": format!("{device:?}"), "precision": precision.name(),
        }));
    }
    println!(
        "{} {height}x{width} batch {} on {device:?} in {}: {median:.4} s/step (median of {}), {parameters} parameters",
        args.arch_name(),
        precision.name(),
        args.batch,
        args.steps
    );
    Ok(())
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
