//! `rollout-guard test` as a pipeline runs it: the suites shipped in policies/tests pass; a
//! table of small test files, each showing one way a case passes or fails (exit 1, with the
//! reason) or a test file cannot run (exit 2, `file:line: field: message`); and the CI formats,
//! checked here and left in `target/format-cases/` for tests/checks/validate_formats.py (the
//! SARIF Multitool and schema, junitparser), as `check`'s are.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
        .current_dir(repo())
        .arg("test")
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_shipped_policy_tests_pass() {
    let output = run(&["policies/tests"]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
}

/// A test file of one test named `t` with `cases` (YAML list items, indented two spaces).
fn test_file(cases: &str) -> String {
    format!(
        "apiVersion: rollout-guard.io/v1alpha1\nkind: PolicyTest\nmetadata: {{name: t}}\ncases:\n{cases}"
    )
}

/// A case named `name` applying a Deployment `shop/web` (image nginx:1.27, a readiness
/// probe), with `extra` lines at the case's level (`clusterKinds`, ...) and `expect` items.
fn deployment_case(name: &str, extra: &str, expect: &str) -> String {
    format!(
        "  - name: {name}
{extra}    resources:
      - apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: web, namespace: shop}}
        spec:
          replicas: 3
          selector: {{matchLabels: {{app: web}}}}
          template:
            metadata: {{labels: {{app: web}}}}
            spec:
              containers:
                - name: web
                  image: nginx:1.27
                  readinessProbe: {{httpGet: {{path: /, port: 80}}}}
    expect:
{expect}"
    )
}

/// The Deployment case with the Services declared (none select it), as a passing case has it.
fn declared_deployment_case(name: &str, expect: &str) -> String {
    deployment_case(name, "    clusterKinds: [Service]\n", expect)
}

/// A canary Ingress with no main Ingress for its host yet: a warning (the main may be the next
/// object of the same apply).
const ORPHAN_CANARY_CASE: &str = "  - name: a canary before its main Ingress is a warning
    clusterKinds: [IngressClass, Namespace, Service]
    resources:
      - apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: web-canary
          namespace: shop
          annotations:
            nginx.ingress.kubernetes.io/canary: \"true\"
            nginx.ingress.kubernetes.io/canary-weight: \"10\"
        spec:
          ingressClassName: nginx
          rules:
            - host: shop.example.com
              http:
                paths:
                  - path: /
                    pathType: Prefix
                    backend: {service: {name: web-v2, port: {number: 80}}}
    expect:
      - object: Ingress shop/web-canary
        decision: allowed
        warnings: [ingressCanary.missingMain]
";

/// An HTTPRoute whose weight no Gateway accepts: denied whatever else exists.
const WEIGHT_OUT_OF_RANGE_CASE: &str = "  - name: a weight out of range is refused
    clusterKinds: [Gateway, Service, ReferenceGrant, Namespace]
    resources:
      - apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: web, namespace: shop}
        spec:
          parentRefs: [{name: public}]
          rules:
            - backendRefs: [{name: web, port: 80, weight: 2000000}]
    expect:
      - object: HTTPRoute shop/web
        decision: denied
";

/// How a run must end.
struct Expected {
    code: i32,
    /// Each in stdout.
    stdout: &'static [&'static str],
    /// Each in stderr (after `{file}` is replaced by the test file's path).
    stderr: &'static [&'static str],
}

/// One row: a test file and how `test` judges it.
struct Row {
    name: &'static str,
    file: String,
    expected: Expected,
}

