//! `rollout-guard test`: the suites shipped in policies/tests pass, and a suite whose
//! expectations do not hold, or whose rules consult cluster state it did not declare, fails
//! loudly (exit 1) with the reason.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .arg("test")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_shipped_policy_tests_pass() {
    let output = run(&["policies/tests"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains(" 0 failed"), "{text}");
}

#[test]
fn failing_expectations_and_undeclared_cluster_state_fail_loudly() {
    let dir = common::TempDir::new("policytest");
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/tests/deployments.yaml"),
    )
    .unwrap();
    // Without `clusterKinds: [Service]` the siblings rule reads Services nobody declared; and
    // the decision is not what the edited expectation says.
    let broken = shipped
        .replace("    clusterKinds: [Service]\n", "")
        .replace("decision: patched", "decision: denied")
        .replace(
            "policies: ..",
            &format!(
                "policies: {}",
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("policies")
                    .display()
            ),
        );
    std::fs::write(dir.path("broken.yaml"), broken).unwrap();
    let output = run(&[dir.0.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL deployments"), "{text}");
    assert!(
        text.contains("decision patched (expected denied)"),
        "{text}"
    );
    assert!(text.contains("consulted Service"), "{text}");
    assert!(text.contains("1 failed"), "{text}");

    let junit = run(&[dir.0.to_str().unwrap(), "-o", "junit"]);
    let xml = String::from_utf8_lossy(&junit.stdout);
    assert!(xml.contains("failures=\"1\""), "{xml}");
    let sarif = run(&[dir.0.to_str().unwrap(), "-o", "sarif"]);
    let log: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert!(log["runs"][0]["results"].as_array().unwrap().len() >= 2);
    // Left for the independent validators, like the check outputs.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/format-cases");
    for (kind, name, body) in [
        ("junit", "test-failing.xml", xml.to_string()),
        (
            "sarif",
            "test-failing.sarif",
            String::from_utf8_lossy(&sarif.stdout).to_string(),
        ),
    ] {
        std::fs::create_dir_all(target.join(kind)).unwrap();
        std::fs::write(target.join(kind).join(name), body).unwrap();
    }
}
