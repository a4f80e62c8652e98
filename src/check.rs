//! `check`: offline evaluation of manifests with the webhook's own engine.
//!
//! Reads every manifest it can (a file or document that cannot be read is reported with its
//! `file:line` and the others are still judged), evaluates them with [`crate::evaluate`] (the
//! evaluation `POST /v1/evaluate`, `test` and the audit share), with the files given together as
//! the cluster state, and prints the report in the chosen format.

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::admission::API_NOT_SERVED;
use crate::cli::{CheckArgs, OutputFormat};
use crate::evaluate::{evaluate, Cluster, Options, Requester};
use crate::manifest::{read_paths_lenient, Document, ManifestError};
use crate::policy::load::{embedded_default, parse_sources};
use crate::policy::set::PolicySet;
use crate::policy::view::ClusterView;
use crate::reload::read_policy_dir;
use crate::store::Store;

pub use crate::evaluate::{readable_diff, Decision, DenialReport, Evaluation, DEFAULT_USER};

/// The user `check` reviews as (change-cause rules name the requesting user).
pub const CHECK_USER: &str = DEFAULT_USER;

/// What happened to one object (the shared evaluation's result).
pub type ObjectReport = Evaluation;

/// Exit code when nothing is denied.
const EXIT_OK: u8 = 0;
/// Exit code when something is denied.
const EXIT_DENIED: u8 = 1;
/// Exit code for usage, policy and manifest errors.
const EXIT_ERROR: u8 = 2;

/// Everything a `check` report shows.
pub struct CheckReport<'a> {
    /// One per readable document, in order.
    pub objects: &'a [Evaluation],
    /// Paths and documents that could not be read.
    pub unreadable: &'a [ManifestError],
    /// Where the policies came from (`embedded default` or the directory).
    pub policy_source: &'a str,
    /// The policies.
    pub policies: &'a PolicySet,
}

impl CheckReport<'_> {
    /// 0 when nothing is denied, 1 when something is, 2 when something could not be read or
    /// evaluated (whatever else was denied).
    pub fn exit_code(&self) -> u8 {
        if self.unreadable.is_empty() {
            exit_code(self.objects)
        } else {
            EXIT_ERROR
        }
    }
}

/// Loads `--policies` (or the embedded default), printing every error; `Err` is the exit code.
pub fn load_policies(dir: Option<&std::path::Path>) -> Result<(PolicySet, String), u8> {
    let Some(dir) = dir else {
        return Ok((embedded_default(), "embedded default".to_owned()));
    };
    let loaded = read_policy_dir(dir)
        .map_err(|e| vec![e.to_string()])
        .and_then(|sources| {
            parse_sources(&sources).map_err(|e| e.0.iter().map(ToString::to_string).collect())
        });
    match loaded {
        Ok(set) => Ok((set, dir.display().to_string())),
        Err(errors) => {
            for error in errors {
                eprintln!("error: {error}");
            }
            eprintln!("error: the policies in {} are not valid", dir.display());
            Err(EXIT_ERROR)
        }
    }
}

/// Runs `check`: exit 0 when nothing is denied, 1 when something is, 2 on usage, policy or
/// manifest errors (after every readable manifest has been evaluated and reported).
pub fn run(args: &CheckArgs) -> ExitCode {
    let (policies, policy_source) = match load_policies(args.policies.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return ExitCode::from(code),
    };
    let read = read_paths_lenient(&args.files);
    for error in &read.unreadable {
        eprintln!("error: {error}");
    }
    if read.documents.is_empty() && read.unreadable.is_empty() {
        eprintln!("error: no manifests found (YAML or JSON files) in the given paths");
        return ExitCode::from(EXIT_ERROR);
    }
    let objects = check_documents_as(&read.documents, &policies, &args.requester());
    let report = CheckReport {
        objects: &objects,
        unreadable: &read.unreadable,
        policy_source: &policy_source,
        policies: &policies,
    };
    print!("{}", render(&report, args.output));
    ExitCode::from(report.exit_code())
}

/// The report in `format`.
pub fn render(report: &CheckReport<'_>, format: OutputFormat) -> String {
    match format {
        OutputFormat::Text => render_report_text(report),
        OutputFormat::Json => {
            let document = render_report_json(report);
            format!(
                "{}\n",
                serde_json::to_string_pretty(&document).unwrap_or_default()
            )
        }
        OutputFormat::Sarif => format!(
            "{}\n",
            serde_json::to_string_pretty(&render_report_sarif(report)).unwrap_or_default()
        ),
        OutputFormat::Junit => render_report_junit(report),
    }
}

