//! Rules for `apps/v1` Deployments.

pub mod change_cause;
pub mod image;
pub mod intstr;
pub mod rollback;
pub mod rolling_update;
pub mod siblings;
pub mod template;
pub mod version_label;

use k8s_openapi::api::apps::v1::Deployment;

use crate::policy::config::{RuleSettings, Rules};
use crate::policy::engine::RuleEntry;
use crate::policy::finding::RulePhase;

/// The Deployment rules, in the order their patches are built. `rollback` comes first: when
/// the template is a ReplicaSet's, it holds back every later rule's edit of the template.
pub const RULES: &[RuleEntry<Deployment>] = &[
    RuleEntry {
        name: rollback::RULE,
        phase: RulePhase::Mutating,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.rollback },
        evaluate: rollback::evaluate,
    },
    RuleEntry {
        name: version_label::RULE,
        phase: RulePhase::Mutating,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.version_label },
        evaluate: version_label::evaluate,
    },
    RuleEntry {
        name: change_cause::RULE,
        phase: RulePhase::Mutating,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.change_cause },
        evaluate: change_cause::evaluate,
    },
    RuleEntry {
        name: rolling_update::RULE,
        phase: RulePhase::Mutating,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.rolling_update },
        evaluate: rolling_update::evaluate,
    },
    RuleEntry {
        name: siblings::RULE,
        phase: RulePhase::Validating,
        settings: |rules: &Rules| -> &dyn RuleSettings { &rules.deployment_siblings },
        evaluate: siblings::evaluate,
    },
];
