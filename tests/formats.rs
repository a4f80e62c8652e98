//! `check` (and `test`) in the CI formats, as a pipeline runs them: the real binary's SARIF and
//! JUnit output, checked here for what code scanning and test reporters rely on, and left in
//! `target/format-cases/` for the independent validators of `tests/checks/validate_formats.py`
//! (Microsoft's SARIF Multitool and the SARIF 2.1.0 schema, junitparser), which
//! scripts/test.sh runs after `cargo test`.

mod common;

use serde_json::Value;

use common::{repo, run};

/// Runs the command, saves stdout as `target/format-cases/<kind>/<name>` and returns it.
fn saved(name: &str, kind: &str, args: &[&str]) -> (Option<i32>, String) {
    let output = run(args);
    let text = String::from_utf8(output.stdout).unwrap();
    std::fs::write(common::format_cases_dir(kind).join(name), &text).unwrap();
    (output.status.code(), text)
}

fn sarif_results(log: &Value) -> &Vec<Value> {
    log["runs"][0]["results"].as_array().unwrap()
}

#[test]
fn check_sarif_locates_every_finding_at_its_manifest_line() {
    let (code, text) = saved(
        "check-strategies.sarif",
        "sarif",
        &["check", "-f", "examples/strategies", "-o", "sarif"],
    );
    assert_eq!(code, Some(1), "a denial still exits 1:\n{text}");
    let log: Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(log["version"], "2.1.0");
    let rules = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    let results = sarif_results(&log);
    let denial = results
        .iter()
        .find(|r| r["ruleId"] == "httpRoute.shadowedMatch" && r["level"] == "error")
        .unwrap_or_else(|| panic!("no shadowedMatch error in {results:#?}"));
    let location = &denial["locations"][0]["physicalLocation"];
    let uri = location["artifactLocation"]["uri"].as_str().unwrap();
    assert!(
        uri.starts_with("examples/strategies/"),
        "relative to the repository: {uri}"
    );
    let line = location["region"]["startLine"].as_u64().unwrap() as usize;
    // The line is where the denied object's document starts.
    let file = std::fs::read_to_string(repo().join(uri)).unwrap();
    let from_line: String = file
        .lines()
        .skip(line - 1)
        .take(8)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        from_line.contains("kind: HTTPRoute"),
        "{uri}:{line}: {from_line}"
    );
    for result in results {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
    }
    assert!(results.iter().any(|r| r["level"] == "warning"));
}

#[test]
fn check_sarif_reports_unreadable_documents() {
    let dir = common::TempDir::new("formats");
    let broken = dir.path("broken.yaml");
    std::fs::write(&broken, "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\nspec: {selector: {app: x}, ports: [{port: 80}]}\n---\nkind: [unclosed\n").unwrap();
    let (code, text) = saved(
        "check-unreadable.sarif",
        "sarif",
        &["check", "-f", broken.to_str().unwrap(), "-o", "sarif"],
    );
    assert_eq!(code, Some(2), "{text}");
    let log: Value = serde_json::from_str(&text).unwrap();
    let unreadable = sarif_results(&log)
        .iter()
        .find(|r| r["ruleId"] == "manifest.unreadable")
        .expect("the broken document is a result");
    assert_eq!(unreadable["level"], "error");
    let line = unreadable["locations"][0]["physicalLocation"]["region"]["startLine"]
        .as_u64()
        .unwrap();
    assert!((6..=7).contains(&line), "{line}");
}

#[test]
fn check_junit_has_a_case_per_object() {
    let (code, xml) = saved(
        "check-examples.xml",
        "junit",
        &[
            "check",
            "-f",
            "examples/manifests",
            "examples/strategies",
            "-o",
            "junit",
        ],
    );
    assert_eq!(code, Some(1), "{xml}");
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "));
    let json = run(&[
        "check",
        "-f",
        "examples/manifests",
        "examples/strategies",
        "-o",
        "json",
    ]);
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    let objects = report["summary"]["objects"].as_u64().unwrap();
    let denied = report["summary"]["denied"].as_u64().unwrap();
    let skipped = report["summary"]["notChecked"].as_u64().unwrap();
    assert_eq!(xml.matches("<testcase ").count() as u64, objects);
    assert_eq!(xml.matches("<failure ").count() as u64, denied);
    assert_eq!(xml.matches("<skipped ").count() as u64, skipped);
    assert!(xml.contains(&format!(
        "<testsuites name=\"rollout-guard check\" tests=\"{objects}\" failures=\"{denied}\" errors=\"0\" skipped=\"{skipped}\""
    )));
    assert!(xml.contains("type=\"httpRoute.shadowedMatch\""), "{xml}");
}
