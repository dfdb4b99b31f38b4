//! How `--state-file` saving goes: written by the saver (`persist.rs`), read by `GET health`
//! and the live page. It sits apart from both so that `App`, which holds it, does not depend
//! on the saver, which takes an `App`.

use crate::state::lock;
use serde::Serialize;
use std::path::Path;

/// Whether the last save worked, for `GET health` and the live page. A failing save (disk
/// full, directory made read-only) does not stop the simulator: calls are still answered, but
/// what they change is not on disk until a save works again, and `health` says so.
#[derive(Debug)]
pub struct SaveStatus {
    inner: std::sync::Mutex<SaveHealth>,
    /// Counts the saves tried (worked or failed), so a test can wait for the next one
    /// instead of sleeping.
    attempts: tokio::sync::watch::Sender<u64>,
}

impl Default for SaveStatus {
    fn default() -> Self {
        SaveStatus {
            inner: std::sync::Mutex::default(),
            attempts: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// The state of `--state-file` saving, as `GET health` shows it under `state_file`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SaveHealth {
    /// The state file, when `--state-file` is given.
    pub path: Option<String>,
    /// Whether everything acknowledged so far is on disk (false while saves fail).
    pub saved: bool,
    /// The last save's error, while saves fail.
    pub error: Option<String>,
    /// Saves that failed in a row.
    pub failures: u64,
    /// Wall-clock time (RFC 3339) of the last save that worked.
    pub last_saved_at: Option<String>,
}

impl SaveStatus {
    /// What `health` shows; `None` without `--state-file`.
    pub fn health(&self) -> Option<SaveHealth> {
        let h = lock(&self.inner).clone();
        h.path.is_some().then_some(h)
    }

    pub(crate) fn set_path(&self, path: &Path) {
        lock(&self.inner).path = Some(path.display().to_string());
    }

    pub(crate) fn succeeded(&self) {
        let mut h = lock(&self.inner);
        if h.failures > 0 {
            tracing::info!(after = h.failures, "state file saved again");
        }
        h.saved = true;
        h.error = None;
        h.failures = 0;
        h.last_saved_at = Some(replica_core::time::rfc3339(crate::state::wall_clock_ms()));
        drop(h);
        self.attempts.send_modify(|n| *n += 1);
    }

    /// A receiver that sees the count of saves tried (tests wait on it instead of sleeping).
    #[cfg(test)]
    pub fn watch_attempts(&self) -> tokio::sync::watch::Receiver<u64> {
        self.attempts.subscribe()
    }

    /// Records a failed save. Logs the first failure, then at most one line a minute (every
    /// 300th try at the saver's 200 ms pace) while it keeps failing.
    pub(crate) fn failed(&self, e: &anyhow::Error) {
        let mut h = lock(&self.inner);
        h.saved = false;
        h.failures += 1;
        h.error = Some(format!("{e:#}"));
        if h.failures == 1 || h.failures.is_multiple_of(300) {
            tracing::error!(failures = h.failures, "{e:#}; changes are not on disk");
        }
        drop(h);
        self.attempts.send_modify(|n| *n += 1);
    }
}
