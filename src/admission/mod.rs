//! `review()`: one path from a request body to an AdmissionReview answer.
//!
//! decode → filter (subresources, CONNECT, exempt namespaces, unhandled kinds) → parse the typed
//! object → run the kind's rules ([`judge`]) → build the response. Pure: no IO, no clock, no
//! globals, so the HTTP handler, `check` and the tests all go through exactly this function.

pub mod cleanup;
pub mod request;
pub mod response;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::core::admission::Operation;
use serde::de::DeserializeOwned;

use crate::policy::break_glass;
use crate::policy::engine::{run, Context, RuleEntry, Verdict};
use crate::policy::finding::Endpoint;
use crate::policy::gateway::HttpRoute;
use crate::policy::intent::{IntentCache, ShapeSource};
use crate::policy::rules;
use crate::policy::set::PolicySet;
use crate::policy::view::ClusterView;

pub use request::DecodeError;

/// Namespaces never governed, whatever the policies say: a webhook that intercepts kube-system
/// or its own namespace can deadlock the cluster (it cannot start because it blocks itself).
pub const ALWAYS_EXEMPT_NAMESPACES: &[&str] = &["kube-system"];

/// What a review needs besides the request.
pub struct ReviewContext<'a> {
    /// The active policies.
    pub policies: &'a PolicySet,
    /// Cluster state for cross-object rules.
    pub view: &'a dyn ClusterView,
    /// The namespace rollout-guard runs in (never governed).
    pub own_namespace: Option<&'a str>,
    /// The time of the review (break-glass grants expire); passed in to keep the review pure.
    pub now: std::time::SystemTime,
}

/// Identifies a request in logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Request uid.
    pub uid: String,
    /// Kind of the object (`Deployment`, ...).
    pub kind: String,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub operation: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Whether the request is a dry run.
    pub dry_run: bool,
}

/// The answer to one review.
#[derive(Debug)]
pub struct Reviewed {
    /// The serialised AdmissionReview to send back.
    pub body: Vec<u8>,
    /// The decision, for logs, metrics and `check`.
    pub verdict: Verdict,
    /// Who and what was asked about.
    pub summary: Summary,
    /// Set when the object could not be read as its kind (answered with a 400 status).
    pub invalid: Option<String>,
}

/// Answers one AdmissionReview body. `Err` only when the body is not a readable review (the HTTP
/// edge answers 400); everything readable gets an AdmissionReview back.
pub fn review(
    endpoint: Endpoint,
    body: &[u8],
    ctx: &ReviewContext<'_>,
) -> Result<Reviewed, DecodeError> {
    let review = request::decode(body)?;
    let req = &review.request;
    let summary = Summary {
        uid: req.uid.clone(),
        kind: req.kind.kind.clone(),
        operation: request::operation_name(&req.operation),
        namespace: req.namespace.clone().unwrap_or_default(),
        name: request::object_name(req),
        dry_run: req.dry_run.unwrap_or(false),
    };
    let answer = |verdict: Verdict| Reviewed {
        body: response::build(&review.api_version, &req.uid, &req.kind.kind, &verdict),
        verdict,
        summary: summary.clone(),
        invalid: None,
    };
    match judge(endpoint, req, ctx) {
        Ok(verdict) => Ok(answer(verdict)),
        Err(message) => Ok(Reviewed {
            body: response::invalid(&review.api_version, &req.uid, &message),
            verdict: Verdict::default(),
            summary,
            invalid: Some(message),
        }),
    }
}

/// The verdict on one decoded request: what `review` answers, before it is serialised. `Err`
/// carries the message for an object that does not read as its kind. The evaluation behind
/// `check`, the API and the audit calls this with the request the API server would send, so
/// it judges exactly as the webhook does without encoding and decoding an AdmissionReview.
pub fn judge(
    endpoint: Endpoint,
    req: &request::Request<'_>,
    ctx: &ReviewContext<'_>,
) -> Result<Verdict, String> {
    judge_reading_ahead(endpoint, req, ctx, None, None)
}

