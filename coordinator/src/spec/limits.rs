//! How big a sweep may be. Every trial is validated, keyed and stored when the spec is
//! submitted, so a spec of a few hundred bytes can ask for millions of rows; these limits
//! refuse such a spec before any of that work starts: its size before it is parsed, its
//! axes and trials (the product of the axis lengths times the seeds, overflow-checked) before
//! the grid is expanded.
//!
//! The defaults fit real use with room to spare: the paper's largest preset is 72 trials of
//! 50 epochs across 4 axes and under 1 KiB (`presets/table1-omega-epsilon.toml`); 10,000 trials
//! is months of GPU time, a few MB in the database and well under a second to validate.

use allsweep_config::lines::line_of;
use allsweep_config::trial::ConfigError;

use super::GridAxis;

/// The largest sweep a coordinator accepts; set with `--max-trials`, `--max-axes` and
/// `--max-spec-bytes` on `allsweep serve` or `allsweep run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecLimits {
    /// Trials per sweep: grid points times random draws per point times seeds.
    pub max_trials: u64,
    /// Axes of the grid (dotted keys in `[grid]`).
    pub max_axes: usize,
    /// Bytes of spec text.
    pub max_spec_bytes: usize,
}

impl SpecLimits {
    pub const DEFAULT_MAX_TRIALS: u64 = 10_000;
    pub const DEFAULT_MAX_AXES: usize = 64;
    pub const DEFAULT_MAX_SPEC_BYTES: usize = 256 * 1024;

    /// No limits: for reading back a spec that a coordinator has already accepted under its own.
    pub const UNLIMITED: Self = Self { max_trials: u64::MAX, max_axes: usize::MAX, max_spec_bytes: usize::MAX };
}

impl Default for SpecLimits {
    fn default() -> Self {
        Self {
            max_trials: Self::DEFAULT_MAX_TRIALS,
            max_axes: Self::DEFAULT_MAX_AXES,
            max_spec_bytes: Self::DEFAULT_MAX_SPEC_BYTES,
        }
    }
}

fn refuse(key: &str, line: Option<usize>, what: String, limit: impl std::fmt::Display, flag: &str) -> ConfigError {
    ConfigError {
        key: key.into(),
        line,
        message: format!(
            "{what}; this coordinator accepts at most {limit}; split the sweep, or raise the limit with \
             `allsweep serve {flag} N`"
        ),
    }
}

impl SpecLimits {
    /// Before parsing: the size of the text.
    pub(super) fn check_size(&self, source: &str) -> Result<(), ConfigError> {
        if source.len() > self.max_spec_bytes {
            let what = format!("the spec is {} bytes", source.len());
            return Err(refuse("spec", None, what, format_args!("{} bytes", self.max_spec_bytes), "--max-spec-bytes"));
        }
        Ok(())
    }

    /// Before expansion: the number of axes, and of trials the grid, a random search's draws
    /// per grid point and the seeds make.
    pub(super) fn check_grid(
        &self,
        source: &str,
        axes: &[GridAxis],
        draws: u32,
        seeds: usize,
    ) -> Result<(), ConfigError> {
        if axes.len() > self.max_axes {
            let what = format!("the grid has {} axes", axes.len());
            return Err(refuse(
                "grid",
                line_of(source, "grid"),
                what,
                format_args!("{} axes", self.max_axes),
                "--max-axes",
            ));
        }
        let mut trials = (seeds as u64).checked_mul(u64::from(draws.max(1)));
        for axis in axes {
            trials = trials.and_then(|t| t.checked_mul(axis.values.len() as u64));
        }
        let within = trials.is_some_and(|t| t <= self.max_trials);
        if !within {
            let lengths: Vec<String> = axes.iter().map(|a| a.values.len().to_string()).collect();
            let points = if lengths.is_empty() { "1".to_string() } else { lengths.join(" x ") };
            let count = trials.map_or_else(|| format!("more than {}", u64::MAX), |t| t.to_string());
            let plural = if seeds == 1 { "" } else { "s" };
            let drawn = if draws > 1 { format!(" x {draws} random draws") } else { String::new() };
            let what = format!("the sweep makes {count} trials ({points} grid points{drawn} x {seeds} seed{plural})");
            let (key, line) = if draws > 1 {
                ("search.trials", line_of(source, "search.trials"))
            } else if axes.is_empty() {
                ("seeds", line_of(source, "seeds"))
            } else {
                ("grid", line_of(source, "grid"))
            };
            return Err(refuse(key, line, what, format_args!("{} trials", self.max_trials), "--max-trials"));
        }
        Ok(())
    }
}
