//! Typed, validated reading of a config table (`[loss]`, `[model]`, a `--param` list).
//!
//! Every config value a user writes passes through here, so every mistake is reported the
//! same way: the dotted key at fault (`loss.epsilon`), what was expected and what was found.
//! Keys nobody read are reported as unknown, with the accepted ones listed.

use std::collections::BTreeSet;
use std::fmt;

use toml::{Table, Value};

/// A config value that was missing, mistyped, out of range or not recognised.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ParamError {
    /// Dotted path of the offending key, e.g. `loss.base.alpha`.
    pub key: String,
    /// What was wrong and what is accepted.
    pub message: String,
}

/// Reads keys of one table, remembering which ones were consumed.
pub struct ParamReader<'a> {
    table: &'a Table,
    prefix: String,
    read: BTreeSet<String>,
}

impl<'a> ParamReader<'a> {
    /// `prefix` is the dotted path of the table itself (`loss`), used in error messages.
    pub fn new(table: &'a Table, prefix: impl Into<String>) -> Self {
        Self { table, prefix: prefix.into(), read: BTreeSet::new() }
    }

    /// The dotted path of `key` inside this table.
    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// An error about `key` of this table.
    pub fn error(&self, key: &str, message: impl fmt::Display) -> ParamError {
        ParamError { key: self.path(key), message: message.to_string() }
    }

    fn take(&mut self, key: &str) -> Option<&'a Value> {
        self.read.insert(key.to_string());
        self.table.get(key)
    }

    /// A number (integer or float) with a default, checked by `valid`, whose text says
    /// what is accepted (`"> 0"`).
    pub fn number(
        &mut self,
        key: &str,
        default: f64,
        valid: impl Fn(f64) -> bool,
        accepted: &str,
    ) -> Result<f64, ParamError> {
        let value = match self.take(key) {
            None => default,
            Some(Value::Float(v)) => *v,
            Some(Value::Integer(v)) => *v as f64,
            Some(other) => return Err(self.error(key, format!("expected a number, found {}", describe(other)))),
        };
        if !value.is_finite() || !valid(value) {
            return Err(self.error(key, format!("must be {accepted}, got {value}")));
        }
        Ok(value)
    }

    /// A positive integer with a default.
    pub fn positive_integer(&mut self, key: &str, default: i64) -> Result<i64, ParamError> {
        match self.take(key) {
            None => Ok(default),
            Some(Value::Integer(v)) if *v > 0 => Ok(*v),
            Some(Value::Integer(v)) => Err(self.error(key, format!("must be a positive integer, got {v}"))),
            Some(other) => Err(self.error(key, format!("expected an integer, found {}", describe(other)))),
        }
    }

    /// One of a fixed set of strings, with a default.
    pub fn choice<'c>(&mut self, key: &str, default: &'c str, choices: &[&'c str]) -> Result<&'c str, ParamError> {
        match self.take(key) {
            None => Ok(default),
            Some(Value::String(s)) => {
                choices.iter().find(|c| **c == s.as_str()).copied().ok_or_else(|| {
                    self.error(key, format!("unknown value {s:?}; expected one of {}", choices.join(", ")))
                })
            }
            Some(other) => Err(self.error(key, format!("expected a string, found {}", describe(other)))),
        }
    }

    /// A raw value, for keys whose type decides their meaning (a loss `base` given as a
    /// name or as a table).
    pub fn raw(&mut self, key: &str) -> Option<&'a Value> {
        self.take(key)
    }

    /// Fails on the first key that no reader asked for, listing those that were.
    pub fn finish(self) -> Result<(), ParamError> {
        match self.table.keys().find(|k| !self.read.contains(*k)) {
            None => Ok(()),
            Some(unknown) => {
                let known: Vec<&str> = self.read.iter().map(String::as_str).collect();
                Err(self.error(unknown, format!("unknown key; accepted here: {}", known.join(", "))))
            }
        }
    }
}

