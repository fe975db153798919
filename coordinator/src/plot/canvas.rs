//! Drawing a [`Figure`] to a PNG or SVG file: the format from the extension, the embedded
//! DejaVu fonts (so text renders on a machine without system fonts), one palette and text
//! sizes shared by every figure, and the write-beside-then-rename that keeps a failed draw
//! from leaving half a file where the figure should be.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::PlotError;

/// The family every text style names; registered with the embedded DejaVu Sans.
pub const FONT: &str = "sans-serif";
/// Text sizes in pixels.
pub const TITLE_SIZE: u32 = 22;
pub const LABEL_SIZE: u32 = 17;
pub const TICK_SIZE: u32 = 14;
pub const LEGEND_SIZE: u32 = 14;

/// Tableau 10: distinguishable, and still tellable apart by most colour-blind readers.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of the `i`-th series.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The stroke width of series `i` of `n`: the last is drawn thinner than the others, so a
/// curve that it covers exactly (two losses that trained identically) still shows at its edges.
pub fn line_width(i: usize, n: usize) -> u32 {
    if i + 1 < n {
        5
    } else {
        3
    }
}

/// The grey of reference lines (identity, chance).
pub const REFERENCE: RGBColor = RGBColor(90, 90, 90);

/// An image format, chosen by the output file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    /// The format of `path` (`.png` or `.svg`, any case); anything else is an error naming it.
    pub fn of(path: &Path) -> Result<Self, PlotError> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => Err(PlotError::Format(path.to_path_buf())),
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }
}

/// A figure that can draw itself on any plotters backend.
pub trait Figure {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError<DB>>;
}

/// A drawing error of backend `DB`.
pub type DrawError<DB> = DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>;

/// Draws `figure` to `path` (format from its extension), creating the folder if needed.
/// The figure goes to a hidden file beside `path` first and is renamed into place.
pub fn render<F: Figure>(figure: &F, path: &Path) -> Result<(), PlotError> {
    let format = Format::of(path)?;
    register_fonts()?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|source| PlotError::Io { path: dir.clone(), source })?;
    let name = path.file_name().map_or_else(|| "figure".into(), |n| n.to_string_lossy().into_owned());
    // The bitmap encoder picks the format by extension, so the temporary file keeps one.
    let temp = dir.join(format!(".{name}.{}.tmp.{}", std::process::id(), format.extension()));
    let drawn = match format {
        Format::Png => draw_png(figure, &temp),
        Format::Svg => draw_svg(figure, &temp),
    };
    let result = drawn.map_err(|message| PlotError::Draw { path: path.to_path_buf(), message }).and_then(|()| {
        std::fs::rename(&temp, path).map_err(|source| PlotError::Io { path: path.to_path_buf(), source })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn draw_png<F: Figure>(figure: &F, temp: &Path) -> Result<(), String> {
    let root = BitMapBackend::new(temp, figure.size()).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    figure.draw(&root).map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn draw_svg<F: Figure>(figure: &F, temp: &Path) -> Result<(), String> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, figure.size()).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        figure.draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    std::fs::write(temp, text).map_err(|e| format!("{}: {e}", temp.display()))
}

/// Registers the embedded DejaVu Sans (regular and bold) as [`FONT`], once per process.
pub fn register_fonts() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Invalid("the embedded DejaVu fonts could not be loaded".into()))
    }
}

/// The style of figure titles.
pub fn title_style() -> TextStyle<'static> {
    (FONT, TITLE_SIZE, FontStyle::Bold).into_font().color(&BLACK)
}

/// A tick label without trailing zeros: 20, 2.5, 0.25.
pub fn tick(v: &f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A range padded by `fraction` of its span on both sides (a flat range gets +-`flat`).
pub fn padded(low: f64, high: f64, fraction: f64, flat: f64) -> (f64, f64) {
    let span = high - low;
    if !span.is_finite() || span <= f64::EPSILON {
        (low - flat, high + flat)
    } else {
        (low - fraction * span, high + fraction * span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::of(Path::new("a/fig.PNG")).ok(), Some(Format::Png));
        assert_eq!(Format::of(Path::new("fig.svg")).ok(), Some(Format::Svg));
        let err = Format::of(Path::new("out/fig.jpg")).expect_err("jpg is refused").to_string();
        assert!(err.contains("out/fig.jpg") && err.contains(".png or .svg"), "{err}");
        assert!(Format::of(Path::new("fig")).is_err());
    }

    #[test]
    fn ticks_drop_trailing_zeros() {
        assert_eq!([tick(&20.0), tick(&2.5), tick(&0.25), tick(&0.0)], ["20", "2.5", "0.25", "0"]);
    }

    #[test]
    fn padding_widens_and_flat_ranges_open_up() {
        assert_eq!(padded(0.0, 10.0, 0.1, 1.0), (-1.0, 11.0));
        assert_eq!(padded(5.0, 5.0, 0.1, 1.0), (4.0, 6.0));
    }
}
