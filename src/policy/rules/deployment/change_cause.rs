//! `changeCause`: a `kubernetes.io/change-cause` that says what changed and who asked.
//!
//! The Deployment controller copies this annotation onto the ReplicaSet a rollout creates, and
//! `kubectl rollout history` prints it per revision. Only template changes make revisions, so
//! only they get a cause: scale, status and metadata-only writes leave it alone.
//!
//! Deterministic on purpose (no time, no randomness): the API server may call the webhook again
//! with our own output. Then the object carries the cause we wrote, which differs from the stored
//! object's, so it counts as "supplied in this request" and is kept: no second patch.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::core::admission::Operation;
use serde_json::json;

use crate::policy::config::ChangeCauseRule;
use crate::policy::engine::Context;
use crate::policy::finding::{EvalError, Finding, Fix, Severity};
use crate::policy::patch::Edit;
use crate::policy::rules::deployment::template;

/// The rule's key under `rules`.
pub const RULE: &str = "changeCause";

/// The annotation `kubectl rollout history` shows.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// Argo CD's annotation tracking method: `<app>:<group>/<kind>:<namespace>/<name>`.
const ARGOCD_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
/// Argo CD's label tracking method (also set by many Helm charts, so trusted only when Argo CD
/// itself makes the request).
const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
const FLUX_KUSTOMIZATION_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
const FLUX_KUSTOMIZATION_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";
const FLUX_HELMRELEASE_NAME: &str = "helm.toolkit.fluxcd.io/name";
const FLUX_HELMRELEASE_NAMESPACE: &str = "helm.toolkit.fluxcd.io/namespace";
const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";
/// `<chart>-<version>`: the closest thing to a revision any of these tools stamps on objects.
/// Argo CD and Flux do not record the Git revision on applied objects (Flux declined to, see
/// fluxcd/kustomize-controller#837), so none is invented here.
const HELM_CHART_LABEL: &str = "helm.sh/chart";

fn annotation<'a>(deployment: &'a Deployment, key: &str) -> Option<&'a str> {
    deployment
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

fn label<'a>(deployment: &'a Deployment, key: &str) -> Option<&'a str> {
    deployment
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The GitOps application (and revision, where the object carries one) that manages the object,
/// as ` (argocd app shop)` etc., or empty.
pub fn gitops_source(deployment: &Deployment, username: &str) -> String {
    let requested_by_argocd = username.contains("argocd");
    if let Some(app) = annotation(deployment, ARGOCD_TRACKING_ID)
        .and_then(|id| id.split(':').next())
        .filter(|app| !app.is_empty())
    {
        return format!(" (argocd app {app})");
    }
    if let Some(name) = label(deployment, FLUX_KUSTOMIZATION_NAME) {
        let namespace = label(deployment, FLUX_KUSTOMIZATION_NAMESPACE).unwrap_or("?");
        return format!(" (flux kustomization {namespace}/{name})");
    }
    if let Some(name) = label(deployment, FLUX_HELMRELEASE_NAME) {
        let namespace = label(deployment, FLUX_HELMRELEASE_NAMESPACE).unwrap_or("?");
        let chart = label(deployment, HELM_CHART_LABEL)
            .map(|c| format!(", chart {c}"))
            .unwrap_or_default();
        return format!(" (flux helmrelease {namespace}/{name}{chart})");
    }
    if let Some(release) = annotation(deployment, HELM_RELEASE_NAME).filter(|r| !r.is_empty()) {
        let chart = label(deployment, HELM_CHART_LABEL)
            .map(|c| format!(", chart {c}"))
            .unwrap_or_default();
        return format!(" (helm release {release}{chart})");
    }
    if requested_by_argocd {
        if let Some(app) = label(deployment, INSTANCE_LABEL) {
            return format!(" (argocd app {app})");
        }
    }
    String::new()
}

