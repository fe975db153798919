//! Checkpoint files in the coordinator's artifact directory. The database indexes them
//! (`checkpoints` table); only a trial's latest checkpoint is kept. Files arrive in chunks,
//! are written aside, checked against their SHA-256 and renamed into place, so a broken
//! upload never replaces a good checkpoint. Every upload gets a file name of its own (and a
//! temporary name of its own), so a retried or concurrent upload of the same checkpoint never
//! overwrites, nor deletes when refused, a file that the database names.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// The largest checkpoint the coordinator accepts: FocusNet at the paper's width with its
/// Adam moments is about 230 MB; 4 GiB leaves room and still bounds a hostile upload.
pub const MAX_CHECKPOINT_BYTES: u64 = 4 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("checkpoint upload for {trial_id} is corrupt: expected {expected_bytes} bytes with SHA-256 {expected_sha}, got {bytes} bytes with {sha}")]
    Corrupt { trial_id: String, expected_bytes: u64, expected_sha: String, bytes: u64, sha: String },
    #[error("artifact file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The artifact directory.
#[derive(Debug, Clone)]
pub struct Artifacts {
    dir: PathBuf,
}

/// A checkpoint being received. Dropped before [`Artifacts::finish`] (an upload refused or
/// cancelled midway), it removes its temporary file.
pub struct Incoming {
    tmp: PathBuf,
    file: tokio::fs::File,
    hasher: Sha256,
    bytes: u64,
    /// Set once the file was moved into place or already removed.
    settled: bool,
}

impl Artifacts {
    /// Opens (creating) the directory and removes the `.part` files of uploads a killed
    /// coordinator left behind: an artifact directory belongs to one coordinator, and at its
    /// start no upload is in flight.
    pub fn open(dir: &Path) -> Result<Self, ArtifactError> {
        std::fs::create_dir_all(dir).map_err(|source| ArtifactError::Io { path: dir.into(), source })?;
        let entries = std::fs::read_dir(dir).map_err(|source| ArtifactError::Io { path: dir.into(), source })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".part") {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => tracing::info!(file = %name, "removed an unfinished upload"),
                    Err(error) => tracing::warn!(file = %name, %error, "cannot remove an unfinished upload"),
                }
            }
        }
        Ok(Self { dir: dir.to_path_buf() })
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// A new file name for one upload of a trial's checkpoint from one attempt and epoch:
    /// unique within this artifact directory, whoever else uploads the same checkpoint.
    pub fn checkpoint_name(trial_id: &str, attempt: u32, epoch: u32, step: u32) -> String {
        static UPLOADS: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let upload = UPLOADS.fetch_add(1, Ordering::Relaxed);
        format!("{trial_id}.a{attempt}.e{epoch}.s{step}.{}-{nanos:x}-{upload}.ckpt", std::process::id())
    }

    /// Starts receiving the file `name` (from [`Artifacts::checkpoint_name`]) aside.
    pub async fn begin(&self, name: &str) -> Result<Incoming, ArtifactError> {
        let tmp = self.dir.join(format!(".{name}.part"));
        let file =
            tokio::fs::File::create(&tmp).await.map_err(|source| ArtifactError::Io { path: tmp.clone(), source })?;
        Ok(Incoming { tmp, file, hasher: Sha256::new(), bytes: 0, settled: false })
    }

    /// Checks the received bytes and moves them into place under `name`.
    pub async fn finish(
        &self,
        mut incoming: Incoming,
        name: &str,
        trial_id: &str,
        expected_bytes: u64,
        expected_sha: &str,
    ) -> Result<(), ArtifactError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ArtifactError::Io { path, source }
        };
        incoming.file.flush().await.map_err(io(&incoming.tmp))?;
        incoming.file.sync_all().await.map_err(io(&incoming.tmp))?;
        let sha = hex::encode(std::mem::take(&mut incoming.hasher).finalize());
        if incoming.bytes != expected_bytes || sha != expected_sha.to_ascii_lowercase() {
            return Err(ArtifactError::Corrupt {
                trial_id: trial_id.into(),
                expected_bytes,
                expected_sha: expected_sha.into(),
                bytes: incoming.bytes,
                sha,
            });
        }
        let target = self.dir.join(name);
        tokio::fs::rename(&incoming.tmp, &target).await.map_err(io(&target))?;
        incoming.settled = true;
        Ok(())
    }

    /// Removes every checkpoint file no row names (`in_use`) that was last written at least
    /// `min_age` ago; returns their names. A file becomes live only when its row commits, after
    /// its upload renamed it into place, and an old one is removed only after the commit that
    /// replaced it: a coordinator killed in between leaves a file nothing names. `min_age`
    /// spares the file of an upload between its rename and its commit (milliseconds); at the
    /// coordinator's start none is in flight, and 0 collects them all.
    pub async fn collect_orphans(
        &self,
        in_use: &HashSet<String>,
        min_age: Duration,
    ) -> Result<Vec<String>, ArtifactError> {
        let io = |source| ArtifactError::Io { path: self.dir.clone(), source };
        let mut entries = tokio::fs::read_dir(&self.dir).await.map_err(io)?;
        let mut removed = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".ckpt") || name.starts_with('.') || in_use.contains(&name) {
                continue;
            }
            let age = entry.metadata().await.ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
            if age.is_none_or(|age| age < min_age) {
                continue;
            }
            match tokio::fs::remove_file(entry.path()).await {
                Ok(()) => removed.push(name),
                Err(error) => tracing::warn!(file = %name, %error, "cannot remove an orphaned checkpoint file"),
            }
        }
        if !removed.is_empty() {
            tracing::info!(files = removed.len(), first = %removed[0], "removed checkpoint files no row names");
        }
        Ok(removed)
    }

    /// Removes a file; a missing one is fine.
    pub async fn remove(&self, name: &str) {
        let _ = tokio::fs::remove_file(self.dir.join(name)).await;
    }
}

impl Incoming {
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ArtifactError> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        self.file.write_all(data).await.map_err(|source| ArtifactError::Io { path: self.tmp.clone(), source })
    }

    /// Bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.settled {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn orphans_go_once_old_enough_and_named_files_stay() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let artifacts = Artifacts::open(dir.path()).expect("open");
        for name in ["named.ckpt", "orphan.ckpt", ".upload.ckpt.part", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        let in_use: HashSet<String> = ["named.ckpt".to_string()].into();
        let young = artifacts.collect_orphans(&in_use, Duration::from_secs(600)).await.expect("collect");
        assert!(young.is_empty(), "a file written just now may be an upload about to commit: {young:?}");
        let removed = artifacts.collect_orphans(&in_use, Duration::ZERO).await.expect("collect");
        assert_eq!(removed, ["orphan.ckpt"]);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".upload.ckpt.part", "named.ckpt", "notes.txt"], "an upload in flight and other files stay");
    }
}
