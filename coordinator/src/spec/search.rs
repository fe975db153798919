//! The `[search]` table: how a sweep chooses its configs besides its `[grid]`.
//!
//! ```toml
//! [search]
//! kind = "random"       # "grid" (the default: the [grid] alone) or "random"
//! trials = 20           # random: configs drawn for each grid point
//! seed = 0              # optional: another seed draws another set
//! "train.lr" = { loguniform = [1e-5, 1e-2] }
//! "loss.omega" = { uniform = [2.0, 12.0] }
//! "train.batch_size" = { int = [4, 32] }          # both ends included
//! loss = { choice = [{kind = "dice"}, {kind = "all"}] }   # values or whole tables
//! ```
//!
//! A draw depends only on the sweep's name, the search seed, the grid point it completes,
//! its number and the key: a hash of these (SHA-256, so the same on every machine and in
//! every version, unlike a library generator's streams) gives the uniform number it maps.
//! Resubmitting a spec draws the same configs, so it finds the same sweep and adds nothing.
//! Drawn numbers keep 6 significant digits, which labels can show whole. A draw that gives
//! a config already in the sweep is drawn again (a small discrete space runs out: an error
//! says so).

use allsweep_config::lines::line_of;
use allsweep_config::params::describe;
use allsweep_config::trial::ConfigError;
use sha2::{Digest, Sha256};
use toml::{Table, Value};

const SECTIONS: [&str; 4] = ["dataset", "model", "train", "loss"];
const DISTRIBUTIONS: [&str; 4] = ["uniform", "loguniform", "int", "choice"];
/// The most configs a random search draws per grid point.
pub const MAX_DRAWS_PER_POINT: u32 = 10_000;

/// How a sweep chooses configs.
#[derive(Debug, Clone, PartialEq)]
pub enum Search {
    /// The `[grid]`'s points, each once.
    Grid,
    /// `trials` configs drawn from `space` for each grid point.
    Random { trials: u32, seed: u64, space: Vec<Dimension> },
}

/// One key a random search draws, and from what.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    pub key: String,
    pub distribution: Distribution,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    /// A number in [low, high] (high only by rounding).
    Uniform { low: f64, high: f64 },
    /// A number whose logarithm is uniform in [ln low, ln high].
    LogUniform { low: f64, high: f64 },
    /// A whole number in [low, high], both ends included.
    Int { low: i64, high: i64 },
    /// One of the values, each as likely.
    Choice(Vec<Value>),
}

impl Search {
    /// Configs made from each grid point: 1 for a grid, `trials` for a random search.
    pub fn draws_per_point(&self) -> u32 {
        match self {
            Search::Grid => 1,
            Search::Random { trials, .. } => *trials,
        }
    }

    /// The keys a random search draws.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Search::Grid => Vec::new(),
            Search::Random { space, .. } => space.iter().map(|d| d.key.as_str()).collect(),
        }
    }
}

/// An error at `key` of `[search]`: a dotted path is quoted (`search."train.lr"`), as the
/// spec writes it; `kind`, `trials` and `seed` are not.
fn fail(source: &str, key: &str, message: impl Into<String>) -> ConfigError {
    let dotted = if key.contains('.') { format!("search.\"{key}\"") } else { format!("search.{key}") };
    ConfigError {
        line: line_of(source, &format!("search.{key}")).or_else(|| line_of(source, "search")),
        key: dotted,
        message: message.into(),
    }
}