/// A short description of a TOML value's type for error messages.
pub fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("the string {s:?}"),
        Value::Integer(i) => format!("the integer {i}"),
        Value::Float(f) => format!("the number {f}"),
        Value::Boolean(b) => format!("the boolean {b}"),
        Value::Datetime(d) => format!("the date {d}"),
        Value::Array(_) => "a list".to_string(),
        Value::Table(_) => "a table".to_string(),
    }
}

/// Builds a table from `NAME=VALUE` assignments (the CLI's `--param`). Values are read as
/// TOML (`0.5`, `"dice"`, `[1, 2]`); a bare word is taken as a string; dotted names
/// (`base.alpha=0.6`) make nested tables.
pub fn table_from_assignments<S: AsRef<str>>(assignments: &[S]) -> Result<Table, ParamError> {
    let mut root = Table::new();
    for assignment in assignments {
        let assignment = assignment.as_ref();
        let (name, text) = assignment
            .split_once('=')
            .ok_or_else(|| ParamError { key: assignment.to_string(), message: "expected NAME=VALUE".to_string() })?;
        let value = parse_value(text.trim());
        insert_dotted(&mut root, name.trim(), value)?;
    }
    Ok(root)
}

fn parse_value(text: &str) -> Value {
    format!("v = {text}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(text.to_string()))
}

fn insert_dotted(root: &mut Table, name: &str, value: Value) -> Result<(), ParamError> {
    let mut parts: Vec<&str> = name.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    let mut table = root;
    for (i, part) in parts.iter().enumerate() {
        let entry = table.entry(part.to_string()).or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(t) => t,
            // `base=tversky` then `base.alpha=0.6`: the name becomes the table's kind.
            Value::String(kind) => {
                let mut t = Table::new();
                t.insert("kind".to_string(), Value::String(kind.clone()));
                *entry = Value::Table(t);
                match entry {
                    Value::Table(t) => t,
                    _ => unreachable!("just made a table"),
                }
            }
            _ => {
                return Err(ParamError {
                    key: parts[..=i].join("."),
                    message: "is a value, cannot also hold sub-keys".to_string(),
                })
            }
        };
    }
    if last.is_empty() {
        return Err(ParamError { key: name.to_string(), message: "empty parameter name".to_string() });
    }
    match (table.get_mut(last), value) {
        // `base.alpha=0.6` then `base=tversky`: keep the table, set its kind.
        (Some(Value::Table(t)), Value::String(kind)) => {
            t.insert("kind".to_string(), Value::String(kind));
        }
        (_, value) => {
            table.insert(last.to_string(), value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_build_nested_tables_and_parse_types() {
        let t = table_from_assignments(&["gamma=0.2", "base=tversky", "base.alpha=0.6", "reduction=image"]).unwrap();
        assert_eq!(t["gamma"].as_float(), Some(0.2));
        assert_eq!(t["reduction"].as_str(), Some("image"));
        assert_eq!(t["base"]["kind"].as_str(), Some("tversky"));
        assert_eq!(t["base"]["alpha"].as_float(), Some(0.6));
    }

    #[test]
    fn unknown_keys_are_named_with_the_accepted_ones() {
        let t: Table = "omega = 1\nomgea = 2".parse().unwrap();
        let mut r = ParamReader::new(&t, "loss");
        r.number("omega", 10.0, |v| v > 0.0, "> 0").unwrap();
        let err = r.finish().unwrap_err();
        assert_eq!(err.key, "loss.omgea");
        assert!(err.message.contains("omega"), "{err}");
    }

    #[test]
    fn wrong_types_and_ranges_name_the_key() {
        let t: Table = "epsilon = \"big\"\nomega = -1".parse().unwrap();
        let mut r = ParamReader::new(&t, "loss");
        let err = r.number("epsilon", 0.5, |v| v > 0.0, "> 0").unwrap_err();
        assert_eq!(err.to_string(), "loss.epsilon: expected a number, found the string \"big\"");
        let err = r.number("omega", 10.0, |v| v > 0.0, "> 0").unwrap_err();
        assert_eq!(err.to_string(), "loss.omega: must be > 0, got -1");
    }
}
