//! `inspect loss`: a loss's value on the user's arrays, and its gradient with respect to the
//! prediction, computed in float64 and written in the prediction's own dtype.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tch::Kind;

use allsweep_worker::config::params;
use allsweep_worker::losses::{Loss, LossConfig};
use allsweep_worker::npy;

#[derive(Args)]
pub struct LossArgs {
    /// all, dice, jaccard, tversky, focal_tversky, focal or combo.
    #[arg(long)]
    pub kind: String,
    /// A loss parameter, NAME=VALUE (repeatable), e.g. gamma=0.2, reduction=image, base=tversky, base.alpha=0.6.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Probabilities in [0, 1], float32 or float64, shape [N, ...].
    #[arg(long)]
    pub pred: PathBuf,
    /// Labels in {0, 1}, same shape.
    #[arg(long)]
    pub target: PathBuf,
    /// Where to write d(loss)/d(pred) as .npy.
    #[arg(long)]
    pub grad_out: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: LossArgs) -> anyhow::Result<()> {
    let mut table = params::table_from_assignments(&args.params)?;
    table.insert("kind".into(), args.kind.clone().into());
    let config = LossConfig::from_table(&table, "loss")?;
    let pred = npy::read_float(&args.pred)?;
    let target = npy::read_float(&args.target)?;
    let pred64 = pred.to_kind(Kind::Double).set_requires_grad(true);
    let loss = Loss::new(config.clone())
        .compute(&pred64, &target.to_kind(Kind::Double))
        .with_context(|| format!("{} against {}", args.pred.display(), args.target.display()))?;
    let value = loss.double_value(&[]);
    if let Some(path) = &args.grad_out {
        loss.backward();
        npy::write(&pred64.grad().to_kind(pred.kind()), path)?;
    }
    if args.json {
        return super::print_json(&json!({
            "loss": config, "value": value, "grad": args.grad_out, "shape": pred.size(),
        }));
    }
    println!("{} = {value:.9}", serde_json::to_string(&config)?);
    if let Some(path) = &args.grad_out {
        println!("gradient written to {}", path.display());
    }
    Ok(())
}
