//! The API server's defaulting of Deployments, for `check`.
//!
//! A webhook never sees a manifest as written: the API server applies its defaults first
//! (`SetDefaults_Deployment` in kubernetes `pkg/apis/apps/v1/defaults.go`), so rules treat the
//! exact default values as "not chosen by the user". `check` reads manifests as written, so it
//! applies the same defaults before review; otherwise its verdicts would differ from the
//! cluster's (a Deployment without `strategy` would look unlike anything the webhook receives).
//! Only the fields the rules read are defaulted; pod-template defaults (restartPolicy,
//! terminationMessagePath, ...) change no verdict.

use serde_json::{json, Map, Value};

/// Applies the API server's Deployment defaults in place and returns the fields it filled in
/// (dotted paths, for telling the user). A field holding `null` counts as absent, as it does for
/// the API server. Objects that are not maps, or have a non-map `spec`, are left alone (the
/// typed parse reports them).
pub fn apply_deployment_defaults(deployment: &mut Value) -> Vec<&'static str> {
    let mut filled = Vec::new();
    let Some(object) = deployment.as_object_mut() else {
        return filled;
    };
    let spec = object
        .entry("spec")
        .or_insert_with(|| Value::Object(Map::new()));
    if spec.is_null() {
        *spec = Value::Object(Map::new());
    }
    let Some(spec) = spec.as_object_mut() else {
        return filled;
    };

    if fill(spec, "replicas", json!(1)) {
        filled.push("spec.replicas");
    }

    let strategy = spec
        .entry("strategy")
        .or_insert_with(|| Value::Object(Map::new()));
    if strategy.is_null() {
        *strategy = Value::Object(Map::new());
    }
    if let Some(strategy) = strategy.as_object_mut() {
        let type_missing = strategy
            .get("type")
            .is_none_or(|t| t.is_null() || t.as_str() == Some(""));
        if type_missing {
            strategy.insert("type".to_owned(), json!("RollingUpdate"));
            filled.push("spec.strategy.type");
        }
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            let rolling = strategy
                .entry("rollingUpdate")
                .or_insert_with(|| Value::Object(Map::new()));
            if rolling.is_null() {
                *rolling = Value::Object(Map::new());
            }
            if let Some(rolling) = rolling.as_object_mut() {
                if fill(rolling, "maxUnavailable", json!("25%")) {
                    filled.push("spec.strategy.rollingUpdate.maxUnavailable");
                }
                if fill(rolling, "maxSurge", json!("25%")) {
                    filled.push("spec.strategy.rollingUpdate.maxSurge");
                }
            }
        }
    }

    if fill(spec, "revisionHistoryLimit", json!(10)) {
        filled.push("spec.revisionHistoryLimit");
    }
    if fill(spec, "progressDeadlineSeconds", json!(600)) {
        filled.push("spec.progressDeadlineSeconds");
    }
    filled
}

/// Whether [`apply_deployment_defaults`] would fill anything in. Cheap: it runs on a copy of the
/// few fields it reads, not of the object (objects read from the API server carry every
/// default already, and can be tens of kilobytes).
pub fn needs_deployment_defaults(deployment: &Value) -> bool {
    let Some(object) = deployment.as_object() else {
        return false;
    };
    let spec = match object.get("spec") {
        None | Some(Value::Null) => return true,
        Some(Value::Object(spec)) => spec,
        Some(_) => return false,
    };
    let read: Map<String, Value> = [
        "replicas",
        "strategy",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    ]
    .into_iter()
    .filter_map(|key| spec.get(key).map(|value| (key.to_owned(), value.clone())))
    .collect();
    let mut skeleton = json!({ "spec": Value::Object(read) });
    !apply_deployment_defaults(&mut skeleton).is_empty()
}

/// Sets `key` to `value` when absent or null; true when it did.
fn fill(map: &mut Map<String, Value>, key: &str, value: Value) -> bool {
    match map.get(key) {
        Some(existing) if !existing.is_null() => false,
        _ => {
            map.insert(key.to_owned(), value);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (manifest spec as written, expected spec after defaulting, fields reported).
    #[test]
    fn table() {
        let cases: Vec<(Value, Value, Vec<&str>)> = vec![
            (
                json!({}),
                json!({"replicas": 1, "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                    "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}),
                vec![
                    "spec.replicas",
                    "spec.strategy.type",
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "spec.strategy.rollingUpdate.maxSurge",
                    "spec.revisionHistoryLimit",
                    "spec.progressDeadlineSeconds",
                ],
            ),
            // Recreate gets no rollingUpdate (the API server rejects one next to Recreate).
            (
                json!({"replicas": 3, "strategy": {"type": "Recreate"}}),
                json!({"replicas": 3, "strategy": {"type": "Recreate"},
                    "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}),
                vec!["spec.revisionHistoryLimit", "spec.progressDeadlineSeconds"],
            ),
            // Chosen values are kept; only the missing half of rollingUpdate is filled.
            (
                json!({"replicas": 2, "strategy": {"rollingUpdate": {"maxUnavailable": "100%"}},
                    "revisionHistoryLimit": 0, "progressDeadlineSeconds": 120, "minReadySeconds": 0}),
                json!({"replicas": 2, "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "100%", "maxSurge": "25%"}},
                    "revisionHistoryLimit": 0, "progressDeadlineSeconds": 120, "minReadySeconds": 0}),
                vec!["spec.strategy.type", "spec.strategy.rollingUpdate.maxSurge"],
            ),
            // Helm templates often render `null`; the API server treats it as absent.
            (
                json!({"replicas": null, "strategy": null, "revisionHistoryLimit": 5,
                    "progressDeadlineSeconds": 600}),
                json!({"replicas": 1, "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                    "revisionHistoryLimit": 5, "progressDeadlineSeconds": 600}),
                vec![
                    "spec.replicas",
                    "spec.strategy.type",
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "spec.strategy.rollingUpdate.maxSurge",
                ],
            ),
        ];
        for (spec, expected, fields) in cases {
            let mut deployment =
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": spec});
            assert!(needs_deployment_defaults(&deployment), "spec {spec}");
            let filled = apply_deployment_defaults(&mut deployment);
            assert!(!needs_deployment_defaults(&deployment), "spec {spec}");
            assert_eq!(deployment["spec"], expected, "spec {spec}");
            assert_eq!(filled, fields, "spec {spec}");
            // Defaulting is idempotent, like the API server's.
            let again = deployment.clone();
            assert!(apply_deployment_defaults(&mut deployment).is_empty());
            assert_eq!(deployment, again);
        }
    }

    #[test]
    fn odd_shapes_are_left_for_the_typed_parse() {
        for mut odd in [
            json!("text"),
            json!({"spec": 5}),
            json!({"spec": {"strategy": "x"}}),
        ] {
            let before = odd.clone();
            let needed = needs_deployment_defaults(&odd);
            assert_eq!(
                needed,
                !apply_deployment_defaults(&mut odd).is_empty(),
                "{before}"
            );
            if before.get("spec").is_some_and(Value::is_object) {
                // Top-level fields of the spec are still filled; the odd strategy is untouched.
                assert_eq!(odd["spec"]["strategy"], "x");
            } else {
                assert_eq!(odd, before);
            }
        }
    }
}
