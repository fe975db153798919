//! `allsweep-worker inspect ...`: the training core, runnable on the user's own inputs.
//!
//! Each command prints a short human summary, or one JSON object with `--json` so that
//! scripts (the cross-checks and benchmarks in `scripts/`) can read it.

mod loss;
mod metrics;
mod model;
mod step;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum InspectCommand {
    /// Parameter count and output shape of a network.
    Model(model::ModelArgs),
    /// A loss's value on a prediction and target (.npy), and its gradient.
    Loss(loss::LossArgs),
    /// Every segmentation metric of a prediction against a target (.npy).
    Metrics(metrics::MetricsArgs),
    /// Time training steps (forward, loss, backward, Adam) on random data.
    Step(step::StepArgs),
}

pub fn run(command: InspectCommand) -> anyhow::Result<()> {
    match command {
        InspectCommand::Model(args) => model::run(args),
        InspectCommand::Loss(args) => loss::run(args),
        InspectCommand::Metrics(args) => metrics::run(args),
        InspectCommand::Step(args) => step::run(args),
    }
}

/// Parses `HxW` (e.g. `192x256`) into (height, width).
pub fn parse_size(text: &str) -> Result<(i64, i64), String> {
    let (h, w) =
        text.split_once(['x', 'X']).ok_or_else(|| format!("expected HxW such as 48x48 or 192x256, got {text:?}"))?;
    let side = |s: &str| s.trim().parse::<i64>().map_err(|_| format!("{s:?} in {text:?} is not a whole number"));
    Ok((side(h)?, side(w)?))
}

/// Parses `--device`: `auto` (CUDA when present), `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(text: &str) -> Result<tch::Device, String> {
    allsweep_worker::device::parse(text)
}

/// Prints `value` as one JSON line.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
