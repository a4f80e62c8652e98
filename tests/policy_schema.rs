//! The checked-in JSON Schema matches the Rust types, and policy files point editors at it.

use std::path::Path;

use rollout_guard::policy::schema::{policy_schema_json, REGENERATE_COMMAND, SCHEMA_PATH};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn checked_in_schema_is_current() {
    let checked_in = std::fs::read_to_string(repo().join(SCHEMA_PATH)).unwrap_or_default();
    assert!(
        checked_in == policy_schema_json(),
        "{SCHEMA_PATH} is stale (the policy types in src/policy/config.rs changed); regenerate it with:\n  {REGENERATE_COMMAND}"
    );
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
