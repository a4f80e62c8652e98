//! Parsing and validating policy sources (pure: text in, `PolicySet` or every error out).
//!
//! TODO(policy loader): line numbers for every error, semantic validation, JSON Schema.

use crate::policy::config::{RolloutPolicy, API_VERSION, KIND};
use crate::policy::set::PolicySet;

/// One policy file's name and text.
#[derive(Debug, Clone)]
pub struct Source {
    /// File name (for messages).
    pub name: String,
    /// Its text.
    pub text: String,
}

/// One problem in the policy sources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct PolicyError {
    /// File name.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// Field path, e.g. `spec.rules.rollingUpdate.mode`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Every problem found, so an edit can be fixed in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} policy error(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct PolicyErrors(pub Vec<PolicyError>);

/// The policy compiled into the binary: the repository's `policies/default.yaml`.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../policies/default.yaml");

/// The embedded default as a set. It is validated by a test, so failing here is a build bug.
pub fn embedded_default() -> PolicySet {
    parse_sources(&[Source {
        name: "embedded:default.yaml".to_owned(),
        text: EMBEDDED_DEFAULT.to_owned(),
    }])
    .unwrap_or_else(|_| PolicySet::new(Vec::new(), "invalid-embedded-default".to_owned()))
}

/// Parses and validates all sources into one set, or reports every error.
pub fn parse_sources(sources: &[Source]) -> Result<PolicySet, PolicyErrors> {
    let mut policies = Vec::new();
    let mut errors = Vec::new();
    for source in sources {
        for document in serde_yaml::Deserializer::from_str(&source.text) {
            use serde::Deserialize;
            let yaml_error = |error: serde_yaml::Error| PolicyError {
                file: source.name.clone(),
                line: error.location().map_or(0, |l| l.line()),
                field: String::new(),
                message: error.to_string(),
            };
            let value = match serde_yaml::Value::deserialize(document) {
                Ok(value) => value,
                Err(error) => {
                    // After a YAML syntax error serde_yaml's document iterator yields the same
                    // error forever (dtolnay/serde-yaml#193): report it once, stop this source.
                    errors.push(yaml_error(error));
                    break;
                }
            };
            if value.is_null() {
                continue;
            }
            match serde_yaml::from_value::<RolloutPolicy>(value) {
                Ok(policy) => {
                    if policy.api_version != API_VERSION || policy.kind != KIND {
                        errors.push(PolicyError {
                            file: source.name.clone(),
                            line: 0,
                            field: "apiVersion".to_owned(),
                            message: format!("expected {API_VERSION} {KIND}"),
                        });
                    }
                    policies.push(policy);
                }
                Err(error) => errors.push(yaml_error(error)),
            }
        }
    }
    if errors.is_empty() {
        Ok(PolicySet::new(policies, digest(sources)))
    } else {
        Err(PolicyErrors(errors))
    }
}

/// A short hex digest of the sources, for metrics and `/readyz`.
pub fn digest(sources: &[Source]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for source in sources {
        hasher.update(source.name.as_bytes());
        hasher.update([0]);
        hasher.update(source.text.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let sources = [Source {
            name: "default.yaml".into(),
            text: EMBEDDED_DEFAULT.into(),
        }];
        let set = parse_sources(&sources).expect("embedded default policy must be valid");
        assert!(set.governing("default").is_some());
        assert!(set.governing("kube-system").is_none());
    }

    /// Found by the policy_loader fuzz target: a syntax error used to make the loader loop
    /// forever, collecting the same error until memory ran out.
    #[test]
    fn syntax_error_is_reported_once_and_ends_the_source() {
        let text = "apiVersion: rollout-guard.io/v1alpha1\nkind: RolloutPolicy\n\
                    metadata:\n  name: default\nspec:apiVe {}\n---\nspec: {}\n";
        let sources = [Source {
            name: "broken.yaml".into(),
            text: text.into(),
        }];
        let errors = parse_sources(&sources).expect_err("a syntax error must be reported");
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].file, "broken.yaml");
        assert!(errors.0[0].line > 0, "{errors}");
    }
}
