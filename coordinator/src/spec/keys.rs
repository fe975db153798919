//! Stable identities: a trial's key from its resolved config and seed, a config's key
//! without the seed (trials that differ only in seed are repeats of one config), and a
//! sweep's id from its trials. Built from the validated config's canonical JSON, so that
//! `omega = 10` and `omega = 10.0`, key order and comments do not change them.

use allsweep_config::TrialConfig;
use sha2::{Digest, Sha256};

use crate::store::NewTrial;

fn digest(text: &str, len: usize) -> String {
    let hash = Sha256::digest(text.as_bytes());
    hex::encode(hash)[..len].to_string()
}

/// The key of a trial config, with or without its seed; the name never counts.
pub fn trial_key(config: &TrialConfig, with_seed: bool) -> String {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("name");
        if !with_seed {
            object.remove("seed");
        }
    }
    digest(&value.to_string(), 16)
}

/// The most bytes of a sweep's name in its id. A trial id is `{sweep id}-{16 hex}` and a
/// sweep id `{slug}-{10 hex}`, so this keeps every id within the 128 bytes the worker API
/// accepts back (`service::edge::MAX_ID_BYTES`); a longer name made trials whose workers could
/// report nothing (found by the `spec` fuzz target).
const MAX_SLUG_BYTES: usize = 48;

/// The sweep id: its name, policy and the set of its trial keys. A set, sorted: the order
/// of the grid's axes (and of the seeds) decides the order trials are leased in, not which
/// trials a sweep has, so a spec with its axes written in another order is the same sweep.
///
/// The hash reads `identity`: the name, and whatever else sets the sweep apart (its
/// early-stopping rule); the slug comes from `name`.
pub fn sweep_id(name: &str, identity: &str, max_attempts: u32, keep_checkpoints: bool, trials: &[NewTrial]) -> String {
    let mut keys: Vec<&str> = trials.iter().map(|t| t.id.as_str()).collect();
    keys.sort_unstable();
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .take(4)
        .collect::<Vec<_>>()
        .join("-");
    let slug = slug[..slug.len().min(MAX_SLUG_BYTES)].trim_end_matches('-');
    let hash = digest(&format!("{identity}\n{max_attempts}\n{keep_checkpoints}\n{}", keys.join(",")), 10);
    if slug.is_empty() {
        hash
    } else {
        format!("{slug}-{hash}")
    }
}
