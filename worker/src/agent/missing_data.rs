//! Why a worker stopped leasing: a trial's data set is missing or unreadable on this machine
//! (an unmounted share, a wrong `--data-dir`). Failing such trials would drain a sweep that
//! other workers can serve, so the agent hands the trial back, leases nothing more and says
//! so, loudly and again every minute, with the path and the fix.

use std::path::Path;

use super::trial::DataLocation;

/// The data set this worker found missing, and the trial that found it.
#[derive(Debug, Clone)]
pub struct MissingData {
    pub trial_id: String,
    pub data: DataLocation,
    /// The loader's error, naming the file or folder at fault.
    pub error: String,
}

impl MissingData {
    /// Logs the problem at error level, with what to do about it.
    pub fn say(&self, data_dir: Option<&Path>) {
        tracing::error!(
            data_set = self.data.kind,
            path = %self.path(),
            trial = %self.trial_id,
            error = %self.error,
            "{}",
            self.advice(data_dir)
        );
    }

    /// The data set's root on this machine, as the worker resolved it.
    fn path(&self) -> String {
        match (&self.data.resolved, &self.data.configured) {
            (Some(resolved), _) => resolved.display().to_string(),
            (None, Some(configured)) => configured.clone(),
            (None, None) => "(no dataset.root)".into(),
        }
    }

    /// One sentence: what is missing, where, and the fix.
    pub fn advice(&self, data_dir: Option<&Path>) -> String {
        let path = self.path();
        let fix = match self.data.configured.as_deref().filter(|r| Path::new(r).is_relative()) {
            Some(relative) => {
                let now =
                    data_dir.map_or("none: relative to the working directory".into(), |d| d.display().to_string());
                format!(
                    "mount the data at {path} or start this worker with --data-dir naming the folder that holds \
                     {relative} (now {now})"
                )
            }
            None => format!("mount the data at {path} (an absolute dataset.root, which --data-dir does not change)"),
        };
        format!(
            "this worker cannot read the {} data set at {path}; {fix}; this worker leases nothing more until restarted",
            self.data.kind
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn missing(configured: &str, resolved: &str) -> MissingData {
        MissingData {
            trial_id: "t-1".into(),
            data: DataLocation { kind: "drive", configured: Some(configured.into()), resolved: Some(resolved.into()) },
            error: format!("data folder {resolved} does not exist"),
        }
    }

    #[test]
    fn the_advice_names_the_data_set_the_path_and_both_fixes() {
        let dir = PathBuf::from("/mnt/empty");
        let advice = missing("DRIVE", "/mnt/empty/DRIVE").advice(Some(&dir));
        assert!(advice.contains("the drive data set at /mnt/empty/DRIVE"), "{advice}");
        assert!(advice.contains("mount the data at /mnt/empty/DRIVE"), "{advice}");
        assert!(advice.contains("--data-dir") && advice.contains("holds DRIVE (now /mnt/empty)"), "{advice}");
        assert!(advice.ends_with("this worker leases nothing more until restarted"), "{advice}");
    }

    #[test]
    fn an_absolute_root_is_not_pointed_at_data_dir_as_if_it_helped() {
        let advice = missing("/data/DRIVE", "/data/DRIVE").advice(Some(Path::new("/mnt")));
        assert!(advice.contains("mount the data at /data/DRIVE (an absolute dataset.root"), "{advice}");
        assert!(advice.contains("leases nothing more"), "{advice}");
    }
}
