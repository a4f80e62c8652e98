//! The `PolicyTest` file format: the types (the single source of truth: the runner reads them,
//! `schemars` derives the shipped JSON Schema `schema/policytest.schema.json` from them) and
//! the loader, which reports every problem of a test file with file, line and field the way the
//! policy loader does, before anything runs.
//!
//! Kinds, rules and checks are validated against the build's own lists (the store's kinds, the
//! rule catalog) by the loader, not enumerated in the schema: the schema stays the same when a
//! rule gains a check, and the loader still names the typo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::evaluate::Decision;
use crate::policy::config::API_VERSION;
use crate::policy::engine::{FindingOutcome, ERROR_CHECK};
use crate::policy::load::{
    deserialize_reporting, document_of_kind, yaml_syntax_message, FieldPath, LineIndex,
    PolicyError, RULE_CATALOG,
};
use crate::policy::yaml::{first_content_line, split_documents};
use crate::store::StoredKind;

/// The `kind` of a policy test document.
pub const KIND: &str = "PolicyTest";

/// Where the schema is checked in, relative to the repository root.
pub const SCHEMA_PATH: &str = "schema/policytest.schema.json";

/// The command that regenerates the checked-in schema.
pub const REGENERATE_COMMAND: &str =
    "cargo run -- policy schema --kind PolicyTest > schema/policytest.schema.json";

/// One test document: resources applied together over a cluster state, and what the policies
/// must make of them. Run with `rollout-guard test PATH`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "PolicyTest")]
pub struct PolicyTest {
    /// Must be `rollout-guard.io/v1alpha1`.
    #[schemars(extend("const" = API_VERSION))]
    pub api_version: String,
    /// Must be `PolicyTest`.
    #[schemars(extend("const" = KIND))]
    pub kind: String,
    /// Names the test in reports (`name / case name`).
    pub metadata: TestMetadata,
    /// The policy directory under test, relative to this file (`..` for a `tests/` directory
    /// beside the policies). Default: `--policies`, else the embedded default policy.
    /// `--policies` overrides it.
    #[serde(default)]
    pub policies: Option<PathBuf>,
    /// The cases, each judged on its own.
    #[schemars(length(min = 1))]
    pub cases: Vec<Case>,
}

/// Names the test.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestMetadata {
    /// Shown in every result of the test.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// One case: `resources` judged as `check` judges manifests applied together, over `cluster`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    /// What the case shows, in words (shown with the result).
    #[schemars(length(min = 1))]
    pub name: String,
    /// Objects that already exist in the cluster (the state cross-object rules read).
    #[serde(default)]
    #[schemars(schema_with = "kubernetes_objects")]
    pub cluster: Vec<Value>,
    /// Kinds of cluster state the case declares complete even with no objects of them under
    /// `cluster` or `resources` (a Deployment with no Service selecting it: `[Service]`). A rule
    /// that reads a kind the case does not declare fails the case, so a test never passes on a
    /// silently empty cluster. Kinds the rules read: Deployment, Service, Ingress, HTTPRoute,
    /// and the others the store keeps.
    #[serde(default)]
    #[schemars(inner(regex(pattern = r"^[A-Z][A-Za-z0-9]*$")))]
    pub cluster_kinds: Vec<String>,
    /// The objects under test, applied together (as `kubectl apply -f` of one directory).
    #[schemars(schema_with = "kubernetes_objects", length(min = 1))]
    pub resources: Vec<Value>,
    /// Who applies them, as the AdmissionReview's `userInfo` says (break-glass overrides are
    /// honoured only for the people a policy names). Default: `rollout-guard-check` in
    /// `system:authenticated`, as `check` asks.
    #[serde(default)]
    pub user_info: Option<TestUserInfo>,
    /// What the policies must make of the resources, per object.
    #[schemars(length(min = 1))]
    pub expect: Vec<Expectation>,
}

