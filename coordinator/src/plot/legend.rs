//! Headings and legends laid out in strips of their own, outside the plotting area, so they
//! never hide a curve whatever the data look like, and long config labels wrap onto
//! further rows instead of running off the image.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use super::canvas::{DrawError, FONT, LEGEND_SIZE, REFERENCE, TITLE_SIZE};

/// How a legend entry's sample is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Glyph {
    Line,
    Dashed,
    /// A line over a shaded band.
    Band,
}

/// One legend entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub label: String,
    pub color: RGBColor,
    pub glyph: Glyph,
}

impl Entry {
    pub fn new(label: impl Into<String>, color: RGBColor, glyph: Glyph) -> Self {
        Self { label: label.into(), color, glyph }
    }

    /// A dashed grey reference line (identity, chance).
    pub fn reference(label: impl Into<String>) -> Self {
        Self::new(label, REFERENCE, Glyph::Dashed)
    }
}

const SAMPLE: i32 = 34;
const GAP: i32 = 8;
const SPACING: i32 = 28;
const MARGIN: i32 = 16;

fn text_style() -> TextStyle<'static> {
    (FONT, LEGEND_SIZE).into_font().color(&BLACK)
}

fn row_height() -> i32 {
    LEGEND_SIZE as i32 + 10
}

/// The rows of entries (indices) that fit in `width`, left to right.
fn rows<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
) -> Result<Vec<Vec<(usize, i32)>>, DrawError<DB>> {
    let width = area.dim_in_pixel().0 as i32 - 2 * MARGIN;
    let mut rows: Vec<Vec<(usize, i32)>> = vec![Vec::new()];
    let mut used = 0;
    for (i, entry) in entries.iter().enumerate() {
        let text = area.estimate_text_size(&entry.label, &text_style())?.0 as i32;
        let w = SAMPLE + GAP + text;
        if used > 0 && used + SPACING + w > width {
            rows.push(Vec::new());
            used = 0;
        }
        used += if used > 0 { SPACING + w } else { w };
        if let Some(row) = rows.last_mut() {
            row.push((i, w));
        }
    }
    Ok(rows)
}

/// Splits a legend strip off the bottom of `area`, draws `entries` in it (centred rows) and
/// returns the area above.
pub fn bottom<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
) -> Result<DrawingArea<DB, Shift>, DrawError<DB>> {
    let rows = rows(area, entries)?;
    let (width, height) = area.dim_in_pixel();
    let strip = rows.len() as i32 * row_height() + 12;
    let (upper, lower) = area.split_vertically(height as i32 - strip);
    for (r, row) in rows.iter().enumerate() {
        let total: i32 = row.iter().map(|(_, w)| w).sum::<i32>() + SPACING * (row.len() as i32 - 1);
        let mut x = (width as i32 - total) / 2;
        let y = 6 + r as i32 * row_height() + row_height() / 2;
        for &(i, w) in row {
            sample(&lower, &entries[i], x, y)?;
            let style = text_style().pos(Pos::new(HPos::Left, VPos::Center));
            lower.draw_text(&entries[i].label, &style, (x + SAMPLE + GAP, y))?;
            x += w + SPACING;
        }
    }
    Ok(upper)
}

fn sample<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entry: &Entry,
    x: i32,
    y: i32,
) -> Result<(), DrawError<DB>> {
    let line = entry.color.stroke_width(3);
    match entry.glyph {
        Glyph::Line => area.draw(&PathElement::new(vec![(x, y), (x + SAMPLE, y)], line)),
        Glyph::Dashed => {
            let thin = entry.color.stroke_width(2);
            for start in (0..SAMPLE).step_by(12) {
                area.draw(&PathElement::new(vec![(x + start, y), (x + (start + 7).min(SAMPLE), y)], thin))?;
            }
            Ok(())
        }
        Glyph::Band => {
            area.draw(&Rectangle::new([(x, y - 7), (x + SAMPLE, y + 7)], entry.color.mix(0.2).filled()))?;
            area.draw(&PathElement::new(vec![(x, y), (x + SAMPLE, y)], line))
        }
    }
}

/// Draws a bold title and, below it, a smaller subtitle (either shrunk until it fits the
/// width), and returns the area below them.
pub fn heading<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
) -> Result<DrawingArea<DB, Shift>, DrawError<DB>> {
    let width = area.dim_in_pixel().0.saturating_sub(2 * MARGIN as u32);
    let mut top = 10;
    for (text, size, style) in [(title, TITLE_SIZE, FontStyle::Bold), (subtitle, LEGEND_SIZE + 1, FontStyle::Normal)] {
        if text.is_empty() {
            continue;
        }
        let mut size = size;
        let mut font = (FONT, size, style).into_font().color(&BLACK);
        while size > 9 && area.estimate_text_size(text, &font)?.0 > width {
            size -= 1;
            font = (FONT, size, style).into_font().color(&BLACK);
        }
        let font = font.pos(Pos::new(HPos::Center, VPos::Top));
        area.draw_text(text, &font, (area.dim_in_pixel().0 as i32 / 2, top))?;
        top += size as i32 + 8;
    }
    Ok(area.split_vertically(top + 4).1)
}