/// The SARIF log: one result per finding (denied: error, warned: warning, patched: note), per
/// invalid object and per unreadable path or document, each at its file and line.
pub fn render_report_sarif(check: &CheckReport<'_>) -> Value {
    use crate::formats::sarif::{log, Finding, Level, INVALID_RULE, UNREADABLE_RULE};
    use crate::policy::engine::FindingOutcome;
    let mut results = Vec::new();
    for object in check.objects {
        let label = object_label(object);
        if object.exempt.as_deref() == Some(API_NOT_SERVED) {
            results.push(Finding {
                rule_id: crate::formats::sarif::API_NOT_SERVED_RULE.to_owned(),
                level: Level::Error,
                message: exempt_text(object),
                file: object.file.clone(),
                line: Some(object.line),
            });
        }
        if object.decision == Decision::Invalid {
            results.push(Finding {
                rule_id: INVALID_RULE.to_owned(),
                level: Level::Error,
                message: format!("{label}: {}", object.error.as_deref().unwrap_or_default()),
                file: object.file.clone(),
                line: Some(object.line),
            });
        }
        for finding in &object.findings {
            results.push(Finding {
                rule_id: finding.rule.clone(),
                level: match finding.outcome {
                    FindingOutcome::Denied => Level::Error,
                    FindingOutcome::Warned | FindingOutcome::Bypassed => Level::Warning,
                    FindingOutcome::Patched | FindingOutcome::WouldPatch => Level::Note,
                },
                message: format!("{label}: {}", finding.message),
                file: object.file.clone(),
                line: Some(object.line),
            });
        }
    }
    for error in check.unreadable {
        results.push(Finding {
            rule_id: UNREADABLE_RULE.to_owned(),
            level: Level::Error,
            message: error.message(),
            file: error.file().to_owned(),
            line: error.line(),
        });
    }
    log(&results, true)
}

