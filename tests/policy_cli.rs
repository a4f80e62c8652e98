//! `rollout-guard policy validate` and `policy schema` as an operator runs them.

use std::path::Path;
use std::process::{Command, Output};

fn rollout_guard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_repository_policies_are_valid() {
    let output = rollout_guard(&["policy", "validate", "policies"]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.starts_with("1 policy valid (digest "), "{text}");
}

#[test]
fn every_error_is_printed_one_per_line_and_exits_1() {
    let output = rollout_guard(&["policy", "validate", "tests/fixtures/policies/invalid"]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    let expected_count: usize = ["documents", "semantic", "structure", "syntax"]
        .iter()
        .map(|name| {
            let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/fixtures/policies/invalid/{name}.errors"));
            std::fs::read_to_string(golden).unwrap().lines().count()
        })
        .sum();
    assert_eq!(text.lines().count(), expected_count, "{text}");
    assert!(text.contains(
        "tests/fixtures/policies/invalid/structure.yaml:15: spec.rules.rollingUpdate.mode: unknown variant \"enforced\", expected one of off, warn, mutate, reportOnly, enforce\n"
    ), "{text}");
}

#[test]
fn an_empty_directory_is_an_error_and_a_missing_one_exits_2() {
    let empty = rollout_guard(&["policy", "validate", "tests/fixtures/policies/empty"]);
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8(empty.stdout)
        .unwrap()
        .starts_with("no policy documents"));

    let missing = rollout_guard(&["policy", "validate", "tests/fixtures/policies/nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8(missing.stderr)
        .unwrap()
        .contains("cannot read policy directory tests/fixtures/policies/nope"));
}

#[test]
fn schema_command_prints_the_checked_in_schemas() {
    for (args, file) in [
        (
            &["policy", "schema"][..],
            "schema/rolloutpolicy.schema.json",
        ),
        (
            &["policy", "schema", "--kind", "RolloutPolicy"][..],
            "schema/rolloutpolicy.schema.json",
        ),
        (
            &["policy", "schema", "--kind", "PolicyTest"][..],
            "schema/policytest.schema.json",
        ),
    ] {
        let output = rollout_guard(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let checked_in = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        assert_eq!(output.stdout, checked_in, "{args:?}");
    }
}