fn rows() -> Vec<Row> {
    let patched_version = "      - object: Deployment shop/web\n        decision: patched\n        patched:\n          metadata:\n            labels: {app.kubernetes.io/version: \"1.27\"}\n";
    vec![
        Row {
            name: "passing",
            file: test_file(&format!(
                "{}{ORPHAN_CANARY_CASE}{WEIGHT_OUT_OF_RANGE_CASE}",
                declared_deployment_case("the Deployment is labelled", patched_version)
            )),
            expected: Expected {
                code: 0,
                stdout: &[
                    "{file}:5 PASS t / the Deployment is labelled",
                    "PASS t / a canary before its main Ingress is a warning",
                    "PASS t / a weight out of range is refused",
                    "3 passed, 0 failed",
                ],
                stderr: &[],
            },
        },
        Row {
            name: "wrong-decision",
            file: test_file(&declared_deployment_case(
                "expects a denial",
                "      - object: Deployment shop/web\n        decision: denied\n",
            )),
            expected: Expected {
                code: 1,
                stdout: &[
                    "{file}:5 FAIL t / expects a denial",
                    "Deployment shop/web: decision patched (expected denied)",
                    "0 passed, 1 failed",
                ],
                stderr: &[],
            },
        },
        Row {
            name: "missing-warning",
            file: test_file(&declared_deployment_case(
                "expects a warning nobody gives",
                "      - object: Deployment shop/web\n        warnings: [no warning says this]\n",
            )),
            expected: Expected {
                code: 1,
                stdout: &["Deployment shop/web: no warning contains \"no warning says this\""],
                stderr: &[],
            },
        },
        Row {
            name: "patched-field-mismatch",
            file: test_file(&declared_deployment_case(
                "expects another version label",
                &patched_version.replace("\"1.27\"", "\"9.9\""),
            )),
            expected: Expected {
                code: 1,
                stdout: &[
                    "Deployment shop/web: the patched object differs at .metadata.labels.app.kubernetes.io/version (got \"1.27\", expected \"9.9\")",
                ],
                stderr: &[],
            },
        },
        Row {
            name: "patched-field-absent",
            file: test_file(&declared_deployment_case(
                "expects a label nobody sets",
                "      - object: Deployment shop/web\n        patched: {metadata: {labels: {team: shop}}}\n",
            )),
            expected: Expected {
                code: 1,
                stdout: &["the patched object differs at .metadata.labels.team (absent)"],
                stderr: &[],
            },
        },
        Row {
            name: "findings-mismatch",
            // `findings` is exact: expecting none fails on the one the canary gets.
            file: test_file(&ORPHAN_CANARY_CASE.replace(
                "warnings: [ingressCanary.missingMain]",
                "findings: {}",
            )),
            expected: Expected {
                code: 1,
                stdout: &[
                    "Ingress shop/web-canary: findings ",
                    "ingressCanary.missingMain: warned",
                    " (expected none)",
                ],
                stderr: &[],
            },
        },
        Row {
            name: "no-such-resource",
            file: test_file(&declared_deployment_case(
                "names a resource the case does not apply",
                "      - object: Deployment shop/api\n        decision: patched\n",
            )),
            expected: Expected {
                code: 1,
                stdout: &["Deployment shop/api: no such resource in the case (resources: Deployment shop/web)"],
                stderr: &[],
            },
        },
        Row {
            name: "undeclared-cluster-state",
            file: test_file(&deployment_case(
                "reads Services it never declared",
                "",
                patched_version,
            )),
            expected: Expected {
                code: 1,
                stdout: &[
                    "FAIL t / reads Services it never declared",
                    "Deployment shop/web: its rules consulted Service in the cluster, which this case does not declare",
                ],
                stderr: &[],
            },
        },
        Row {
            name: "yaml-syntax",
            file: test_file("  - name: [unclosed\n"),
            expected: Expected {
                code: 2,
                stdout: &[],
                stderr: &["error: {file}:5: invalid YAML"],
            },
        },
        Row {
            name: "invalid-fields",
            file: test_file(&declared_deployment_case(
                "misspells a field",
                "      - object: Deployment shop/web\n        decison: patched\n        findings: {versionLabel.mising: patched}\n",
            )),
            expected: Expected {
                code: 2,
                stdout: &["NOT RUN cases[0].expect[0].decison: unknown field \"decison\""],
                stderr: &[
                    "error: {file}:23: cases[0].expect[0].decison: unknown field \"decison\"",
                    "error: {file}:24: cases[0].expect[0].findings.versionLabel.mising: versionLabel has no check \"mising\"",
                ],
            },
        },
        Row {
            name: "policies-not-loadable",
            file: test_file(&declared_deployment_case("any", patched_version))
                .replace("metadata: {name: t}\n", "metadata: {name: t}\npolicies: no-such-dir\n"),
            expected: Expected {
                code: 2,
                stdout: &[],
                stderr: &["error: {file}:1: the policies of test \"t\" ("],
            },
        },
    ]
}

#[test]
fn each_way_a_case_passes_fails_or_cannot_run() {
    let dir = common::TempDir::new("policytest-table");
    for row in rows() {
        let path = dir.path(&format!("{}.yaml", row.name));
        std::fs::write(&path, &row.file).unwrap();
        let output = run(&[path.to_str().unwrap()]);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        let file = path.display().to_string();
        assert_eq!(
            output.status.code(),
            Some(row.expected.code),
            "{}:\n{stdout}{stderr}",
            row.name
        );
        for (stream, wanted) in [
            (&stdout, row.expected.stdout),
            (&stderr, row.expected.stderr),
        ] {
            for want in wanted {
                let want = want.replace("{file}", &file);
                assert!(
                    stream.contains(&want),
                    "{}: no {want:?} in\n{stream}",
                    row.name
                );
            }
        }
    }
}

