//! The audit: re-evaluating what already runs in the cluster and reporting it.

pub mod lease;
pub mod live_metrics;
pub mod run_loop;
pub mod writer;
