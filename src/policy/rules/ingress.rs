//! Rules for networking.k8s.io/v1 Ingresses (ingress-nginx canaries).

use k8s_openapi::api::networking::v1::Ingress;

use crate::policy::engine::RuleEntry;

/// The Ingress rules.
pub const RULES: &[RuleEntry<Ingress>] = &[];
