//! A worker's local folder. Every worker process keeps its trials' checkpoints in a folder of
//! its own (`worker-PID-NONCE`) under the host's work directory, locked (`flock`) while the
//! process lives and removed when it exits. A SIGKILLed worker cannot remove its folder, so
//! every worker, when it starts and whenever one of its trials ends, removes the folders
//! under the same work directory whose lock nobody holds. The work directory thus holds at
//! most one checkpoint per running trial of the live workers, however many were killed: the
//! coordinator keeps every checkpoint a later attempt needs.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// What every worker folder's name starts with.
const PREFIX: &str = "worker-";

/// This process's folder, locked; removed when dropped.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    /// The open folder holding the lock.
    _lock: File,
}

impl WorkDir {
    /// Makes and locks a folder of this process's own under `root` (created if missing).
    pub fn claim(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create the work directory {}", root.display()))?;
        // A collector may remove the new folder between its creation and its lock (it is
        // unlocked then); we notice and make another.
        for _ in 0..8 {
            let path = root.join(format!("{PREFIX}{}-{:08x}", std::process::id(), rand::random::<u32>()));
            match std::fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
            }
            let lock = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            lock.try_lock().with_context(|| format!("cannot lock {}", path.display()))?;
            if same_file(&lock, &path) {
                return Ok(Self { path, _lock: lock });
            }
        }
        anyhow::bail!("cannot claim a folder in {}: each new one was removed at once", root.display())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove the worker's folder");
        }
    }
}

/// Removes every worker folder under `root` whose lock nobody holds: its worker was killed.
/// Returns how many it removed. Errors are logged, never fatal: this is housekeeping.
pub fn collect_abandoned(root: &Path) -> usize {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(root = %root.display(), %error, "cannot list the work directory");
            return 0;
        }
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let is_worker_folder = entry.file_name().to_str().is_some_and(|n| n.starts_with(PREFIX))
            && entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_worker_folder {
            continue;
        }
        let path = entry.path();
        let Ok(folder) = File::open(&path) else { continue };
        // Held by a live worker (this one included: a second open file of the same folder
        // does not share the lock).
        if folder.try_lock().is_err() || !same_file(&folder, &path) {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed the folder of a worker that is gone");
                removed += 1;
            }
            Err(error) => tracing::warn!(path = %path.display(), %error, "cannot remove a gone worker's folder"),
        }
    }
    removed
}

/// Whether `path` still names the folder `open` holds.
fn same_file(open: &File, path: &Path) -> bool {
    match (open.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The default work directory: one per user in the system's temporary directory, shared by
/// the user's workers on this host.
pub fn default_root() -> PathBuf {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
    std::env::temp_dir().join(format!("allsweep-worker-{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(dir: &Path) {
        std::fs::write(dir.join("trial.ckpt"), b"bytes").unwrap();
    }

    #[test]
    fn a_live_worker_s_folder_is_kept_and_removed_when_it_drops() {
        let root = tempfile::tempdir().unwrap();
        let a = WorkDir::claim(root.path()).unwrap();
        let b = WorkDir::claim(root.path()).unwrap();
        assert_ne!(a.path(), b.path());
        checkpoint(a.path());
        assert_eq!(collect_abandoned(root.path()), 0, "both folders are locked by live owners");
        assert!(a.path().join("trial.ckpt").is_file());
        let gone = a.path().to_path_buf();
        drop(a);
        assert!(!gone.exists(), "a worker that exits removes its folder");
        assert!(b.path().is_dir());
    }

    #[test]
    fn a_folder_nobody_locks_is_collected_and_other_files_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        // What a SIGKILLed worker leaves: its folder, unlocked, with a checkpoint in it.
        let killed = root.path().join("worker-1-deadbeef");
        std::fs::create_dir(&killed).unwrap();
        checkpoint(&killed);
        std::fs::write(root.path().join("notes.txt"), b"the user's").unwrap();
        let live = WorkDir::claim(root.path()).unwrap();
        checkpoint(live.path());
        assert_eq!(collect_abandoned(root.path()), 1);
        assert!(!killed.exists());
        assert!(live.path().join("trial.ckpt").is_file(), "the live worker's checkpoint stays");
        assert!(root.path().join("notes.txt").is_file(), "only worker folders are touched");
    }
}
