//! Cross-object fixture cases: a cluster state, one admission request, the expected verdict.
//! Every `*.yaml` under `tests/fixtures/service/` and `tests/fixtures/deployment-siblings/` is
//! one case, run through the webhook's own path (`admission::review` on `/validate`) with the
//! state loaded into an offline store exactly as `serve --objects` and `check` load it.
//!
//! ```yaml
//! description: what the case shows
//! rule: blueGreen                      # only this rule's warnings/denials are compared, so
//!                                      # other rules' findings on the same object do not matter
//! policy: {blueGreen: {onError: deny}} # optional: spec.rules of the governing policy
//! synced: false                        # optional: Deployments not listed yet (store not synced)
//! objects: [...]                       # the cluster state: manifests of any stored kind
//! request:
//!   operation: UPDATE                  # CREATE | UPDATE | DELETE
//!   object: {...}                      # absent on DELETE
//!   oldObject: {...}                   # UPDATE and DELETE
//! expect:
//!   allowed: true
//!   warnings: ["substring", ...]       # exactly this many of the rule's warnings, each
//!   denials: ["substring", ...]        # containing its substring (in order); same for denials
//! ```

use std::path::{Path, PathBuf};

use rollout_guard::admission::{review, ReviewContext};
use rollout_guard::manifest::Document;
use rollout_guard::policy::finding::Endpoint;
use rollout_guard::policy::{PolicySet, RolloutPolicy};
use rollout_guard::store::{Store, StoredKind};
use serde_json::{json, Value};

const DIRECTORIES: &[&str] = &[
    "tests/fixtures/service",
    "tests/fixtures/deployment-siblings",
];

fn cases() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in DIRECTORIES {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn strings(value: &Value, field: &str) -> Vec<String> {
    value[field]
        .as_array()
        .unwrap_or_else(|| panic!("expect.{field} must be a list"))
        .iter()
        .map(|s| s.as_str().expect("substring").to_owned())
        .collect()
}

/// Builds the AdmissionReview the API server would send for this request.
fn admission_review(request: &Value) -> Vec<u8> {
    let object = request
        .get("object")
        .filter(|o| !o.is_null())
        .or_else(|| request.get("oldObject"))
        .expect("request.object or request.oldObject");
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "fixture-uid",
            "kind": {"group": group, "version": version, "kind": object["kind"]},
            "resource": {"group": group, "version": version, "resource": "fixture"},
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": request["operation"],
            "userInfo": {"username": "fixture@example.com"},
            "object": request.get("object").cloned().unwrap_or(Value::Null),
            "oldObject": request.get("oldObject").cloned().unwrap_or(Value::Null),
        }
    });
    serde_json::to_vec(&body).unwrap()
}

/// Checks one case; `Err` describes every mismatch.
fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case: Value = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
    let rule = case["rule"].as_str().ok_or("missing rule")?;

    let documents: Vec<Document> = case["objects"]
        .as_array()
        .ok_or("objects must be a list")?
        .iter()
        .map(|value| Document {
            file: path.to_owned(),
            line: 0,
            value: value.clone(),
        })
        .collect();
    let (filled, load_warnings) = Store::from_documents(&documents);
    if !load_warnings.is_empty() {
        return Err(format!("objects do not load: {load_warnings:?}"));
    }
    let store = if case["synced"] == json!(false) {
        // Same contents, but Deployments have not been listed yet.
        let pending = Store::expecting(&[StoredKind::Deployment]);
        for document in &documents {
            pending
                .apply_object(&document.value)
                .map_err(|e| e.to_string())?;
        }
        pending
    } else {
        filled
    };

    let policy: RolloutPolicy = serde_json::from_value(json!({
        "apiVersion": "rollout-guard.io/v1alpha1", "kind": "RolloutPolicy",
        "metadata": {"name": "fixture"},
        "spec": {"rules": case.get("policy").cloned().unwrap_or(json!({}))}
    }))
    .map_err(|e| format!("policy: {e}"))?;
    let policies = PolicySet::new(vec![policy], "fixture".to_owned());
    let ctx = ReviewContext {
        policies: &policies,
        view: &store,
        own_namespace: Some("rollout-guard"),
    };
    let reviewed = review(
        Endpoint::Validate,
        &admission_review(&case["request"]),
        &ctx,
    )
    .map_err(|e| format!("review failed: {e}"))?;
    if let Some(invalid) = reviewed.invalid {
        return Err(format!("object rejected as invalid: {invalid}"));
    }
    let verdict = &reviewed.verdict;
    let response: Value = serde_json::from_slice(&reviewed.body).map_err(|e| e.to_string())?;

    let expect = &case["expect"];
    let mut problems = Vec::new();
    let allowed = expect["allowed"].as_bool().ok_or("expect.allowed")?;
    if response["response"]["allowed"] != json!(allowed) || verdict.allowed() != allowed {
        problems.push(format!(
            "allowed: expected {allowed}, got {} ({:?})",
            verdict.allowed(),
            verdict.denials
        ));
    }
    if response["response"]["uid"] != "fixture-uid" {
        problems.push("uid not echoed".to_owned());
    }
    let prefix = format!("rollout-guard {rule}.");
    let warnings: Vec<&String> = verdict
        .warnings
        .iter()
        .filter(|w| w.starts_with(&prefix))
        .collect();
    let denials: Vec<String> = verdict
        .denials
        .iter()
        .filter(|d| d.source.starts_with(&format!("{rule}.")))
        .map(|d| format!("{}: {}", d.source, d.message))
        .collect();
    compare(
        "warning",
        &strings(expect, "warnings"),
        &warnings,
        &mut problems,
    );
    compare(
        "denial",
        &strings(expect, "denials"),
        &denials,
        &mut problems,
    );
    if !allowed {
        let message = response["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        for expected in strings(expect, "denials") {
            if !message.contains(&expected) {
                problems.push(format!("status.message lacks {expected:?}: {message}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n  "))
    }
}

fn compare<S: AsRef<str>>(what: &str, expected: &[String], got: &[S], problems: &mut Vec<String>) {
    let got: Vec<&str> = got.iter().map(AsRef::as_ref).collect();
    if expected.len() != got.len() {
        problems.push(format!(
            "expected {} {what}(s), got {}: {got:#?}",
            expected.len(),
            got.len()
        ));
        return;
    }
    for (want, have) in expected.iter().zip(&got) {
        if !have.contains(want.as_str()) {
            problems.push(format!("{what} lacks {want:?}: {have}"));
        }
    }
}

#[test]
fn cross_object_fixtures() {
    let cases = cases();
    assert!(
        cases.len() >= 10,
        "fixture directories look empty: {cases:?}"
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|path| {
            run_case(path)
                .err()
                .map(|problem| format!("{}:\n  {problem}", path.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixture(s) failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
