//! Writing a report as a text table, Markdown, CSV or JSON.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use super::stats::Paired;
use super::{Cell, Report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Csv,
    Json,
}

pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => table(report),
        Format::Markdown => markdown(report),
        Format::Csv => csv(report),
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
    }
}

/// `82.43 ± 0.51`, or `82.43` without a standard deviation (one seed).
pub fn mean_sd_text(mean: f64, sd: Option<f64>, digits: usize) -> String {
    match sd {
        Some(sd) => format!("{mean:.digits$} ± {sd:.digits$}"),
        None => format!("{mean:.digits$}"),
    }
}

/// `+11.00 [+8.52, +13.48] p=0.0021`.
pub fn paired_text(p: &Paired, digits: usize) -> String {
    let mut text = format!("{:+.digits$}", p.mean_difference);
    if let Some((low, high)) = p.ci95 {
        text += &format!(" [{low:+.digits$}, {high:+.digits$}]");
    }
    match p.p {
        Some(pv) => text += &format!(" p={}", format_p(pv)),
        None => text += &format!(" (n={}: no test)", p.n),
    }
    text
}

fn format_p(p: f64) -> String {
    if p < 1e-4 {
        "<0.0001".into()
    } else {
        format!("{p:.4}")
    }
}

fn cell_text(cell: &Cell, digits: usize, best_mark: (&str, &str)) -> String {
    match cell {
        Cell::Text(t) => t.clone(),
        Cell::Count(n) => n.to_string(),
        Cell::Stat(s) => {
            let body = mean_sd_text(s.mean, s.sd, digits);
            if s.best {
                format!("{}{body}{}", best_mark.0, best_mark.1)
            } else {
                body
            }
        }
        Cell::Paired(p) => paired_text(p, digits),
        Cell::Empty => "-".into(),
    }
}

fn texts(report: &Report, best_mark: (&str, &str)) -> Vec<Vec<String>> {
    report
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(i, c)| cell_text(c, report.digits.get(i).copied().unwrap_or(2), best_mark))
                .collect()
        })
        .collect()
}

fn table(report: &Report) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(report.columns.clone());
    for row in texts(report, ("", " *")) {
        t.add_row(row);
    }
    let mut out = format!("{}\n{t}\n", report.title);
    for note in &report.notes {
        out += &format!("  {note}\n");
    }
    out
}

fn markdown(report: &Report) -> String {
    let escape = |s: &str| s.replace('|', "\\|");
    let mut out = format!(
        "**{}**\n\n| {} |\n|{}|\n",
        report.title,
        report.columns.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" | "),
        vec!["---"; report.columns.len()].join("|")
    );
    for row in texts(report, ("**", "**")) {
        out += &format!("| {} |\n", row.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" | "));
    }
    if !report.notes.is_empty() {
        out += "\n";
        for note in &report.notes {
            out += &format!("- {note}\n");
        }
    }
    out
}

/// The kind of a column: its first statistic or comparison cell, else its first cell.
fn column_kind(report: &Report, column: usize) -> Option<&Cell> {
    let cells = || report.rows.iter().map(move |r| &r[column]);
    cells().find(|c| matches!(c, Cell::Stat(_) | Cell::Paired(_))).or_else(|| cells().next())
}

/// One header row; a statistic spreads over `mean`, `sd`, `n` columns, a comparison over
/// `difference`, `ci_low`, `ci_high`, `p`: numbers only, for spreadsheets and notebooks.
fn csv(report: &Report) -> String {
    let quote =
        |s: &str| if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() };
    let number = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    let mut header = Vec::new();
    for (i, name) in report.columns.iter().enumerate() {
        match column_kind(report, i) {
            Some(Cell::Stat(_)) => header.extend([format!("{name} mean"), format!("{name} sd"), format!("{name} n")]),
            Some(Cell::Paired(_)) => {
                header.extend([format!("{name} difference"), "ci_low".into(), "ci_high".into(), "p".into()])
            }
            _ => header.push(name.clone()),
        }
    }
    let mut out = header.iter().map(|h| quote(h)).collect::<Vec<_>>().join(",") + "\n";
    for row in &report.rows {
        let mut fields = Vec::new();
        for (i, cell) in row.iter().enumerate() {
            let kind = column_kind(report, i);
            match (cell, kind) {
                (Cell::Stat(s), _) => fields.extend([number(Some(s.mean)), number(s.sd), s.n.to_string()]),
                (Cell::Paired(p), _) => fields.extend([
                    number(Some(p.mean_difference)),
                    number(p.ci95.map(|c| c.0)),
                    number(p.ci95.map(|c| c.1)),
                    number(p.p),
                ]),
                (Cell::Empty | Cell::Text(_), Some(Cell::Stat(_))) => {
                    fields.extend([String::new(), String::new(), String::new()])
                }
                (Cell::Empty | Cell::Text(_), Some(Cell::Paired(_))) => {
                    let marker = if let Cell::Text(t) = cell { t.clone() } else { String::new() };
                    fields.extend([marker, String::new(), String::new(), String::new()])
                }
                (Cell::Text(t), _) => fields.push(quote(t)),
                (Cell::Count(n), _) => fields.push(n.to_string()),
                (Cell::Empty, _) => fields.push(String::new()),
            }
        }
        out += &(fields.join(",") + "\n");
    }
    out
}
