//! The checked-in JSON Schemas (policies, policy tests) match the Rust types, and policy and
//! policy test files point editors at them.

use std::path::Path;

use rollout_guard::policy::schema::{policy_schema_json, REGENERATE_COMMAND, SCHEMA_PATH};
use rollout_guard::policytest::format as test_format;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The staleness check: `Err` saying what changed and how to regenerate when the checked-in
/// text is not what the types generate.
fn schema_is_current(
    path: &str,
    checked_in: &str,
    generated: &str,
    types: &str,
    command: &str,
) -> Result<(), String> {
    if checked_in == generated {
        return Ok(());
    }
    let differs_at = checked_in
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| checked_in.lines().count().min(generated.lines().count()))
        + 1;
    Err(format!(
        "{path} is stale (the types in {types} changed; first difference at line {differs_at}); regenerate it with:\n  {command}"
    ))
}

fn check_checked_in(path: &str, generated: &str, types: &str, command: &str) {
    let checked_in = std::fs::read_to_string(repo().join(path)).unwrap_or_default();
    if let Err(message) = schema_is_current(path, &checked_in, generated, types, command) {
        panic!("{message}");
    }
}

#[test]
fn checked_in_schema_is_current() {
    check_checked_in(
        SCHEMA_PATH,
        &policy_schema_json(),
        "src/policy/config.rs",
        REGENERATE_COMMAND,
    );
}

#[test]
fn checked_in_policy_test_schema_is_current() {
    check_checked_in(
        test_format::SCHEMA_PATH,
        &test_format::test_schema_json(),
        "src/policytest/format.rs",
        test_format::REGENERATE_COMMAND,
    );
}

/// The check above can fail: a schema that lost a description, gained a field or is missing
/// is reported with the command that fixes it.
#[test]
fn a_stale_schema_is_reported_with_the_command_that_regenerates_it() {
    let generated = test_format::test_schema_json();
    let stale = [
        (
            "a description changed",
            generated.replacen("Names the test in reports", "Names the test", 1),
        ),
        (
            "a field appeared",
            generated.replacen(
                "\"properties\": {",
                "\"properties\": {\n    \"extra\": {\"type\": \"string\"},",
                1,
            ),
        ),
        ("missing", String::new()),
    ];
    for (what, checked_in) in stale {
        assert_ne!(checked_in, generated, "{what}: the edit did not apply");
        let error = schema_is_current(
            test_format::SCHEMA_PATH,
            &checked_in,
            &generated,
            "src/policytest/format.rs",
            test_format::REGENERATE_COMMAND,
        )
        .expect_err(what);
        assert!(
            error.contains("schema/policytest.schema.json is stale")
                && error.contains(test_format::REGENERATE_COMMAND),
            "{what}: {error}"
        );
    }
    assert!(schema_is_current("x", &generated, &generated, "t", "c").is_ok());
}