/// The requesting user of a case.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestUserInfo {
    /// `userInfo.username`; a service account is `system:serviceaccount:NAMESPACE:NAME`.
    #[schemars(length(min = 1))]
    pub username: String,
    /// `userInfo.groups`. Default: `[system:authenticated]`.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

impl TestUserInfo {
    /// The requester this user is.
    pub fn requester(&self) -> crate::evaluate::Requester {
        let default = crate::evaluate::Requester::default();
        crate::evaluate::Requester {
            username: self.username.clone(),
            groups: self.groups.clone().unwrap_or(default.groups),
        }
    }
}

/// What must hold for one resource. Every field given is checked; the others are not.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expectation {
    /// The resource: `Kind namespace/name` (`Kind name` for cluster-scoped kinds). A namespaced
    /// resource without `metadata.namespace` is in `default`, as `kubectl apply` puts it.
    #[schemars(regex(pattern = r"^[A-Za-z][A-Za-z0-9]* ([^/ ]+/)?[^/ ]+$"))]
    pub object: String,
    /// The decision the webhook would give.
    #[serde(default)]
    pub decision: Option<Decision>,
    /// Exactly the findings the resource must have, `rule.check: outcome`
    /// (`ingressCanary.missingMain: denied`); `rule.error` when the rule must answer by its
    /// `onError`. Without it, a rule answering by its `onError` fails the case.
    #[serde(default)]
    #[schemars(extend("propertyNames" = {"pattern": r"^[a-z][A-Za-z0-9]*\.[a-z][A-Za-z0-9]*$"}))]
    pub findings: Option<BTreeMap<String, FindingOutcome>>,
    /// Text each of which some warning must contain.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// A part of the object as it would be stored (after defaulting and the patch): maps are
    /// compared by the keys given, everything else must be equal.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Value>")]
    pub patched: Option<Value>,
}

/// Lists of Kubernetes objects: the schema asks for what every object has and leaves the rest
/// to the kinds' own schemas.
fn kubernetes_objects(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["apiVersion", "kind", "metadata"],
            "properties": {
                "apiVersion": {"type": "string", "minLength": 1},
                "kind": {"type": "string", "minLength": 1},
                "metadata": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "namespace": {"type": "string"}
                    }
                }
            }
        }
    })
}

/// The schema of `PolicyTest` documents, as JSON (draft-07, like the policy schema).
pub fn test_schema() -> Value {
    schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<PolicyTest>()
        .to_value()
}

