//! `allsweep report SWEEP...`: the paper's tables from the database.

use anyhow::Context;
use clap::Args;

use allsweep_coordinator::report::render::{render, Format};
use allsweep_coordinator::report::{self, groups, Family, Metric, ReportOptions};
use allsweep_coordinator::scheduler::early_stopping::Rule;
use allsweep_coordinator::store::{self, Store};
use std::sync::Arc;

#[derive(Args)]
pub struct ReportArgs {
    /// One or more sweeps (ids, or the spec files that made them), reported together.
    #[arg(required = true)]
    pub sweeps: Vec<String>,
    /// The database [default: $DATABASE_URL, else sqlite://allsweep.db; `allsweep run` writes DIR/allsweep.db].
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://allsweep.db")]
    pub db: String,
    /// Metrics, comma-separated: jaccard, dice (f1), precision, recall, tnr, accuracy, auc (or
    /// keras_jaccard, keras_dice, keras_recall, keras_tnr). Pivots and comparisons use the first.
    #[arg(long, default_value = "jaccard,dice,recall,tnr,auc", value_delimiter = ',')]
    pub metric: Vec<String>,
    /// Which kind of those metrics: pooled (thresholded, over every test pixel), keras (the
    /// authors': soft or rounded, smoothed, per batch), or both side by side.
    #[arg(long, value_enum, default_value = "pooled")]
    pub metrics: Family,
    /// ROW_KEY,COLUMN_KEY: a table of the first metric over two config keys (Table 1: loss.epsilon,loss.omega).
    #[arg(long, value_delimiter = ',')]
    pub pivot: Option<Vec<String>>,
    /// KEY=VALUE: compare each config with its baseline (e.g. loss.kind=dice), paired over seeds.
    #[arg(long)]
    pub baseline: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let metrics =
        args.metric.iter().map(|m| Metric::parse(m)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(!metrics.is_empty(), "--metric needs at least one metric");
    let metrics = Metric::of_family(&metrics, args.metrics).map_err(anyhow::Error::msg)?;
    let baseline = match &args.baseline {
        None => None,
        Some(text) => {
            let (k, v) = text.split_once('=').with_context(|| format!("--baseline expects KEY=VALUE, got {text:?}"))?;
            Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        }
    };
    let pivot = match args.pivot.as_deref() {
        None => None,
        Some([rows, columns]) => Some((rows.trim().to_string(), columns.trim().to_string())),
        Some(other) => anyhow::bail!("--pivot expects ROW_KEY,COLUMN_KEY (two keys), got {}", other.join(",")),
    };
    let store = store::open(&args.db).await.with_context(|| format!("cannot open the database {}", args.db))?;
    let sweeps = super::resolve_sweeps(&args.sweeps)?;
    let groups = groups::load(&store, &sweeps).await?;
    let mut names = Vec::new();
    for id in &sweeps {
        if let Some(s) = store.sweep(id).await? {
            names.push(s.name);
        }
    }
    let options = ReportOptions { metrics, pivot, baseline };
    let report = report::build(&names.join(" + "), &groups, &options)?;
    print!("{}", render(&report, args.format));
    print_early_stopping(&store, &sweeps, args.format).await
}

/// The rung table of each of `sweeps` that has an early-stopping rule.
pub async fn print_early_stopping(store: &Arc<dyn Store>, sweeps: &[String], format: Format) -> anyhow::Result<()> {
    for id in sweeps {
        let Some(sweep) = store.sweep(id).await? else { continue };
        let Some(json) = &sweep.early_stopping else { continue };
        let rule: Rule = serde_json::from_str(json).with_context(|| format!("sweep {id}: its early-stopping rule"))?;
        let trials = store.trials(id).await?;
        let decisions = store.decisions(id).await?;
        println!();
        print!("{}", render(&report::rungs::build(&sweep.name, &rule, &trials, &decisions), format));
    }
    Ok(())
}
