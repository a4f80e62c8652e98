//! The one evaluation behind every door: `check`, `POST /v1/evaluate`, `rollout-guard test` and
//! the audit all judge objects with [`evaluate`], so they give the webhook's verdicts.
//!
//! Each object goes through exactly what the API server would do with it on CREATE: the API
//! server's Deployment defaults are applied (webhooks never see a manifest as written), the
//! admission request the API server would send is judged by `admission::judge` on the mutate
//! endpoint (what `admission::review` answers, without encoding and decoding an AdmissionReview
//! body around it), the patch is applied as the API server applies the response's, and the
//! patched object goes through the validate endpoint. A mutate denial ends there, as in the
//! cluster. Nothing here decides anything itself: decisions, warnings and patches are the
//! verdicts' own, counted as the response carries them (no patch on a denial). A test holds this
//! to `admission::review` over every object in the fixture suites.
//!
//! Pure apart from building an in-memory store of the manifests: no IO, no clock, no tokio.

use std::collections::BTreeSet;
use std::path::PathBuf;

use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::admission::Operation;
use serde::Serialize;
use serde_json::Value;

use crate::admission::request::ObjectJson;
use crate::admission::{self, ReviewContext};
use crate::manifest::Document;
use crate::policy::defaults::{apply_deployment_defaults, needs_deployment_defaults};
use crate::policy::engine::{FindingOutcome, RecordedFinding};
use crate::policy::finding::Endpoint;
use crate::policy::intent::{ReadAhead, ShapeSource, LAST_APPLIED};
use crate::policy::set::PolicySet;
use crate::policy::view::ClusterView;
use crate::store::layered::LayeredView;
use crate::store::StoredKind;

/// The user evaluations review as by default (change-cause rules name the requesting user).
pub const DEFAULT_USER: &str = "rollout-guard-check";

/// What the rules see as the rest of the cluster.
#[derive(Clone, Copy)]
pub enum Cluster<'a> {
    /// The manifests given together are the whole cluster (`check`, `POST /v1/evaluate` with
    /// `cluster: manifests`).
    Manifests,
    /// The manifests over another view: a manifest replaces the view's object of the same kind
    /// and key, as applying it would (`POST /v1/evaluate` over the live store, policy tests over
    /// the cluster state they declare).
    ManifestsOver(&'a dyn ClusterView),
    /// Exactly this view; the manifests are judged against it without being added (the audit,
    /// whose objects are already in the store).
    Exactly(&'a dyn ClusterView),
}

/// Who asks, as the AdmissionReview's `userInfo` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// `userInfo.username`.
    pub username: String,
    /// `userInfo.groups`.
    pub groups: Vec<String>,
}

impl Default for Requester {
    fn default() -> Self {
        Self {
            username: DEFAULT_USER.to_owned(),
            groups: vec!["system:authenticated".to_owned()],
        }
    }
}

/// How to evaluate.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    /// The cluster state cross-object rules see.
    pub cluster: Cluster<'a>,
    /// The namespace rollout-guard runs in (never governed), as `serve --namespace` says.
    pub own_namespace: Option<&'a str>,
    /// Who asks.
    pub requester: &'a Requester,
    /// Record, per object, the kinds the rules looked up (`Evaluation::consulted`): policy tests
    /// fail when a rule read a kind they did not declare.
    pub record_consulted: bool,
    /// The time of the evaluation (break-glass grants expire); the caller's clock, so the
    /// evaluation stays pure.
    pub now: std::time::SystemTime,
}

/// The decision for one object.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
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
    /// Every decision, in report order.
    pub const ALL: [Decision; 5] = [
        Decision::Denied,
        Decision::Patched,
        Decision::Allowed,
        Decision::NotChecked,
        Decision::Invalid,
    ];

    /// The decision as reports spell it (`not-checked`).
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Patched => "patched",
            Decision::Denied => "denied",
            Decision::NotChecked => "not-checked",
            Decision::Invalid => "invalid",
        }
    }

    /// The decision in capitals, for text reports.
    pub fn label(self) -> &'static str {
        match self {
            Decision::Allowed => "ALLOWED",
            Decision::Patched => "PATCHED",
            Decision::Denied => "DENIED",
            Decision::NotChecked => "NOT CHECKED",
            Decision::Invalid => "INVALID",
        }
    }
}

/// A denial: the `rule.check` that denied and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DenialReport {
    /// `rule.check` that denied.
    pub source: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// One finding of one rule, as it ended up (see [`RecordedFinding`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleFinding {
    /// `rule.check` (`ingressCanary.missingMain`; `rule.error` when the rule could not
    /// evaluate and answered by its `onError`).
    pub rule: String,
    /// `patched`, `warned` or `denied`.
    pub outcome: FindingOutcome,
    /// What is wrong and what to do.
    pub message: String,
    /// Which endpoint reported it: `mutate` or `validate`.
    pub endpoint: &'static str,
    /// What this finding patched (`patched`) or, report-only, would patch (`would-patch`), as
    /// readable lines (`+ path: value`, `~ path: old → new`); absent otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patch: Vec<String>,
}

impl RuleFinding {
    /// `object` is what the endpoint reviewed, which the finding's patch applies to.
    fn new(record: RecordedFinding, endpoint: Endpoint, object: &Value) -> Self {
        let operations: Vec<Value> = record
            .patch
            .iter()
            .filter_map(|op| serde_json::to_value(op).ok())
            .collect();
        Self {
            rule: record.source(),
            outcome: record.outcome,
            message: record.message,
            endpoint: endpoint.as_str(),
            patch: readable_diff(object, &operations),
        }
    }

