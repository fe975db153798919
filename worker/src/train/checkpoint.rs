//! Checkpoints: everything a stopped trial needs to finish exactly as if it had never
//! stopped: weights and batch-norm statistics, Adam's moments and step count, the position
//! (epoch and step), the running sums of the epoch in progress and the history so far.
//! Data order and dropout masks are derived from (seed, epoch, step), so no generator state
//! needs saving; the learning rate and the best epoch follow from the history
//! ([`super::protocol`]), so only the best epoch's weights are saved besides, when the trial
//! tests them. Written atomically: a temporary file renamed into place.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use super::adam::Adam;
use super::events::EpochRecord;

/// Where a trial stands, besides its tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Epochs completed.
    pub epoch: usize,
    /// Steps completed in the epoch in progress (0 at an epoch boundary).
    pub step: usize,
    /// Sum of loss x samples and number of samples, over the steps of the epoch in progress.
    pub train_loss_sum: f64,
    pub train_samples: usize,
    /// Seconds spent training in the epoch in progress before the stop.
    pub train_seconds: f64,
    pub adam_steps: i64,
    pub history: Vec<EpochRecord>,
    /// The trial's config without its epoch count (so a run can be extended), as JSON: a
    /// checkpoint of another config is refused.
    pub fingerprint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot write checkpoint {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("cannot read checkpoint {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("checkpoint {path} belongs to another trial config; expected {expected}, found {found}")]
    OtherConfig { path: PathBuf, expected: String, found: String },
}

const META: &str = "allsweep.position";
const MODEL_PREFIX: &str = "model.";
const BEST_PREFIX: &str = "best.";

/// The weights and batch-norm statistics of one epoch, by variable name.
pub type Weights = std::collections::HashMap<String, Tensor>;

/// Writes the checkpoint at `path` atomically, with the best epoch's weights when given.
pub fn save(
    path: &Path,
    vs: &nn::VarStore,
    adam: &Adam,
    best: Option<&Weights>,
    position: &Position,
) -> Result<(), CheckpointError> {
    save_parts(path, vs.variables().into_iter().collect(), adam.state(), best, position)
}

/// [`save`] from the parts: the model's variables and Adam's named moments. A fused group
/// writes each trial's own share this way ([`crate::models::member_weights`],
/// [`Adam::member_state`]), a checkpoint like any trial's.
pub fn save_parts(
    path: &Path,
    model: Vec<(String, Tensor)>,
    adam: Vec<(String, Tensor)>,
    best: Option<&Weights>,
    position: &Position,
) -> Result<(), CheckpointError> {
    let fail = |reason: String| CheckpointError::Write { path: path.to_path_buf(), reason };
    let meta = serde_json::to_vec(position).map_err(|e| fail(e.to_string()))?;
    let mut named: Vec<(String, Tensor)> =
        model.into_iter().map(|(name, t)| (format!("{MODEL_PREFIX}{name}"), t)).collect();
    if let Some(best) = best {
        named.extend(best.iter().map(|(name, t)| (format!("{BEST_PREFIX}{name}"), t.shallow_clone())));
    }
    named.extend(adam);
    named.push((META.to_string(), Tensor::from_slice(&meta)));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    let file_name = path.file_name().ok_or_else(|| fail("not a file path".into()))?.to_string_lossy();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let cpu: Vec<(String, Tensor)> = named.into_iter().map(|(n, t)| (n, t.to_device(tch::Device::Cpu))).collect();
    Tensor::save_multi(&cpu, &tmp).map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e.to_string())
    })
}

/// A checkpoint read back: its tensors by name, and its position.
pub struct Loaded {
    pub tensors: std::collections::HashMap<String, Tensor>,
    pub position: Position,
}

pub fn load(path: &Path) -> Result<Loaded, CheckpointError> {
    let fail = |reason: String| CheckpointError::Read { path: path.to_path_buf(), reason };
    if !path.is_file() {
        return Err(fail("no such file".into()));
    }
    let mut tensors: std::collections::HashMap<String, Tensor> =
        Tensor::load_multi(path).map_err(|e| fail(e.to_string()))?.into_iter().collect();
    let meta = tensors.remove(META).ok_or_else(|| fail("not an allsweep checkpoint (no position record)".into()))?;
    let bytes = Vec::<u8>::try_from(meta.to_kind(Kind::Uint8)).map_err(|e| fail(e.to_string()))?;
    let position: Position = serde_json::from_slice(&bytes).map_err(|e| fail(format!("bad position record: {e}")))?;
    Ok(Loaded { tensors, position })
}

impl Loaded {
    /// Copies the saved weights into `vs` and moments into `adam`.
    pub fn restore(&self, path: &Path, vs: &mut nn::VarStore, adam: &mut Adam) -> Result<(), CheckpointError> {
        let fail = |reason: String| CheckpointError::Read { path: path.to_path_buf(), reason };
        let _guard = tch::no_grad_guard();
        for (name, mut var) in vs.variables() {
            let saved = self
                .tensors
                .get(&format!("{MODEL_PREFIX}{name}"))
                .ok_or_else(|| fail(format!("checkpoint lacks model variable {name}")))?;
            if saved.size() != var.size() {
                return Err(fail(format!("{name} has shape {:?}, the model needs {:?}", saved.size(), var.size())));
            }
            var.copy_(&saved.to_device(var.device()));
        }
        adam.restore(self.position.adam_steps, &|key| self.tensors.get(key).map(Tensor::shallow_clone)).map_err(fail)
    }

    /// Copies the members' saved weights into a fused group's `vs` (each variable their
    /// tensors stacked along the first dimension, member g as group g) and their moments into
    /// its `adam`. The members must stand at the same position (the caller checks).
    pub fn restore_fused(
        members: &[(&Path, &Loaded)],
        vs: &mut nn::VarStore,
        adam: &mut Adam,
    ) -> Result<(), CheckpointError> {
        let (first_path, first) = members.first().copied().ok_or_else(|| CheckpointError::Read {
            path: PathBuf::new(),
            reason: "a fused group needs at least one checkpoint".into(),
        })?;
        let stacked = |key: &str| -> Result<Tensor, CheckpointError> {
            let parts = members
                .iter()
                .map(|(path, loaded)| {
                    loaded.tensors.get(key).map(Tensor::shallow_clone).ok_or_else(|| CheckpointError::Read {
                        path: path.to_path_buf(),
                        reason: format!("checkpoint lacks {key}"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Tensor::cat(&parts, 0))
        };
        let _guard = tch::no_grad_guard();
        let fail = |reason: String| CheckpointError::Read { path: first_path.to_path_buf(), reason };
        for (name, mut var) in vs.variables() {
            let saved = stacked(&format!("{MODEL_PREFIX}{name}"))?;
            if saved.size() != var.size() {
                return Err(fail(format!(
                    "{name} stacked has shape {:?}, the group needs {:?}",
                    saved.size(),
                    var.size()
                )));
            }
            var.copy_(&saved.to_device(var.device()));
        }
        adam.restore(first.position.adam_steps, &|key| stacked(key).ok()).map_err(fail)
    }

    /// The best epoch's weights saved with the checkpoint, on `device`; `None` when it holds none.
    pub fn best_weights(&self, device: tch::Device) -> Option<Weights> {
        let best: Weights = self
            .tensors
            .iter()
            .filter_map(|(name, t)| Some((name.strip_prefix(BEST_PREFIX)?.to_string(), t.to_device(device))))
            .collect();
        (!best.is_empty()).then_some(best)
    }
}