/// [`judge`], taking the object's last-applied configuration from `read_ahead` when it holds
/// the same text (a caller reviewing one object at both endpoints reads it once).
pub fn judge_reading_ahead(
    endpoint: Endpoint,
    req: &request::Request<'_>,
    ctx: &ReviewContext<'_>,
    read_ahead: Option<&dyn ShapeSource>,
    handover: Option<&Handover>,
) -> Result<Verdict, String> {
    let (kind, policy) = match screen(req, ctx) {
        Screened::Answered(verdict) => return Ok(*verdict),
        Screened::Review(kind, policy) => (kind, policy),
    };
    let namespace = req.namespace.as_deref().unwrap_or_default();
    let target = Target {
        endpoint,
        req,
        namespace,
        policy,
        ctx,
        read_ahead,
        handover,
    };
    match kind {
        ReviewedKind::Deployment => target.evaluate::<Deployment>(rules::deployment::RULES),
        ReviewedKind::Service => target.evaluate::<Service>(rules::service::RULES),
        ReviewedKind::Ingress => target.evaluate::<Ingress>(rules::ingress::RULES),
        ReviewedKind::HttpRoute => target.evaluate::<HttpRoute>(rules::httproute::RULES),
    }
}

/// The verdict on a request that no rule looks at (a subresource, CONNECT, an exempt
/// namespace, no governing policy, a kind not handled); `None` when rules would run. Lets the
/// audit pass over the objects it never judges (ReplicaSets, ...) before it copies them.
pub fn answered_without_rules(
    req: &request::Request<'_>,
    ctx: &ReviewContext<'_>,
) -> Option<Verdict> {
    match screen(req, ctx) {
        Screened::Answered(verdict) => Some(*verdict),
        Screened::Review(..) => None,
    }
}

/// The kinds rules are written for.
#[derive(Debug, Clone, Copy)]
enum ReviewedKind {
    Deployment,
    Service,
    Ingress,
    HttpRoute,
}

enum Screened<'c> {
    /// Answered without running rules (boxed: a verdict is large, and rare here).
    Answered(Box<Verdict>),
    /// Rules of this kind run, under this policy.
    Review(ReviewedKind, &'c crate::policy::RolloutPolicy),
}

/// The filter every request passes before rules run. Reads only the request's envelope (not
/// its objects), so it is cheap.
fn screen<'c>(req: &request::Request<'_>, ctx: &ReviewContext<'c>) -> Screened<'c> {
    let namespace = req.namespace.as_deref().unwrap_or_default();
    // Scale and status writes never change what the rules look at, and the API server sends them
    // with a Scale or a status-only object: allow untouched.
    if req.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) {
        return Screened::Answered(Box::new(Verdict::exempt("subresource")));
    }
    if req.operation == Operation::Connect {
        return Screened::Answered(Box::new(Verdict::exempt("operation")));
    }
    if ALWAYS_EXEMPT_NAMESPACES.contains(&namespace) || ctx.own_namespace == Some(namespace) {
        return Screened::Answered(Box::new(Verdict::exempt("namespace")));
    }
    let Some(policy) = ctx.policies.governing(namespace) else {
        return Screened::Answered(Box::new(Verdict::exempt("no-policy")));
    };
    match kind_of(&req.kind.group, &req.kind.version, &req.kind.kind) {
        Ok(kind) => Screened::Review(kind, policy),
        Err(verdict) => Screened::Answered(verdict),
    }
}

/// The rules a kind gets, or the answer for a kind no rule is written for.
fn kind_of(group: &str, version: &str, kind: &str) -> Result<ReviewedKind, Box<Verdict>> {
    reviewed_kind(group, version, kind).ok_or_else(|| match (group, version, kind) {
        ("extensions" | "networking.k8s.io", "v1beta1", "Ingress") => {
            Box::new(not_served_ingress(group))
        }
        _ => Box::new(Verdict::exempt("kind")),
    })
}

