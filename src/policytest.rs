//! `rollout-guard test PATH...`: declarative policy tests, judged by [`crate::evaluate`] (the
//! webhook's evaluation), so a team proves a policy edit before it reaches the ConfigMap.
//!
//! A test file holds `kind: PolicyTest` documents (see policies/README.md):
//!
//! ```yaml
//! apiVersion: rollout-guard.io/v1alpha1
//! kind: PolicyTest
//! metadata: {name: canaries}
//! policies: ..                 # policy directory, relative to this file (default: --policies,
//!                              # else the embedded default)
//! cases:
//!   - name: a canary without its main Ingress is refused
//!     cluster: []              # objects that already exist
//!     clusterKinds: [Ingress]  # kinds the test declares complete even with no objects
//!     resources: [...]         # the objects applied together, judged as `check` judges them
//!     expect:
//!       - object: Ingress shop/web-canary
//!         decision: denied
//!         findings: {ingressCanary.missingMain: denied}   # exactly these (rule.check: outcome)
//!         warnings: [substring]                           # each in some warning
//!         patched: {metadata: {labels: {...}}}            # a subset of the patched object
//! ```
//!
//! A rule that consulted a kind of cluster state the case neither gave objects of nor listed in
//! `clusterKinds` fails the case (it would otherwise pass on a silently empty cluster), and so
//! does a rule that answered by its `onError` path unless `findings` expects `rule.error`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::cli::{OutputFormat, TestArgs};
use crate::evaluate::{evaluate, Cluster, Evaluation, Options, Requester};
use crate::manifest::{read_paths_lenient, Document};
use crate::store::{Store, StoredKind};

