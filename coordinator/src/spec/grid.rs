//! The `[grid]` table: dotted paths to lists of values, expanded as their product.

use allsweep_config::lines::{line_of, line_of_entry};
use allsweep_config::params::describe;
use allsweep_config::trial::ConfigError;
use toml::{Table, Value};

/// One axis of the grid: a dotted path (`loss.omega`, or `loss` for whole tables) and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct GridAxis {
    pub key: String,
    pub values: Vec<Value>,
}

const SECTIONS: [&str; 4] = ["dataset", "model", "train", "loss"];

/// Reads and checks the axes.
pub fn axes(source: &str, grid: Option<&Value>) -> Result<Vec<GridAxis>, ConfigError> {
    let fail = |key: &str, message: String| ConfigError {
        key: format!("grid.\"{key}\""),
        line: line_of(source, &format!("grid.{key}")),
        message,
    };
    let table = match grid {
        None => return Ok(Vec::new()),
        Some(Value::Table(t)) => t,
        Some(other) => {
            return Err(ConfigError {
                key: "grid".into(),
                line: line_of(source, "grid"),
                message: format!("expected a table of dotted keys to lists, found {}", describe(other)),
            })
        }
    };
    let mut axes = Vec::new();
    for (key, value) in flatten(table) {
        let section = key.split('.').next().unwrap_or_default();
        if !SECTIONS.contains(&section) {
            return Err(fail(&key, format!("a grid key is a dotted path into one of {}", SECTIONS.join(", "))));
        }
        match value {
            Value::Array(values) if values.is_empty() => {
                return Err(fail(&key, "empty list; give at least one value".into()))
            }
            Value::Array(values) => axes.push(GridAxis { key, values }),
            other => return Err(fail(&key, format!("expected a list of values, found {}", describe(&other)))),
        }
    }
    Ok(axes)
}

/// `"loss.omega" = [...]` and `[grid.loss] omega = [...]` mean the same: flatten nested
/// tables into dotted keys (a table whose values are lists is a nesting, not a value).
fn flatten(table: &Table) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (key, value) in table {
        match value {
            Value::Table(inner) => {
                for (sub, v) in flatten(inner) {
                    out.push((format!("{key}.{sub}"), v));
                }
            }
            other => out.push((key.clone(), other.clone())),
        }
    }
    out
}

/// One grid point: each axis's key and the value it takes there, first axis first.
pub type Point<'a> = Vec<(&'a str, &'a Value)>;

/// Every combination of axis values, first axis slowest (the last axis counts fastest), one
/// point at a time. A point borrows its keys and values from the axes, so a grid of P points
/// over N axes costs P x N, however the axes are shaped.
pub fn points(axes: &[GridAxis]) -> Points<'_> {
    Points { axes, entries: Some(vec![0; axes.len()]) }
}

/// The iterator of [`points`]: an odometer over the axes' entries.
pub struct Points<'a> {
    axes: &'a [GridAxis],
    /// The entry of each axis for the next point; `None` once every point was given.
    entries: Option<Vec<usize>>,
}

impl<'a> Iterator for Points<'a> {
    type Item = Point<'a>;

    fn next(&mut self) -> Option<Point<'a>> {
        let entries = self.entries.as_mut()?;
        let point =
            self.axes.iter().zip(entries.iter()).map(|(axis, &e)| (axis.key.as_str(), &axis.values[e])).collect();
        // Advance the last axis, carrying into earlier ones; past the first axis's end, stop.
        let mut carried_out = true;
        for (slot, axis) in entries.iter_mut().zip(self.axes).rev() {
            *slot += 1;
            if *slot < axis.values.len() {
                carried_out = false;
                break;
            }
            *slot = 0;
        }
        if carried_out {
            self.entries = None;
        }
        Some(point)
    }
}

/// The trial sections with a grid point's values written in (a whole-table value replaces
/// the table at its path).
pub fn apply(base: &Table, point: &[(&str, &Value)]) -> Table {
    let mut table = base.clone();
    for &(key, value) in point {
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        let mut cursor = &mut table;
        for part in parts {
            let entry = cursor.entry(part.to_string()).or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            cursor = match entry {
                Value::Table(t) => t,
                _ => unreachable!("made a table just above"),
            };
        }
        cursor.insert(last.to_string(), value.clone());
    }
    table
}

/// A short human label: `loss.kind=all loss.gamma=0.2 seed=1`.
pub fn label(point: &[(&str, &Value)], seed: u64) -> String {
    let mut parts: Vec<String> = point.iter().map(|(k, v)| format!("{k}={}", short(v))).collect();
    parts.push(format!("seed={seed}"));
    parts.join(" ")
}

fn short(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Table(t) => {
            let inner: Vec<String> = t.iter().map(|(k, v)| format!("{k}={}", short(v))).collect();
            format!("{{{}}}", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// The entry of each axis that point number `index` of [`points`] takes.
fn entries(axes: &[GridAxis], mut index: usize) -> Vec<usize> {
    let mut entries = vec![0; axes.len()];
    for (slot, axis) in entries.iter_mut().zip(axes).rev() {
        *slot = index % axis.values.len();
        index /= axis.values.len();
    }
    entries
}

/// The error for points `earlier` and `later` (indices into [`points`]) that resolve to the
/// same trial config: each named by the entries where they differ, with their lines.
pub fn collision(source: &str, axes: &[GridAxis], earlier: usize, later: usize) -> ConfigError {
    let (a, b) = (entries(axes, earlier), entries(axes, later));
    let differing: Vec<usize> = (0..axes.len()).filter(|&i| a[i] != b[i]).collect();
    let line = |axis: &GridAxis, entry: usize| line_of_entry(source, &format!("grid.{}", axis.key), entry);
    let describe = |point: &[usize]| {
        differing
            .iter()
            .map(|&i| {
                let (axis, entry) = (&axes[i], point[i]);
                let at = line(axis, entry).map(|l| format!(" (line {l})")).unwrap_or_default();
                format!("{} = {}{at}", axis.key, axis.values[entry])
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let first = differing.first().map(|&i| &axes[i]);
    ConfigError {
        key: first.map(|axis| format!("grid.\"{}\"", axis.key)).unwrap_or_else(|| "grid".into()),
        line: first.and_then(|axis| line(axis, b[differing[0]])),
        message: format!(
            "{} and {} resolve to the same trial config (a default written out, or one number written two \
             ways); keep one of them",
            describe(&a),
            describe(&b)
        ),
    }
}
