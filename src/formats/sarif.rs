//! SARIF 2.1.0: one run of `rollout-guard`, every policy check described in
//! `tool.driver.rules`, one result per finding located at the manifest's file and line.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::formats::artifact_uri;
use crate::policy::engine::ERROR_CHECK;
use crate::policy::load::RULE_CATALOG;

/// The schema SARIF consumers (and Microsoft's validator) expect in `$schema`.
pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Rule id of a document that is not a readable Kubernetes object.
pub const INVALID_RULE: &str = "manifest.invalid";
/// Rule id of a path or document that cannot be read at all.
pub const UNREADABLE_RULE: &str = "manifest.unreadable";
/// Rule id of an object in an API version no supported cluster serves.
pub const API_NOT_SERVED_RULE: &str = "manifest.apiNotServed";

/// How serious a result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A denial, or input that cannot be judged.
    Error,
    /// A warning the API server would show.
    Warning,
    /// A value the mutating webhook fills in.
    Note,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Note => "note",
        }
    }
}

/// One result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `rule.check`, or one of the `manifest.*` ids.
    pub rule_id: String,
    /// How serious.
    pub level: Level,
    /// What is wrong and what to do.
    pub message: String,
    /// Where: the file.
    pub file: PathBuf,
    /// Where: the 1-based line, when known.
    pub line: Option<usize>,
}

/// A rule as `tool.driver.rules` describes it.
struct RuleDescription {
    id: String,
    short: String,
    full: String,
    level: Level,
}

/// Every check of every policy rule, each rule's evaluation error, and the manifest rules; plus
/// any id a result uses that the catalogue does not know (so every result has its rule).
fn rule_descriptions(results: &[Finding]) -> Vec<RuleDescription> {
    let mut rules = Vec::new();
    for rule in RULE_CATALOG {
        for check in rule.checks {
            rules.push(RuleDescription {
                id: format!("{}.{check}", rule.name),
                short: format!("rollout-guard rule {}, check {check}", rule.name),
                full: format!(
                    "The {check} check of the {} rule (spec.rules.{}); its mode in the policy decides whether a finding is filled in, warned about or denied. See policies/README.md.",
                    rule.name, rule.name
                ),
                level: Level::Warning,
            });
        }
        rules.push(RuleDescription {
            id: format!("{}.{ERROR_CHECK}", rule.name),
            short: format!("rollout-guard rule {} could not evaluate", rule.name),
            full: format!(
                "The {} rule could not judge the object (cluster state not synced, or an object it cannot read) and answered by its onError setting.",
                rule.name
            ),
            level: Level::Warning,
        });
    }
    rules.push(RuleDescription {
        id: INVALID_RULE.to_owned(),
        short: "The document is not a readable Kubernetes object".to_owned(),
        full: "The document has no apiVersion and kind, or does not read as the kind it names, so the webhook would refuse it as a bad request.".to_owned(),
        level: Level::Error,
    });
    rules.push(RuleDescription {
        id: UNREADABLE_RULE.to_owned(),
        short: "The file or document cannot be read".to_owned(),
        full: "The path cannot be read, or the document is not YAML or JSON; nothing in it was evaluated.".to_owned(),
        level: Level::Error,
    });
    rules.push(RuleDescription {
        id: API_NOT_SERVED_RULE.to_owned(),
        short: "The object's API version is not served by any supported Kubernetes".to_owned(),
        full: "extensions/v1beta1 and networking.k8s.io/v1beta1 Ingresses are not served since Kubernetes 1.22: the API server rejects them and nothing was checked. Convert them to networking.k8s.io/v1.".to_owned(),
        level: Level::Error,
    });
    let known: BTreeSet<String> = rules.iter().map(|r| r.id.clone()).collect();
    let unknown: BTreeSet<&str> = results
        .iter()
        .map(|r| r.rule_id.as_str())
        .filter(|id| !known.contains(*id))
        .collect();
    for id in unknown {
        rules.push(RuleDescription {
            id: id.to_owned(),
            short: format!("rollout-guard {id}"),
            full: format!("rollout-guard {id}."),
            level: Level::Warning,
        });
    }
    rules
}

/// A SARIF log of one run with `results`; `successful` says whether the run itself worked (not
/// whether anything was found).
pub fn log(results: &[Finding], successful: bool) -> Value {
    let rules = rule_descriptions(results);
    let index_of = |id: &str| rules.iter().position(|r| r.id == id);
    let rules_json: Vec<Value> = rules
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "name": pascal_case(&rule.id),
                "shortDescription": {"text": rule.short},
                "fullDescription": {"text": rule.full},
                "help": {"text": rule.full},
                "defaultConfiguration": {"level": rule.level.as_str()},
            })
        })
        .collect();
    let results_json: Vec<Value> = results
        .iter()
        .map(|result| {
            let mut region = json!({});
            if let Some(line) = result.line {
                region = json!({"startLine": line.max(1)});
            }
            let mut location = json!({
                "physicalLocation": {
                    "artifactLocation": {"uri": artifact_uri(&result.file)},
                }
            });
            if result.line.is_some() {
                location["physicalLocation"]["region"] = region;
            }
            let mut entry = json!({
                "ruleId": result.rule_id,
                "level": result.level.as_str(),
                "message": {"text": sentence(&result.message)},
                "locations": [location],
            });
            if let Some(index) = index_of(&result.rule_id) {
                entry["ruleIndex"] = json!(index);
            }
            entry
        })
        .collect();
    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "rollout-guard",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules_json,
            }},
            "invocations": [{"executionSuccessful": successful}],
            "columnKind": "unicodeCodePoints",
            "results": results_json,
        }]
    })
}

/// `ingressCanary.missingMain` → `IngressCanaryMissingMain` (SARIF rule names are identifiers).
fn pascal_case(id: &str) -> String {
    id.split(['.', '-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// SARIF messages are sentences: end with a period when the text does not end in punctuation.
fn sentence(text: &str) -> String {
    let trimmed = text.trim_end();
    if trimmed.ends_with(['.', '!', '?']) {
        trimmed.to_owned()
    } else {
        format!("{trimmed}.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_point_at_their_rule_and_line() {
        let log = log(
            &[Finding {
                rule_id: "ingressCanary.missingMain".into(),
                level: Level::Error,
                message: "no main Ingress".into(),
                file: "deploy/canary.yaml".into(),
                line: Some(12),
            }],
            true,
        );
        let run = &log["runs"][0];
        let result = &run["results"][0];
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(
            run["tool"]["driver"]["rules"][index]["id"],
            "ingressCanary.missingMain"
        );
        assert_eq!(
            result["locations"][0]["physicalLocation"]["region"]["startLine"],
            12
        );
        assert_eq!(result["message"]["text"], "no main Ingress.");
        assert_eq!(
            pascal_case("blueGreen.selectsNothing"),
            "BlueGreenSelectsNothing"
        );
    }

    #[test]
    fn unknown_rule_ids_get_a_description() {
        let log = log(
            &[Finding {
                rule_id: "newRule.check".into(),
                level: Level::Warning,
                message: "m".into(),
                file: "f.yaml".into(),
                line: None,
            }],
            true,
        );
        let rules = log["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap();
        assert!(rules.iter().any(|r| r["id"] == "newRule.check"));
        assert!(
            log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
                .get("region")
                .is_none()
        );
    }
}
