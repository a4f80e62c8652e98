//! The pure policy core: typed objects, the cluster view and the policy config in; findings,
//! patch operations and a verdict out. Nothing in here performs IO.

pub mod break_glass;
pub mod config;
pub mod defaults;
pub mod engine;
pub mod finding;
pub mod gateway;
pub mod glob;
pub mod labels;
pub mod load;
pub mod objects;
pub mod patch;
pub mod rules;
pub mod schema;
pub mod set;
pub mod view;
pub mod yaml;

pub use config::{Mode, RolloutPolicy};
pub use engine::{Context, FindingOutcome, RecordedFinding, RuleEntry, Verdict};
pub use finding::{Endpoint, EvalError, Finding, Fix, Severity};
pub use set::PolicySet;
pub use view::{ClusterView, EmptyView, SyncStatus};
