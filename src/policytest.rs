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

pub mod format;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::cli::{OutputFormat, TestArgs};
use crate::evaluate::{evaluate, Cluster, Evaluation, Options, Requester};
use crate::manifest::{read_texts_lenient, Document};
use crate::policy::engine::FindingOutcome;
use crate::policy::set::PolicySet;
use crate::store::{Store, StoredKind};
use format::{parse_test_file, Expectation, LoadedTest};

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CaseResult {
    /// `file:line` of the case.
    pub location: String,
    /// The test file.
    pub file: PathBuf,
    /// Line of the case.
    pub line: usize,
    /// `test name / case name`.
    pub name: String,
    /// What did not hold; empty when the case passed.
    pub failures: Vec<String>,
}

/// A test file, or one test of it, that could not be run: unreadable, not a valid PolicyTest
/// (one entry per problem), or its policies cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotRun {
    /// `file:line` (or the path, when no line applies).
    pub location: String,
    /// The file or path.
    pub file: PathBuf,
    /// The 1-based line, when the problem is in a document.
    pub line: Option<usize>,
    /// What is wrong (with the field, for an invalid test).
    pub message: String,
}

impl NotRun {
    fn new(file: PathBuf, line: Option<usize>, message: String) -> Self {
        let location = match line {
            Some(line) => format!("{}:{line}", file.display()),
            None => file.display().to_string(),
        };
        Self {
            location,
            file,
            line,
            message,
        }
    }
}

/// Runs `test`: exit 0 when every case passes, 1 when one fails, 2 when a test file cannot be
/// read or is not a valid PolicyTest (every problem with `file:line: field`), or its policies
/// cannot be loaded. The tests that can be run still run, and every format reports both.
pub fn run(args: &TestArgs) -> ExitCode {
    let (texts, unreadable) = read_texts_lenient(&args.paths);
    let mut not_run: Vec<NotRun> = unreadable
        .iter()
        .map(|error| NotRun::new(error.file().to_owned(), error.line(), error.message()))
        .collect();
    let mut policy_sets: HashMap<Option<PathBuf>, Option<PolicySet>> = HashMap::new();
    let mut results = Vec::new();
    for (file, text) in &texts {
        let (tests, errors) = parse_test_file(file, text);
        not_run.extend(errors.iter().map(|error| {
            let message = match error.field.as_str() {
                "" => error.message.clone(),
                field => format!("{field}: {}", error.message),
            };
            NotRun::new(
                file.clone(),
                (error.line > 0).then_some(error.line),
                message,
            )
        }));
        for test in &tests {
            let dir = policy_dir(test, args.policies.as_deref());
            // Loaded (and its errors printed) once per directory.
            let policies = policy_sets.entry(dir.clone()).or_insert_with(|| {
                crate::check::load_policies(dir.as_deref())
                    .ok()
                    .map(|(set, _)| set)
            });
            match policies {
                Some(policies) => results.extend(run_test(test, policies)),
                None => not_run.push(NotRun::new(
                    test.file.clone(),
                    Some(test.line),
                    format!(
                        "the policies of test {:?} ({}) cannot be loaded",
                        test.test.metadata.name,
                        dir.as_deref()
                            .unwrap_or(Path::new("embedded default"))
                            .display()
                    ),
                )),
            }
        }
    }
    for problem in &not_run {
        eprintln!("error: {}: {}", problem.location, problem.message);
    }
    if results.is_empty() && not_run.is_empty() {
        eprintln!("error: no PolicyTest documents found in the given paths");
        return ExitCode::from(2);
    }
    print!("{}", render(&results, &not_run, args.output));
    let failed = results.iter().any(|r| !r.failures.is_empty());
    ExitCode::from(if !not_run.is_empty() {
        2
    } else if failed {
        1
    } else {
        0
    })
}

/// The policy directory a test runs against: `--policies`, else the test's `policies:`
/// relative to its file, else none (the embedded default).
fn policy_dir(test: &LoadedTest, policies_flag: Option<&Path>) -> Option<PathBuf> {
    match (policies_flag, &test.test.policies) {
        (Some(flag), _) => Some(flag.to_owned()),
        (None, Some(relative)) => Some(test.file.parent().unwrap_or(Path::new(".")).join(relative)),
        (None, None) => None,
    }
}

