//! The audit: re-evaluating what already runs in the cluster and reporting it.

pub mod lease;
pub mod writer;