#[test]
fn policy_test_schema_describes_the_format() {
    let schema = test_format::test_schema();
    assert_eq!(schema["title"], "PolicyTest");
    assert_eq!(schema["properties"]["kind"]["const"], "PolicyTest");
    assert_eq!(schema["additionalProperties"], false);
    let definitions = &schema["definitions"];
    // Enums as `oneOf` of consts, each with its doc comment (what editors show).
    let values = |name: &str| -> Vec<String> {
        definitions[name]["oneOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {}", definitions[name]))
            .iter()
            .map(|v| {
                assert!(v["description"].is_string(), "{name}: {v}");
                v["const"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(
        values("Decision"),
        ["allowed", "patched", "denied", "not-checked", "invalid"]
    );
    assert_eq!(
        values("FindingOutcome"),
        ["patched", "warned", "denied", "bypassed", "would-patch"]
    );
    for field in ["cluster", "clusterKinds", "resources", "userInfo", "expect"] {
        assert!(
            definitions["Case"]["properties"][field]["description"].is_string(),
            "Case.{field} has no description"
        );
    }
}

#[test]
fn policy_test_files_carry_the_schema_modeline() {
    let tests = repo().join("policies/tests");
    let mut seen = 0;
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let target = text
            .lines()
            .find_map(|l| l.strip_prefix("# yaml-language-server: $schema="))
            .unwrap_or_else(|| panic!("{} has no schema modeline", path.display()));
        assert_eq!(
            tests.join(target).canonicalize().ok(),
            repo().join(test_format::SCHEMA_PATH).canonicalize().ok(),
            "{}: modeline points at {target}",
            path.display()
        );
    }
    assert!(seen > 0, "no policy test files in {}", tests.display());
}

#[test]
fn schema_describes_the_format() {
    let schema: serde_json::Value = serde_json::from_str(&policy_schema_json()).unwrap();
    assert_eq!(schema["title"], "RolloutPolicy");
    assert_eq!(schema["properties"]["kind"]["const"], "RolloutPolicy");
    assert_eq!(
        schema["properties"]["apiVersion"]["const"],
        "rollout-guard.io/v1alpha1"
    );
    // deny_unknown_fields reaches editors as additionalProperties: false.
    assert_eq!(schema["additionalProperties"], false);
    let rules = &schema["definitions"]["Rules"]["properties"];
    for rule in ["versionLabel", "changeCause", "rollingUpdate"] {
        assert!(rules[rule].is_object(), "{rule}");
        assert!(
            rules[rule]["description"].is_string(),
            "{rule} has no description"
        );
    }
}

#[test]
fn policy_files_carry_the_schema_modeline() {
    let policies = repo().join("policies");
    for entry in std::fs::read_dir(&policies).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let modeline = text
            .lines()
            .find_map(|l| l.strip_prefix("# yaml-language-server: $schema="));
        let target =
            modeline.unwrap_or_else(|| panic!("{} has no schema modeline", path.display()));
        assert!(
            policies.join(target).exists(),
            "{}: modeline points at {target}, which does not exist",
            path.display()
        );
    }
}

/// An independent validator (Python `jsonschema`, installed with kubernetes-validate by
/// scripts/test.sh) accepts every valid policy file against the shipped schema and rejects the
/// structurally broken one, so the schema editors use agrees with the loader. Runs when
/// `ROLLOUT_GUARD_PYTHON` names that interpreter (scripts/test.sh sets it).
#[test]
fn independent_validator_agrees_with_the_loader() {
    let Ok(python) = std::env::var("ROLLOUT_GUARD_PYTHON") else {
        eprintln!("ROLLOUT_GUARD_PYTHON not set: schema cross-check left to scripts/test.sh");
        return;
    };
    let script = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft7Validator(schema)
for path in sys.argv[2:]:
    for document in yaml.safe_load_all(open(path)):
        if document is None:
            continue
        errors = sorted(e.message for e in validator.iter_errors(document))
        print(path, "ok" if not errors else "invalid: " + "; ".join(errors))
"#;
    let files = [
        "policies/default.yaml",
        "tests/fixtures/policies/valid/00-platform.yaml",
        "tests/fixtures/policies/valid/10-teams.yml",
        "tests/fixtures/policies/strict/strict.yaml",
        "tests/fixtures/policies/invalid/structure.yaml",
    ];
    let output = std::process::Command::new(python)
        .current_dir(repo())
        .args(["-c", script, SCHEMA_PATH])
        .args(files)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in text.lines() {
        let broken = line.starts_with("tests/fixtures/policies/invalid/");
        assert_eq!(line.contains(" invalid: "), broken, "{line}");
    }
    assert_eq!(text.lines().count(), files.len() + 1, "{text}"); // 10-teams.yml holds two
}

/// The same independent validator accepts the shipped policy tests against the PolicyTest
/// schema and rejects a test with a misspelt field and a decision that does not exist, as the
/// loader does.
#[test]
fn independent_validator_agrees_with_the_test_loader() {
    let Ok(python) = std::env::var("ROLLOUT_GUARD_PYTHON") else {
        eprintln!("ROLLOUT_GUARD_PYTHON not set: schema cross-check left to scripts/test.sh");
        return;
    };
    let dir = std::env::temp_dir().join(format!("rollout-guard-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: rollout-guard.io/v1alpha1\nkind: PolicyTest\nmetadata: {name: broken}\ncases:\n  - name: one\n    resource: []\n    resources:\n      - {apiVersion: v1, kind: Service, metadata: {name: a}}\n    expect:\n      - {object: Service default/a, decision: denyed}\n",
    )
    .unwrap();
    let (_, loader_errors) =
        test_format::parse_test_file(&broken, &std::fs::read_to_string(&broken).unwrap());
    assert_eq!(loader_errors.len(), 2, "{loader_errors:?}");
    let mut files: Vec<String> = std::fs::read_dir(repo().join("policies/tests"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    files.sort();
    files.push(broken.display().to_string());
    let script = r#"
import json, sys, yaml, jsonschema
validator = jsonschema.Draft7Validator(json.load(open(sys.argv[1])))
for path in sys.argv[2:]:
    for document in yaml.safe_load_all(open(path)):
        if document is not None:
            errors = sorted(e.message for e in validator.iter_errors(document))
            print(path, "ok" if not errors else "invalid: " + "; ".join(errors))
"#;
    let output = std::process::Command::new(python)
        .current_dir(repo())
        .args(["-c", script, test_format::SCHEMA_PATH])
        .args(&files)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(text.lines().count(), files.len(), "{text}");
    for line in text.lines() {
        let is_broken = line.contains("broken.yaml");
        assert_eq!(line.contains(" invalid: "), is_broken, "{line}");
        if is_broken {
            assert!(
                line.contains("'resource'") && line.contains("'denyed'"),
                "{line}"
            );
        }
    }
}