/// Fills the policy's format in one pass (a placeholder inside a substituted value stays as
/// written), flattens it to one line and cuts it to `max_length` characters with `…`.
pub fn render(format: &str, values: &BTreeMap<&str, String>, max_length: usize) -> String {
    let mut out = String::new();
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let replaced = after.find('}').and_then(|close| {
            let name = &after[1..close];
            values.get(name).map(|value| (value, close))
        });
        match replaced {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    let one_line: String = out
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one_line = one_line.trim();
    let max_length = max_length.max(1);
    if one_line.chars().count() <= max_length {
        one_line.to_owned()
    } else {
        let mut cut: String = one_line.chars().take(max_length - 1).collect();
        cut.push('…');
        cut
    }
}

fn describe_create(deployment: &Deployment) -> String {
    let images: Vec<String> = template::containers(deployment)
        .iter()
        .map(|c| format!("{}: {}", c.name, c.image.as_deref().unwrap_or("?")))
        .collect();
    if images.is_empty() {
        "created".to_owned()
    } else {
        format!("created ({})", images.join(", "))
    }
}

/// The cause this request would get, or `None` when the rule leaves the annotation alone.
fn generated_cause(ctx: &Context<'_, Deployment>, rule: &ChangeCauseRule) -> Option<String> {
    let deployment = ctx.object?;
    let current = annotation(deployment, CHANGE_CAUSE).filter(|c| !c.trim().is_empty());
    let change = match ctx.operation {
        Operation::Create => {
            if current.is_some() {
                return None;
            }
            describe_create(deployment)
        }
        Operation::Update => {
            let old = ctx.old_object?;
            let diff = template::diff(old, deployment, &ctx.rules().version_label.label_keys);
            if diff.is_empty() {
                // Scale-only, status-only or metadata-only: not a new revision.
                return None;
            }
            // Supplied in this request (`kubectl annotate`, `--record`, a manifest, the copy
            // `kubectl rollout undo` takes from the old ReplicaSet, or our own earlier output).
            if current.is_some() && current != annotation(old, CHANGE_CAUSE) {
                return None;
            }
            diff.describe()
        }
        _ => return None,
    };
    let user = ctx
        .user
        .username
        .as_deref()
        .filter(|u| !u.is_empty())
        .unwrap_or("unknown user");
    let values = BTreeMap::from([
        ("change", change),
        ("user", user.to_owned()),
        ("source", gitops_source(deployment, user)),
    ]);
    let cause = render(&rule.format, &values, usize::from(rule.max_length));
    (current != Some(cause.as_str())).then_some(cause)
}

/// Evaluates the rule.
pub fn evaluate(ctx: &Context<'_, Deployment>) -> Result<Vec<Finding>, EvalError> {
    let rule = &ctx.rules().change_cause;
    let Some(cause) = generated_cause(ctx, rule) else {
        return Ok(Vec::new());
    };
    let message = format!("no change-cause given for this rollout; would record {cause:?}");
    Ok(vec![Finding::new(RULE, "missing", Severity::Warn, message)
        .with_fix(Fix::Routine(vec![Edit::set(
            ["metadata", "annotations", CHANGE_CAUSE],
            json!(cause),
        )]))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_bounded_line() {
        let values = BTreeMap::from([
            ("change", "image web: a → b".to_owned()),
            ("user", "alice\n{change}".to_owned()),
            ("source", String::new()),
        ]);
        let cases = [
            (
                "{change} by {user}{source}",
                256,
                "image web: a → b by alice {change}",
            ),
            ("{change} by {user}", 10, "image web…"),
            ("{unknown} {change}", 256, "{unknown} image web: a → b"),
            ("{", 256, "{"),
        ];
        for (format, max, expected) in cases {
            assert_eq!(render(format, &values, max), expected, "{format}");
            assert!(render(format, &values, max).chars().count() <= max);
        }
    }

    #[test]
    fn names_gitops_sources() {
        let with = |labels: serde_json::Value, annotations: serde_json::Value| -> Deployment {
            serde_json::from_value(json!({
                "metadata": {"name": "web", "labels": labels, "annotations": annotations}
            }))
            .expect("deployment")
        };
        let argo_sa = "system:serviceaccount:argocd:argocd-application-controller";
        let cases = [
            (
                with(
                    json!({}),
                    json!({ARGOCD_TRACKING_ID: "shop:apps/Deployment:prod/web"}),
                ),
                "alice",
                " (argocd app shop)",
            ),
            (
                with(json!({INSTANCE_LABEL: "shop"}), json!({})),
                argo_sa,
                " (argocd app shop)",
            ),
            // The instance label alone is set by many charts: not Argo CD's unless Argo CD asks.
            (
                with(json!({INSTANCE_LABEL: "shop"}), json!({})),
                "alice",
                "",
            ),
            (
                with(
                    json!({FLUX_KUSTOMIZATION_NAME: "apps", FLUX_KUSTOMIZATION_NAMESPACE: "flux-system"}),
                    json!({}),
                ),
                "system:serviceaccount:flux-system:kustomize-controller",
                " (flux kustomization flux-system/apps)",
            ),
            (
                with(
                    json!({FLUX_HELMRELEASE_NAME: "web", FLUX_HELMRELEASE_NAMESPACE: "prod", HELM_CHART_LABEL: "web-1.2.3"}),
                    json!({HELM_RELEASE_NAME: "web"}),
                ),
                "system:serviceaccount:flux-system:helm-controller",
                " (flux helmrelease prod/web, chart web-1.2.3)",
            ),
            (
                with(
                    json!({HELM_CHART_LABEL: "web-1.2.3"}),
                    json!({HELM_RELEASE_NAME: "web"}),
                ),
                "bob",
                " (helm release web, chart web-1.2.3)",
            ),
            (with(json!({}), json!({})), "bob", ""),
        ];
        for (deployment, user, expected) in cases {
            assert_eq!(gitops_source(&deployment, user), expected, "{user}");
        }
    }
}