/// The JUnit report: a suite per file, a case per object (denied: failure, invalid or
/// unreadable: error, not checked: skipped), warnings and the patch as the case's output.
pub fn render_report_junit(check: &CheckReport<'_>) -> String {
    use crate::formats::junit::{render, Case, Outcome, Suite};
    let mut suites: Vec<Suite> = Vec::new();
    let mut suite_for = |file: &std::path::Path| -> usize {
        let name = file.display().to_string();
        match suites.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                suites.push(Suite {
                    name,
                    cases: Vec::new(),
                });
                suites.len() - 1
            }
        }
    };
    let mut cases: Vec<(usize, Case)> = Vec::new();
    for object in check.objects {
        let outcome = match object.decision {
            Decision::Denied => Outcome::Failure {
                message: object
                    .denials
                    .iter()
                    .map(|d| format!("[{}] {}", d.source, d.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                kind: object
                    .denials
                    .first()
                    .map_or_else(|| "denied".to_owned(), |d| d.source.clone()),
                detail: object
                    .denials
                    .iter()
                    .map(|d| format!("denied [{}]: {}", d.source, d.message))
                    .collect::<Vec<_>>()
                    .join("\n"),
            },
            Decision::Invalid => Outcome::Error {
                message: object.error.clone().unwrap_or_default(),
                detail: object.error.clone().unwrap_or_default(),
            },
            // Written for an API no supported cluster serves: nothing was checked, and it will not
            // apply. An error, not a skip.
            Decision::NotChecked if object.exempt.as_deref() == Some(API_NOT_SERVED) => {
                Outcome::Error {
                    message: exempt_text(object),
                    detail: exempt_text(object),
                }
            }
            Decision::NotChecked => Outcome::Skipped {
                message: exempt_text(object),
            },
            Decision::Allowed | Decision::Patched => Outcome::Passed,
        };
        let mut output: Vec<String> = object
            .warnings
            .iter()
            .map(|w| format!("warning: {w}"))
            .collect();
        output.extend(object.diff.iter().cloned());
        let suite = suite_for(&object.file);
        cases.push((
            suite,
            Case {
                name: format!("{} (line {})", object_label(object), object.line),
                classname: object.file.display().to_string(),
                file: object.file.display().to_string(),
                line: Some(object.line),
                outcome,
                output,
            },
        ));
    }
    for error in check.unreadable {
        let suite = suite_for(error.file());
        let file = error.file().display().to_string();
        cases.push((
            suite,
            Case {
                name: match error.line() {
                    Some(line) => format!("unreadable document (line {line})"),
                    None => "unreadable path".to_owned(),
                },
                classname: file.clone(),
                file,
                line: error.line(),
                outcome: Outcome::Error {
                    message: error.message(),
                    detail: error.to_string(),
                },
                output: Vec::new(),
            },
        ));
    }
    for (suite, case) in cases {
        suites[suite].cases.push(case);
    }
    render("rollout-guard check", &suites)
}

/// The cluster state cross-object rules see during `check`: the manifests given together.
///
/// The documents are stored exactly as `serve --objects` stores them, so cross-object rules
/// judge each object against the others given with it. Objects the store cannot read are
/// reported on stderr (their own verdicts still say why they are unreadable).
pub fn cluster_view(documents: &[Document]) -> Arc<dyn ClusterView> {
    let (store, warnings) = Store::from_documents(documents);
    for warning in warnings {
        tracing::warn!("cluster state: {warning}");
    }
    Arc::new(store)
}

/// Evaluates every document (in order) as the webhook would on CREATE, with the documents as
/// the whole cluster.
pub fn check_documents(documents: &[Document], policies: &PolicySet) -> Vec<Evaluation> {
    check_documents_as(documents, policies, &Requester::default())
}

/// [`check_documents`] as `requester` asks (`check --as USER --as-group GROUP`): what the rules
/// that read the user (change cause) and break-glass overrides make of that user's request.
pub fn check_documents_as(
    documents: &[Document],
    policies: &PolicySet,
    requester: &Requester,
) -> Vec<Evaluation> {
    let evaluated = evaluate(
        documents,
        policies,
        &Options {
            cluster: Cluster::Manifests,
            own_namespace: None,
            requester,
            record_consulted: false,
            now: std::time::SystemTime::now(),
        },
    );
    for warning in evaluated.cluster_warnings {
        tracing::warn!("cluster state: {warning}");
    }
    evaluated.objects
}

/// 0 when nothing is denied, 1 when something is, 2 when a document could not be evaluated
/// (invalid, or written in an API version no supported cluster serves, which must not pass as
/// "nothing denied").
pub fn exit_code(reports: &[ObjectReport]) -> u8 {
    let not_served = |r: &ObjectReport| r.exempt.as_deref() == Some(API_NOT_SERVED);
    if reports
        .iter()
        .any(|r| r.decision == Decision::Invalid || not_served(r))
    {
        EXIT_ERROR
    } else if reports.iter().any(|r| r.decision == Decision::Denied) {
        EXIT_DENIED
    } else {
        EXIT_OK
    }
}

fn object_label(report: &ObjectReport) -> String {
    let kind = if report.kind.is_empty() {
        "document"
    } else {
        &report.kind
    };
    match (report.namespace.is_empty(), report.name.is_empty()) {
        (_, true) => kind.to_owned(),
        (true, false) => format!("{kind} {}", report.name),
        (false, false) => format!("{kind} {}/{}", report.namespace, report.name),
    }
}

fn exempt_text(report: &ObjectReport) -> String {
    match report.exempt.as_deref() {
        Some("kind") => format!(
            "not checked ({} is not a kind rollout-guard handles)",
            report.kind
        ),
        Some("namespace") => format!(
            "not checked (namespace {} is never intercepted)",
            report.namespace
        ),
        Some("no-policy") => format!(
            "not checked (no policy governs namespace {})",
            report.namespace
        ),
        Some(API_NOT_SERVED) => format!(
            "NOT CHECKED: {} {} is not served since Kubernetes 1.22 (the API server rejects it); \
             convert it to networking.k8s.io/v1",
            report.api_version, report.kind
        ),
        Some(other) => format!("not checked ({other})"),
        None => "not checked".to_owned(),
    }
}

/// The text report of objects alone (nothing unreadable).
pub fn render_text(reports: &[ObjectReport], policy_source: &str, policies: &PolicySet) -> String {
    render_report_text(&CheckReport {
        objects: reports,
        unreadable: &[],
        policy_source,
        policies,
    })
}

/// The text report: one block per object, then a summary. Unreadable paths and documents are
/// printed on stderr as they are found, and counted in the summary.
pub fn render_report_text(check: &CheckReport<'_>) -> String {
    use std::fmt::Write as _;
    let reports = check.objects;
    let (policy_source, policies) = (check.policy_source, check.policies);
    let mut out = String::new();
    for report in reports {
        let label = object_label(report);
        match report.decision {
            Decision::NotChecked => {
                let _ = writeln!(out, "{} {label}: {}", report.location, exempt_text(report));
                continue;
            }
            Decision::Invalid => {
                let _ = writeln!(
                    out,
                    "{} {label}: INVALID: {}",
                    report.location,
                    report.error.as_deref().unwrap_or_default()
                );
                continue;
            }
            decision => {
                let _ = writeln!(out, "{} {label}: {}", report.location, decision.label());
            }
        }
        if !report.defaults_applied.is_empty() {
            let _ = writeln!(
                out,
                "  defaults applied as the API server would before webhooks run: {}",
                report.defaults_applied.join(", ")
            );
        }
        for denial in &report.denials {
            let _ = writeln!(out, "  denied [{}]: {}", denial.source, denial.message);
        }
        for warning in &report.warnings {
            let _ = writeln!(out, "  warning: {warning}");
        }
        for line in &report.diff {
            let _ = writeln!(out, "  {line}");
        }
        for finding in &report.findings {
            if finding.outcome == crate::policy::engine::FindingOutcome::WouldPatch {
                let _ = writeln!(out, "  report-only [{}]: would patch", finding.rule);
                for line in &finding.patch {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
    }
    let count = |decision: Decision| reports.iter().filter(|r| r.decision == decision).count();
    let unreadable = if check.unreadable.is_empty() {
        String::new()
    } else {
        format!(", {} unreadable", check.unreadable.len())
    };
    let _ = writeln!(
        out,
        "\n{} {}: {} denied, {} patched, {} allowed, {} not checked, {} invalid{unreadable} (policies: {policy_source}, digest {})",
        reports.len(),
        if reports.len() == 1 { "object" } else { "objects" },
        count(Decision::Denied),
        count(Decision::Patched),
        count(Decision::Allowed),
        count(Decision::NotChecked),
        count(Decision::Invalid),
        policies.digest()
    );
    out
}

/// The JSON report of objects alone (nothing unreadable).
pub fn render_json(reports: &[ObjectReport], policy_source: &str, policies: &PolicySet) -> Value {
    render_report_json(&CheckReport {
        objects: reports,
        unreadable: &[],
        policy_source,
        policies,
    })
}

/// An unreadable path or document as the JSON report lists it.
pub fn unreadable_json(error: &ManifestError) -> Value {
    let file = error.file().display().to_string();
    json!({
        "location": match error.line() {
            Some(line) => format!("{file}:{line}"),
            None => file.clone(),
        },
        "file": file,
        "line": error.line(),
        "error": error.message(),
    })
}

/// The JSON report: one document with every object, what could not be read, and a summary.
pub fn render_report_json(check: &CheckReport<'_>) -> Value {
    let reports = check.objects;
    let count = |decision: Decision| reports.iter().filter(|r| r.decision == decision).count();
    json!({
        "policies": {"source": check.policy_source, "digest": check.policies.digest()},
        "objects": reports,
        "unreadable": check.unreadable.iter().map(unreadable_json).collect::<Vec<_>>(),
        "summary": {
            "objects": reports.len(),
            "denied": count(Decision::Denied),
            "patched": count(Decision::Patched),
            "allowed": count(Decision::Allowed),
            "notChecked": count(Decision::NotChecked),
            "invalid": count(Decision::Invalid),
            "unreadable": check.unreadable.len(),
        },
        "exitCode": check.exit_code(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(decision: Decision) -> ObjectReport {
        ObjectReport {
            location: "f:1".into(),
            file: "f".into(),
            line: 1,
            api_version: "v1".into(),
            kind: "Service".into(),
            namespace: "default".into(),
            name: "x".into(),
            decision,
            allowed: decision != Decision::Denied,
            warnings: vec![],
            denials: vec![],
            findings: vec![],
            patch: vec![],
            patched_object: None,
            exempt: None,
            defaults_applied: vec![],
            error: None,
            consulted: Default::default(),
            diff: vec![],
            policy: None,
            rules_run: vec![],
            depends_on_time: false,
        }
    }

    #[test]
    fn exit_codes() {
        use Decision::*;
        let cases: &[(&[Decision], u8)] = &[
            (&[Allowed, Patched, NotChecked], 0),
            (&[Allowed, Denied], 1),
            (&[Denied, Invalid], 2),
            (&[], 0),
        ];
        for (decisions, expected) in cases {
            let reports: Vec<ObjectReport> = decisions.iter().map(|d| report(*d)).collect();
            assert_eq!(exit_code(&reports), *expected, "{decisions:?}");
        }
        // A manifest in an API version nobody serves is not "nothing denied".
        let mut removed = report(NotChecked);
        removed.exempt = Some(API_NOT_SERVED.to_owned());
        assert_eq!(exit_code(&[report(Allowed), removed]), 2);
    }

    #[test]
    fn anything_unreadable_makes_the_exit_code_2() {
        let policies = embedded_default();
        let objects = vec![report(Decision::Denied)];
        let unreadable = vec![ManifestError::Parse {
            path: "bad.yaml".into(),
            line: 3,
            message: "did not find expected node content".into(),
        }];
        let check = CheckReport {
            objects: &objects,
            unreadable: &unreadable,
            policy_source: "embedded default",
            policies: &policies,
        };
        assert_eq!(check.exit_code(), 2);
        let json = render_report_json(&check);
        assert_eq!(json["unreadable"][0]["location"], "bad.yaml:3");
        assert_eq!(json["summary"]["unreadable"], 1);
        assert!(render_report_text(&check).contains(", 1 unreadable (policies: "));
    }
}
