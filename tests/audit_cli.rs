//! `rollout-guard audit --objects PATH`: the real binary, its exit codes and bad input, and the
//! reports it prints checked against the CRD schemas in `../shared/crds` (required fields,
//! enums, types, and no field the API server would prune). Every report printed here is left in
//! `target/format-cases/reports/` for the independent jsonschema check of
//! `tests/checks/validate_formats.py`.

mod common;

use std::path::PathBuf;

use serde_json::Value;

use common::{repo, run, stderr, stdout};

/// Runs `audit ... -o json`, saves the List under `target/format-cases/reports/<name>.json`
/// and returns the exit code and the reports.
fn audit_json(name: &str, args: &[&str]) -> (Option<i32>, Vec<Value>) {
    let mut full = vec!["audit"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    let output = run(&full);
    let text = stdout(&output);
    let list: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\nstderr: {}", stderr(&output)));
    std::fs::write(
        common::format_cases_dir("reports").join(format!("{name}.json")),
        &text,
    )
    .unwrap();
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap().clone();
    for report in &items {
        check_against_crd(report);
    }
    (output.status.code(), items)
}

// ---- the CRD schemas -------------------------------------------------------------------------

fn crds_dir() -> PathBuf {
    repo().join("../shared/crds")
}

/// The `openAPIV3Schema` for `apiVersion` and `kind`, when ../shared/crds holds its CRD.
fn crd_schema(api_version: &str, kind: &str) -> Option<Value> {
    let (group, version) = api_version.split_once('/')?;
    let dir = crds_dir().join(group);
    for entry in std::fs::read_dir(&dir).ok()? {
        let path = entry.ok()?.path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
        if crd["spec"]["names"]["kind"] != kind {
            continue;
        }
        let versions = crd["spec"]["versions"].as_array()?;
        let found = versions.iter().find(|v| v["name"] == version)?;
        return Some(found["schema"]["openAPIV3Schema"].clone());
    }
    None
}

/// What the API server checks of a CRD object, in short: types, enums, required fields, and
/// fields the structural schema does not declare (which it would silently prune).
fn schema_problems(value: &Value, schema: &Value, at: &str, problems: &mut Vec<String>) {
    let kind_ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !kind_ok {
        problems.push(format!("{at}: expected {}, got {value}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            problems.push(format!("{at}: {value} not in {allowed:?}"));
        }
    }
    if let Some(map) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            if !map.contains_key(required.as_str().unwrap()) {
                problems.push(format!("{at}: required field {required} missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (key, child) in map {
            match (
                properties.and_then(|p| p.get(key)),
                &schema["additionalProperties"],
            ) {
                (Some(child_schema), _) => {
                    schema_problems(child, child_schema, &format!("{at}.{key}"), problems)
                }
                (None, Value::Object(_)) => schema_problems(
                    child,
                    &schema["additionalProperties"],
                    &format!("{at}.{key}"),
                    problems,
                ),
                // `metadata: {type: object}`: ObjectMeta, checked by the API server itself.
                (None, _) if properties.is_none() => {}
                (None, _) => problems.push(format!("{at}.{key}: not in the schema (pruned)")),
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (index, item) in items.iter().enumerate() {
            schema_problems(item, &schema["items"], &format!("{at}[{index}]"), problems);
        }
    }
}

/// The fields a writer and Policy Reporter rely on, then the CRD's own schema when present.
fn check_against_crd(report: &Value) {
    let api_version = report["apiVersion"].as_str().unwrap();
    let kind = report["kind"].as_str().unwrap();
    assert!(report["metadata"]["name"].is_string(), "{report}");
    assert!(report["summary"].is_object(), "{report}");
    for result in report["results"].as_array().unwrap() {
        for field in [
            "policy",
            "result",
            "severity",
            "message",
            "source",
            "resources",
        ] {
            assert!(
                result.get(field).is_some(),
                "result without {field}: {result}"
            );
        }
    }
    match crd_schema(api_version, kind) {
        Some(schema) => {
            let mut problems = Vec::new();
            schema_problems(report, &schema, kind, &mut problems);
            assert!(problems.is_empty(), "{kind}: {problems:#?}\n{report:#}");
        }
        None => eprintln!(
            "SKIP CRD schema check of {api_version} {kind}: no CRD for it in {} \
             (../shared/crds is not present)",
            crds_dir().display()
        ),
    }
}

/// The checker itself can fail: a report with a misspelt result, a missing `policy` and an
/// undeclared field is caught.
#[test]
fn the_schema_check_catches_what_the_api_server_would_refuse_or_prune() {
    let Some(schema) = crd_schema("wgpolicyk8s.io/v1alpha2", "PolicyReport") else {
        eprintln!("SKIP: ../shared/crds is not present");
        return;
    };
    let bad = serde_json::json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "x"},
        "summary": {"pass": "1"},
        "results": [{"result": "failed", "severity": "urgent", "status": 3}],
    });
    let mut problems = Vec::new();
    schema_problems(&bad, &schema, "PolicyReport", &mut problems);
    let text = problems.join("\n");
    for expected in [
        "summary.pass: expected",
        "required field \"policy\" missing",
        "\"failed\" not in",
        "\"urgent\" not in",
        "results[0].status: not in the schema (pruned)",
    ] {
        assert!(text.contains(expected), "{expected} not in:\n{text}");
    }
    let mut problems = Vec::new();
    let pruned = serde_json::json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "x"}, "source": "rollout-guard"});
    schema_problems(&pruned, &schema, "PolicyReport", &mut problems);
    assert_eq!(
        problems,
        ["PolicyReport.source: not in the schema (pruned)"]
    );
}

