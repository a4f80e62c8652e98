//! The active policy set, shared by the server and swapped atomically on a valid reload, and the
//! directory watcher that feeds it.
//!
//! Reload = read → parse → validate → swap. An invalid edit (or a directory that vanished) keeps
//! the last good set active and is recorded in the status (for `/readyz` details and metrics) and
//! logged once, not on every poll.
//!
//! The directory is polled rather than watched with inotify: a ConfigMap mount is updated by the
//! kubelet swapping the `..data` symlink, which inotify on the files does not report reliably,
//! and a poll of a handful of small files every second costs nothing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::policy::load::{digest, parse_sources, PolicyErrors, Source};
use crate::policy::set::PolicySet;

/// What the last reload attempts did; shown in `/readyz` details and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Digest of the active set.
    pub active_digest: String,
    /// Why the most recent attempt was rejected, if it was (the previous set stays active).
    pub last_error: Option<String>,
    /// Successful reloads since start.
    pub reloads_ok: u64,
    /// Rejected reloads since start.
    pub reloads_failed: u64,
}

struct State {
    active: Arc<PolicySet>,
    /// When the active set was loaded (start-up or the last successful reload).
    loaded_at: std::time::SystemTime,
    status: ReloadStatus,
    /// What the last rejection was about (a digest of rejected sources, or the read error), so
    /// the watcher rejects the same bad state once rather than on every poll.
    rejected: Option<String>,
}

/// A cheap-to-clone handle on the active policies.
#[derive(Clone)]
pub struct ActivePolicies {
    state: Arc<RwLock<State>>,
    /// Counts the sets swapped in, so the background audit can re-run after each.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl ActivePolicies {
    /// Starts with `initial` active.
    pub fn new(initial: PolicySet) -> Self {
        let status = ReloadStatus {
            active_digest: initial.digest().to_owned(),
            ..ReloadStatus::default()
        };
        Self {
            state: Arc::new(RwLock::new(State {
                active: Arc::new(initial),
                loaded_at: std::time::SystemTime::now(),
                status,
                rejected: None,
            })),
            changes: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// Ticks every time [`ActivePolicies::activate`] swaps a new set in.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The set to evaluate this request with. Requests in flight keep the set they started with.
    pub fn current(&self) -> Arc<PolicySet> {
        match self.state.read() {
            Ok(state) => Arc::clone(&state.active),
            Err(poisoned) => Arc::clone(&poisoned.into_inner().active),
        }
    }

    /// Swaps in a new, already validated set.
    pub fn activate(&self, set: PolicySet) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.status.active_digest = set.digest().to_owned();
        state.status.last_error = None;
        state.status.reloads_ok += 1;
        state.rejected = None;
        state.active = Arc::new(set);
        state.loaded_at = std::time::SystemTime::now();
        drop(state);
        self.changes.send_modify(|count| *count += 1);
    }

    /// When the active set was loaded (start-up, or the last reload that swapped one in).
    pub fn loaded_at(&self) -> std::time::SystemTime {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .loaded_at
    }

    /// Records a rejected reload; the active set is unchanged.
    pub fn reject(&self, error: String) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.status.last_error = Some(error);
        state.status.reloads_failed += 1;
    }

    /// The reload status.
    pub fn status(&self) -> ReloadStatus {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .status
            .clone()
    }

    fn already_rejected(&self, what: &str) -> bool {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state.rejected.as_deref() == Some(what)
    }

    fn reject_once(&self, what: String, error: String) {
        self.reject(error);
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.rejected = Some(what);
    }

    /// The directory is back to the active set's sources: nothing to load, nothing wrong.
    fn recovered(&self) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if state.rejected.take().is_some() {
            state.status.last_error = None;
        }
    }
}

/// Why a policy directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The directory (or a file in it) could not be read.
    #[error("cannot read policy directory {}: {source}", .path.display())]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The policies are invalid.
    #[error(transparent)]
    Invalid(#[from] PolicyErrors),
}

