//! The `[grid]` table: dotted paths to lists of values, expanded as their product.

use allsweep_config::params::describe;
use allsweep_config::trial::ConfigError;
use toml::{Table, Value};
use toml_edit::TableLike;

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
        line: line_of_axis(source, key),
        message,
    };
    let table = match grid {
        None => return Ok(Vec::new()),
        Some(Value::Table(t)) => t,
        Some(other) => {
            return Err(ConfigError {
                key: "grid".into(),
                line: allsweep_config::trial::line_of(source, "grid"),
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

/// Every combination of axis values, first axis slowest.
pub fn points(axes: &[GridAxis]) -> Vec<Vec<(String, Value)>> {
    let mut points = vec![Vec::new()];
    for axis in axes {
        let mut next = Vec::with_capacity(points.len() * axis.values.len());
        for point in &points {
            for value in &axis.values {
                let mut p: Vec<(String, Value)> = point.clone();
                p.push((axis.key.clone(), value.clone()));
                next.push(p);
            }
        }
        points = next;
    }
    points
}

/// The trial sections with a grid point's values written in (a whole-table value replaces
/// the table at its path).
pub fn apply(base: &Table, point: &[(String, Value)]) -> Table {
    let mut table = base.clone();
    for (key, value) in point {
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
pub fn label(point: &[(String, Value)], seed: u64) -> String {
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

/// The line of grid key `key` in `source`, whether written `"loss.omega" = ...` or nested.
pub fn line_of_axis(source: &str, key: &str) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(source).ok()?;
    let grid = doc.as_table().get("grid")?.as_table_like()?;
    let span = find(grid, key)?;
    Some(source[..span.start.min(source.len())].matches('\n').count() + 1)
}

fn find(table: &dyn TableLike, key: &str) -> Option<std::ops::Range<usize>> {
    if let Some((k, item)) = table.get_key_value(key) {
        return k.span().or_else(|| item.span());
    }
    let (head, rest) = key.split_once('.')?;
    let (k, item) = table.get_key_value(head)?;
    find(item.as_table_like()?, rest).or_else(|| k.span())
}
