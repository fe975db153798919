//! Figure 3: a validation metric per epoch, one line per config (the mean over its completed
//! seeds) over a band from the lowest to the highest seed, so a reader sees both the trend
//! and how far seeds disagree. Values come from the metrics table the workers stream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use allsweep_proto::metric;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::{color, line_width, padded, tick, DrawError, Figure, FONT, LABEL_SIZE, TICK_SIZE};
use super::legend::{self, Entry, Glyph};
use super::{sweeps, PlotError};
use crate::report::TrialResult;
use crate::store::{Store, StoreError, SweepRow};

/// How a metric of the metrics table is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricAxis {
    /// The name stored in the metrics table.
    pub name: String,
    /// The axis label, with its unit.
    pub label: String,
    /// Stored value times `scale` is the shown value (100 for a fraction shown in %).
    pub scale: f64,
    /// The range the shown values cannot leave, if any.
    pub bounds: Option<(f64, f64)>,
}

/// The axis of metric `name` (aliases: iou, f1, sensitivity, specificity).
pub fn metric_axis(name: &str) -> MetricAxis {
    let name = name.trim().to_ascii_lowercase();
    let (stored, label) = match name.as_str() {
        "jaccard" | "iou" => (metric::JACCARD, "Validation Jaccard index (%)"),
        "dice" | "f1" => (metric::DICE, "Validation Dice index / F1 (%)"),
        "precision" => (metric::PRECISION, "Validation precision (%)"),
        "recall" | "sensitivity" => (metric::RECALL, "Validation recall (%)"),
        "tnr" | "specificity" => (metric::TNR, "Validation TNR / specificity (%)"),
        "accuracy" => (metric::ACCURACY, "Validation accuracy (%)"),
        "auc" => (metric::AUC, "Validation AUC-ROC"),
        "train_loss" => (metric::TRAIN_LOSS, "Training loss (mean over the epoch)"),
        "validation_loss" => (metric::VALIDATION_LOSS, "Validation loss"),
        "seconds" => (metric::SECONDS, "Epoch wall time (s)"),
        "train_images_per_second" => (metric::TRAIN_IMAGES_PER_SECOND, "Training throughput (images/s)"),
        other => return MetricAxis { name: other.into(), label: other.into(), scale: 1.0, bounds: None },
    };
    let percent = label.ends_with("(%)");
    MetricAxis {
        name: stored.into(),
        label: label.into(),
        scale: if percent { 100.0 } else { 1.0 },
        bounds: match stored {
            _ if percent => Some((0.0, 100.0)),
            metric::AUC => Some((0.0, 1.0)),
            _ => None,
        },
    }
}

/// One epoch of one config, in shown units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStat {
    pub epoch: u32,
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    /// Seeds that reported this epoch.
    pub seeds: usize,
}

/// One config's line.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveSeries {
    pub label: String,
    pub seeds: usize,
    pub stats: Vec<EpochStat>,
}

/// Figure 3, ready to draw.
#[derive(Debug, Clone)]
pub struct CurvesFigure {
    pub series: Vec<CurveSeries>,
    pub axis: MetricAxis,
    pub title: String,
    pub subtitle: String,
    /// Configs left out, and why.
    pub notes: Vec<String>,
}

/// Gathers `metric` per epoch for each chosen config of `sweeps`, over its completed trials.
pub async fn figure(
    store: &Arc<dyn Store>,
    chosen_sweeps: &[SweepRow],
    patterns: &[String],
    metric: &str,
    title: Option<String>,
) -> Result<CurvesFigure, PlotError> {
    let axis = metric_axis(metric);
    let groups = sweeps::completed_groups(store, chosen_sweeps, patterns).await?;
    let mut available = BTreeSet::new();
    let mut series = Vec::new();
    let mut notes = Vec::new();
    for g in &groups {
        let per_seed = seed_points(store, g.completed(), &axis, &mut available).await?;
        if per_seed.is_empty() {
            notes.push(format!("{}: no {:?} points; left out", g.label, axis.name));
            continue;
        }
        series.push(CurveSeries { label: g.label.clone(), seeds: per_seed.len(), stats: epoch_stats(&per_seed) });
    }
    if series.is_empty() {
        let available = available.into_iter().collect::<Vec<_>>().join(", ");
        let available = if available.is_empty() { "none".into() } else { available };
        return Err(PlotError::NoMetric { metric: axis.name.clone(), available });
    }
    let names: Vec<&str> = chosen_sweeps.iter().map(|s| s.name.as_str()).collect();
    let quantity = axis.label.trim_end_matches(" (%)");
    let title = title.unwrap_or_else(|| format!("Fig. 3: {} per epoch", lower_first(quantity)));
    let subtitle = format!("{}; line: mean over seeds, shaded band: lowest to highest seed", names.join(" + "));
    Ok(CurvesFigure { series, axis, title, subtitle, notes })
}

