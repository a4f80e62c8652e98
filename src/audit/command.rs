//! `rollout-guard audit --objects PATH`: the background audit offline. The manifests are both
//! the objects audited and the cluster state (as in `check`), and the reports are the ones the
//! live audit writes.
//!
//! Exit codes, as `check`'s: 0 when nothing fails, 1 when some object would be denied, 2 when
//! the policies or a manifest cannot be read or an object cannot be evaluated. Unlike `check`,
//! nothing is printed on stdout when a manifest cannot be read: reports of part of a cluster
//! would look like the reports of all of it.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::SystemTime;

use serde_json::{json, Value};

use super::report::{reports, Flavor, Report, ReportOptions};
use super::{run_manifests, AuditOptions, AuditResult};
use crate::check::load_policies;
use crate::cli::{AuditArgs, AuditFormat};
use crate::manifest::read_paths_lenient;

/// Exit code when nothing fails.
const EXIT_OK: u8 = 0;
/// Exit code when something would be denied.
const EXIT_FAIL: u8 = 1;
/// Exit code for usage, policy and manifest errors.
const EXIT_ERROR: u8 = 2;

/// Runs `audit`.
pub fn run(args: &AuditArgs) -> ExitCode {
    let (policies, _source) = match load_policies(args.policies.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return ExitCode::from(code),
    };
    let read = read_paths_lenient(&args.objects);
    if !read.unreadable.is_empty() {
        for error in &read.unreadable {
            eprintln!("error: {error}");
        }
        eprintln!("error: no reports printed: some manifests cannot be read");
        return ExitCode::from(EXIT_ERROR);
    }
    if read.documents.is_empty() {
        eprintln!("error: no manifests found (YAML or JSON files) in the given paths");
        return ExitCode::from(EXIT_ERROR);
    }
    let (result, cluster_warnings) = run_manifests(
        &read.documents,
        &policies,
        &AuditOptions::at(SystemTime::now()),
    );
    for warning in cluster_warnings {
        eprintln!("warning: cluster state: {warning}");
    }
    let options = ReportOptions {
        max_results: args.max_results,
        timestamp: None,
    };
    let flavor = match args.flavor {
        crate::cli::ReportFlavor::Openreports => Flavor::OpenReports,
        crate::cli::ReportFlavor::Wgpolicyk8s => Flavor::Wgpolicyk8s,
    };
    let built = reports(&result, flavor, &options);
    print!("{}", render(&result, &built, args.output));
    ExitCode::from(exit_code(&result))
}

/// 0 when nothing fails, 1 when something would be denied, 2 when an object cannot be
/// evaluated (it shows as an `error` result).
pub fn exit_code(result: &AuditResult) -> u8 {
    if result
        .objects
        .iter()
        .any(|o| o.decision == crate::evaluate::Decision::Invalid)
    {
        EXIT_ERROR
    } else if result.any_fail() {
        EXIT_FAIL
    } else {
        EXIT_OK
    }
}

/// The reports in `format`: a `List` (json), one document per report (yaml), or a summary.
pub fn render(result: &AuditResult, reports: &[Report], format: AuditFormat) -> String {
    match format {
        AuditFormat::Json => {
            let list = json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": reports.iter().map(|r| r.object.clone()).collect::<Vec<Value>>(),
            });
            format!(
                "{}\n",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            )
        }
        AuditFormat::Yaml => reports
            .iter()
            .map(|r| {
                format!(
                    "---\n{}",
                    serde_yaml::to_string(&r.object).unwrap_or_default()
                )
            })
            .collect(),
        AuditFormat::Text => render_text(result, reports),
    }
}

fn render_text(result: &AuditResult, reports: &[Report]) -> String {
    let mut out = String::new();
    for report in reports {
        let summary = &report.object["summary"];
        let count = |key: &str| summary[key].as_u64().unwrap_or_default();
        let scope = match &report.namespace {
            Some(namespace) => format!("namespace {namespace}"),
            None => "cluster".to_owned(),
        };
        let _ = writeln!(
            out,
            "{} {scope}: {} pass, {} fail, {} warn, {} error, {} skip",
            report.kind(),
            count("pass"),
            count("fail"),
            count("warn"),
            count("error"),
            count("skip"),
        );
        for entry in report.object["results"].as_array().into_iter().flatten() {
            let resource = &entry["resources"][0];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            let rule = match entry["rule"].as_str() {
                Some(rule) => format!("{}.{rule}", text(&entry["policy"])),
                None => text(&entry["policy"]),
            };
            let _ = writeln!(
                out,
                "  {} {} {} [{rule}] {}: {}",
                text(&entry["result"]),
                text(&resource["kind"]),
                text(&resource["name"]),
                text(&entry["properties"]["outcome"]),
                text(&entry["message"]),
            );
            for line in entry["properties"]["patch"]
                .as_str()
                .into_iter()
                .flat_map(str::lines)
            {
                let _ = writeln!(out, "      {line}");
            }
        }
        if report.left_out > 0 {
            let _ = writeln!(out, "  ... {} more results left out (cap)", report.left_out);
        }
    }
    let totals = &result.totals;
    let _ = writeln!(
        out,
        "\n{} objects audited, {} not checked: {} pass, {} fail, {} warn, {} error, {} skip (policy digest {})",
        result.objects.len(),
        result.not_checked,
        totals.pass,
        totals.fail,
        totals.warn,
        totals.error,
        totals.skip,
        result.policy_digest,
    );
    out
}
