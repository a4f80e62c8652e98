//! `check`: offline evaluation of manifests with the webhook's own engine.
//!
//! Each object goes through exactly what the API server would do with it on CREATE: the API
//! server's Deployment defaults are applied (webhooks never see a manifest as written), the
//! object is wrapped in an AdmissionReview and sent through `admission::review` on the mutate
//! endpoint, the patch from the serialised response is applied, and the patched object goes
//! through the validate endpoint. A mutate denial ends there, as in the cluster. Nothing here
//! decides anything itself, so `check`'s verdicts are the webhook's.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};

use crate::admission::{review, ReviewContext, API_NOT_SERVED};
use crate::cli::{CheckArgs, OutputFormat};
use crate::manifest::{read_paths, Document};
use crate::policy::defaults::apply_deployment_defaults;
use crate::policy::finding::Endpoint;
use crate::policy::load::{embedded_default, parse_sources};
use crate::policy::set::PolicySet;
use crate::policy::view::ClusterView;
use crate::reload::read_policy_dir;
use crate::store::Store;

/// The user `check` reviews as (change-cause rules name the requesting user).
pub const CHECK_USER: &str = "rollout-guard-check";

/// Exit code when nothing is denied.
const EXIT_OK: u8 = 0;
/// Exit code when something is denied.
const EXIT_DENIED: u8 = 1;
/// Exit code for usage, policy and manifest errors.
const EXIT_ERROR: u8 = 2;

/// The decision for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Admitted unchanged.
    Allowed,
    /// Admitted with a patch.
    Patched,
    /// Refused.
    Denied,
    /// Not looked at by the webhook (kind not handled, namespace exempt, no policy).
    NotChecked,
    /// The document cannot be read as the object it claims to be.
    Invalid,
}

impl Decision {
    fn label(self) -> &'static str {
        match self {
            Decision::Allowed => "ALLOWED",
            Decision::Patched => "PATCHED",
            Decision::Denied => "DENIED",
            Decision::NotChecked => "NOT CHECKED",
            Decision::Invalid => "INVALID",
        }
    }
}

/// A denial as reported by `check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DenialReport {
    /// `rule.check` that denied.
    pub source: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReport {
    /// `file:line` of the document.
    pub location: String,
    /// The file.
    pub file: PathBuf,
    /// 1-based line where the document starts.
    pub line: usize,
    /// `apiVersion` of the object.
    pub api_version: String,
    /// `kind` of the object.
    pub kind: String,
    /// Namespace it was reviewed in (`default` when the manifest has none).
    pub namespace: String,
    /// `metadata.name` (or `generateName`).
    pub name: String,
    /// The decision.
    pub decision: Decision,
    /// Whether the API server would admit it.
    pub allowed: bool,
    /// Warnings from mutate and validate, in order, without repeats.
    pub warnings: Vec<String>,
    /// Why it is denied.
    pub denials: Vec<DenialReport>,
    /// The JSON Patch from mutate (against the object after API-server defaulting).
    pub patch: Vec<Value>,
    /// Why the webhook does not look at it, when it does not.
    pub exempt: Option<String>,
    /// Fields the API server's defaulting filled in before review.
    pub defaults_applied: Vec<&'static str>,
    /// What could not be read, for `invalid`.
    pub error: Option<String>,
    /// The patch as readable lines (`~ path: old → new`); text output only.
    #[serde(skip)]
    pub diff: Vec<String>,
}

