//! Rules for v1 Services (blue/green selector switches).

use k8s_openapi::api::core::v1::Service;

use crate::policy::engine::RuleEntry;

/// The Service rules.
pub const RULES: &[RuleEntry<Service>] = &[];
