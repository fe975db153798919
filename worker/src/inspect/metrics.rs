//! `inspect metrics`: every metric of the training core on the user's arrays, the pooled ones
//! and the authors' Keras-style ones over batches of `--batch-size` samples.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use allsweep_worker::metrics::MetricsAccumulator;
use allsweep_worker::npy;

#[derive(Args)]
pub struct MetricsArgs {
    /// Probabilities in [0, 1], float32 or float64.
    #[arg(long)]
    pub pred: PathBuf,
    /// Labels in {0, 1}, same shape.
    #[arg(long)]
    pub target: PathBuf,
    /// Samples per batch for the Keras-style metrics (computed per batch, then averaged);
    /// the pooled metrics do not depend on it. Default: all samples in one batch.
    #[arg(long)]
    pub batch_size: Option<i64>,
    /// Include the ROC curve with at most this many points.
    #[arg(long)]
    pub roc_points: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: MetricsArgs) -> anyhow::Result<()> {
    let pred = npy::read_float(&args.pred)?;
    let target = npy::read_float(&args.target)?;
    let mut accumulator = MetricsAccumulator::new();
    let samples = pred.size().first().copied().unwrap_or(0);
    let batch = match args.batch_size {
        None => samples.max(1),
        Some(b) if b >= 1 => b,
        Some(b) => anyhow::bail!("--batch-size must be at least 1, got {b}"),
    };
    if samples == 0 {
        accumulator.update(&pred, &target)?;
    }
    let mut start = 0;
    while start < samples {
        let size = batch.min(samples - start);
        accumulator.update(&pred.narrow(0, start, size), &target.narrow(0, start, size))?;
        start += size;
    }
    let metrics = accumulator.metrics();
    let keras = accumulator.keras_metrics();
    let roc = args.roc_points.map(|n| accumulator.roc_curve(n));
    if args.json {
        return super::print_json(&json!({ "metrics": metrics, "keras_metrics": keras, "roc": roc }));
    }
    let percent = |v: f64| format!("{:.2}%", 100.0 * v);
    println!("jaccard   {}", percent(metrics.jaccard));
    println!("dice/F1   {}", percent(metrics.dice));
    println!("precision {}", percent(metrics.precision));
    println!("recall    {}", percent(metrics.recall));
    println!("TNR       {}", percent(metrics.tnr));
    println!("accuracy  {}", percent(metrics.accuracy));
    match metrics.auc {
        Some(auc) => println!("AUC-ROC   {auc:.5}"),
        None => println!("AUC-ROC   undefined (the target holds only one class)"),
    }
    let c = metrics.counts;
    println!("counts    TP {} FP {} TN {} FN {}", c.tp, c.fp, c.tn, c.fn_);
    println!(
        "Keras-style, batches of {batch}: jaccard {}, dice {}, recall {}, TNR {}",
        percent(keras.jaccard),
        percent(keras.dice),
        percent(keras.recall),
        percent(keras.tnr)
    );
    if let Some(points) = roc {
        for p in points {
            println!("roc {:.6} {:.6} {:.6}", p.threshold, p.fpr, p.tpr);
        }
    }
    Ok(())
}