/// Runs `check`; exit 0 when nothing is denied, 1 when something is, 2 on usage or parse errors.
pub fn run(args: &CheckArgs) -> ExitCode {
    let (policies, policy_source) = match &args.policies {
        None => (embedded_default(), "embedded default".to_owned()),
        Some(dir) => {
            let loaded = read_policy_dir(dir)
                .map_err(|e| vec![e.to_string()])
                .and_then(|sources| {
                    parse_sources(&sources)
                        .map_err(|e| e.0.iter().map(ToString::to_string).collect())
                });
            match loaded {
                Ok(set) => (set, dir.display().to_string()),
                Err(errors) => {
                    for error in errors {
                        eprintln!("error: {error}");
                    }
                    eprintln!("error: the policies in {} are not valid", dir.display());
                    return ExitCode::from(EXIT_ERROR);
                }
            }
        }
    };
    let documents = match read_paths(&args.files) {
        Ok(documents) => documents,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if documents.is_empty() {
        eprintln!("error: no manifests found (YAML or JSON files) in the given paths");
        return ExitCode::from(EXIT_ERROR);
    }
    let reports = check_documents(&documents, &policies);
    match args.output {
        OutputFormat::Text => print!("{}", render_text(&reports, &policy_source, &policies)),
        OutputFormat::Json => {
            let document = render_json(&reports, &policy_source, &policies);
            println!(
                "{}",
                serde_json::to_string_pretty(&document).unwrap_or_default()
            );
        }
    }
    ExitCode::from(exit_code(&reports))
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

/// Evaluates every document (in order) as the webhook would on CREATE.
pub fn check_documents(documents: &[Document], policies: &PolicySet) -> Vec<ObjectReport> {
    let view = cluster_view(documents);
    let ctx = ReviewContext {
        policies,
        view: view.as_ref(),
        own_namespace: None,
    };
    documents
        .iter()
        .enumerate()
        .map(|(index, document)| check_one(&format!("check-{}", index + 1), document, &ctx))
        .collect()
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

/// Kinds without a namespace that manifests commonly hold: reviewed with no namespace, as the
/// API server sends them (they are not handled, but the report should not invent `default/`).
const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "IngressClass",
    "GatewayClass",
    "PriorityClass",
    "StorageClass",
    "PersistentVolume",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "APIService",
];

fn check_one(uid: &str, document: &Document, ctx: &ReviewContext<'_>) -> ObjectReport {
    let text = |field: &str| {
        document
            .value
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let metadata = |field: &str| {
        document
            .value
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let name = metadata("name")
        .or_else(|| metadata("generateName").map(|g| format!("{g}<generated>")))
        .unwrap_or_default();
    let namespace = if CLUSTER_SCOPED_KINDS.contains(&kind.as_str()) {
        String::new()
    } else {
        metadata("namespace").unwrap_or_else(|| "default".to_owned())
    };
    let mut report = ObjectReport {
        location: document.location(),
        file: document.file.clone(),
        line: document.line,
        api_version: api_version.clone(),
        kind: kind.clone(),
        namespace: namespace.clone(),
        name,
        decision: Decision::Allowed,
        allowed: true,
        warnings: Vec::new(),
        denials: Vec::new(),
        patch: Vec::new(),
        exempt: None,
        defaults_applied: Vec::new(),
        error: None,
        diff: Vec::new(),
    };
    let invalid = |mut report: ObjectReport, message: String| {
        report.decision = Decision::Invalid;
        report.allowed = false;
        report.error = Some(message);
        report
    };
    if !document.value.is_object() || api_version.is_empty() || kind.is_empty() {
        return invalid(
            report,
            "not a Kubernetes object: a mapping with apiVersion and kind is expected".to_owned(),
        );
    }

    let mut object = document.value.clone();
    if (api_version.as_str(), kind.as_str()) == ("apps/v1", "Deployment") {
        report.defaults_applied = apply_deployment_defaults(&mut object);
    }

    // Mutate, as the API server calls it first.
    let mutated = match call(
        Endpoint::Mutate,
        uid,
        &api_version,
        &kind,
        &namespace,
        &object,
        ctx,
    ) {
        Ok(answer) => answer,
        Err(message) => return invalid(report, message),
    };
    if let Some(reason) = mutated.exempt {
        report.decision = Decision::NotChecked;
        report.exempt = Some(reason);
        return report;
    }
    report.warnings = mutated.warnings;
    report.denials = mutated.denials;
    if !report.denials.is_empty() {
        report.decision = Decision::Denied;
        report.allowed = false;
        return report;
    }
    let mut patched = object.clone();
    if !mutated.patch.is_empty() {
        let operations: json_patch::Patch =
            match serde_json::from_value(Value::Array(mutated.patch.clone())) {
                Ok(operations) => operations,
                Err(error) => {
                    return invalid(
                        report,
                        format!("internal: the mutate patch is not RFC 6902: {error}"),
                    )
                }
            };
        if let Err(error) = json_patch::patch(&mut patched, &operations) {
            return invalid(
                report,
                format!("internal: the mutate patch does not apply to the object: {error}"),
            );
        }
        report.diff = readable_diff(&object, &mutated.patch);
        report.patch = mutated.patch;
    }

    // Validate sees the object as it would be stored: after every mutation.
    let validated = match call(
        Endpoint::Validate,
        uid,
        &api_version,
        &kind,
        &namespace,
        &patched,
        ctx,
    ) {
        Ok(answer) => answer,
        Err(message) => return invalid(report, message),
    };
    for warning in validated.warnings {
        if !report.warnings.contains(&warning) {
            report.warnings.push(warning);
        }
    }
    report.denials = validated.denials;
    report.decision = if !report.denials.is_empty() {
        report.allowed = false;
        Decision::Denied
    } else if !report.patch.is_empty() {
        Decision::Patched
    } else {
        Decision::Allowed
    };
    report
}

/// What one endpoint answered, read back from the serialised AdmissionReview where the API
/// server reads it (allowed, patch, warnings), with the denial reasons from the verdict.
struct Answer {
    exempt: Option<String>,
    warnings: Vec<String>,
    denials: Vec<DenialReport>,
    patch: Vec<Value>,
}

fn call(
    endpoint: Endpoint,
    uid: &str,
    api_version: &str,
    kind: &str,
    namespace: &str,
    object: &Value,
    ctx: &ReviewContext<'_>,
) -> Result<Answer, String> {
    let body = admission_review(uid, api_version, kind, namespace, object);
    let reviewed = review(endpoint, &body, ctx)
        .map_err(|e| format!("internal: the review built by check was refused: {e}"))?;
    if let Some(message) = reviewed.invalid {
        return Err(message);
    }
    let response: Value = serde_json::from_slice(&reviewed.body)
        .map_err(|e| format!("internal: unreadable AdmissionReview response: {e}"))?;
    let response = &response["response"];
    if response["uid"] != uid {
        return Err("internal: the response does not echo the request uid".to_owned());
    }
    let patch = match response["patch"].as_str() {
        None => Vec::new(),
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("internal: the patch is not base64: {e}"))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| format!("internal: the patch is not a JSON array: {e}"))?
        }
    };
    let warnings = response["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut denials: Vec<DenialReport> = reviewed
        .verdict
        .denials
        .iter()
        .map(|d| DenialReport {
            source: d.source.clone(),
            message: d.message.clone(),
        })
        .collect();
    if response["allowed"] == false && denials.is_empty() {
        // Refused without a rule denial (should not happen): report the status message.
        denials.push(DenialReport {
            source: "response".to_owned(),
            message: response["status"]["message"]
                .as_str()
                .unwrap_or("denied")
                .to_owned(),
        });
    }
    Ok(Answer {
        exempt: reviewed.verdict.exempt,
        warnings,
        denials,
        patch,
    })
}

/// The AdmissionReview the API server would send for creating `object`.
fn admission_review(
    uid: &str,
    api_version: &str,
    kind: &str,
    namespace: &str,
    object: &Value,
) -> Vec<u8> {
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    };
    let name = object
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let resource = json!({"group": group, "version": version, "resource": plural(kind)});
    let mut request = json!({
        "uid": uid,
        "kind": gvk,
        "resource": resource,
        "requestKind": gvk,
        "requestResource": resource,
        "name": name,
        "operation": "CREATE",
        "userInfo": {"username": CHECK_USER, "groups": ["system:authenticated"]},
        "object": object,
        "oldObject": null,
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    });
    if !namespace.is_empty() {
        request["namespace"] = json!(namespace);
    }
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    });
    serde_json::to_vec(&review).unwrap_or_default()
}