/// The schema as the checked-in file holds it: pretty-printed, with a final newline.
pub fn test_schema_json() -> String {
    let mut text = serde_json::to_string_pretty(&test_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// A test document that loaded, with the lines its parts start on (for results and for the
/// resources' own locations).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedTest {
    /// The test.
    pub test: PolicyTest,
    /// Its file.
    pub file: PathBuf,
    /// The line its document starts on.
    pub line: usize,
    /// Lines of each case, in order.
    pub case_lines: Vec<usize>,
    /// Lines of each case's `cluster` objects and `resources`, in order.
    pub object_lines: Vec<(Vec<usize>, Vec<usize>)>,
}

/// Reads the `PolicyTest` documents of one file. Documents of other kinds are skipped (a test
/// directory may hold other manifests), except ones of our API group with a misspelt kind. Every
/// problem is reported, with file, line and field.
pub fn parse_test_file(file: &Path, text: &str) -> (Vec<LoadedTest>, Vec<PolicyError>) {
    let mut tests = Vec::new();
    let mut errors = Vec::new();
    let name = file.display().to_string();
    for (first_line, document) in split_documents(text) {
        let at = |line: usize, field: String, message: String| PolicyError {
            file: name.clone(),
            line,
            field,
            message,
        };
        let value: serde_yaml::Value = match serde_yaml::from_str(&document) {
            Ok(value) => value,
            Err(error) => {
                // An error at the end of the input is reported one past the last line.
                let last_line = first_line + document.lines().count().saturating_sub(1);
                let line = error
                    .location()
                    .map_or(first_line, |l| first_line + l.line() - 1)
                    .min(last_line);
                let message = yaml_syntax_message(&error.to_string(), first_line);
                errors.push(at(line, String::new(), message));
                continue;
            }
        };
        if !is_policy_test(&value) {
            continue;
        }
        let index = LineIndex::build(&document, first_line);
        let mut found: Vec<PolicyError> = Vec::new();
        let mut report = |path: &FieldPath, message: String| {
            found.push(at(index.line_of(path), path.to_string(), message));
        };
        let test = document_of_kind(value, API_VERSION, KIND, &mut report)
            .and_then(|value| deserialize_reporting::<PolicyTest>(value, &mut report));
        if let Some(test) = &test {
            validate(test, &mut report);
        }
        match test {
            Some(test) if found.is_empty() => {
                let line = |path: FieldPath| index.line_of(&path);
                let cases = FieldPath::keys(&["cases"]);
                tests.push(LoadedTest {
                    line: first_content_line(first_line, &document),
                    case_lines: (0..test.cases.len())
                        .map(|i| line(cases.index(i)))
                        .collect(),
                    object_lines: test
                        .cases
                        .iter()
                        .enumerate()
                        .map(|(i, case)| {
                            let of = |field: &str, count: usize| -> Vec<usize> {
                                (0..count)
                                    .map(|j| line(cases.index(i).key(field).index(j)))
                                    .collect()
                            };
                            (
                                of("cluster", case.cluster.len()),
                                of("resources", case.resources.len()),
                            )
                        })
                        .collect(),
                    file: file.to_owned(),
                    test,
                });
            }
            _ => {
                found.sort_by_key(|error| error.line);
                errors.extend(found);
            }
        }
    }
    (tests, errors)
}

/// Whether a document is meant as a policy test: `kind: PolicyTest`, or any kind in our API
/// group other than a policy (a misspelt `PolicyTests` must not be skipped silently).
fn is_policy_test(value: &serde_yaml::Value) -> bool {
    let field = |name: &str| value.get(name).and_then(serde_yaml::Value::as_str);
    match (field("apiVersion"), field("kind")) {
        (_, Some(KIND)) => true,
        (Some(group), kind) if group.starts_with("rollout-guard.io/") => {
            kind != Some(crate::policy::config::KIND)
        }
        _ => false,
    }
}

/// What the types cannot say: known kinds, rules and checks, well-formed object names and
/// resources, unique case names.
fn validate(test: &PolicyTest, report: &mut impl FnMut(&FieldPath, String)) {
    let cases = FieldPath::keys(&["cases"]);
    if test.cases.is_empty() {
        report(&cases, "a test needs at least one case".to_owned());
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, case) in test.cases.iter().enumerate() {
        let at = cases.index(i);
        for (field, empty) in [
            ("resources", case.resources.is_empty()),
            ("expect", case.expect.is_empty()),
        ] {
            if empty {
                report(
                    &at.key(field),
                    format!("a case needs at least one entry in {field}"),
                );
            }
        }
        if case
            .user_info
            .as_ref()
            .is_some_and(|user| user.username.trim().is_empty())
        {
            report(
                &at.key("userInfo").key("username"),
                "must not be empty (a service account is system:serviceaccount:NAMESPACE:NAME)"
                    .to_owned(),
            );
        }
        if let Some(first) = names.insert(&case.name, i) {
            report(
                &at.key("name"),
                format!("duplicate case name {:?} (also cases[{first}])", case.name),
            );
        }
        for (field, objects) in [("cluster", &case.cluster), ("resources", &case.resources)] {
            for (j, object) in objects.iter().enumerate() {
                if let Some(problem) = object_problem(object) {
                    report(&at.key(field).index(j), problem);
                }
            }
        }
        for (j, kind) in case.cluster_kinds.iter().enumerate() {
            if !StoredKind::ALL.iter().any(|known| known.as_str() == kind) {
                let known: Vec<&str> = StoredKind::ALL.iter().map(|k| k.as_str()).collect();
                report(
                    &at.key("clusterKinds").index(j),
                    format!(
                        "{kind:?} is not a kind rules read from the cluster (one of {})",
                        known.join(", ")
                    ),
                );
            }
        }
        for (j, expectation) in case.expect.iter().enumerate() {
            let at = at.key("expect").index(j);
            if !is_object_label(&expectation.object) {
                report(
                    &at.key("object"),
                    format!(
                        "{:?} does not name a resource: write `Kind namespace/name` (`Kind name` for a cluster-scoped kind)",
                        expectation.object
                    ),
                );
            }
            for source in expectation.findings.iter().flat_map(BTreeMap::keys) {
                if let Some(problem) = finding_source_problem(source) {
                    report(&at.key("findings").key(source), problem);
                }
            }
        }
    }
}

/// Why a resource or cluster object cannot be one, if it cannot.
fn object_problem(object: &Value) -> Option<String> {
    let text = |field: &str| object.get(field).and_then(Value::as_str).unwrap_or("");
    if !object.is_object() {
        return Some("expected a Kubernetes object (a mapping)".to_owned());
    }
    let missing: Vec<&str> = ["apiVersion", "kind"]
        .into_iter()
        .filter(|field| text(field).is_empty())
        .collect();
    if !missing.is_empty() {
        return Some(format!("the object has no {}", missing.join(" and no ")));
    }
    let metadata = object.get("metadata");
    let named = ["name", "generateName"].iter().any(|field| {
        metadata
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
    });
    (!named).then(|| format!("the {} has no metadata.name", text("kind")))
}

fn is_object_label(label: &str) -> bool {
    let Some((kind, name)) = label.split_once(' ') else {
        return false;
    };
    let segments: Vec<&str> = name.split('/').collect();
    kind.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && kind.chars().all(|c| c.is_ascii_alphanumeric())
        && segments.len() <= 2
        && segments.iter().all(|s| !s.is_empty() && !s.contains(' '))
}

/// Why `rule.check` names no finding this build can produce, if it does not.
fn finding_source_problem(source: &str) -> Option<String> {
    let Some((rule, check)) = source.split_once('.') else {
        return Some(format!(
            "{source:?} is not `rule.check` (e.g. ingressCanary.missingMain)"
        ));
    };
    let Some(info) = RULE_CATALOG.iter().find(|info| info.name == rule) else {
        let rules: Vec<&str> = RULE_CATALOG.iter().map(|info| info.name).collect();
        return Some(format!(
            "unknown rule {rule:?} (one of {})",
            rules.join(", ")
        ));
    };
    if check == ERROR_CHECK || info.checks.contains(&check) {
        return None;
    }
    Some(format!(
        "{rule} has no check {check:?} (its checks: {}, or {ERROR_CHECK} for its onError answer)",
        info.checks.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "apiVersion: rollout-guard.io/v1alpha1\nkind: PolicyTest\nmetadata: {name: t}\n";

    fn errors_of(text: &str) -> Vec<String> {
        let (tests, errors) = parse_test_file(Path::new("t.yaml"), text);
        assert!(tests.is_empty() || errors.is_empty());
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_good_test_loads_with_the_lines_of_its_parts() {
        let text = format!(
            "# comment\n{HEADER}cases:\n  - name: one\n    resources:\n      - apiVersion: v1\n        kind: Service\n        metadata: {{name: web, namespace: shop}}\n    expect:\n      - object: Service shop/web\n        decision: allowed\n        findings: {{}}\n"
        );
        let (tests, errors) = parse_test_file(Path::new("t.yaml"), &text);
        assert!(errors.is_empty(), "{errors:?}");
        let loaded = &tests[0];
        assert_eq!(loaded.line, 2);
        assert_eq!(loaded.case_lines, [6]);
        assert_eq!(loaded.object_lines, [(vec![], vec![8])]);
        assert_eq!(
            loaded.test.cases[0].expect[0].decision,
            Some(Decision::Allowed)
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line_and_field() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "yaml syntax",
                "kind: PolicyTest\ncases: [unclosed\n",
                &["t.yaml:2: invalid YAML"],
            ),
            (
                "wrong apiVersion",
                "apiVersion: rollout-guard.io/v2\nkind: PolicyTest\n",
                &["t.yaml:1: apiVersion: must be \"rollout-guard.io/v1alpha1\", got \"rollout-guard.io/v2\""],
            ),
            (
                "misspelt kind in our group",
                "apiVersion: rollout-guard.io/v1alpha1\nkind: PolicyTests\n",
                &["t.yaml:2: kind: must be \"PolicyTest\""],
            ),
            (
                "unknown field, bad decision and bad outcome, all at once",
                &format!("{HEADER}cases:\n  - name: one\n    resource: []\n    resources:\n      - {{apiVersion: v1, kind: Service, metadata: {{name: a}}}}\n    expect:\n      - object: Service default/a\n        decision: denyed\n        findings:\n          ingressCanary.missingMain: refused\n"),
                &[
                    "t.yaml:6: cases[0].resource: unknown field \"resource\"",
                    "t.yaml:11: cases[0].expect[0].decision: unknown variant \"denyed\", expected one of allowed, patched, denied, not-checked, invalid",
                    "t.yaml:13: cases[0].expect[0].findings.ingressCanary.missingMain: unknown variant \"refused\", expected one of patched, warned, denied",
                ],
            ),
            (
                "missing required field",
                &format!("{HEADER}cases:\n  - name: one\n    resources: []\n"),
                &["t.yaml:5: cases[0].expect: required field is missing"],
            ),
            (
                "semantic problems",
                &format!("{HEADER}cases:\n  - name: one\n    clusterKinds: [Service, Secret]\n    cluster:\n      - {{apiVersion: v1, kind: Service}}\n    resources:\n      - {{kind: Service, metadata: {{name: a}}}}\n    expect:\n      - object: Service\n        findings:\n          ingresCanary.missingMain: denied\n          ingressCanary.missngMain: denied\n          ingressCanary.error: warned\n  - name: one\n    resources:\n      - {{apiVersion: v1, kind: Service, metadata: {{name: a}}}}\n    expect:\n      - object: Service default/a\n"),
                &[
                    "t.yaml:6: cases[0].clusterKinds[1]: \"Secret\" is not a kind rules read from the cluster (one of Deployment, ",
                    "t.yaml:8: cases[0].cluster[0]: the Service has no metadata.name",
                    "t.yaml:10: cases[0].resources[0]: the object has no apiVersion",
                    "t.yaml:12: cases[0].expect[0].object: \"Service\" does not name a resource",
                    "t.yaml:14: cases[0].expect[0].findings.ingresCanary.missingMain: unknown rule \"ingresCanary\" (one of ",
                    "t.yaml:15: cases[0].expect[0].findings.ingressCanary.missngMain: ingressCanary has no check \"missngMain\" (its checks: ",
                    "t.yaml:17: cases[1].name: duplicate case name \"one\" (also cases[0])",
                ],
            ),
        ];
        for (name, text, expected) in cases {
            let errors = errors_of(text);
            assert_eq!(errors.len(), expected.len(), "{name}: {errors:#?}");
            for (got, want) in errors.iter().zip(*expected) {
                assert!(got.starts_with(want), "{name}: {got}\n  expected {want}");
            }
        }
    }

    #[test]
    fn other_documents_are_skipped() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: rollout-guard.io/v1alpha1\nkind: RolloutPolicy\nmetadata: {name: p}\nspec: {}\n";
        let (tests, errors) = parse_test_file(Path::new("t.yaml"), text);
        assert!(tests.is_empty() && errors.is_empty(), "{errors:?}");
    }
}