/// The kinds rules are written for, by group, version and kind.
fn reviewed_kind(group: &str, version: &str, kind: &str) -> Option<ReviewedKind> {
    match (group, version, kind) {
        ("apps", "v1", "Deployment") => Some(ReviewedKind::Deployment),
        ("", "v1", "Service") => Some(ReviewedKind::Service),
        ("networking.k8s.io", "v1", "Ingress") => Some(ReviewedKind::Ingress),
        // A CRD: the API server only sends these when the Gateway API is installed. v1beta1
        // has the same shape for every field the rule reads.
        ("gateway.networking.k8s.io", "v1" | "v1beta1", "HTTPRoute") => {
            Some(ReviewedKind::HttpRoute)
        }
        _ => None,
    }
}

/// Whether any rule for objects of `apiVersion` + `kind` runs at `/mutate`. When none does,
/// `/mutate` answers every such object allowed, with no patch, warning or finding, and callers
/// that review an object at both endpoints (the audit, `check`) need not ask it.
pub fn mutates_kind(api_version: &str, kind: &str) -> bool {
    fn any_mutating<K>(rules: &[RuleEntry<K>]) -> bool {
        rules
            .iter()
            .any(|rule| rule.phase == crate::policy::finding::RulePhase::Mutating)
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    match reviewed_kind(group, version, kind) {
        Some(ReviewedKind::Deployment) => any_mutating(rules::deployment::RULES),
        Some(ReviewedKind::Service) => any_mutating(rules::service::RULES),
        Some(ReviewedKind::Ingress) => any_mutating(rules::ingress::RULES),
        Some(ReviewedKind::HttpRoute) => any_mutating(rules::httproute::RULES),
        None => false,
    }
}

/// Whether rules are written for objects of `apiVersion` + `kind` (whether they run also depends
/// on the namespace and the policies). A cheap first filter: no allocation.
pub fn has_rules_for(api_version: &str, kind: &str) -> bool {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    reviewed_kind(group, version, kind).is_some()
}

/// Why a removed Ingress API version is not checked. With the chart's `matchPolicy: Equivalent`
/// an API server that still serves these (1.21 and older) converts them to
/// `networking.k8s.io/v1` before calling the webhook, so this answers manifests given to
/// `check` and webhook rules written by hand.
pub const API_NOT_SERVED: &str = "api-not-served";

fn not_served_ingress(group: &str) -> Verdict {
    let mut verdict = Verdict::exempt(API_NOT_SERVED);
    verdict.warnings.push(crate::policy::engine::warning_text(
        "ingressCanary",
        &format!(
            "{group}/v1beta1 Ingress is not served since Kubernetes 1.22: it cannot be applied \
             and was not checked; rewrite it as networking.k8s.io/v1 (paths need pathType and \
             backend.service)"
        ),
    ));
    verdict
}

fn parse<K: DeserializeOwned>(
    object: Option<request::ObjectJson<'_>>,
    what: &str,
    kind: &str,
) -> Result<Option<K>, String> {
    object
        .filter(|o| !o.is_null())
        .map(request::ObjectJson::read::<K>)
        .transpose()
        .map_err(|e| format!("{what} is not a valid {kind}: {e}"))
}

/// One request, ready for its kind's rules.
struct Target<'a> {
    endpoint: Endpoint,
    req: &'a request::Request<'a>,
    namespace: &'a str,
    policy: &'a crate::policy::RolloutPolicy,
    ctx: &'a ReviewContext<'a>,
    read_ahead: Option<&'a (dyn ShapeSource + 'a)>,
    handover: Option<&'a Handover>,
}

