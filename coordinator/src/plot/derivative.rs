//! Figure 1: the Adaptive Logarithmic Loss against the Dice loss it wraps, for one or more
//! parameter sets. Panel (a) shows ALL(DL) beside DL itself; panel (b) the slopes, where the
//! paper's point shows: below gamma ALL passes back omega / (epsilon + DL) (20 at DL = 0 with
//! the defaults) instead of the Dice loss's 1, and the slope jumps to 1 at gamma.
//!
//! The values come from [`AdaptiveLog::value`] and [`AdaptiveLog::derivative`], the same
//! definitions the configs validate, so the figure cannot drift from the loss.

use allsweep_config::AdaptiveLog;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::{color, line_width, tick, DrawError, Figure, FONT, LABEL_SIZE, REFERENCE, TICK_SIZE};
use super::legend::{self, Entry, Glyph};
use super::PlotError;

/// Curves at most, so that colours and gamma marks stay readable.
pub const MAX_CURVES: usize = 8;
/// Samples of the log branch, on [0, gamma].
const SAMPLES: usize = 60;

/// Figure 1, ready to draw.
#[derive(Debug, Clone)]
pub struct DerivativeFigure {
    pub curves: Vec<AdaptiveLog>,
    /// One legend label per curve: the parameters that vary between curves.
    pub labels: Vec<String>,
    pub title: String,
    pub subtitle: String,
}

/// Every combination of the given gammas, omegas and epsilons, validated as a config's
/// `loss` would be (gamma in (0, 1], omega > 0, epsilon > 0).
pub fn figure(
    gammas: &[f64],
    omegas: &[f64],
    epsilons: &[f64],
    title: Option<String>,
) -> Result<DerivativeFigure, PlotError> {
    check("--gamma", gammas, |v| v > 0.0 && v <= 1.0, "in (0, 1]")?;
    check("--omega", omegas, |v| v > 0.0, "> 0")?;
    check("--epsilon", epsilons, |v| v > 0.0, "> 0")?;
    let mut curves = Vec::new();
    for &gamma in gammas {
        for &omega in omegas {
            for &epsilon in epsilons {
                curves.push(AdaptiveLog { gamma, omega, epsilon });
            }
        }
    }
    if curves.len() > MAX_CURVES {
        return Err(PlotError::Invalid(format!(
            "{} parameter combinations; draw at most {MAX_CURVES} at once (fewer --gamma/--omega/--epsilon values)",
            curves.len()
        )));
    }
    let names = [("γ", gammas.len() > 1), ("ω", omegas.len() > 1), ("ε", epsilons.len() > 1)];
    let values = |p: &AdaptiveLog| [p.gamma, p.omega, p.epsilon];
    let list = |p: &AdaptiveLog, varying: bool| -> Vec<String> {
        names
            .iter()
            .zip(values(p))
            .filter(|((_, v), _)| *v == varying)
            .map(|((n, _), x)| format!("{n} = {x}"))
            .collect()
    };
    let labels = if curves.len() == 1 {
        vec![format!("ALL ({})", list(&curves[0], false).join(", "))]
    } else {
        curves.iter().map(|p| format!("ALL, {}", list(p, true).join(", "))).collect()
    };
    let fixed = if curves.len() == 1 { Vec::new() } else { list(&curves[0], false) };
    let rule = "dotted lines mark γ: below it ALL = ω·ln(1 + DL/ε), above it DL − C, meeting at γ";
    let subtitle = if fixed.is_empty() { rule.to_string() } else { format!("{}; {rule}", fixed.join(", ")) };
    let title = title.unwrap_or_else(|| "Fig. 1: the Adaptive Logarithmic Loss against the Dice loss".into());
    Ok(DerivativeFigure { curves, labels, title, subtitle })
}

