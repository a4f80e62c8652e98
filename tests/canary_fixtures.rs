//! Runs the multi-object fixture cases under `tests/fixtures/ingress/` and
//! `tests/fixtures/httproute/` through the real admission path.
//!
//! Each file is one case:
//! ```yaml
//! description: what the case shows
//! objects: [...]            # cluster state, stored with Store::apply_object
//! request: {operation, object, oldObject, namespace?}
//! policy: {...}             # optional inline RolloutPolicy (default: one with `spec: {}`)
//! expect: {allowed: bool, warnings: [substrings], denials: [substrings]}
//! ```
//! `warnings`/`denials` list substrings that must each appear in some warning/denial; an empty
//! list means "none at all"; a missing key means "not checked".

use std::path::{Path, PathBuf};

use rollout_guard::admission::{review, ReviewContext};
use rollout_guard::policy::finding::Endpoint;
use rollout_guard::policy::load::{parse_sources, Source};
use rollout_guard::store::Store;
use serde_json::{json, Value};

const DEFAULT_POLICY: &str =
    "apiVersion: rollout-guard.io/v1alpha1\nkind: RolloutPolicy\nmetadata: {name: fixture}\nspec: {}\n";

/// Cases each directory must hold, so a broken glob cannot make the runner pass vacuously.
const MINIMUM_CASES: &[(&str, usize)] = &[("ingress", 12), ("httproute", 8)];

fn fixture_files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn group_version(object: &Value) -> (String, String) {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    match api_version.rsplit_once('/') {
        Some((group, version)) => (group.to_owned(), version.to_owned()),
        None => (String::new(), api_version.to_owned()),
    }
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|items| {
        items
            .iter()
            .map(|i| i.as_str().unwrap_or_default().to_owned())
            .collect()
    })
}

/// Runs one case; `Err` lists every mismatch.
fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case: Value = serde_yaml::from_str(&text).map_err(|e| format!("not YAML: {e}"))?;

    let store = Store::offline();
    for object in case["objects"].as_array().into_iter().flatten() {
        store
            .apply_object(object)
            .map_err(|e| format!("objects: {e}"))?;
    }

    let policy_text = match case.get("policy") {
        Some(policy) => serde_yaml::to_string(policy).map_err(|e| e.to_string())?,
        None => DEFAULT_POLICY.to_owned(),
    };
    let policies = parse_sources(&[Source {
        name: "fixture-policy.yaml".into(),
        text: policy_text,
    }])
    .map_err(|e| format!("policy: {e}"))?;

    let request = &case["request"];
    let object = &request["object"];
    let old_object = &request["oldObject"];
    let subject = if object.is_null() { old_object } else { object };
    let (group, version) = group_version(subject);
    let namespace = request["namespace"]
        .as_str()
        .or_else(|| subject["metadata"]["namespace"].as_str())
        .unwrap_or("default");
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "fixture",
            "kind": {"group": group, "version": version, "kind": subject["kind"]},
            "name": subject["metadata"]["name"],
            "namespace": namespace,
            "operation": request["operation"],
            "userInfo": {"username": "fixture"},
            "object": object,
            "oldObject": old_object,
        }
    });
    let ctx = ReviewContext {
        policies: &policies,
        view: &store,
        own_namespace: None,
    };
    let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let reviewed = review(Endpoint::Validate, &body, &ctx).map_err(|e| e.to_string())?;
    if let Some(invalid) = reviewed.invalid {
        return Err(format!("object rejected as unreadable: {invalid}"));
    }
    let verdict = reviewed.verdict;
    let denials: Vec<String> = verdict
        .denials
        .iter()
        .map(|d| format!("[{}] {}", d.source, d.message))
        .collect();

    let expect = &case["expect"];
    let mut problems = Vec::new();
    match expect["allowed"].as_bool() {
        Some(allowed) if allowed != verdict.allowed() => problems.push(format!(
            "expected allowed={allowed}, got {} (denials {denials:?})",
            verdict.allowed()
        )),
        Some(_) => {}
        None => problems.push("expect.allowed is missing".to_owned()),
    }
    for (key, got) in [("warnings", &verdict.warnings), ("denials", &denials)] {
        let Some(wanted) = strings(&expect[key]) else {
            continue;
        };
        if wanted.is_empty() && !got.is_empty() {
            problems.push(format!("expected no {key}, got {got:?}"));
        }
        for needle in wanted {
            if !got.iter().any(|g| g.contains(&needle)) {
                problems.push(format!("no {key} contains {needle:?}; got {got:?}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n    "))
    }
}

#[test]
fn canary_and_httproute_fixtures() {
    let mut failures = Vec::new();
    for (dir, minimum) in MINIMUM_CASES {
        let files = fixture_files(dir);
        assert!(
            files.len() >= *minimum,
            "tests/fixtures/{dir} holds {} cases, expected at least {minimum}",
            files.len()
        );
        for file in files {
            if let Err(problem) = run_case(&file) {
                failures.push(format!("{}:\n    {problem}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