impl Target<'_> {
    /// Parses the objects as `K` and runs `rules`. `Err` carries the message for an object that
    /// does not read as its kind.
    fn evaluate<K>(&self, rules: &[RuleEntry<K>]) -> Result<Verdict, String>
    where
        K: DeserializeOwned + kube::Resource<DynamicType = ()> + 'static,
    {
        let req = self.req;
        let kind = &req.kind.kind;
        let handed = self.handover.and_then(Handover::take::<K>);
        let object: Option<K> = match handed {
            Some(object) => Some(object),
            None => parse(req.object, "object", kind)?,
        };
        let old_object: Option<K> = parse(req.old_object, "oldObject", kind)?;
        let needs_object = matches!(req.operation, Operation::Create | Operation::Update);
        if needs_object && object.is_none() {
            let operation = request::operation_name(&req.operation);
            return Err(format!(
                "{operation} request for a {kind} carries no object"
            ));
        }
        if req.operation == Operation::Delete && old_object.is_none() {
            // Some API servers omit oldObject on DELETE of already-gone objects: nothing to check.
            return Ok(Verdict::exempt("no-object"));
        }
        // Borrowed: kubectl's last-applied-configuration alone can be as large as the object.
        // On DELETE the stored object's: a DELETE carries no new one.
        let meta = object.as_ref().or(old_object.as_ref()).map(|o| o.meta());
        let annotations: Option<&BTreeMap<String, String>> =
            meta.and_then(|m| m.annotations.as_ref());
        let context = Context {
            operation: req.operation.clone(),
            namespace: self.namespace,
            name: &req.name,
            object: object.as_ref(),
            old_object: old_object.as_ref(),
            user: &req.user_info,
            policy: self.policy,
            view: self.ctx.view,
            intent: IntentCache::with_read_ahead(self.read_ahead),
        };
        let mut verdict = run(rules, &context, self.endpoint, req.object, annotations);
        let username = req.user_info.username.as_deref().unwrap_or_default();
        match cleanup::system_cleanup(&req.operation, username, self.namespace, self.ctx.view) {
            // Nothing to bypass: a cleanup DELETE is never blocked.
            Some(who) => cleanup::allow(&mut verdict, who),
            None => break_glass::apply(
                &mut verdict,
                self.policy,
                &break_glass::Request {
                    user: &req.user_info,
                    namespace: self.namespace,
                    labels: meta.and_then(|m| m.labels.as_ref()),
                    annotations,
                    now: self.ctx.now,
                },
                self.ctx.view,
            ),
        }
        if let (Some(handover), Some(object)) = (self.handover, object) {
            handover.keep(object);
        }
        Ok(verdict)
    }
}

/// The typed object one review of an object hands to the next review of the same object: the
/// evaluation (`check`, the API, the audit) reviews each object at mutate and again at validate,
/// and the typed parse of a Deployment was a third of the audit's evaluation time. It holds
/// only what reading the next review's object would give: the caller clears it, or renews it
/// with [`Handover::renew_after_patch`], when the object changes between the reviews.
#[derive(Default)]
pub struct Handover {
    object: std::cell::RefCell<Option<Box<dyn std::any::Any>>>,
}