fn check(flag: &str, values: &[f64], ok: impl Fn(f64) -> bool, rule: &str) -> Result<(), PlotError> {
    if values.is_empty() {
        return Err(PlotError::Invalid(format!("{flag}: give at least one value")));
    }
    match values.iter().find(|v| !(v.is_finite() && ok(**v))) {
        Some(bad) => Err(PlotError::Invalid(format!("{flag} must be {rule}, got {bad}"))),
        None => Ok(()),
    }
}

/// ALL(DL) for DL in [0, 1]: the log branch sampled finely up to gamma, then the straight
/// branch (few long segments draw smoother than many short ones).
pub fn value_curve(p: &AdaptiveLog) -> Vec<(f64, f64)> {
    let mut xs: Vec<f64> = (0..=SAMPLES).map(|i| p.gamma * i as f64 / SAMPLES as f64).collect();
    xs.push(1.0);
    xs.into_iter().map(|x| (x, p.value(x))).collect()
}

/// dALL/dDL on [0, gamma) (ending at its limit at gamma) and on [gamma, 1]: two pieces,
/// since the slope jumps at gamma.
pub fn derivative_pieces(p: &AdaptiveLog) -> [Vec<(f64, f64)>; 2] {
    let below_gamma = p.gamma * (1.0 - 1e-9);
    let mut below: Vec<(f64, f64)> =
        (0..SAMPLES).map(|i| p.gamma * i as f64 / SAMPLES as f64).map(|x| (x, p.derivative(x))).collect();
    below.push((p.gamma, p.derivative(below_gamma)));
    let above = vec![(p.gamma, p.derivative(p.gamma)), (1.0, p.derivative(1.0))];
    [below, above]
}

impl Figure for DerivativeFigure {
    fn size(&self) -> (u32, u32) {
        (1200, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError<DB>> {
        let area = legend::heading(root, &self.title, &self.subtitle)?;
        let mut entries: Vec<Entry> =
            self.labels.iter().enumerate().map(|(i, l)| Entry::new(l.clone(), color(i), Glyph::Line)).collect();
        entries.push(Entry::reference("Dice loss DL (identity: value DL, slope 1)"));
        let area = legend::bottom(&area, &entries)?;
        let (left, right) = area.split_horizontally(area.dim_in_pixel().0 / 2);
        self.value_panel(&left)?;
        self.slope_panel(&right)
    }
}

impl DerivativeFigure {
    fn value_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), DrawError<DB>> {
        let top = self.curves.iter().map(|p| p.value(1.0)).fold(1.0, f64::max) * 1.08;
        let mut chart = panel(area, "(a) Loss value", top)?;
        mesh(&mut chart, "ALL(DL) and DL")?;
        for (i, p) in self.curves.iter().enumerate() {
            chart.draw_series(LineSeries::new(
                value_curve(p),
                color(i).stroke_width(line_width(i, self.curves.len())),
            ))?;
        }
        chart.draw_series(DashedLineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], 8, 6, REFERENCE.stroke_width(2)))?;
        self.mark_gammas(&mut chart, top, 0.97)
    }

    fn slope_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), DrawError<DB>> {
        let top = self.curves.iter().map(|p| p.derivative(0.0)).fold(1.0, f64::max) * 1.08;
        let mut chart = panel(area, "(b) Derivative: the factor ALL puts on DL's gradient", top)?;
        mesh(&mut chart, "dALL/dDL (slope)")?;
        for (i, p) in self.curves.iter().enumerate() {
            for piece in derivative_pieces(p) {
                chart.draw_series(LineSeries::new(piece, color(i).stroke_width(line_width(i, self.curves.len()))))?;
            }
        }
        chart.draw_series(DashedLineSeries::new(vec![(0.0, 1.0), (1.0, 1.0)], 8, 6, REFERENCE.stroke_width(2)))?;
        self.mark_gammas(&mut chart, top, 0.5)
    }

    /// A dotted vertical line at each gamma, labelled to its right, the largest gamma at
    /// `from` (a fraction of the height) and each smaller one a row lower. The curves rise
    /// (a) or fall (b) past gamma, so these places are free: (a) from the top, since the
    /// curves stay below the top left; (b) from mid-height, between the slopes and 1.
    fn mark_gammas<DB: DrawingBackend>(
        &self,
        chart: &mut Chart<'_, DB>,
        top: f64,
        from: f64,
    ) -> Result<(), DrawError<DB>> {
        let mut order: Vec<(usize, &AdaptiveLog)> = self.curves.iter().enumerate().collect();
        order.sort_by(|a, b| b.1.gamma.total_cmp(&a.1.gamma));
        order.dedup_by(|a, b| a.1.gamma == b.1.gamma);
        for &(i, p) in &order {
            let line = vec![(p.gamma, 0.0), (p.gamma, top)];
            chart.draw_series(DashedLineSeries::new(line, 3, 4, color(i).stroke_width(2)))?;
        }
        // Labels over every line, each on a pale box so that a neighbouring line stays behind it.
        for (row, &(i, p)) in order.iter().enumerate() {
            let text = format!("γ = {}", p.gamma);
            let style = (FONT, TICK_SIZE + 1).into_font().color(&color(i));
            let (w, h) = chart.plotting_area().estimate_text_size(&text, &style)?;
            let at = (p.gamma + 0.012, top * (from - 0.065 * row as f64));
            let label = EmptyElement::at(at)
                + Rectangle::new([(-3, -2), (w as i32 + 3, h as i32 + 3)], WHITE.mix(0.85).filled())
                + Text::new(text, (0, 0), style);
            chart.draw_series(std::iter::once(label))?;
        }
        Ok(())
    }
}