/// Reads and checks the `[search]` table (`None`: a grid search).
pub fn parse(source: &str, value: Option<&Value>, grid_keys: &[&str]) -> Result<Search, ConfigError> {
    let table = match value {
        None => return Ok(Search::Grid),
        Some(Value::Table(t)) => t,
        Some(other) => {
            return Err(ConfigError {
                key: "search".into(),
                line: line_of(source, "search"),
                message: format!("expected a table, found {}", describe(other)),
            })
        }
    };
    let kind = match table.get("kind") {
        None => "grid",
        Some(Value::String(s)) if s == "grid" || s == "random" => s.as_str(),
        Some(other) => {
            return Err(fail(source, "kind", format!("expected \"grid\" or \"random\", found {}", describe(other))))
        }
    };
    let mut space = Vec::new();
    for (key, value) in dimensions(table) {
        if matches!(key.as_str(), "kind" | "trials" | "seed") || key.starts_with("early_stopping.") {
            continue;
        }
        let section = key.split('.').next().unwrap_or_default();
        if !SECTIONS.contains(&section) {
            return Err(fail(
                source,
                &key,
                format!(
                    "unknown key; [search] takes kind, trials, seed, early_stopping and dotted paths into one of {} \
                     (e.g. \"train.lr\" = {{ loguniform = [1e-5, 1e-2] }})",
                    SECTIONS.join(", ")
                ),
            ));
        }
        if grid_keys.contains(&key.as_str()) {
            return Err(fail(source, &key, "also in [grid]; a key is either listed or drawn"));
        }
        space.push(Dimension { distribution: distribution(source, &key, &value)?, key });
    }
    if kind == "grid" {
        if let Some(extra) = ["trials", "seed"].into_iter().find(|k| table.contains_key(*k)) {
            return Err(fail(source, extra, "a grid search takes no trials or seed; set kind = \"random\""));
        }
        if let Some(d) = space.first() {
            return Err(fail(
                source,
                &d.key,
                "a grid search draws nothing; put lists in [grid], or set kind = \"random\"",
            ));
        }
        return Ok(Search::Grid);
    }
    let trials = match table.get("trials") {
        Some(Value::Integer(n)) if (1..=i64::from(MAX_DRAWS_PER_POINT)).contains(n) => *n as u32,
        Some(other) => {
            return Err(fail(
                source,
                "trials",
                format!("expected a whole number from 1 to {MAX_DRAWS_PER_POINT}, found {}", describe(other)),
            ))
        }
        None => return Err(fail(source, "trials", "missing; a random search needs the number of configs to draw")),
    };
    let seed = match table.get("seed") {
        None => 0,
        Some(Value::Integer(n)) if *n >= 0 => *n as u64,
        Some(other) => {
            return Err(fail(source, "seed", format!("expected a whole number >= 0, found {}", describe(other))))
        }
    };
    if space.is_empty() {
        return Err(fail(
            source,
            "kind",
            "a random search needs at least one key to draw, e.g. \"train.lr\" = { loguniform = [1e-5, 1e-2] }",
        ));
    }
    Ok(Search::Random { trials, seed, space })
}

/// The table's entries as dotted keys: `"train.lr" = {..}` and `[search.train] lr = {..}`
/// mean the same. A table of one key that is not itself a table is a distribution (named
/// rightly or not), any other table a nesting.
fn dimensions(table: &Table) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (key, value) in table {
        match value {
            Value::Table(inner) if !is_distribution(inner) => {
                for (sub, v) in dimensions(inner) {
                    out.push((format!("{key}.{sub}"), v));
                }
            }
            other => out.push((key.clone(), other.clone())),
        }
    }
    out
}

fn is_distribution(table: &Table) -> bool {
    table.len() == 1 && !table.values().any(Value::is_table)
}

fn distribution(source: &str, key: &str, value: &Value) -> Result<Distribution, ConfigError> {
    let expected = "expected one of { uniform = [low, high] }, { loguniform = [low, high] }, \
                    { int = [low, high] } or { choice = [values...] }";
    let Value::Table(table) = value else {
        return Err(fail(source, key, format!("{expected}, found {}", describe(value))));
    };
    let Some((name, args)) = table.iter().next().filter(|_| is_distribution(table)) else {
        return Err(fail(
            source,
            key,
            format!("{expected}, found a table with keys {:?}", table.keys().collect::<Vec<_>>()),
        ));
    };
    if !DISTRIBUTIONS.contains(&name.as_str()) {
        return Err(fail(source, key, format!("unknown distribution {name:?}; {expected}")));
    }
    let Value::Array(args) = args else {
        return Err(fail(source, key, format!("{name} takes a list, found {}", describe(args))));
    };
    let numbers = || -> Result<(f64, f64), ConfigError> {
        let as_number = |v: &Value| match v {
            Value::Float(f) if f.is_finite() => Some(*f),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        };
        match args.as_slice() {
            [low, high] => match (as_number(low), as_number(high)) {
                (Some(low), Some(high)) if low < high => Ok((low, high)),
                (Some(low), Some(high)) => {
                    Err(fail(source, key, format!("{name}: low ({low}) must be below high ({high})")))
                }
                _ => Err(fail(source, key, format!("{name}: [low, high] must be finite numbers"))),
            },
            _ => Err(fail(source, key, format!("{name} takes [low, high], found {} values", args.len()))),
        }
    };
    match name.as_str() {
        "uniform" => {
            let (low, high) = numbers()?;
            Ok(Distribution::Uniform { low, high })
        }
        "loguniform" => {
            let (low, high) = numbers()?;
            if low <= 0.0 {
                return Err(fail(source, key, format!("loguniform: low must be above 0, found {low}")));
            }
            Ok(Distribution::LogUniform { low, high })
        }
        "int" => match args.as_slice() {
            [Value::Integer(low), Value::Integer(high)] if low <= high => {
                Ok(Distribution::Int { low: *low, high: *high })
            }
            [Value::Integer(low), Value::Integer(high)] => {
                Err(fail(source, key, format!("int: low ({low}) must not be above high ({high})")))
            }
            _ => Err(fail(source, key, "int takes [low, high], two whole numbers")),
        },
        _ => {
            if args.is_empty() {
                return Err(fail(source, key, "choice: empty list; give at least one value"));
            }
            Ok(Distribution::Choice(args.clone()))
        }
    }
}