impl Handover {
    fn take<K: 'static>(&self) -> Option<K> {
        let object = self.object.borrow_mut().take()?;
        object.downcast::<K>().ok().map(|object| *object)
    }

    fn keep<K: 'static>(&self, object: K) {
        *self.object.borrow_mut() = Some(Box::new(object));
    }

    /// Forgets the object: the next review reads its own.
    pub fn clear(&self) {
        self.object.borrow_mut().take();
    }

    /// After `operations` were applied to `patched` (the object the kept one was read from):
    /// keeps the typed `patched`, read again except for a Deployment's pod spec when no
    /// operation touches it (the pod spec is most of a Deployment, and the engine's patches
    /// touch labels, annotations and rollout settings); clears it when that cannot be done.
    /// `patched` is as it was when this returns.
    pub fn renew_after_patch(
        &self,
        patched: &mut serde_json::Value,
        operations: &[json_patch::PatchOperation],
    ) {
        const POD_SPEC: &str = "/spec/template/spec";
        let Some(mut kept) = self.take::<Deployment>() else {
            self.clear();
            return;
        };
        // Neither the pod spec, nor in it, nor one of the members that hold it.
        let within = |outer: &str, inner: &str| {
            inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let disjoint = |path: &str| !within(POD_SPEC, path) && !within(path, POD_SPEC);
        let plain = operations.iter().all(|operation| {
            matches!(
                operation,
                json_patch::PatchOperation::Add(_)
                    | json_patch::PatchOperation::Replace(_)
                    | json_patch::PatchOperation::Remove(_)
            ) && disjoint(operation.path().as_str())
        });
        let pod_spec = kept
            .spec
            .as_mut()
            .and_then(|spec| spec.template.spec.take());
        let Some(subtree) = patched.pointer_mut(POD_SPEC).filter(|_| plain) else {
            return;
        };
        let (Some(pod_spec), false) = (pod_spec, subtree.is_null()) else {
            return;
        };
        let taken = std::mem::take(subtree);
        let renewed = <Deployment as serde::Deserialize>::deserialize(&*patched);
        if let Some(slot) = patched.pointer_mut(POD_SPEC) {
            *slot = taken;
        }
        if let Ok(mut renewed) = renewed {
            if let Some(spec) = renewed.spec.as_mut() {
                spec.template.spec = Some(pod_spec);
                self.keep(renewed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "shop/web:1.4.2",
                        "env": [{"name": "MODE", "value": "blue"}]}]},
                },
            },
        })
    }

    fn read(value: &Value) -> Deployment {
        serde_json::from_value(value.clone()).expect("a Deployment")
    }

    #[test]
    fn a_renewed_handover_holds_what_reading_the_patched_object_gives() {
        // (patch, whether the typed object is renewed rather than read again by validate)
        let cases = [
            (
                json!([{"op": "add", "path": "/metadata/labels/app.kubernetes.io~1version", "value": "1.4.2"},
                    {"op": "add", "path": "/spec/minReadySeconds", "value": 5},
                    {"op": "add", "path": "/spec/template/metadata/labels/version", "value": "1.4.2"}]),
                true,
            ),
            (
                json!([{"op": "add", "path": "/spec/template/spec/containers/0/readinessProbe",
                    "value": {"tcpSocket": {"port": 8080}}}]),
                false,
            ),
            (
                json!([{"op": "replace", "path": "/spec/template", "value": {"spec": {"containers": []}}}]),
                false,
            ),
            (
                json!([{"op": "add", "path": "/spec/template/specs", "value": 1}]),
                true,
            ),
        ];
        for (patch, renewed) in cases {
            let operations: json_patch::Patch = serde_json::from_value(patch.clone()).unwrap();
            let original = deployment();
            let handover = Handover::default();
            handover.keep(read(&original));
            let mut patched = original.clone();
            json_patch::patch(&mut patched, &operations).unwrap();
            let before = patched.clone();
            handover.renew_after_patch(&mut patched, &operations);
            assert_eq!(
                patched, before,
                "the patched object is given back as it was: {patch}"
            );
            match handover.take::<Deployment>() {
                Some(typed) => {
                    assert!(renewed, "{patch}");
                    assert_eq!(typed, read(&patched), "{patch}");
                }
                None => assert!(!renewed, "validate reads its own object: {patch}"),
            }
        }
    }

    #[test]
    fn a_patched_object_that_no_longer_reads_is_left_to_validate() {
        // Validate then reads the object itself and reports it in its own words.
        let operations: json_patch::Patch = serde_json::from_value(json!([
            {"op": "replace", "path": "/metadata/labels", "value": 7},
        ]))
        .unwrap();
        let handover = Handover::default();
        handover.keep(read(&deployment()));
        let mut patched = deployment();
        json_patch::patch(&mut patched, &operations).unwrap();
        let before = patched.clone();
        handover.renew_after_patch(&mut patched, &operations);
        assert_eq!(patched, before);
        assert!(handover.take::<Deployment>().is_none());
    }

    #[test]
    fn a_handover_gives_only_the_kind_it_holds() {
        let handover = Handover::default();
        handover.keep(read(&deployment()));
        assert!(handover.take::<Service>().is_none());
        assert!(
            handover.take::<Deployment>().is_none(),
            "taken (and dropped) once"
        );
        handover.keep(read(&deployment()));
        handover.clear();
        assert!(handover.take::<Deployment>().is_none());
    }
}