/// Runs every case of a test against `policies`.
pub fn run_test(test: &LoadedTest, policies: &PolicySet) -> Vec<CaseResult> {
    let documents_of = |values: &[Value], lines: &[usize]| -> Vec<Document> {
        values
            .iter()
            .zip(lines)
            .map(|(value, line)| Document {
                file: test.file.clone(),
                line: *line,
                value: value.clone(),
            })
            .collect()
    };
    let mut results = Vec::new();
    for ((case, case_line), (cluster_lines, resource_lines)) in test
        .test
        .cases
        .iter()
        .zip(&test.case_lines)
        .zip(&test.object_lines)
    {
        let cluster_documents = documents_of(&case.cluster, cluster_lines);
        let resources = documents_of(&case.resources, resource_lines);
        let (store, mut failures) = Store::from_documents(&cluster_documents);
        let declared: BTreeSet<&str> = case
            .cluster
            .iter()
            .chain(&case.resources)
            .filter_map(|v| v.get("kind").and_then(Value::as_str))
            .chain(case.cluster_kinds.iter().map(String::as_str))
            .collect();
        let requester = case
            .user_info
            .as_ref()
            .map_or_else(Requester::default, |user| user.requester());
        let evaluated = evaluate(
            &resources,
            policies,
            &Options {
                cluster: Cluster::ManifestsOver(&store),
                own_namespace: None,
                requester: &requester,
                record_consulted: true,
                now: std::time::SystemTime::now(),
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
            location: format!("{}:{case_line}", test.file.display()),
            file: test.file.clone(),
            line: *case_line,
            name: format!("{} / {}", test.test.metadata.name, case.name),
            failures,
        });
    }
    results
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
    if let Some(decision) = expect.decision {
        if object.decision != decision {
            failures.push(format!(
                "{what}: decision {} (expected {}){}",
                object.decision.as_str(),
                decision.as_str(),
                object
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    let got: BTreeMap<String, FindingOutcome> = object
        .findings
        .iter()
        .map(|f| (f.rule.clone(), f.outcome))
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

fn describe(findings: &BTreeMap<String, FindingOutcome>) -> String {
    if findings.is_empty() {
        return "none".to_owned();
    }
    findings
        .iter()
        .map(|(rule, outcome)| format!("{rule}: {}", outcome.as_str()))
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

/// The results in `format`, with the tests that could not run: in the text summary, as
/// `errors` in JSON, as `policyTest.invalid` errors in SARIF (and the run marked unsuccessful),
/// as test cases in error in JUnit, so CI shows why `test` exited 2.
pub fn render(results: &[CaseResult], not_run: &[NotRun], format: OutputFormat) -> String {
    let failed = results.iter().filter(|r| !r.failures.is_empty()).count();
    let passed = results.len() - failed;
    match format {
        OutputFormat::Text => {
            let mut out = String::new();
            for result in results {
                let verdict = if result.failures.is_empty() {
                    "PASS"
                } else {
                    "FAIL"
                };
                out.push_str(&format!("{} {verdict} {}\n", result.location, result.name));
                for failure in &result.failures {
                    out.push_str(&format!("  {failure}\n"));
                }
            }
            for problem in not_run {
                out.push_str(&format!(
                    "{} NOT RUN {}\n",
                    problem.location, problem.message
                ));
            }
            out.push_str(&format!("\npolicy tests: {passed} passed, {failed} failed"));
            if !not_run.is_empty() {
                out.push_str(&format!(
                    ", {} problem(s) in test files kept tests from running",
                    not_run.len()
                ));
            }
            out.push('\n');
            out
        }
        OutputFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&json!({
                "cases": results,
                "errors": not_run,
                "summary": {
                    "cases": results.len(),
                    "passed": passed,
                    "failed": failed,
                    "errors": not_run.len(),
                },
            }))
            .unwrap_or_default()
        ),
        OutputFormat::Sarif => {
            use crate::formats::sarif::{log, Finding, Level, TEST_FAILED_RULE, TEST_INVALID_RULE};
            let failures = results.iter().flat_map(|result| {
                result.failures.iter().map(move |failure| Finding {
                    rule_id: TEST_FAILED_RULE.to_owned(),
                    level: Level::Error,
                    message: format!("{}: {failure}", result.name),
                    file: result.file.clone(),
                    line: Some(result.line),
                })
            });
            let problems = not_run.iter().map(|problem| Finding {
                rule_id: TEST_INVALID_RULE.to_owned(),
                level: Level::Error,
                message: problem.message.clone(),
                file: problem.file.clone(),
                line: problem.line,
            });
            let findings: Vec<Finding> = failures.chain(problems).collect();
            format!(
                "{}\n",
                serde_json::to_string_pretty(&log(&findings, not_run.is_empty()))
                    .unwrap_or_default()
            )
        }
        OutputFormat::Junit => {
            use crate::formats::junit::{render, Case, Outcome, Suite};
            let mut suites: Vec<Suite> = Vec::new();
            let mut add = |file: &Path, case: Case| {
                let name = file.display().to_string();
                match suites.iter_mut().find(|s| s.name == name) {
                    Some(suite) => suite.cases.push(case),
                    None => suites.push(Suite {
                        name,
                        cases: vec![case],
                    }),
                }
            };
            for result in results {
                let file = result.file.display().to_string();
                add(
                    &result.file,
                    Case {
                        name: result.name.clone(),
                        classname: file.clone(),
                        file,
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
                    },
                );
            }
            for problem in not_run {
                let file = problem.file.display().to_string();
                add(
                    &problem.file,
                    Case {
                        name: format!("not run: {}", problem.location),
                        classname: file.clone(),
                        file,
                        line: problem.line,
                        outcome: Outcome::Error {
                            message: problem.message.clone(),
                            detail: format!("{}: {}", problem.location, problem.message),
                        },
                        output: Vec::new(),
                    },
                );
            }
            render("rollout-guard test", &suites)
        }
    }
}
