//! The per-config table: mean and spread over seeds of the test metrics, in % (AUC as a fraction).

use std::collections::BTreeMap;

use allsweep_coordinator::report::render::mean_sd_text;
use allsweep_coordinator::report::stats::mean_sd;
use allsweep_proto::v1 as pb;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

/// Groups results by grid point and prints mean ± sample standard deviation (n seeds).
pub fn per_config(results: &[pb::TrialResult]) -> Table {
    let mut groups: BTreeMap<&str, Vec<&pb::Metrics>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for r in results {
        let Some(m) = &r.test else { continue };
        if !groups.contains_key(r.params_json.as_str()) {
            order.push(&r.params_json);
        }
        groups.entry(&r.params_json).or_default().push(m);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["config", "n", "Jaccard %", "F1 %", "recall %", "TNR %", "AUC"]);
    for key in order {
        let ms = &groups[key];
        let stat = |f: &dyn Fn(&pb::Metrics) -> Option<f64>, scale: f64, digits: usize| {
            let values: Vec<f64> = ms.iter().filter_map(|m| f(m)).map(|v| v * scale).collect();
            mean_spread(&values, digits)
        };
        table.add_row(vec![
            describe(key),
            ms.len().to_string(),
            stat(&|m| Some(m.jaccard), 100.0, 2),
            stat(&|m| Some(m.dice), 100.0, 2),
            stat(&|m| Some(m.recall), 100.0, 2),
            stat(&|m| Some(m.tnr), 100.0, 2),
            stat(&|m| m.auc, 1.0, 4),
        ]);
    }
    table
}

/// `mean ± sd` (sample standard deviation, as in `allsweep report`), or just the mean for one
/// value, or `-` for none.
pub fn mean_spread(values: &[f64], digits: usize) -> String {
    match mean_sd(values) {
        Some((mean, sd)) => mean_sd_text(mean, sd, digits),
        None => "-".into(),
    }
}

fn describe(params_json: &str) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(params_json) else {
        return params_json.to_string();
    };
    if map.is_empty() {
        return "(the spec's config)".into();
    }
    map.iter().map(|(k, v)| format!("{k}={}", compact(v))).collect::<Vec<_>>().join(" ")
}

fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => {
            format!("{{{}}}", o.iter().map(|(k, v)| format!("{k}={}", compact(v))).collect::<Vec<_>>().join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_spread() {
        assert_eq!(mean_spread(&[1.0, 2.0, 3.0], 2), "2.00 ± 1.00");
        assert_eq!(mean_spread(&[5.0], 1), "5.0");
        assert_eq!(mean_spread(&[], 1), "-");
    }

    #[test]
    fn grid_points_read_as_key_value_pairs() {
        assert_eq!(
            describe(r#"{"loss":{"kind":"all","gamma":0.2},"model.arch":"unet"}"#),
            "loss={gamma=0.2,kind=all} model.arch=unet"
        );
        assert_eq!(describe("{}"), "(the spec's config)");
    }
}