    /// Whether the rule answered by its `onError` path instead of judging the object.
    pub fn is_evaluation_error(&self) -> bool {
        self.rule
            .rsplit_once('.')
            .is_some_and(|(_, check)| check == crate::policy::engine::ERROR_CHECK)
    }
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
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
    /// Namespace it was reviewed in (`default` when the manifest has none; empty for
    /// cluster-scoped kinds).
    pub namespace: String,
    /// `metadata.name` (or `generateName` followed by `<generated>`).
    pub name: String,
    /// The decision.
    pub decision: Decision,
    /// Whether the API server would admit it.
    pub allowed: bool,
    /// Warnings from mutate and validate, in order, without repeats.
    pub warnings: Vec<String>,
    /// Why it is denied.
    pub denials: Vec<DenialReport>,
    /// Every finding that produced a patch, warning or denial, by rule and check.
    pub findings: Vec<RuleFinding>,
    /// The JSON Patch from mutate (against the object after API-server defaulting).
    pub patch: Vec<Value>,
    /// The object as it would be stored: after API-server defaulting and the mutate patch. Absent
    /// for objects not evaluated (not checked, invalid) and for mutate denials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patched_object: Option<Value>,
    /// Why the webhook does not look at it, when it does not.
    pub exempt: Option<String>,
    /// Fields the API server's defaulting filled in before review.
    pub defaults_applied: Vec<&'static str>,
    /// What could not be read, for `invalid`.
    pub error: Option<String>,
    /// Kinds the rules looked up in the cluster state (only with `record_consulted`).
    #[serde(skip)]
    pub consulted: BTreeSet<StoredKind>,
    /// The patch as readable lines (`~ path: old → new`); text output only.
    #[serde(skip)]
    pub diff: Vec<String>,
    /// The policy that governed the object (`metadata.name` of the RolloutPolicy), when one did.
    #[serde(skip)]
    pub policy: Option<String>,
    /// The rules that ran on the object (mutate and validate, each once, in order): a rule that
    /// ran without a finding passed (the audit counts passes from it).
    #[serde(skip)]
    pub rules_run: Vec<&'static str>,
    /// Whether the verdict depends on the evaluation's clock: a break-glass override was asked
    /// for, and grants expire. The audit does not reuse such a verdict in a later run.
    #[serde(skip)]
    pub depends_on_time: bool,
}

/// The evaluations of a set of manifests.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// One per document, in order.
    pub objects: Vec<Evaluation>,
    /// Problems storing the manifests as cluster state (an object of a stored kind that does not
    /// read as its kind, an object defined twice), with `file:line`. The objects' own
    /// evaluations say the rest.
    pub cluster_warnings: Vec<String>,
}

