//! The paper's figures, drawn from the database (or, for Figure 1, from the loss alone):
//!
//! - [`derivative`]: Fig. 1, ALL and its derivative against the Dice loss it wraps;
//! - [`roc`]: Fig. 2, the test ROC curve of each config's best seed;
//! - [`curves`]: Fig. 3, a validation metric per epoch, mean over seeds with its spread.
//!
//! Each figure is gathered into plain data first (testable without drawing), then drawn by
//! [`canvas::render`] to PNG or SVG, picked by the file's extension. A figure is written to
//! a temporary file beside the target and renamed, so a failed draw never leaves half a file.

pub mod canvas;
pub mod curves;
pub mod derivative;
mod legend;
pub mod roc;
pub mod sweeps;

use std::path::PathBuf;

use crate::store::StoreError;

pub use canvas::{render, Figure, Format};

/// What can go wrong making a figure; each message names the thing at fault and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{}: unknown image format; end the file name with .png or .svg", .0.display())]
    Format(PathBuf),
    #[error("sweep {sweep:?} not found in the database; its sweeps are: {known}")]
    UnknownSweep { sweep: String, known: String },
    #[error("the database has no sweeps; run one first (allsweep run SPEC)")]
    NoSweeps,
    #[error("the database has several sweeps; name the ones to plot: {known}")]
    WhichSweep { known: String },
    #[error("sweep {0} has no completed trials yet; plot it once some have finished (allsweep watch {0})")]
    NoCompleted(String),
    #[error("no metric points named {metric:?} in the completed trials; recorded names: {available}")]
    NoMetric { metric: String, available: String },
    #[error("--config {pattern:?} matches no config; the configs are: {labels}")]
    NoConfig { pattern: String, labels: String },
    #[error("no ROC curve is stored for the chosen configs ({0})")]
    NoRoc(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot draw {}: {message}", .path.display())]
    Draw { path: PathBuf, message: String },
    #[error("cannot write {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}