// ---- the command ---------------------------------------------------------------------------

#[test]
fn openreports_for_the_strategies_examples() {
    let (code, reports) = audit_json(
        "strategies-openreports",
        &["--objects", "examples/strategies"],
    );
    assert_eq!(code, Some(1), "a denial exits 1, as in check");
    assert!(!reports.is_empty());
    for report in &reports {
        assert_eq!(report["apiVersion"], "openreports.io/v1alpha1");
        assert_eq!(report["kind"], "Report");
        assert_eq!(report["metadata"]["name"], "rollout-guard");
        assert_eq!(
            report["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "rollout-guard"
        );
        assert_eq!(report["source"], "rollout-guard");
    }
    let results: Vec<&Value> = reports
        .iter()
        .flat_map(|r| r["results"].as_array().unwrap())
        .collect();
    assert!(results.iter().any(|r| r["policy"] == "httpRoute"
        && r["rule"] == "shadowedMatch"
        && r["result"] == "fail"));
}

#[test]
fn wgpolicyk8s_reports_and_the_cap() {
    let (code, reports) = audit_json(
        "manifests-wgpolicyk8s-capped",
        &[
            "--objects",
            "examples/manifests",
            "examples/strategies",
            "--flavor",
            "wgpolicyk8s",
            "--max-results",
            "2",
        ],
    );
    assert_eq!(code, Some(1));
    let mut capped = 0;
    for report in &reports {
        assert_eq!(report["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(report["kind"], "PolicyReport");
        let results = report["results"].as_array().unwrap();
        assert!(results.len() <= 2);
        let summary = &report["summary"];
        let total: u64 = ["fail", "warn", "error", "skip"]
            .iter()
            .map(|k| summary[k].as_u64().unwrap())
            .sum();
        let left_out = report["metadata"]["annotations"]["rollout-guard.io/results-left-out"]
            .as_str()
            .map(|n| n.parse::<u64>().unwrap())
            .unwrap_or(0);
        assert_eq!(total, results.len() as u64 + left_out, "{report:#}");
        capped += usize::from(left_out > 0);
    }
    assert!(capped > 0, "some namespace has more than 2 results");
}

/// The same input prints the same bytes (no clock, sorted), in every format.
#[test]
fn output_is_deterministic() {
    for format in ["json", "yaml", "text"] {
        let args = [
            "audit",
            "--objects",
            "examples/strategies",
            "examples/manifests",
            "-o",
            format,
        ];
        let first = run(&args);
        let second = run(&args);
        assert_eq!(stdout(&first), stdout(&second), "{format}");
        assert!(!stdout(&first).is_empty());
    }
}

#[test]
fn yaml_output_is_one_document_per_report() {
    let output = run(&["audit", "--objects", "examples/strategies", "-o", "yaml"]);
    let text = stdout(&output);
    let json = run(&["audit", "--objects", "examples/strategies", "-o", "json"]);
    let list: Value = serde_json::from_str(&stdout(&json)).unwrap();
    let documents: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(&documents, list["items"].as_array().unwrap());
}

#[test]
fn text_summary_names_namespaces_and_results() {
    let output = run(&["audit", "--objects", "examples/strategies"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("fail HTTPRoute"), "{text}");
    assert!(text.contains("httpRoute.shadowedMatch"), "{text}");
    assert!(text.lines().last().unwrap().contains("fail"), "{text}");
}

#[test]
fn nothing_failing_exits_0() {
    let dir = common::TempDir::new("audit-ok");
    std::fs::write(
        dir.path("svc.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n",
    )
    .unwrap();
    let (code, reports) = audit_json("service-only", &["--objects", dir.0.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{reports:#?}");
}

/// Bad input: the file and line, exit 2, no reports and no panic.
#[test]
fn bad_input_is_reported_with_file_and_line() {
    let dir = common::TempDir::new("audit-bad");
    let bad = dir.path("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\nkind: [unclosed\n",
    )
    .unwrap();
    let output = run(&["audit", "--objects", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("bad.yaml:5"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(stdout(&output).is_empty(), "no partial reports");

    let missing = run(&["audit", "--objects", "does/not/exist"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("does/not/exist"));

    let bad_policies = run(&[
        "audit",
        "--objects",
        "examples/strategies",
        "--policies",
        "does/not/exist",
    ]);
    assert_eq!(bad_policies.status.code(), Some(2));
}
