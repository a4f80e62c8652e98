//! The active policy set, shared by the server and swapped atomically on a valid reload.
//!
//! TODO(policy loader): the directory watcher (read → parse → validate → swap) lives here.

use std::sync::{Arc, RwLock};

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
    status: ReloadStatus,
}

/// A cheap-to-clone handle on the active policies.
#[derive(Clone)]
pub struct ActivePolicies {
    state: Arc<RwLock<State>>,
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
                status,
            })),
        }
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
        state.active = Arc::new(set);
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
}
