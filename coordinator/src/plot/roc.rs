//! Figure 2: the test ROC curve of each config, drawn for its best seed by test Jaccard (the
//! paper plots "the best performing models"), with the AUC in the legend and the chance
//! diagonal for reference.

use std::sync::Arc;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::{color, line_width, DrawError, Figure, FONT, LABEL_SIZE, REFERENCE, TICK_SIZE};
use super::legend::{self, Entry, Glyph};
use super::{sweeps, PlotError};
use crate::report::{ConfigGroup, TrialResult};
use crate::store::{FinalMetrics, RocPoint, Store, SweepRow};

/// One config's curve.
#[derive(Debug, Clone, PartialEq)]
pub struct RocSeries {
    pub label: String,
    /// The test AUC as the worker measured it (trapezoids over the curve if it reported none).
    pub auc: f64,
    pub seed: u64,
    pub trial_id: String,
    /// (false positive rate, true positive rate), from (0, 0) to (1, 1).
    pub points: Vec<(f64, f64)>,
}

impl RocSeries {
    pub fn legend(&self) -> String {
        format!("{} (AUC {:.4})", self.label, self.auc)
    }
}

/// Figure 2, ready to draw.
#[derive(Debug, Clone)]
pub struct RocFigure {
    pub series: Vec<RocSeries>,
    pub title: String,
    pub subtitle: String,
    /// Configs left out, and why (for the user, not the figure).
    pub notes: Vec<String>,
}

/// A config's best completed seed by test Jaccard (the one Fig. 2 draws), with its metrics.
pub fn best_seed(group: &ConfigGroup) -> Option<(&TrialResult, &FinalMetrics)> {
    group
        .completed()
        .filter_map(|t| t.metrics.as_ref().map(|m| (t, m)))
        .max_by(|a, b| a.1.jaccard.total_cmp(&b.1.jaccard))
}

/// Gathers the best seed's ROC curve of each chosen config of `sweeps`.
pub async fn figure(
    store: &Arc<dyn Store>,
    chosen_sweeps: &[SweepRow],
    patterns: &[String],
    title: Option<String>,
) -> Result<RocFigure, PlotError> {
    let groups = sweeps::completed_groups(store, chosen_sweeps, patterns).await?;
    let mut series = Vec::new();
    let mut notes = Vec::new();
    for g in &groups {
        let Some((trial, metrics)) = best_seed(g) else { continue };
        let stored = store.roc(&trial.trial.id).await?;
        if stored.is_empty() {
            notes.push(format!("{}: trial {} has no ROC curve stored; left out", g.label, trial.trial.id));
            continue;
        }
        let points = curve(&stored);
        series.push(RocSeries {
            label: g.label.clone(),
            auc: metrics.auc.unwrap_or_else(|| trapezoid(&points)),
            seed: trial.trial.seed,
            trial_id: trial.trial.id.clone(),
            points,
        });
    }
    if series.is_empty() {
        return Err(PlotError::NoRoc(groups.iter().map(|g| g.label.clone()).collect::<Vec<_>>().join(", ")));
    }
    let names: Vec<&str> = chosen_sweeps.iter().map(|s| s.name.as_str()).collect();
    let subtitle = format!("{}; ROC on the test images; each config's best seed by test Jaccard", names.join(" + "));
    Ok(RocFigure { series, title: title.unwrap_or_else(|| "Fig. 2: test ROC curves".into()), subtitle, notes })
}

/// The stored points as a curve from (0, 0) to (1, 1), ordered by false positive rate.
pub fn curve(points: &[RocPoint]) -> Vec<(f64, f64)> {
    let mut xy: Vec<(f64, f64)> = points.iter().map(|p| (p.fpr, p.tpr)).collect();
    xy.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    if xy.first() != Some(&(0.0, 0.0)) {
        xy.insert(0, (0.0, 0.0));
    }
    if xy.last() != Some(&(1.0, 1.0)) {
        xy.push((1.0, 1.0));
    }
    xy
}

/// The area under a curve by trapezoids.
pub fn trapezoid(points: &[(f64, f64)]) -> f64 {
    points.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum()
}

impl Figure for RocFigure {
    fn size(&self) -> (u32, u32) {
        (860, 820)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError<DB>> {
        let area = legend::heading(root, &self.title, &self.subtitle)?;
        let mut entries: Vec<Entry> =
            self.series.iter().enumerate().map(|(i, s)| Entry::new(s.legend(), color(i), Glyph::Line)).collect();
        entries.push(Entry::reference("chance (AUC 0.5)"));
        let area = legend::bottom(&area, &entries)?;
        let mut chart = ChartBuilder::on(&area)
            .margin(14)
            .margin_right(30)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("False positive rate (1 − specificity)")
            .y_desc("True positive rate (recall)")
            .x_labels(11)
            .y_labels(11)
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .label_style((FONT, TICK_SIZE))
            .axis_desc_style((FONT, LABEL_SIZE))
            .light_line_style(TRANSPARENT)
            .bold_line_style(BLACK.mix(0.12))
            .draw()?;
        chart.draw_series(DashedLineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], 8, 6, REFERENCE.stroke_width(2)))?;
        for (i, s) in self.series.iter().enumerate() {
            let width = line_width(i, self.series.len());
            chart.draw_series(LineSeries::new(s.points.iter().copied(), color(i).stroke_width(width)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_run_corner_to_corner_and_the_square_has_area_one() {
        let p = |fpr, tpr| RocPoint { threshold: 0.5, fpr, tpr };
        let c = curve(&[p(0.5, 1.0), p(0.0, 1.0)]);
        assert_eq!(c, vec![(0.0, 0.0), (0.0, 1.0), (0.5, 1.0), (1.0, 1.0)]);
        assert!((trapezoid(&c) - 1.0).abs() < 1e-12);
        assert!((trapezoid(&curve(&[])) - 0.5).abs() < 1e-12, "the chance diagonal");
    }
}