/// The metric of `axis` per epoch (in shown units) of each of `trials` that reported it; every
/// metric name they reported goes into `available`.
pub async fn seed_points(
    store: &Arc<dyn Store>,
    trials: impl Iterator<Item = &TrialResult>,
    axis: &MetricAxis,
    available: &mut BTreeSet<String>,
) -> Result<Vec<Vec<(u32, f64)>>, StoreError> {
    let mut per_seed = Vec::new();
    for t in trials {
        let points = store.metric_points(&t.trial.id).await?;
        available.extend(points.iter().map(|p| p.name.clone()));
        let mine: Vec<(u32, f64)> =
            points.iter().filter(|p| p.name == axis.name).map(|p| (p.epoch, p.value * axis.scale)).collect();
        if !mine.is_empty() {
            per_seed.push(mine);
        }
    }
    Ok(per_seed)
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

/// Mean, lowest and highest value per epoch over seeds (each seed a list of (epoch, value)).
pub fn epoch_stats(per_seed: &[Vec<(u32, f64)>]) -> Vec<EpochStat> {
    let mut by_epoch: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for seed in per_seed {
        for &(epoch, value) in seed {
            by_epoch.entry(epoch).or_default().push(value);
        }
    }
    by_epoch
        .into_iter()
        .map(|(epoch, values)| EpochStat {
            epoch,
            mean: values.iter().sum::<f64>() / values.len() as f64,
            low: values.iter().copied().fold(f64::INFINITY, f64::min),
            high: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            seeds: values.len(),
        })
        .collect()
}

impl CurvesFigure {
    /// The shown y range: the bands, padded, kept within the metric's bounds.
    fn y_range(&self) -> (f64, f64) {
        let stats = self.series.iter().flat_map(|s| &s.stats);
        let low = stats.clone().map(|s| s.low).fold(f64::INFINITY, f64::min);
        let high = stats.map(|s| s.high).fold(f64::NEG_INFINITY, f64::max);
        let flat = self.axis.bounds.map_or(0.1 * high.abs().max(1e-3), |(a, b)| (b - a) / 50.0);
        let (mut y0, mut y1) = padded(low, high, 0.08, flat);
        if let Some((a, b)) = self.axis.bounds {
            (y0, y1) = (y0.max(a), y1.min(b));
        } else if low >= 0.0 {
            y0 = y0.max(0.0);
        }
        (y0, y1)
    }

    fn epochs(&self) -> (u32, u32) {
        let epochs = self.series.iter().flat_map(|s| s.stats.iter().map(|e| e.epoch));
        let first = epochs.clone().min().unwrap_or(1);
        (first, epochs.max().unwrap_or(first).max(first + 1))
    }
}

impl Figure for CurvesFigure {
    fn size(&self) -> (u32, u32) {
        (960, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError<DB>> {
        let area = legend::heading(root, &self.title, &self.subtitle)?;
        let entries: Vec<Entry> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let seeds = if s.seeds == 1 { "1 seed".to_string() } else { format!("mean of {} seeds", s.seeds) };
                Entry::new(format!("{} ({seeds})", s.label), color(i), Glyph::Band)
            })
            .collect();
        let area = legend::bottom(&area, &entries)?;
        let (first, last) = self.epochs();
        let (y0, y1) = self.y_range();
        let mut chart = ChartBuilder::on(&area)
            .margin(14)
            .margin_right(30)
            .x_label_area_size(55)
            .y_label_area_size(80)
            .build_cartesian_2d(first as f64 - 0.15..last as f64 + 0.15, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("Epoch")
            .y_desc(self.axis.label.as_str())
            // At most one label per epoch, so the ticks land on whole epochs.
            .x_labels(((last - first + 1) as usize).min(12))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_labels(10)
            .y_label_formatter(&tick)
            .label_style((FONT, TICK_SIZE))
            .axis_desc_style((FONT, LABEL_SIZE))
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.12))
            .draw()?;
        for (i, s) in self.series.iter().enumerate() {
            let mut band: Vec<(f64, f64)> = s.stats.iter().map(|e| (e.epoch as f64, e.high)).collect();
            band.extend(s.stats.iter().rev().map(|e| (e.epoch as f64, e.low)));
            chart.draw_series(std::iter::once(Polygon::new(band, color(i).mix(0.18).filled())))?;
        }
        for (i, s) in self.series.iter().enumerate() {
            let line: Vec<(f64, f64)> = s.stats.iter().map(|e| (e.epoch as f64, e.mean)).collect();
            let width = line_width(i, self.series.len());
            chart.draw_series(LineSeries::new(line.clone(), color(i).stroke_width(width)))?;
            chart.draw_series(line.into_iter().map(|p| Circle::new(p, width + 1, color(i).filled())))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_show_in_percent_and_aliases_resolve() {
        let a = metric_axis("IoU");
        assert_eq!((a.name.as_str(), a.scale, a.bounds), ("jaccard", 100.0, Some((0.0, 100.0))));
        assert_eq!(metric_axis("auc").scale, 1.0);
        assert_eq!(metric_axis("validation_loss").bounds, None);
        assert_eq!(metric_axis("mystery").label, "mystery");
    }

    #[test]
    fn stats_are_mean_and_extremes_per_epoch() {
        let s = epoch_stats(&[vec![(1, 10.0), (2, 20.0)], vec![(1, 30.0)]]);
        assert_eq!(s[0], EpochStat { epoch: 1, mean: 20.0, low: 10.0, high: 30.0, seeds: 2 });
        assert_eq!(s[1], EpochStat { epoch: 2, mean: 20.0, low: 20.0, high: 20.0, seeds: 1 });
    }
}