/// The resource name of a kind, as the API server's RESTMapper guesses it.
fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.ends_with('s')
        || lower.ends_with('x')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        format!("{lower}es")
    } else if let Some(stem) = lower
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'o', 'u']))
    {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// The patch as lines a person reads: `+ path: value` for additions (maps spelled out to their
/// leaves), `~ path: old → new` for replacements, `- path: old` for removals. Paths are the
/// unescaped keys joined by dots, as in `kubectl explain`.
pub fn readable_diff(before: &Value, patch: &[Value]) -> Vec<String> {
    let mut lines = Vec::new();
    for (index, operation) in patch.iter().enumerate() {
        let pointer = operation["path"].as_str().unwrap_or_default();
        // `add {}` only makes room for the keys the next operations add: they say it all.
        let makes_room = operation["value"].as_object().is_some_and(|m| m.is_empty())
            && patch[index + 1..].iter().any(|later| {
                later["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(&format!("{pointer}/")))
            });
        if makes_room {
            continue;
        }
        let path = pointer
            .split('/')
            .skip(1)
            .map(|token| token.replace("~1", "/").replace("~0", "~"))
            .collect::<Vec<_>>()
            .join(".");
        let old = before.pointer(pointer);
        match operation["op"].as_str().unwrap_or_default() {
            "add" if old.is_none() => added(&path, &operation["value"], &mut lines),
            "add" | "replace" => lines.push(format!(
                "~ {path}: {} → {}",
                compact(old.unwrap_or(&Value::Null)),
                compact(&operation["value"])
            )),
            "remove" => lines.push(format!(
                "- {path}: {}",
                compact(old.unwrap_or(&Value::Null))
            )),
            other => lines.push(format!("? {other} {path}")),
        }
    }
    lines
}

fn added(path: &str, value: &Value, lines: &mut Vec<String>) {
    match value.as_object() {
        Some(map) if !map.is_empty() => {
            for (key, child) in map {
                added(&format!("{path}.{key}"), child, lines);
            }
        }
        _ => lines.push(format!("+ {path}: {}", compact(value))),
    }
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
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

/// The text report: one block per object, then a summary.
pub fn render_text(reports: &[ObjectReport], policy_source: &str, policies: &PolicySet) -> String {
    use std::fmt::Write as _;
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
    }
    let count = |decision: Decision| reports.iter().filter(|r| r.decision == decision).count();
    let _ = writeln!(
        out,
        "\n{} {}: {} denied, {} patched, {} allowed, {} not checked, {} invalid (policies: {policy_source}, digest {})",
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

/// The JSON report: one document with every object and a summary.
pub fn render_json(reports: &[ObjectReport], policy_source: &str, policies: &PolicySet) -> Value {
    let count = |decision: Decision| reports.iter().filter(|r| r.decision == decision).count();
    json!({
        "policies": {"source": policy_source, "digest": policies.digest()},
        "objects": reports,
        "summary": {
            "objects": reports.len(),
            "denied": count(Decision::Denied),
            "patched": count(Decision::Patched),
            "allowed": count(Decision::Allowed),
            "notChecked": count(Decision::NotChecked),
            "invalid": count(Decision::Invalid),
        },
        "exitCode": exit_code(reports),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_diff_spells_out_changes() {
        let before = json!({
            "metadata": {"name": "web"},
            "spec": {"strategy": {"rollingUpdate": {"maxUnavailable": "25%"}}, "old": 1}
        });
        let patch = vec![
            json!({"op": "replace", "path": "/spec/strategy/rollingUpdate/maxUnavailable", "value": 0}),
            json!({"op": "add", "path": "/metadata/labels", "value": {"app.kubernetes.io/version": "1.27"}}),
            json!({"op": "add", "path": "/metadata/annotations", "value": {}}),
            json!({"op": "add", "path": "/metadata/annotations/kubernetes.io~1change-cause", "value": "x"}),
            json!({"op": "remove", "path": "/spec/old"}),
        ];
        assert_eq!(
            readable_diff(&before, &patch),
            [
                "~ spec.strategy.rollingUpdate.maxUnavailable: \"25%\" → 0",
                "+ metadata.labels.app.kubernetes.io/version: \"1.27\"",
                "+ metadata.annotations.kubernetes.io/change-cause: \"x\"",
                "- spec.old: 1",
            ]
        );
    }

    #[test]
    fn plural_table() {
        for (kind, plural_name) in [
            ("Deployment", "deployments"),
            ("Ingress", "ingresses"),
            ("HTTPRoute", "httproutes"),
            ("NetworkPolicy", "networkpolicies"),
            ("Gateway", "gateways"),
        ] {
            assert_eq!(plural(kind), plural_name);
        }
    }

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
            patch: vec![],
            exempt: None,
            defaults_applied: vec![],
            error: None,
            diff: vec![],
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
}
