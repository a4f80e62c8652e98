//! Rules for networking.k8s.io/v1 Ingresses served by ingress-nginx: canary Ingresses and the
//! main Ingresses they depend on.
//!
//! ingress-nginx rejects almost nothing about canaries: it parses annotations leniently
//! (`annotations`) and, when it builds its configuration, silently drops canary backends it
//! cannot attach (`mergeAlternativeBackends` in internal/ingress/controller/controller.go). These
//! rules replay that logic against the cluster view so the mistake is caught at write time.

pub mod annotations;
pub mod canary;

use k8s_openapi::api::networking::v1::Ingress;

use crate::policy::config::{RuleSettings, Rules};
use crate::policy::engine::RuleEntry;
use crate::policy::finding::RulePhase;

/// The Ingress rules.
pub const RULES: &[RuleEntry<Ingress>] = &[RuleEntry {
    name: canary::RULE,
    // Needs the final object and other objects; never patches.
    phase: RulePhase::Validating,
    settings: |rules: &Rules| -> &dyn RuleSettings { &rules.ingress_canary },
    evaluate: canary::evaluate,
}];