type Chart<'a, DB> =
    ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>>;

fn panel<'a, DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    top: f64,
) -> Result<Chart<'a, DB>, DrawError<DB>> {
    ChartBuilder::on(area)
        .caption(caption, (FONT, LABEL_SIZE))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..1.0, 0.0..top)
}

fn mesh<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, y: &str) -> Result<(), DrawError<DB>> {
    chart
        .configure_mesh()
        .x_desc("Dice loss DL (1 − Dice index)")
        .y_desc(y)
        .x_labels(11)
        .y_labels(8)
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&tick)
        .label_style((FONT, TICK_SIZE))
        .axis_desc_style((FONT, LABEL_SIZE))
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.12))
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_match_the_reference_notes() {
        let f = figure(&[0.1], &[10.0], &[0.5], None).expect("defaults are valid");
        assert_eq!(f.labels, ["ALL (γ = 0.1, ω = 10, ε = 0.5)"]);
        let p = f.curves[0];
        let [below, above] = derivative_pieces(&p);
        assert!((below[0].1 - 20.0).abs() < 1e-9, "slope 20 at DL = 0");
        assert!((below.last().map_or(0.0, |b| b.1) - 10.0 / 0.6).abs() < 1e-6, "16.67 just below gamma");
        assert_eq!(above, vec![(0.1, 1.0), (1.0, 1.0)]);
        let at_gamma = value_curve(&p).into_iter().find(|(x, _)| (x - 0.1).abs() < 1e-12).map(|(_, y)| y);
        assert!((at_gamma.unwrap_or(0.0) - 1.82322).abs() < 1e-4);
    }

    #[test]
    fn several_gammas_label_what_varies_and_bad_values_name_the_flag() {
        let f = figure(&[0.1, 0.3], &[10.0], &[0.5], None).expect("valid");
        assert_eq!(f.labels, ["ALL, γ = 0.1", "ALL, γ = 0.3"]);
        assert!(f.subtitle.starts_with("ω = 10, ε = 0.5"), "{}", f.subtitle);
        let err = figure(&[1.5], &[10.0], &[0.5], None).expect_err("gamma > 1").to_string();
        assert_eq!(err, "--gamma must be in (0, 1], got 1.5");
        assert!(figure(&[0.1], &[10.0], &[0.0], None).is_err());
        let many: Vec<f64> = (1..=9).map(|i| i as f64 / 10.0).collect();
        assert!(figure(&many, &[10.0], &[0.5], None).is_err());
    }
}