#[test]
fn paths_that_cannot_be_read_exit_2_and_the_rest_still_runs() {
    let dir = common::TempDir::new("policytest-paths");
    let good = dir.path("good.yaml");
    std::fs::write(
        &good,
        test_file(&declared_deployment_case(
            "runs",
            "      - object: Deployment shop/web\n        decision: patched\n",
        )),
    )
    .unwrap();
    let missing = dir.path("missing.yaml");
    let output = run(&[good.to_str().unwrap(), missing.to_str().unwrap()]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("PASS t / runs"), "{stdout}");
    assert!(
        stderr.contains(&format!("error: {}: ", missing.display())),
        "{stderr}"
    );

    // No test documents at all is a usage error too, not a pass.
    let empty = dir.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(
        empty.join("service.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n",
    )
    .unwrap();
    let output = run(&[empty.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("no PolicyTest documents"));
}

/// One passing, one failing and one unreadable test file in each CI format: the failure and the
/// unreadable file are located at their lines, the counts add up, and the SARIF and JUnit are
/// left for the independent validators.
#[test]
fn ci_formats_report_passes_failures_and_files_that_cannot_run() {
    let dir = common::TempDir::new("policytest-formats");
    let passing = dir.path("a-passing.yaml");
    let failing = dir.path("b-failing.yaml");
    let broken = dir.path("c-broken.yaml");
    std::fs::write(
        &passing,
        test_file(&declared_deployment_case(
            "passes",
            "      - object: Deployment shop/web\n        decision: patched\n",
        )),
    )
    .unwrap();
    // The failing case is the second, so its line is not the document's.
    std::fs::write(
        &failing,
        test_file(&format!(
            "{}{}",
            declared_deployment_case(
                "passes too",
                "      - object: Deployment shop/web\n        decision: patched\n"
            ),
            declared_deployment_case(
                "fails",
                "      - object: Deployment shop/web\n        decision: allowed\n"
            )
        )),
    )
    .unwrap();
    // One problem (a list that is a string) on line 7.
    std::fs::write(
        &broken,
        test_file(
            "  - name: one\n    resources: [{apiVersion: v1, kind: Service, metadata: {name: a}}]\n    expect: nope\n",
        ),
    )
    .unwrap();
    let failing_line = std::fs::read_to_string(&failing)
        .unwrap()
        .lines()
        .position(|l| l == "  - name: fails")
        .unwrap()
        + 1;
    let dir_arg = dir.0.to_str().unwrap();

    let json = run(&[dir_arg, "-o", "json"]);
    assert_eq!(json.status.code(), Some(2), "{}", text(&json.stderr));
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        report["summary"],
        serde_json::json!({"cases": 3, "passed": 2, "failed": 1, "errors": 1})
    );
    let failed = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "t / fails")
        .unwrap();
    assert_eq!(
        failed["location"],
        format!("{}:{failing_line}", failing.display())
    );
    assert_eq!(
        failed["failures"][0],
        "Deployment shop/web: decision patched (expected allowed)"
    );
    assert_eq!(report["errors"][0]["file"], broken.display().to_string());
    assert_eq!(report["errors"][0]["line"], 7, "{}", report["errors"]);

    let sarif = run(&[dir_arg, "-o", "sarif"]);
    assert_eq!(sarif.status.code(), Some(2));
    std::fs::write(
        common::format_cases_dir("sarif").join("test-mixed.sarif"),
        &sarif.stdout,
    )
    .unwrap();
    let log: Value = serde_json::from_slice(&sarif.stdout).unwrap();
    let run_log = &log["runs"][0];
    assert_eq!(run_log["invocations"][0]["executionSuccessful"], false);
    let located = |rule: &str| -> Vec<(String, u64)> {
        run_log["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["ruleId"] == rule)
            .map(|r| {
                let location = &r["locations"][0]["physicalLocation"];
                (
                    location["artifactLocation"]["uri"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    location["region"]["startLine"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let failures = located("policyTest.failed");
    assert_eq!(failures.len(), 1, "{run_log}");
    assert!(failures[0].0.ends_with("b-failing.yaml"), "{failures:?}");
    assert_eq!(failures[0].1, failing_line as u64);
    let invalid = located("policyTest.invalid");
    assert_eq!(invalid.len(), 1, "{run_log}");
    assert!(invalid[0].0.ends_with("c-broken.yaml"), "{invalid:?}");
    assert_eq!(invalid[0].1, 7);

    let junit = run(&[dir_arg, "-o", "junit"]);
    assert_eq!(junit.status.code(), Some(2));
    std::fs::write(
        common::format_cases_dir("junit").join("test-mixed.xml"),
        &junit.stdout,
    )
    .unwrap();
    let xml = text(&junit.stdout);
    assert!(
        xml.contains("tests=\"4\"")
            && xml.contains("failures=\"1\"")
            && xml.contains("errors=\"1\""),
        "{xml}"
    );

    // And a clean run: exit 0, a successful SARIF run with no results.
    let clean = run(&[passing.to_str().unwrap(), "-o", "sarif"]);
    assert_eq!(clean.status.code(), Some(0));
    std::fs::write(
        common::format_cases_dir("sarif").join("test-passing.sarif"),
        &clean.stdout,
    )
    .unwrap();
    let log: Value = serde_json::from_slice(&clean.stdout).unwrap();
    assert_eq!(
        log["runs"][0]["invocations"][0]["executionSuccessful"],
        true
    );
    assert_eq!(log["runs"][0]["results"], serde_json::json!([]));
    let clean = run(&[passing.to_str().unwrap(), "-o", "junit"]);
    std::fs::write(
        common::format_cases_dir("junit").join("test-passing.xml"),
        &clean.stdout,
    )
    .unwrap();
}