/// One test file document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyTest {
    #[serde(rename = "apiVersion")]
    _api_version: String,
    #[serde(rename = "kind")]
    _kind: String,
    metadata: Metadata,
    #[serde(default)]
    policies: Option<PathBuf>,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    name: String,
    #[serde(default)]
    cluster: Vec<Value>,
    #[serde(default)]
    cluster_kinds: Vec<String>,
    resources: Vec<Value>,
    expect: Vec<Expectation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Expectation {
    /// `Kind namespace/name` (or `Kind name` for cluster-scoped objects).
    object: String,
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    findings: Option<BTreeMap<String, String>>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    patched: Option<Value>,
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CaseResult {
    /// `file:line` of the test document.
    pub location: String,
    /// The test file.
    pub file: PathBuf,
    /// Line of the test document.
    pub line: usize,
    /// `test name / case name`.
    pub name: String,
    /// What did not hold; empty when the case passed.
    pub failures: Vec<String>,
}

/// Runs `test`: exit 0 when every case passes, 1 when one fails, 2 when a test file cannot be
/// read or its policies cannot be loaded.
pub fn run(args: &TestArgs) -> ExitCode {
    let read = read_paths_lenient(&args.paths);
    for error in &read.unreadable {
        eprintln!("error: {error}");
    }
    let mut results = Vec::new();
    let mut broken = !read.unreadable.is_empty();
    for document in &read.documents {
        if document.value.get("kind").and_then(Value::as_str) != Some("PolicyTest") {
            continue;
        }
        match run_document(document, args.policies.as_deref()) {
            Ok(mut cases) => results.append(&mut cases),
            Err(message) => {
                eprintln!("error: {}: {message}", document.location());
                broken = true;
            }
        }
    }
    if results.is_empty() && !broken {
        eprintln!("error: no PolicyTest documents found in the given paths");
        return ExitCode::from(2);
    }
    print!("{}", render(&results, args.output));
    let failed = results.iter().any(|r| !r.failures.is_empty());
    ExitCode::from(if broken {
        2
    } else if failed {
        1
    } else {
        0
    })
}

fn run_document(
    document: &Document,
    policies_flag: Option<&Path>,
) -> Result<Vec<CaseResult>, String> {
    let test: PolicyTest = serde_json::from_value(document.value.clone())
        .map_err(|e| format!("not a valid PolicyTest: {e}"))?;
    let dir = match (policies_flag, &test.policies) {
        (Some(flag), _) => Some(flag.to_owned()),
        (None, Some(relative)) => Some(
            document
                .file
                .parent()
                .unwrap_or(Path::new("."))
                .join(relative),
        ),
        (None, None) => None,
    };
    let (policies, _) = crate::check::load_policies(dir.as_deref())
        .map_err(|_| "the policies cannot be loaded".to_owned())?;
    let documents_of = |values: &[Value]| -> Vec<Document> {
        values
            .iter()
            .map(|value| Document {
                file: document.file.clone(),
                line: document.line,
                value: value.clone(),
            })
            .collect()
    };
    let mut results = Vec::new();
    for case in &test.cases {
        let cluster_documents = documents_of(&case.cluster);
        let resources = documents_of(&case.resources);
        let (store, mut failures) = Store::from_documents(&cluster_documents);
        let declared: BTreeSet<&str> = case
            .cluster
            .iter()
            .chain(&case.resources)
            .filter_map(|v| v.get("kind").and_then(Value::as_str))
            .chain(case.cluster_kinds.iter().map(String::as_str))
            .collect();
        let requester = Requester::default();
        let evaluated = evaluate(
            &resources,
            &policies,
            &Options {
                cluster: Cluster::ManifestsOver(&store),
                own_namespace: None,
                requester: &requester,
                record_consulted: true,
            },
        );
        failures.extend(evaluated.cluster_warnings.iter().cloned());
        for object in &evaluated.objects {
            let undeclared: Vec<&str> = object
                .consulted
                .iter()
                .map(|k: &StoredKind| k.as_str())
                .filter(|k| !declared.contains(k))
                .collect();
            if !undeclared.is_empty() {
                failures.push(format!(
                    "{}: its rules consulted {} in the cluster, which this case does not declare: add the objects under `cluster` (or list the kind under `clusterKinds` when there are none)",
                    label(object),
                    undeclared.join(", ")
                ));
            }
        }
        for expectation in &case.expect {
            check_expectation(expectation, &evaluated.objects, &mut failures);
        }
        results.push(CaseResult {
            location: document.location(),
            file: document.file.clone(),
            line: document.line,
            name: format!("{} / {}", test.metadata.name, case.name),
            failures,
        });
    }
    Ok(results)
}

fn label(object: &Evaluation) -> String {
    if object.namespace.is_empty() {
        format!("{} {}", object.kind, object.name)
    } else {
        format!("{} {}/{}", object.kind, object.namespace, object.name)
    }
}

fn check_expectation(expect: &Expectation, objects: &[Evaluation], failures: &mut Vec<String>) {
    let Some(object) = objects.iter().find(|o| label(o) == expect.object) else {
        let known: Vec<String> = objects.iter().map(label).collect();
        failures.push(format!(
            "{}: no such resource in the case (resources: {})",
            expect.object,
            known.join(", ")
        ));
        return;
    };
    let what = &expect.object;
    if let Some(decision) = &expect.decision {
        if object.decision.as_str() != decision {
            failures.push(format!(
                "{what}: decision {} (expected {decision}){}",
                object.decision.as_str(),
                object
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    let got: BTreeMap<String, String> = object
        .findings
        .iter()
        .map(|f| (f.rule.clone(), f.outcome.as_str().to_owned()))
        .collect();
    match &expect.findings {
        Some(want) if want != &got => failures.push(format!(
            "{what}: findings {} (expected {})",
            describe(&got),
            describe(want)
        )),
        Some(_) => {}
        None => {
            for finding in object.findings.iter().filter(|f| f.is_evaluation_error()) {
                failures.push(format!(
                    "{what}: {} answered by its onError path instead of judging the object: {}",
                    finding.rule, finding.message
                ));
            }
        }
    }
    for wanted in &expect.warnings {
        if !object.warnings.iter().any(|w| w.contains(wanted.as_str())) {
            failures.push(format!(
                "{what}: no warning contains {wanted:?} (warnings: {:?})",
                object.warnings
            ));
        }
    }
    if let Some(subset) = &expect.patched {
        match &object.patched_object {
            Some(patched) => {
                if let Some(path) = first_difference(subset, patched, String::new()) {
                    failures.push(format!(
                        "{what}: the patched object differs at {path} (patch: {})",
                        Value::Array(object.patch.clone())
                    ));
                }
            }
            None => failures.push(format!(
                "{what}: no patched object (decision {})",
                object.decision.as_str()
            )),
        }
    }
}

fn describe(findings: &BTreeMap<String, String>) -> String {
    if findings.is_empty() {
        return "none".to_owned();
    }
    findings
        .iter()
        .map(|(rule, outcome)| format!("{rule}: {outcome}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first path where `subset` is not contained in `value` (maps by key, the rest equal).
fn first_difference(subset: &Value, value: &Value, path: String) -> Option<String> {
    match (subset, value) {
        (Value::Object(want), Value::Object(got)) => want.iter().find_map(|(key, child)| {
            let at = format!("{path}.{key}");
            match got.get(key) {
                Some(actual) => first_difference(child, actual, at),
                None => Some(format!("{at} (absent)")),
            }
        }),
        _ if subset == value => None,
        _ => Some(format!(
            "{} (got {value}, expected {subset})",
            if path.is_empty() {
                ".".to_owned()
            } else {
                path
            }
        )),
    }
}

/// The results in `format`.
pub fn render(results: &[CaseResult], format: OutputFormat) -> String {
    let failed = results.iter().filter(|r| !r.failures.is_empty()).count();
    match format {
        OutputFormat::Text => {
            let mut out = String::new();
            for result in results {
                let verdict = if result.failures.is_empty() { "PASS" } else { "FAIL" };
                out.push_str(&format!("{} {verdict} {}\n", result.location, result.name));
                for failure in &result.failures {
                    out.push_str(&format!("  {failure}\n"));
                }
            }
            out.push_str(&format!(
                "\npolicy tests: {} passed, {failed} failed\n",
                results.len() - failed
            ));
            out
        }
        OutputFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({
                "cases": results,
                "summary": {"cases": results.len(), "passed": results.len() - failed, "failed": failed},
            }))
            .unwrap_or_default()
        ),
        OutputFormat::Sarif => {
            use crate::formats::sarif::{log, Finding, Level};
            let findings: Vec<Finding> = results
                .iter()
                .flat_map(|result| {
                    result.failures.iter().map(move |failure| Finding {
                        rule_id: "policyTest.failed".to_owned(),
                        level: Level::Error,
                        message: format!("{}: {failure}", result.name),
                        file: result.file.clone(),
                        line: Some(result.line),
                    })
                })
                .collect();
            format!(
                "{}\n",
                serde_json::to_string_pretty(&log(&findings, true)).unwrap_or_default()
            )
        }
        OutputFormat::Junit => {
            use crate::formats::junit::{render, Case, Outcome, Suite};
            let mut suites: Vec<Suite> = Vec::new();
            for result in results {
                let file = result.file.display().to_string();
                let case = Case {
                    name: result.name.clone(),
                    classname: file.clone(),
                    file: file.clone(),
                    line: Some(result.line),
                    outcome: if result.failures.is_empty() {
                        Outcome::Passed
                    } else {
                        Outcome::Failure {
                            message: result.failures[0].clone(),
                            kind: "expectation".to_owned(),
                            detail: result.failures.join("\n"),
                        }
                    },
                    output: Vec::new(),
                };
                match suites.iter_mut().find(|s| s.name == file) {
                    Some(suite) => suite.cases.push(case),
                    None => suites.push(Suite {
                        name: file,
                        cases: vec![case],
                    }),
                }
            }
            render("rollout-guard test", &suites)
        }
    }
}
