//! Fuzzes what `allsweep submit` hands the coordinator: arbitrary bytes as a spec's TOML
//! text, through the size limit, parsing, the grid and trial limits, grid expansion, the
//! validation of every trial and the keys (`allsweep_coordinator::spec`).
//!
//! Besides not panicking, a spec that is accepted must keep what the rest of the coordinator
//! relies on: its trial count is the grid's product times the seeds and within the limits;
//! its sweep id and every trial id are ids the worker API accepts back
//! (`service::edge::id`); trial ids are distinct; each trial's config reads back as a trial;
//! and parsing it again gives the same id. A refused spec names a key, and a line within the
//! text.
#![no_main]

use std::collections::HashSet;

use allsweep_config::TrialConfig;
use allsweep_coordinator::service::edge;
use allsweep_coordinator::spec::{Spec, SpecLimits};
use libfuzzer_sys::fuzz_target;

/// Far below the defaults, so that one input stays fast (each trial is validated and keyed)
/// while every limit can be reached: the paper's presets (up to 72 trials, 4 axes, under
/// 1 KiB) are seeds, refused by the trial limit until the fuzzer cuts their grids down.
const LIMITS: SpecLimits = SpecLimits { max_trials: 16, max_axes: 8, max_spec_bytes: 16 * 1024 };

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Spec::parse_with(text, &LIMITS) {
        Ok(spec) => accepted(text, &spec),
        Err(error) => {
            assert!(!error.key.is_empty(), "an error names a key: {error:?}");
            assert!(!error.message.is_empty(), "an error says what is wrong: {error:?}");
            if let Some(line) = error.line {
                let lines = text.matches('\n').count() + 1;
                assert!((1..=lines).contains(&line), "line {line} of a {lines}-line text: {error:?}");
            }
        }
    }
});

fn accepted(text: &str, spec: &Spec) {
    let points: u64 = spec.grid.iter().map(|axis| axis.values.len() as u64).product();
    assert_eq!(spec.trials.len() as u64, points * spec.seeds.len() as u64, "grid x seeds");
    assert!(spec.trials.len() as u64 <= LIMITS.max_trials && spec.grid.len() <= LIMITS.max_axes);
    edge::id("sweep id", &spec.id).unwrap_or_else(|e| panic!("the sweep id {:?} is refused: {e}", spec.id));
    let mut ids = HashSet::new();
    for (ordinal, trial) in spec.trials.iter().enumerate() {
        edge::id("trial id", &trial.id).unwrap_or_else(|e| panic!("trial id {:?} is refused: {e}", trial.id));
        assert!(trial.id.starts_with(&format!("{}-", spec.id)), "{} is not of sweep {}", trial.id, spec.id);
        assert!(ids.insert(trial.id.as_str()), "trial id {} twice", trial.id);
        assert_eq!(trial.ordinal as usize, ordinal);
        let config = TrialConfig::from_toml_str(&trial.config_toml)
            .unwrap_or_else(|e| panic!("trial {} does not read back: {e:?}\n{}", trial.id, trial.config_toml));
        assert_eq!(config.seed, trial.seed);
        assert_eq!(config.train.epochs, trial.epochs as usize, "the epochs the coordinator checks reports against");
    }
    let again = Spec::parse_with(text, &LIMITS).expect("accepted once, accepted again");
    assert_eq!(again.id, spec.id, "the same text, the same sweep id");
}