impl Distribution {
    /// The value at `u`, a uniform number in [0, 1).
    fn at(&self, u: f64) -> Value {
        match self {
            Distribution::Uniform { low, high } => Value::Float(significant(low + u * (high - low)).min(*high)),
            Distribution::LogUniform { low, high } => {
                let (a, b) = (low.ln(), high.ln());
                Value::Float(significant((a + u * (b - a)).exp()).clamp(*low, *high))
            }
            Distribution::Int { low, high } => {
                let span = (*high as i128 - *low as i128 + 1) as f64;
                let offset = ((u * span) as i128).min(*high as i128 - *low as i128);
                Value::Integer((*low as i128 + offset) as i64)
            }
            Distribution::Choice(values) => {
                let i = ((u * values.len() as f64) as usize).min(values.len() - 1);
                values[i].clone()
            }
        }
    }
}

/// `x` to 6 significant digits.
fn significant(x: f64) -> f64 {
    format!("{x:.5e}").parse().unwrap_or(x)
}

/// A uniform number in [0, 1) for one key of one draw: the top 53 bits of a SHA-256 of
/// everything the draw depends on.
fn unit(context: &str, draw: u32, key: &str) -> f64 {
    let hash = Sha256::digest(format!("{context}\n{draw}\n{key}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash[..8]);
    (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// What a random search's draws for one grid point depend on besides their number: the
/// sweep's name, the search seed and the grid point (its keys and values, in key order, so
/// the order axes are written in does not matter).
pub fn context(name: &str, seed: u64, point: &[(&str, &Value)]) -> String {
    let mut entries: Vec<String> = point.iter().map(|(k, v)| format!("{k}={v}")).collect();
    entries.sort();
    format!("{name}\n{seed}\n{}", entries.join("\n"))
}

/// Draw number `draw` of `space` for a grid point's `context`: each key and its value.
pub fn draw(space: &[Dimension], context: &str, draw: u32) -> Vec<(String, Value)> {
    space.iter().map(|d| (d.key.clone(), d.distribution.at(unit(context, draw, &d.key)))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_their_ranges_and_cover_them() {
        let space = vec![
            Dimension { key: "train.lr".into(), distribution: Distribution::LogUniform { low: 1e-5, high: 1e-1 } },
            Dimension { key: "loss.omega".into(), distribution: Distribution::Uniform { low: 2.0, high: 12.0 } },
            Dimension { key: "train.batch_size".into(), distribution: Distribution::Int { low: 4, high: 7 } },
            Dimension {
                key: "loss.kind".into(),
                distribution: Distribution::Choice(vec![Value::String("dice".into()), Value::String("jaccard".into())]),
            },
        ];
        let n = 2000;
        let mut decades = [0usize; 4];
        let mut ints = [0usize; 4];
        let mut dice = 0;
        let mut omega_low = 0;
        for i in 0..n {
            let values = draw(&space, "ctx", i);
            let lr = values[0].1.as_float().unwrap();
            assert!((1e-5..=1e-1).contains(&lr), "{lr}");
            decades[((lr.log10() + 5.0).floor() as usize).min(3)] += 1;
            let omega = values[1].1.as_float().unwrap();
            assert!((2.0..=12.0).contains(&omega), "{omega}");
            omega_low += usize::from(omega < 7.0);
            let b = values[2].1.as_integer().unwrap();
            assert!((4..=7).contains(&b), "{b}");
            ints[(b - 4) as usize] += 1;
            dice += usize::from(values[3].1.as_str() == Some("dice"));
        }
        // Each bin's count is binomial; these bounds are more than 5 standard deviations wide.
        for count in decades.iter().chain(&ints) {
            assert!((400..=600).contains(count), "a quarter each: {decades:?} {ints:?}");
        }
        assert!((880..=1120).contains(&dice), "half dice: {dice}");
        assert!((880..=1120).contains(&omega_low), "half below the middle: {omega_low}");
        assert_eq!(draw(&space, "ctx", 7), draw(&space, "ctx", 7), "a draw is a function of its inputs");
        assert_ne!(draw(&space, "ctx", 7), draw(&space, "other", 7));
    }

    #[test]
    fn drawn_numbers_keep_six_significant_digits() {
        assert_eq!(significant(0.000_316_227_766_016_837_94), 0.000_316_228);
        assert_eq!(significant(7.123_456_789), 7.123_46);
        let d = Distribution::Uniform { low: 0.0, high: 1.0 };
        assert!(d.at(0.999_999_999).as_float().is_some_and(|x| x <= 1.0), "rounding stays within the range");
    }

    #[test]
    fn a_grid_points_context_ignores_the_order_of_its_axes() {
        let (a, b) = (Value::Integer(1), Value::String("x".into()));
        assert_eq!(context("s", 0, &[("k1", &a), ("k2", &b)]), context("s", 0, &[("k2", &b), ("k1", &a)]));
        assert_ne!(context("s", 0, &[("k1", &a)]), context("s", 1, &[("k1", &a)]));
    }
}