/// Evaluates every document, in order, as the webhook would on CREATE.
pub fn evaluate(documents: &[Document], policies: &PolicySet, options: &Options<'_>) -> Evaluated {
    let (layered, cluster_warnings) = match options.cluster {
        Cluster::Manifests => {
            let (view, warnings) = LayeredView::new(documents, None);
            (Some(view), warnings)
        }
        Cluster::ManifestsOver(base) => {
            let (view, warnings) = LayeredView::new(documents, Some(base));
            (Some(view), warnings)
        }
        Cluster::Exactly(_) => (None, Vec::new()),
    };
    let layered = layered.map(|view| {
        if options.record_consulted {
            view.record_consulted()
        } else {
            view
        }
    });
    let view: &dyn ClusterView = match (&layered, options.cluster) {
        (Some(layered), _) => layered,
        (None, Cluster::Exactly(view)) => view,
        // Every other cluster choice built a layered view above.
        (None, _) => &crate::policy::view::EmptyView,
    };
    let ctx = ReviewContext {
        policies,
        view,
        own_namespace: options.own_namespace,
        now: options.now,
    };
    let objects = documents
        .iter()
        .enumerate()
        .map(|(index, document)| {
            let mut evaluation = evaluate_one(
                &format!("evaluate-{}", index + 1),
                document,
                &ctx,
                options.requester,
            );
            if let Some(layered) = &layered {
                evaluation.consulted = layered.take_consulted();
            }
            evaluation
        })
        .collect();
    Evaluated {
        objects,
        cluster_warnings,
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

/// What a document says it is, as its evaluation reviews it.
struct Identity {
    api_version: String,
    kind: String,
    /// `default` when the manifest has none; empty for cluster-scoped kinds.
    namespace: String,
    /// For reports: `metadata.name`, or `generateName` followed by `<generated>`.
    name: String,
    /// `metadata.name` as the API server sends it (empty with `generateName`).
    metadata_name: String,
}

impl Identity {
    fn of(document: &Document) -> Self {
        Self::of_value(&document.value)
    }

    fn of_value(value: &Value) -> Self {
        let text = |field: &str| {
            value
                .get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let metadata = |field: &str| {
            value
                .get("metadata")
                .and_then(|m| m.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        let metadata_name = metadata("name").unwrap_or_default();
        let name = if metadata_name.is_empty() {
            metadata("generateName")
                .map(|g| format!("{g}<generated>"))
                .unwrap_or_default()
        } else {
            metadata_name.clone()
        };
        let namespace = if CLUSTER_SCOPED_KINDS.contains(&kind.as_str()) {
            String::new()
        } else {
            metadata("namespace").unwrap_or_else(|| "default".to_owned())
        };
        Self {
            api_version,
            kind,
            namespace,
            name,
            metadata_name,
        }
    }
}

/// Whether no rule looks at `document` (a kind not handled, an exempt or ungoverned namespace):
/// what [`evaluate_one`] reports as not checked without reading the object. Cheap.
pub fn no_rule_looks_at(
    document: &Document,
    ctx: &ReviewContext<'_>,
    requester: &Requester,
) -> bool {
    if let (Some(api_version), Some(kind)) = (document.text("apiVersion"), document.text("kind")) {
        // Most objects of a cluster (ReplicaSets, ConfigMaps, ...) are settled here.
        if !api_version.is_empty()
            && !kind.is_empty()
            && !admission::has_rules_for(api_version, kind)
        {
            return true;
        }
    }
    let identity = Identity::of(document);
    let request = Request {
        uid: "screen",
        api_version: &identity.api_version,
        kind: &identity.kind,
        namespace: &identity.namespace,
        name: &identity.metadata_name,
        requester,
        read_ahead: None,
    };
    document.value.is_object()
        && !identity.api_version.is_empty()
        && !identity.kind.is_empty()
        && admission::answered_without_rules(&request.envelope(None), ctx).is_some()
}

/// Evaluates one document against `ctx` (mutate, apply the patch, validate).
pub fn evaluate_one(
    uid: &str,
    document: &Document,
    ctx: &ReviewContext<'_>,
    requester: &Requester,
) -> Evaluation {
    evaluate_document(uid, document, ctx, requester, KeepPatched::Yes)
}

/// [`evaluate_one`] without `patched_object` (always `None`) and the whole patch's `diff`
/// (empty; each finding keeps its own lines): the audit reports verdicts and findings, not
/// objects, and an object without defaults to fill or a patch to apply is then never copied.
pub fn evaluate_verdict(
    uid: &str,
    document: &Document,
    ctx: &ReviewContext<'_>,
    requester: &Requester,
) -> Evaluation {
    evaluate_document(uid, document, ctx, requester, KeepPatched::No)
}

/// [`evaluate_verdict`] on a document the caller lends: validation reviews it patched in place,
/// and it is restored before this returns (equal to what was lent). For the audit, which judges
/// every object of a cluster once: copying a Deployment for its patch, and dropping the copy,
/// was a fifth of the audit's evaluation time.
pub fn evaluate_verdict_lent(
    uid: &str,
    document: &mut Document,
    ctx: &ReviewContext<'_>,
    requester: &Requester,
) -> Evaluation {
    let Document { file, line, value } = document;
    evaluate_parts(
        uid,
        (file, *line),
        Working::Lent(value),
        ctx,
        requester,
        KeepPatched::No,
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeepPatched {
    Yes,
    No,
}

/// The object an evaluation reviews.
enum Working<'d> {
    /// The caller's, read only: copied when defaults are filled or a patch applies.
    Borrowed(&'d Value),
    /// A copy of our own (defaults filled in): patched as it is.
    Owned(Value),
    /// The caller's, lent: patched in place for validation, restored before returning.
    Lent(&'d mut Value),
}

impl Working<'_> {
    fn get(&self) -> &Value {
        match self {
            Working::Borrowed(value) => value,
            Working::Owned(value) => value,
            Working::Lent(value) => value,
        }
    }

    /// A copy of our own to change (the caller's lent object is never changed this way).
    fn to_mut(&mut self) -> &mut Value {
        if !matches!(self, Working::Owned(_)) {
            *self = Working::Owned(self.get().clone());
        }
        match self {
            Working::Owned(value) => value,
            Working::Borrowed(_) | Working::Lent(_) => unreachable!("made owned above"),
        }
    }
}

fn evaluate_document(
    uid: &str,
    document: &Document,
    ctx: &ReviewContext<'_>,
    requester: &Requester,
    keep_patched: KeepPatched,
) -> Evaluation {
    evaluate_parts(
        uid,
        (&document.file, document.line),
        Working::Borrowed(&document.value),
        ctx,
        requester,
        keep_patched,
    )
}

/// Evaluates `object`, read from `origin` (file and line).
fn evaluate_parts(
    uid: &str,
    (file, line): (&std::path::Path, usize),
    mut object: Working<'_>,
    ctx: &ReviewContext<'_>,
    requester: &Requester,
    keep_patched: KeepPatched,
) -> Evaluation {
    let Identity {
        api_version,
        kind,
        namespace,
        name,
        metadata_name,
    } = Identity::of_value(object.get());
    let mut report = Evaluation {
        location: crate::manifest::location(file, line),
        file: file.to_owned(),
        line,
        api_version: api_version.clone(),
        kind: kind.clone(),
        namespace: namespace.clone(),
        name,
        decision: Decision::Allowed,
        allowed: true,
        warnings: Vec::new(),
        denials: Vec::new(),
        findings: Vec::new(),
        patch: Vec::new(),
        patched_object: None,
        exempt: None,
        defaults_applied: Vec::new(),
        error: None,
        consulted: BTreeSet::new(),
        diff: Vec::new(),
        policy: None,
        rules_run: Vec::new(),
        depends_on_time: false,
    };
    let invalid = |mut report: Evaluation, message: String| {
        report.decision = Decision::Invalid;
        report.allowed = false;
        report.error = Some(message);
        report.patched_object = None;
        report
    };
    if !object.get().is_object() || api_version.is_empty() || kind.is_empty() {
        return invalid(
            report,
            "not a Kubernetes object: a mapping with apiVersion and kind is expected".to_owned(),
        );
    }

    let request = Request {
        uid,
        api_version: &api_version,
        kind: &kind,
        namespace: &namespace,
        name: &metadata_name,
        requester,
        read_ahead: None,
    };
    // Objects no rule looks at (ReplicaSets, ConfigMaps, exempt namespaces: most of a cluster)
    // are answered from the request's envelope alone, before the object is copied.
    if let Some(verdict) = admission::answered_without_rules(&request.envelope(None), ctx) {
        report.decision = Decision::NotChecked;
        report.exempt = verdict.exempt;
        return report;
    }

    // Copied only when the API server's defaults change it, or a patch does (below).
    if (api_version.as_str(), kind.as_str()) == ("apps/v1", "Deployment")
        && needs_deployment_defaults(object.get())
    {
        report.defaults_applied = apply_deployment_defaults(object.to_mut());
    }

    // Both reviews read the applied configuration (kubectl's annotation, as large as the
    // object) from one parse. Copied: a lent object is patched between the reviews.
    let last_applied: Option<String> = object
        .get()
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let read_ahead = last_applied.as_deref().map(ReadAhead::new);
    let request = Request {
        read_ahead: read_ahead.as_ref().map(|r| r as &dyn ShapeSource),
        ..request
    };

    // Mutate, as the API server calls it first. The engine reads the parsed object itself: no
    // JSON text is written for it. A kind no rule mutates (Services, Ingresses, HTTPRoutes: most
    // of what the audit judges) is allowed there untouched, so it is not parsed for it; an object
    // that does not read as its kind is then reported by the validate review, in the same words.
    // The typed object mutate read, handed to validate (renewed after a patch, below).
    let handover = admission::Handover::default();
    let mutated = if admission::mutates_kind(&api_version, &kind) {
        match request.call(Endpoint::Mutate, object.get(), ctx, &handover) {
            Ok(answer) => answer,
            Err(message) => return invalid(report, message),
        }
    } else {
        Answer::default()
    };
    if let Some(reason) = mutated.exempt {
        report.decision = Decision::NotChecked;
        report.exempt = Some(reason);
        return report;
    }
    report.warnings = mutated.warnings;
    report.denials = mutated.denials;
    report.policy = mutated.policy;
    report.rules_run = mutated.rules_run;
    report.findings = mutated.findings;
    report.depends_on_time = mutated.depends_on_time;
    if !report.denials.is_empty() {
        report.decision = Decision::Denied;
        report.allowed = false;
        return report;
    }
    // Without a patch validate reviews the very object mutate did: no copy. With one, a lent
    // object is patched in place and `restore` puts it back after validation.
    let mut restore: Vec<PatchOperation> = Vec::new();
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
        // The whole patch as lines, for the reports that show objects (the audit's findings
        // carry their own lines).
        if keep_patched == KeepPatched::Yes {
            report.diff = readable_diff(object.get(), &mutated.patch);
        }
        let applied = match &mut object {
            Working::Lent(lent) => match apply_restorable(lent, &operations) {
                Ok(Some(undo)) => {
                    restore = undo;
                    Ok(())
                }
                // An operation without a plain inverse (none the engine makes today): copy.
                Ok(None) => json_patch::patch(object.to_mut(), &operations),
                Err(error) => Err(error),
            },
            _ => json_patch::patch(object.to_mut(), &operations),
        };
        if let Err(error) = applied {
            return invalid(
                report,
                format!("internal: the mutate patch does not apply to the object: {error}"),
            );
        }
        match &mut object {
            Working::Lent(lent) => handover.renew_after_patch(lent, &operations),
            Working::Owned(owned) => handover.renew_after_patch(owned, &operations),
            Working::Borrowed(_) => handover.clear(),
        }
        report.patch = mutated.patch;
    }

    // Validate sees the object as it would be stored: after every mutation.
    let validated = request.call(Endpoint::Validate, object.get(), ctx, &handover);
    if keep_patched == KeepPatched::Yes {
        report.patched_object = Some(object.get().clone());
    }
    if let Working::Lent(lent) = &mut object {
        if let Err(error) = self::restore(lent, restore) {
            // Cannot happen (each inverse was taken just before its operation applied); said
            // rather than hidden, since the caller's object is then not what it lent.
            return invalid(
                report,
                format!("internal: the object could not be restored after validation: {error}"),
            );
        }
    }
    let validated = match validated {
        Ok(answer) => answer,
        Err(message) => return invalid(report, message),
    };
    if report.policy.is_none() {
        report.policy = validated.policy;
    }
    report.depends_on_time |= validated.depends_on_time;
    for rule in validated.rules_run {
        if !report.rules_run.contains(&rule) {
            report.rules_run.push(rule);
        }
    }
    for warning in validated.warnings {
        if !report.warnings.contains(&warning) {
            report.warnings.push(warning);
        }
    }
    for finding in validated.findings {
        // A mutating rule repeats its denials on /validate: one entry is enough.
        let repeated = report
            .findings
            .iter()
            .any(|f| f.rule == finding.rule && f.message == finding.message);
        if !repeated {
            report.findings.push(finding);
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

/// Applies `operations` to `object` and returns the operations that restore it (in order), or
/// `None`, with `object` as it was, when an operation is not an add, replace or remove of an
/// object member that applies as RFC 6902 says (the engine makes no others; the caller then
/// applies the patch to a copy, which reports what is wrong).
fn apply_restorable(
    object: &mut Value,
    operations: &[PatchOperation],
) -> Result<Option<Vec<PatchOperation>>, json_patch::PatchError> {
    let mut undo: Vec<PatchOperation> = Vec::with_capacity(operations.len());
    for operation in operations {
        match apply_to_member(object, operation) {
            Some(inverse) => undo.push(inverse),
            None => {
                undo.reverse();
                restore(object, undo)?;
                return Ok(None);
            }
        }
    }
    undo.reverse();
    Ok(Some(undo))
}

/// Applies the operations [`apply_restorable`] returned.
fn restore(
    object: &mut Value,
    mut undo: Vec<PatchOperation>,
) -> Result<(), json_patch::PatchError> {
    undo.reverse();
    while let Some(operation) = undo.pop() {
        if apply_to_member(object, &operation).is_none() {
            undo.push(operation);
            undo.reverse();
            return json_patch::patch(object, &undo);
        }
    }
    Ok(())
}

/// Applies an add, replace or remove of an object member as RFC 6902 does and returns its
/// inverse; `None`, with `object` unchanged, for anything else or an operation that does not
/// apply. Done here rather than by `json_patch`, whose pointer walk allocates every token.
fn apply_to_member(object: &mut Value, operation: &PatchOperation) -> Option<PatchOperation> {
    let pointer = operation.path().as_str();
    let (parent, key) = pointer.rsplit_once('/')?;
    let members = lookup_mut(object, parent)?.as_object_mut()?;
    let key = unescape(key);
    let path = operation.path().to_buf();
    match operation {
        PatchOperation::Add(add) => {
            Some(match members.insert(key.into_owned(), add.value.clone()) {
                None => PatchOperation::Remove(RemoveOperation { path }),
                Some(old) => PatchOperation::Replace(ReplaceOperation { path, value: old }),
            })
        }
        PatchOperation::Replace(replace) => {
            let slot = members.get_mut(key.as_ref())?;
            let old = std::mem::replace(slot, replace.value.clone());
            Some(PatchOperation::Replace(ReplaceOperation {
                path,
                value: old,
            }))
        }
        PatchOperation::Remove(_) => {
            let old = members.remove(key.as_ref())?;
            Some(PatchOperation::Add(AddOperation { path, value: old }))
        }
        _ => None,
    }
}

/// An RFC 6901 reference token, unescaped; borrowed when it has no escape.
fn unescape(token: &str) -> std::borrow::Cow<'_, str> {
    if token.contains('~') {
        std::borrow::Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
    } else {
        std::borrow::Cow::Borrowed(token)
    }
}

/// An array index as RFC 6901 spells it (no sign, no leading zero).
fn index_of(token: &str) -> Option<usize> {
    let digits = token.bytes().all(|b| b.is_ascii_digit());
    (digits && !token.is_empty() && (token == "0" || !token.starts_with('0')))
        .then(|| token.parse().ok())
        .flatten()
}

/// [`Value::pointer`] without allocating for tokens that have no escape.
fn lookup<'v>(value: &'v Value, pointer: &str) -> Option<&'v Value> {
    if pointer.is_empty() {
        return Some(value);
    }
    let mut node = value;
    for token in pointer.strip_prefix('/')?.split('/') {
        node = match node {
            Value::Object(members) => members.get(unescape(token).as_ref())?,
            Value::Array(items) => items.get(index_of(token)?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// [`Value::pointer_mut`] without allocating for tokens that have no escape.
fn lookup_mut<'v>(value: &'v mut Value, pointer: &str) -> Option<&'v mut Value> {
    if pointer.is_empty() {
        return Some(value);
    }
    let mut node = value;
    for token in pointer.strip_prefix('/')?.split('/') {
        node = match node {
            Value::Object(members) => members.get_mut(unescape(token).as_ref())?,
            Value::Array(items) => items.get_mut(index_of(token)?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// What one endpoint answered: what the API server reads from the response (allowed, patch,
/// warnings), with the denial reasons and findings from the verdict.
#[derive(Default)]
struct Answer {
    exempt: Option<String>,
    warnings: Vec<String>,
    denials: Vec<DenialReport>,
    findings: Vec<RuleFinding>,
    patch: Vec<Value>,
    policy: Option<String>,
    rules_run: Vec<&'static str>,
    depends_on_time: bool,
}

/// The parts of the admission request that are the same for both endpoints.
struct Request<'a> {
    uid: &'a str,
    api_version: &'a str,
    kind: &'a str,
    namespace: &'a str,
    /// `metadata.name`; empty with `generateName`, as the API server sends it.
    name: &'a str,
    requester: &'a Requester,
    /// The object's last-applied configuration, read once for both endpoints.
    read_ahead: Option<&'a (dyn ShapeSource + 'a)>,
}

impl Request<'_> {
    /// The request the API server would send to create `object` (its JSON), as
    /// `admission::request::decode` reads it from an AdmissionReview.
    fn envelope<'r>(&'r self, object: Option<&'r Value>) -> admission::request::Request<'r> {
        let (group, version) = self
            .api_version
            .split_once('/')
            .unwrap_or(("", self.api_version));
        admission::request::Request {
            uid: self.uid.to_owned(),
            kind: admission::request::Gvk {
                group: group.to_owned(),
                version: version.to_owned(),
                kind: self.kind.to_owned(),
            },
            sub_resource: None,
            name: self.name.to_owned(),
            namespace: (!self.namespace.is_empty()).then(|| self.namespace.to_owned()),
            operation: Operation::Create,
            user_info: UserInfo {
                username: Some(self.requester.username.clone()),
                groups: Some(self.requester.groups.clone()),
                ..UserInfo::default()
            },
            object: object.map(ObjectJson::Parsed),
            old_object: None,
            dry_run: Some(false),
        }
    }

    /// Judges `object` at `endpoint` as the webhook would, and reads the answer as the API
    /// server does: the patch and warnings count only as the response would carry them (no
    /// patch on a denial).
    fn call(
        &self,
        endpoint: Endpoint,
        object: &Value,
        ctx: &ReviewContext<'_>,
        handover: &admission::Handover,
    ) -> Result<Answer, String> {
        let verdict = admission::judge_reading_ahead(
            endpoint,
            &self.envelope(Some(object)),
            ctx,
            self.read_ahead,
            Some(handover),
        )?;
        let patch = if verdict.allowed() {
            verdict
                .patch
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<Value>, _>>()
                .map_err(|e| format!("internal: the patch does not serialise: {e}"))?
        } else {
            Vec::new()
        };
        let denials = verdict
            .denials
            .iter()
            .map(|d| DenialReport {
                source: d.source.clone(),
                message: d.message.clone(),
            })
            .collect();
        Ok(Answer {
            exempt: verdict.exempt,
            warnings: verdict.warnings,
            denials,
            findings: verdict
                .findings
                .into_iter()
                .map(|record| RuleFinding::new(record, endpoint, object))
                .collect(),
            patch,
            policy: verdict.policy,
            rules_run: verdict.rules_run,
            depends_on_time: !verdict.break_glass.is_empty(),
        })
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
            .map(unescape)
            .collect::<Vec<_>>()
            .join(".");
        let old = lookup(before, pointer);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::load::embedded_default;
    use serde::Deserialize as _;
    use serde_json::json;

    #[test]
    fn a_lent_object_is_patched_as_a_copy_would_be_and_restored() {
        let object = json!({
            "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": null},
            "spec": {"replicas": 3, "minReadySeconds": 0, "items": [1, 2]},
        });
        // (patch, whether it is applied in place; `false` = an operation without a plain
        // inverse here, so the caller copies)
        let cases = [
            (
                json!([{"op": "add", "path": "/metadata/labels/app.kubernetes.io~1version", "value": "1.4"}]),
                true,
            ),
            (
                json!([{"op": "add", "path": "/metadata/labels/app", "value": "shop"}]),
                true,
            ),
            (
                json!([{"op": "add", "path": "/metadata/labels/a~0b~1c", "value": "x"},
                    {"op": "remove", "path": "/metadata/labels/app"}]),
                true,
            ),
            (
                json!([{"op": "replace", "path": "/spec/minReadySeconds", "value": 5},
                    {"op": "remove", "path": "/spec/replicas"}]),
                true,
            ),
            // A map added, then a key into it; a null replaced by a map.
            (
                json!([{"op": "add", "path": "/spec/strategy", "value": {}},
                    {"op": "add", "path": "/spec/strategy/type", "value": "RollingUpdate"},
                    {"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}]),
                true,
            ),
            (
                json!([{"op": "add", "path": "/spec/items/0", "value": 0}]),
                false,
            ),
            (
                json!([{"op": "add", "path": "/spec/minReadySeconds", "value": 5},
                    {"op": "test", "path": "/spec/replicas", "value": 3}]),
                false,
            ),
        ];
        for (patch, in_place) in cases {
            let operations: json_patch::Patch = serde_json::from_value(patch.clone()).unwrap();
            let mut copy = object.clone();
            json_patch::patch(&mut copy, &operations).unwrap();
            let mut lent = object.clone();
            match apply_restorable(&mut lent, &operations).unwrap() {
                Some(undo) => {
                    assert!(in_place, "{patch}");
                    assert_eq!(lent, copy, "patched in place as a copy is: {patch}");
                    json_patch::patch(&mut lent, &undo).unwrap();
                    assert_eq!(lent, object, "restored: {patch}");
                }
                None => {
                    assert!(!in_place, "{patch}");
                    assert_eq!(lent, object, "left as lent: {patch}");
                }
            }
        }
        // A patch that does not apply leaves the object as it was (the copy then says why).
        let failing: json_patch::Patch = serde_json::from_value(json!([
            {"op": "add", "path": "/spec/minReadySeconds", "value": 5},
            {"op": "replace", "path": "/spec/absent", "value": 1},
        ]))
        .unwrap();
        let mut lent = object.clone();
        assert!(!matches!(
            apply_restorable(&mut lent, &failing),
            Ok(Some(_))
        ));
        assert_eq!(lent, object);
        let missing: json_patch::Patch = serde_json::from_value(json!([
            {"op": "replace", "path": "/spec/minReadySeconds", "value": 5},
            {"op": "remove", "path": "/metadata/labels/absent"},
        ]))
        .unwrap();
        assert!(matches!(apply_restorable(&mut lent, &missing), Ok(None)));
        assert_eq!(lent, object);
    }

    #[test]
    fn a_lent_document_gets_the_verdict_of_a_shared_one_and_comes_back_unchanged() {
        let policies = embedded_default();
        let (view, _) = LayeredView::new(&[], None);
        let ctx = context(&policies, &view);
        let requester = Requester::default();
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.27.1"}]}}},
        });
        let mut defaulted = deployment.clone();
        apply_deployment_defaults(&mut defaulted);
        let mut decisions = Vec::new();
        for value in [deployment, defaulted, canary("web-canary")] {
            let shared = document(value);
            let expected = evaluate_verdict("u", &shared, &ctx, &requester);
            let mut lent = shared.clone();
            let got = evaluate_verdict_lent("u", &mut lent, &ctx, &requester);
            assert_eq!(got, expected);
            assert_eq!(lent, shared, "restored");
            decisions.push(expected.decision);
        }
        // The defaulted Deployment is patched in place (the other is copied for its defaults).
        assert_eq!(
            decisions,
            [Decision::Patched, Decision::Patched, Decision::Allowed]
        );
    }

    #[test]
    fn kinds_no_rule_mutates_skip_the_mutate_review_and_still_report_unreadable_objects() {
        assert!(admission::mutates_kind("apps/v1", "Deployment"));
        for (api_version, kind) in [
            ("v1", "Service"),
            ("networking.k8s.io/v1", "Ingress"),
            ("gateway.networking.k8s.io/v1", "HTTPRoute"),
            ("v1", "ConfigMap"),
        ] {
            assert!(!admission::mutates_kind(api_version, kind), "{kind}");
        }
        let policies = embedded_default();
        let (view, _) = LayeredView::new(&[], None);
        let ctx = context(&policies, &view);
        let broken = document(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "shop", "name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": "eighty"}}));
        let evaluation = evaluate_one("u", &broken, &ctx, &Requester::default());
        assert_eq!(evaluation.decision, Decision::Invalid);
        let error = evaluation.error.unwrap_or_default();
        assert!(
            error.starts_with("object is not a valid Service: "),
            "{error}"
        );
    }

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

    /// A review context without an own namespace, at the current time.
    fn context<'a>(policies: &'a PolicySet, view: &'a dyn ClusterView) -> ReviewContext<'a> {
        ReviewContext {
            policies,
            view,
            own_namespace: None,
            now: std::time::SystemTime::now(),
        }
    }

    fn document(value: Value) -> Document {
        Document {
            file: "m.yaml".into(),
            line: 1,
            value,
        }
    }

    fn canary(name: &str) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"namespace": "shop", "name": name, "annotations": {
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "10"}},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-canary", "port": {"number": 80}}}}]}}]}})
    }

    fn main_ingress() -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"namespace": "shop", "name": "web"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
    }

    fn options<'a>(cluster: Cluster<'a>, requester: &'a Requester) -> Options<'a> {
        Options {
            cluster,
            own_namespace: None,
            requester,
            record_consulted: true,
            now: std::time::SystemTime::now(),
        }
    }

    /// The same canary is judged against whatever cluster state is chosen: alone, over a view
    /// holding its main Ingress, or exactly that view.
    #[test]
    fn the_cluster_choice_decides_what_cross_object_rules_see() {
        let policies = embedded_default();
        let requester = Requester::default();
        let canary_only = [document(canary("web-canary"))];
        let alone = evaluate(
            &canary_only,
            &policies,
            &options(Cluster::Manifests, &requester),
        );
        let finding_rules =
            |e: &Evaluation| -> Vec<String> { e.findings.iter().map(|f| f.rule.clone()).collect() };
        let alone = &alone.objects[0];
        assert!(
            finding_rules(alone)
                .iter()
                .any(|r| r.starts_with("ingressCanary.")),
            "{alone:?}"
        );
        assert!(alone.consulted.contains(&StoredKind::Ingress), "{alone:?}");

        let (with_main, _) = crate::store::Store::from_documents(&[document(main_ingress())]);
        let over = evaluate(
            &canary_only,
            &policies,
            &options(Cluster::ManifestsOver(&with_main), &requester),
        );
        let exactly = evaluate(
            &canary_only,
            &policies,
            &options(Cluster::Exactly(&with_main), &requester),
        );
        let together = evaluate(
            &[document(main_ingress()), document(canary("web-canary"))],
            &policies,
            &options(Cluster::Manifests, &requester),
        );
        assert_ne!(alone.findings, over.objects[0].findings);
        assert_eq!(over.objects[0].findings, together.objects[1].findings);
        assert_eq!(over.objects[0].decision, together.objects[1].decision);
        assert_eq!(exactly.objects[0].decision, together.objects[1].decision);
    }

    /// Findings name their rule and check, and every warning and denial has one.
    #[test]
    fn findings_by_rule_account_for_every_warning_and_denial() {
        let policies = embedded_default();
        let requester = Requester::default();
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"namespace": "shop", "name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}});
        let evaluated = evaluate(
            &[document(deployment)],
            &policies,
            &options(Cluster::Manifests, &requester),
        );
        let object = &evaluated.objects[0];
        assert_eq!(object.decision, Decision::Patched, "{object:?}");
        assert!(object
            .findings
            .iter()
            .any(|f| f.outcome == FindingOutcome::Patched && f.endpoint == "mutate"));
        for warning in &object.warnings {
            assert!(
                object
                    .findings
                    .iter()
                    .any(|f| warning.starts_with(&format!("rollout-guard {}: ", f.rule))),
                "no finding for {warning}: {:?}",
                object.findings
            );
        }
        let patched = object.patched_object.as_ref().unwrap();
        assert_eq!(
            patched["metadata"]["labels"]["app.kubernetes.io/version"],
            "1.27"
        );
    }

    #[test]
    fn requester_is_the_reviews_user() {
        let requester = Requester {
            username: "system:serviceaccount:ci:deployer".into(),
            groups: vec!["system:serviceaccounts".into()],
        };
        let request = Request {
            uid: "u",
            api_version: "apps/v1",
            kind: "Deployment",
            namespace: "shop",
            name: "web",
            requester: &requester,
            read_ahead: None,
        };
        let envelope = request.envelope(None);
        assert_eq!(
            envelope.user_info.username.as_deref(),
            Some("system:serviceaccount:ci:deployer")
        );
        assert_eq!(
            envelope.user_info.groups.as_deref(),
            Some(&["system:serviceaccounts".to_owned()][..])
        );
        assert_eq!(envelope.namespace.as_deref(), Some("shop"));
        assert_eq!(envelope.operation, Operation::Create);
        assert_eq!(
            (envelope.kind.group.as_str(), envelope.kind.version.as_str()),
            ("apps", "v1")
        );
        let core = Request {
            api_version: "v1",
            namespace: "",
            ..request
        };
        let envelope = core.envelope(None);
        assert_eq!(
            (envelope.kind.group.as_str(), envelope.kind.version.as_str()),
            ("", "v1")
        );
        assert_eq!(envelope.namespace, None);
    }

    /// The AdmissionReview the API server sends to create `object`, as a body.
    fn admission_review_body(request: &Request<'_>, object: &Value) -> Vec<u8> {
        let (group, version) = request
            .api_version
            .split_once('/')
            .unwrap_or(("", request.api_version));
        let gvk = json!({"group": group, "version": version, "kind": request.kind});
        let mut body = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": request.uid,
                "kind": gvk,
                "requestKind": gvk,
                "name": request.name,
                "operation": "CREATE",
                "userInfo": {"username": request.requester.username,
                    "groups": request.requester.groups},
                "object": object,
                "oldObject": null,
                "dryRun": false,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            }
        });
        if !request.namespace.is_empty() {
            body["request"]["namespace"] = json!(request.namespace);
        }
        serde_json::to_vec(&body).unwrap()
    }

    /// Every Kubernetes object found anywhere in a YAML value (fixture files nest them under
    /// `object`, `objects`, `cluster`, ...).
    fn objects_in(value: &Value, found: &mut Vec<Value>) {
        match value {
            Value::Object(map) => {
                let is_object = ["apiVersion", "kind"]
                    .iter()
                    .all(|k| map.get(*k).is_some_and(Value::is_string))
                    && map.get("metadata").is_some_and(Value::is_object);
                if is_object {
                    found.push(value.clone());
                } else {
                    map.values().for_each(|v| objects_in(v, found));
                }
            }
            Value::Array(items) => items.iter().for_each(|v| objects_in(v, found)),
            _ => {}
        }
    }

    fn yaml_files(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                yaml_files(&path, files);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }

    /// The evaluation judges the request directly instead of through an AdmissionReview body:
    /// for every object in the fixture suites, both endpoints give what `admission::review`
    /// answers for the AdmissionReview the API server would send (allowed, patch, warnings,
    /// exemption, rules run), with the fixtures' objects as cluster state.
    #[test]
    fn evaluation_answers_as_the_admission_review_of_the_same_request() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut files = Vec::new();
        yaml_files(&root, &mut files);
        files.sort();
        let mut objects = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for document in serde_yaml::Deserializer::from_str(&text) {
                // Not every fixture file is plain YAML (some are broken on purpose): the rest
                // of a file that does not read is skipped (the parser cannot resume after it).
                match Value::deserialize(document) {
                    Ok(value) => objects_in(&value, &mut objects),
                    Err(_) => break,
                }
            }
        }
        let documents: Vec<Document> = objects.into_iter().map(document).collect();
        let (view, _) = LayeredView::new(&documents, None);
        let policies = embedded_default();
        let ctx = context(&policies, &view);
        let requester = Requester::default();
        let mut compared = 0;
        let mut judged = 0;
        let mut patched = 0;
        for (index, document) in documents.iter().enumerate() {
            let mut object = document.value.clone();
            let text = |field: &str| object[field].as_str().unwrap_or_default().to_owned();
            let (api_version, kind) = (text("apiVersion"), text("kind"));
            if (api_version.as_str(), kind.as_str()) == ("apps/v1", "Deployment") {
                apply_deployment_defaults(&mut object);
            }
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned();
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let request = Request {
                uid: &format!("equivalence-{index}"),
                api_version: &api_version,
                kind: &kind,
                namespace: &namespace,
                name: &name,
                requester: &requester,
                read_ahead: None,
            };
            // Validate reviews the object as mutate patched it, as the API server sends it,
            // with the typed object mutate read handed over as the evaluation hands it.
            let handover = admission::Handover::default();
            for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
                let body = admission_review_body(&request, &object);
                let reviewed = admission::review(endpoint, &body, &ctx).unwrap();
                let direct = request.call(endpoint, &object, &ctx, &handover);
                let at = format!("{} {endpoint:?}", document.value["metadata"]["name"]);
                let answer = match (&reviewed.invalid, direct) {
                    (Some(message), Err(direct)) => {
                        assert_eq!(message, &direct, "{at}");
                        continue;
                    }
                    (None, Ok(answer)) => answer,
                    (invalid, direct) => panic!("{at}: {invalid:?} vs {:?}", direct.err()),
                };
                let response: Value = serde_json::from_slice(&reviewed.body).unwrap();
                let response = &response["response"];
                let patch: Vec<Value> = response["patch"].as_str().map_or_else(Vec::new, |p| {
                    use base64::Engine as _;
                    let bytes = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
                    serde_json::from_slice(&bytes).unwrap()
                });
                let warnings: Vec<String> = response["warnings"]
                    .as_array()
                    .map(|w| w.iter().map(|w| w.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default();
                assert_eq!(response["allowed"], answer.denials.is_empty(), "{at}");
                assert_eq!(patch, answer.patch, "{at}");
                assert_eq!(warnings, answer.warnings, "{at}");
                assert_eq!(reviewed.verdict.exempt, answer.exempt, "{at}");
                assert_eq!(reviewed.verdict.rules_run, answer.rules_run, "{at}");
                compared += 1;
                judged += usize::from(answer.exempt.is_none());
                if endpoint == Endpoint::Mutate && !answer.patch.is_empty() {
                    let operations: json_patch::Patch =
                        serde_json::from_value(Value::Array(answer.patch)).unwrap();
                    json_patch::patch(&mut object, &operations).unwrap();
                    handover.renew_after_patch(&mut object, &operations);
                    patched += 1;
                }
            }
        }
        assert!(
            compared > 200 && judged > 100 && patched > 20,
            "only {compared} answers compared ({judged} judged by rules, {patched} patched): \
             fixtures not found?"
        );
    }
}
