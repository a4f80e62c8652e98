//! The policy loader over fixture files: every broken file reports exactly the errors in its
//! `.errors` golden file (file:line: field: message, one per line), valid ones load and pick the
//! expected policy per namespace.

use std::path::{Path, PathBuf};

use rollout_guard::policy::load::{parse_sources, PolicyErrors, Source};
use rollout_guard::reload::read_policy_dir;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policies")
}

#[test]
fn every_broken_file_reports_exactly_its_golden_errors() {
    let dir = fixtures().join("invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let file_name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let source = Source {
            name: file_name.clone(),
            text: std::fs::read_to_string(&path).unwrap(),
        };
        let actual = match parse_sources(&[source]) {
            Ok(_) => panic!("{file_name} was accepted"),
            Err(PolicyErrors(errors)) => {
                errors.iter().map(|e| format!("{e}\n")).collect::<String>()
            }
        };
        let golden = path.with_extension("errors");
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("missing {}", golden.display()));
        assert_eq!(
            actual,
            expected,
            "errors of {file_name} differ from {}; actual:\n{actual}",
            golden.display()
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} fixtures found");
}

#[test]
fn a_valid_directory_loads_and_picks_the_governing_policy() {
    let sources = read_policy_dir(&fixtures().join("valid")).unwrap();
    let names: Vec<&str> = sources
        .iter()
        .map(|s| s.name.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, ["00-platform.yaml", "10-teams.yml"]);
    let set = parse_sources(&sources).unwrap();
    let cases = [
        ("prod-eu", Some("production")),
        ("payments", Some("production")),
        // Excluded from production, selected by the sandbox policy at a lower priority.
        ("prod-sandbox", Some("sandbox")),
        ("sandbox-a", Some("sandbox")),
        ("sandbox-ab", Some("platform")),
        ("default", Some("platform")),
        ("kube-system", None),
        ("kube-node-lease", None),
    ];
    for (namespace, expected) in cases {
        let governing = set.governing(namespace).map(|p| p.metadata.name.as_str());
        assert_eq!(governing, expected, "{namespace}");
    }
    let production = set.governing("prod-eu").unwrap();
    assert_eq!(
        production.spec.rules.version_label.label_keys,
        ["app.kubernetes.io/version", "version"]
    );
}

#[test]
fn errors_in_several_files_are_all_reported_in_file_order() {
    let sources = read_policy_dir(&fixtures().join("invalid")).unwrap();
    let Err(PolicyErrors(errors)) = parse_sources(&sources) else {
        panic!("invalid fixtures accepted");
    };
    let files: Vec<&str> = errors.iter().map(|e| e.file.as_str()).collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
    for name in ["documents", "semantic", "structure", "syntax"] {
        assert!(
            files
                .iter()
                .any(|f| f.ends_with(&format!("invalid/{name}.yaml"))),
            "{name}"
        );
    }
}
