//! `allsweep plot`: the paper's figures as PNG or SVG. Figure 1 (ALL's derivative) needs
//! only the loss parameters; Figures 2 (ROC) and 3 (validation curves) read the database
//! that `allsweep run` or `allsweep serve` filled.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

use allsweep_coordinator::plot::{self, curves, derivative, roc, sweeps, Figure, Format};
use allsweep_coordinator::store;

/// Which figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Fig. 1: ALL and dALL/dDL against the Dice loss (no database needed).
    Derivative,
    /// Fig. 2: the test ROC curve of each config's best seed, with its AUC.
    Roc,
    /// Fig. 3: a validation metric per epoch, mean over seeds with a min-max band.
    Curves,
}

#[derive(Args)]
pub struct PlotArgs {
    /// Sweeps to plot, by id or spec file (roc, curves) [default: the database's only sweep].
    pub sweeps: Vec<String>,
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// The figure file; .png or .svg picks the format.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The database [default: ./allsweep.db, else ./allsweep-run/allsweep.db].
    #[arg(long, env = "DATABASE_URL")]
    pub db: Option<String>,
    /// derivative: ALL's gamma; repeat or give a comma list to draw several.
    #[arg(long, value_delimiter = ',', default_value = "0.1")]
    pub gamma: Vec<f64>,
    /// derivative: ALL's omega; repeatable.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    pub omega: Vec<f64>,
    /// derivative: ALL's epsilon; repeatable.
    #[arg(long, value_delimiter = ',', default_value = "0.5")]
    pub epsilon: Vec<f64>,
    /// roc, curves: only configs whose label contains this (case-insensitive); repeatable.
    #[arg(long = "config", value_name = "LABEL_SUBSTRING")]
    pub configs: Vec<String>,
    /// curves: the metric per epoch (jaccard, dice, precision, recall, tnr, accuracy, auc,
    /// train_loss, validation_loss, seconds).
    #[arg(long, default_value = "jaccard")]
    pub metric: String,
    /// The figure's title [default: the paper's figure and what it shows].
    #[arg(long)]
    pub title: Option<String>,
}

pub async fn run(args: PlotArgs) -> anyhow::Result<()> {
    Format::of(&args.out)?;
    match args.kind {
        Kind::Derivative => {
            anyhow::ensure!(
                args.sweeps.is_empty(),
                "--kind derivative draws the loss alone and takes no sweep (got {})",
                args.sweeps.join(" ")
            );
            let figure = derivative::figure(&args.gamma, &args.omega, &args.epsilon, args.title.clone())?;
            write(figure, &args.out).await
        }
        Kind::Roc | Kind::Curves => {
            let url = database_url(args.db.as_deref())?;
            let store = store::open(&url).await.with_context(|| format!("cannot open {url}"))?;
            let chosen = sweeps::resolve(&store, &super::resolve_sweeps(&args.sweeps)?).await?;
            let title = args.title.clone();
            if args.kind == Kind::Roc {
                let figure = roc::figure(&store, &chosen, &args.configs, title).await?;
                print_notes(&figure.notes);
                write(figure, &args.out).await
            } else {
                let figure = curves::figure(&store, &chosen, &args.configs, &args.metric, title).await?;
                print_notes(&figure.notes);
                write(figure, &args.out).await
            }
        }
    }
}

fn print_notes(notes: &[String]) {
    for note in notes {
        eprintln!("note: {note}");
    }
}

/// Draws off the async runtime (rasterising is CPU work), then says where the figure went.
async fn write<F: Figure + Send + 'static>(figure: F, out: &Path) -> anyhow::Result<()> {
    let path = out.to_path_buf();
    tokio::task::spawn_blocking(move || plot::render(&figure, &path)).await.context("the drawing thread failed")??;
    println!("wrote {}", out.display());
    Ok(())
}

/// The database to read: `--db`/`DATABASE_URL`, else the first of ./allsweep.db and
/// ./allsweep-run/allsweep.db (where `allsweep run` writes by default) that exists. A SQLite
/// file that does not exist is an error here, not an empty database created by opening it.
fn database_url(given: Option<&str>) -> anyhow::Result<String> {
    if let Some(url) = given {
        if let Some(path) = sqlite_file(url) {
            anyhow::ensure!(
                Path::new(path).exists(),
                "database {url}: {path} does not exist; point --db at the allsweep.db that `allsweep run --dir DIR` wrote"
            );
        }
        return Ok(url.to_string());
    }
    ["allsweep.db", "allsweep-run/allsweep.db"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .map(|p| format!("sqlite://{p}"))
        .context("no database: neither ./allsweep.db nor ./allsweep-run/allsweep.db exists; pass --db sqlite://DIR/allsweep.db or set DATABASE_URL")
}

/// The file of a SQLite URL (`sqlite://PATH`, `sqlite:PATH`, with or without `?options`);
/// `None` for other databases and in-memory SQLite.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite://allsweep-run/allsweep.db"), Some("allsweep-run/allsweep.db"));
        assert_eq!(sqlite_file("sqlite:x.db?mode=rwc"), Some("x.db"));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
        let err = database_url(Some("sqlite:///nonexistent/dir/a.db")).expect_err("missing file").to_string();
        assert!(err.contains("/nonexistent/dir/a.db does not exist"), "{err}");
    }
}
