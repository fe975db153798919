//! `inspect model`: how big a network is and what it outputs for an input size.

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;
use tch::{nn, Device, Kind, Tensor};

use allsweep_worker::models::{self, Arch, ModelConfig, Segmenter};

#[derive(Clone, Copy, ValueEnum)]
pub enum ArchArg {
    Unet,
    Focusnet,
}

impl From<ArchArg> for Arch {
    fn from(a: ArchArg) -> Self {
        match a {
            ArchArg::Unet => Arch::Unet,
            ArchArg::Focusnet => Arch::Focusnet,
        }
    }
}

#[derive(Args)]
pub struct ModelArgs {
    #[arg(long, value_enum)]
    pub arch: ArchArg,
    /// Input size HxW; both sides multiples of 16.
    #[arg(long, value_parser = super::parse_size)]
    pub size: (i64, i64),
    /// Input channels (1 to 3).
    #[arg(long, default_value_t = 3)]
    pub channels: i64,
    /// Width of the first level (the paper: 32).
    #[arg(long, default_value_t = 32)]
    pub width: i64,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ModelArgs) -> anyhow::Result<()> {
    let (height, width) = args.size;
    models::check_size(height, width)?;
    let config = model_config(args.arch, args.width)?;
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Segmenter::new(&vs.root(), config, args.channels)?;
    let input = Tensor::zeros([1, args.channels, height, width], (Kind::Float, Device::Cpu));
    let output = tch::no_grad(|| model.forward_t(&input, false))?;
    let parameters = models::parameter_count(&vs);
    if args.json {
        return super::print_json(&json!({
            "arch": config.arch, "model_width": config.width, "channels": args.channels,
            "input": input.size(), "output": output.size(), "parameters": parameters,
        }));
    }
    println!("{} (width {}), {} input channel(s)", config.arch.name(), config.width, args.channels);
    println!("  parameters: {parameters}");
    println!("  input  {:?}", input.size());
    println!("  output {:?} (probabilities)", output.size());
    Ok(())
}

/// The model config for CLI flags, validated as a spec's `[model]` table would be.
pub fn model_config(arch: ArchArg, width: i64) -> anyhow::Result<ModelConfig> {
    let mut table = toml::Table::new();
    table.insert("arch".into(), Arch::from(arch).name().into());
    table.insert("width".into(), width.into());
    ModelConfig::from_table(&table, "model").context("invalid --width")
}
