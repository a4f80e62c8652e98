//! The read-only view of cluster state that cross-object rules consult.
//!
//! The live store (filled by watchers) and the offline store (filled from manifests) both
//! implement it, so the webhook, `check` and the tests run the same rules on the same interface.
//! Rules never call the API server: everything they need is in the view.

/// Whether the view reflects the cluster yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStatus {
    /// Every watched kind has completed its initial list.
    Synced,
    /// Not yet (or a watch broke); the text says which kinds.
    NotSynced(String),
}

/// Read access to the objects cross-object rules need.
pub trait ClusterView: Send + Sync {
    /// Whether cross-object answers can be trusted.
    fn sync_status(&self) -> SyncStatus;
}

/// A view with no objects that is always synced: for rules that need no other objects and for
/// tests of single-object rules.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmptyView;

impl ClusterView for EmptyView {
    fn sync_status(&self) -> SyncStatus {
        SyncStatus::Synced
    }
}
