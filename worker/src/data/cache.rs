//! One loaded copy of each data set per process, shared by every slot that trains on it.
//!
//! Keyed by the data set's resolved config (kind, root, size, split, seeds), so trials that
//! differ in loss or model reuse the same samples; loading happens under the lock, so two
//! slots asking at once load once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use allsweep_config::DatasetConfig;

use super::{load_uncached, resolve_root, DataError, LoadedData};

fn cache() -> &'static Mutex<HashMap<String, Arc<LoadedData>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<LoadedData>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The data set of `config`, loaded once per process.
pub fn load(config: &DatasetConfig, data_dir: Option<&Path>) -> Result<Arc<LoadedData>, DataError> {
    let root = config.root.as_deref().map(|r| resolve_root(r, data_dir));
    let key = format!("{root:?} {}", serde_json::to_string(config).unwrap_or_else(|_| format!("{config:?}")));
    let mut cache = cache().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(data) = cache.get(&key) {
        return Ok(data.clone());
    }
    let started = std::time::Instant::now();
    let data = Arc::new(load_uncached(config, data_dir)?);
    tracing::info!(
        kind = config.kind.name(),
        train = data.train.len(),
        validation = data.validation.len(),
        seconds = started.elapsed().as_secs_f64(),
        "data set loaded"
    );
    cache.insert(key, data.clone());
    Ok(data)
}
