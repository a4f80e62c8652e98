//! The active, validated set of policies and the choice of the one that governs a namespace.

use crate::policy::config::RolloutPolicy;
use crate::policy::glob::any_match;

/// Validated policies, ordered so that the first match wins: priority descending, then name.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySet {
    policies: Vec<RolloutPolicy>,
    digest: String,
}

impl PolicySet {
    /// Orders already-validated policies. `digest` identifies the sources (shown in metrics and
    /// `/readyz`, so operators can tell which revision of the ConfigMap is live).
    pub fn new(mut policies: Vec<RolloutPolicy>, digest: String) -> Self {
        policies.sort_by(|a, b| {
            b.spec
                .priority
                .cmp(&a.spec.priority)
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        });
        Self { policies, digest }
    }

    /// The policy that governs objects in `namespace`, if any selects it.
    pub fn governing(&self, namespace: &str) -> Option<&RolloutPolicy> {
        self.policies.iter().find(|policy| {
            let select = &policy.spec.r#match;
            any_match(&select.namespaces, namespace)
                && !any_match(&select.exclude_namespaces, namespace)
        })
    }

    /// All policies, in precedence order.
    pub fn policies(&self) -> &[RolloutPolicy] {
        &self.policies
    }

    /// Identifies the sources this set was built from.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}
