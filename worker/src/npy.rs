//! Reading and writing `.npy` arrays (float32 or float64), with errors that name the file.
//!
//! `inspect` takes predictions and targets as `.npy` so that anyone can check allsweep's
//! numbers against NumPy or PyTorch without writing Rust.

use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

/// A `.npy` file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds {kind:?} values; expected float32 or float64")]
    Kind { path: PathBuf, kind: Kind },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// Reads a float32 or float64 array.
pub fn read_float(path: &Path) -> Result<Tensor, NpyError> {
    if !path.is_file() {
        return Err(NpyError::Read { path: path.into(), reason: "no such file".into() });
    }
    let tensor = Tensor::read_npy(path).map_err(|e| NpyError::Read { path: path.into(), reason: e.to_string() })?;
    match tensor.kind() {
        Kind::Float | Kind::Double => Ok(tensor),
        kind => Err(NpyError::Kind { path: path.into(), kind }),
    }
}

/// Writes an array, atomically: to a temporary file beside it, then renamed into place,
/// so a failed write never leaves a truncated file behind.
pub fn write(tensor: &Tensor, path: &Path) -> Result<(), NpyError> {
    let fail = |reason: String| NpyError::Write { path: path.into(), reason };
    let file_name = path.file_name().ok_or_else(|| fail("not a file path".into()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", file_name.to_string_lossy()));
    tensor.write_npy(&tmp).map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e.to_string())
    })
}