/// Reads the policy files of `dir`: `*.yaml` and `*.yml` directly in it, in name order, as
/// `Source`s named `dir/file`.
///
/// Hidden entries are skipped: a ConfigMap mount holds `..data` and `..2026_01_02_...` (the
/// kubelet's real directories) next to top-level symlinks such as `default.yaml ->
/// ..data/default.yaml`; reading only the symlinks (which `fs::metadata` follows) sees each file
/// once and sees the atomic `..data` swap as one change. Subdirectories are not read.
pub fn read_policy_dir(dir: &Path) -> Result<Vec<Source>, ReloadError> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ReloadError::Read { path, source }
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error(dir))? {
        let entry = entry.map_err(read_error(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue; // not UTF-8: cannot be one of ours
        };
        let is_policy_file = name.ends_with(".yaml") || name.ends_with(".yml");
        if name.starts_with('.') || !is_policy_file {
            continue;
        }
        let path = entry.path();
        // Follows symlinks; a dangling one (mid-swap) is an error, retried on the next poll.
        let metadata = std::fs::metadata(&path).map_err(read_error(&path))?;
        if metadata.is_file() {
            files.push((name.to_owned(), path));
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|(_, path)| {
            let text = std::fs::read_to_string(&path).map_err(read_error(&path))?;
            Ok(Source {
                name: path.display().to_string(),
                text,
            })
        })
        .collect()
}

/// Reads, parses and validates `dir` into a set (what `serve` does at start and `policy
/// validate` reports on).
pub fn load_policy_dir(dir: &Path) -> Result<PolicySet, ReloadError> {
    let sources = read_policy_dir(dir)?;
    Ok(parse_sources(&sources)?)
}

/// One reload attempt: `Ok(true)` when a new set was activated, `Ok(false)` when the directory
/// still holds the active set (or a state already rejected), `Err` when this attempt rejected
/// it (the last good set stays active and the status records why).
pub fn reload_once(dir: &Path, active: &ActivePolicies) -> Result<bool, ReloadError> {
    let sources = match read_policy_dir(dir) {
        Ok(sources) => sources,
        Err(error) => {
            let message = error.to_string();
            if !active.already_rejected(&message) {
                active.reject_once(message.clone(), message);
                return Err(error);
            }
            return Ok(false);
        }
    };
    let new_digest = digest(&sources);
    if new_digest == active.current().digest() {
        active.recovered();
        return Ok(false);
    }
    if active.already_rejected(&new_digest) {
        return Ok(false);
    }
    match parse_sources(&sources) {
        Ok(set) => {
            active.activate(set);
            Ok(true)
        }
        Err(errors) => {
            active.reject_once(new_digest, errors.to_string());
            Err(ReloadError::Invalid(errors))
        }
    }
}

/// Polls `dir` every `interval` and reloads on change, for the life of the server. Each
/// outcome is logged once: info with the new digest, or warn with every error (one line each).
pub async fn watch_policy_dir(dir: PathBuf, active: ActivePolicies, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (dir_for_task, active_for_task) = (dir.clone(), active.clone());
        let started = std::time::Instant::now();
        // Reading files blocks; keep it off the request-serving worker threads.
        let outcome =
            tokio::task::spawn_blocking(move || reload_once(&dir_for_task, &active_for_task)).await;
        match outcome {
            Ok(Ok(true)) => tracing::info!(
                dir = %dir.display(),
                digest = %active.current().digest(),
                policies = active.current().policies().len(),
                // Read + parse + validate + swap; bench/run.sh reports it.
                reload_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                "policies reloaded"
            ),
            Ok(Ok(false)) => {}
            Ok(Err(ReloadError::Invalid(PolicyErrors(errors)))) => {
                tracing::warn!(
                    dir = %dir.display(),
                    errors = errors.len(),
                    active = %active.current().digest(),
                    "policy change rejected; the last good policies stay active"
                );
                for error in errors {
                    tracing::warn!("policy error: {error}");
                }
            }
            Ok(Err(error)) => tracing::warn!(
                active = %active.current().digest(),
                "{error}; the last good policies stay active"
            ),
            Err(join_error) => {
                tracing::error!("policy reload task failed: {join_error}");
            }
        }
    }
}
