//! `rollback`: an UPDATE whose pod template equals a ReplicaSet the Deployment already has
//! reaches the controller with that template unchanged.
//!
//! The Deployment controller reuses an existing ReplicaSet when the Deployment's template equals
//! the ReplicaSet's, `pod-template-hash` ignored (`FindNewReplicaSet` → `EqualIgnoreHash` in
//! kubernetes/pkg/controller/deployment/util). `kubectl rollout undo` and `helm rollback` rely
//! on that: undo is an UPDATE that replaces `spec.template` with the target ReplicaSet's
//! (traces/apiserver-1.20 `kubectl-rollout-undo.json`). Any edit rollout-guard made to such a
//! template (a version label the revision never had, because it was created before the webhook
//! saw the Deployment: `kubectl-rollout-undo-pre-webhook.json`) makes the template new, and the
//! controller rolls every pod through a new ReplicaSet instead.
//!
//! So when the template, as sent and before any rule's edit, digests equal to one of the
//! Deployment's ReplicaSets, this rule's `Fix::Keep` makes the engine leave out every later
//! edit under `/spec/template` (this rule runs first) and report which were left out. Edits
//! elsewhere still apply: the Deployment's own labels, its change-cause (undo replaces the
//! Deployment's annotations with the target ReplicaSet's, and the controller copies them back
//! to the reused ReplicaSet, so they start no rollout) and the strategy fields.
//!
//! Only UPDATEs: a CREATE has no ReplicaSets of its own yet. When the store has not synced
//! ReplicaSets the rule cannot tell: if the template changed it reports an evaluation error
//! (`onError`: allow, with a warning, and the template edits apply as they would without this
//! rule; or deny); if the template is unchanged it says nothing, since no rollback is under way.

use k8s_openapi::api::apps::v1::Deployment;
use kube::core::admission::Operation;

use crate::policy::engine::Context;
use crate::policy::finding::{EvalError, Finding, Fix, Severity};
use crate::policy::objects::TemplateDigest;
use crate::policy::view::SyncStatus;

/// The rule's key under `rules`.
pub const RULE: &str = "rollback";

/// The rule's checks.
pub const CHECKS: &[&str] = &[REUSES_REPLICA_SET];

/// The template equals one of the Deployment's ReplicaSets.
pub const REUSES_REPLICA_SET: &str = "reusesReplicaSet";

/// Evaluates one Deployment request.
pub fn evaluate(ctx: &Context<'_, Deployment>) -> Result<Vec<Finding>, EvalError> {
    if ctx.operation != Operation::Update {
        return Ok(Vec::new());
    }
    let (Some(object), Some(old)) = (ctx.object, ctx.old_object) else {
        return Ok(Vec::new());
    };
    let Some(template) = object.spec.as_ref().map(|s| &s.template) else {
        return Ok(Vec::new());
    };
    let changed = old.spec.as_ref().map(|s| &s.template) != Some(template);
    if let SyncStatus::NotSynced(reason) = ctx.view.sync_status_for(&["ReplicaSet"]) {
        return if changed {
            Err(EvalError::not_synced(
                format!("{reason}; cannot tell whether this template is a rollback"),
                Vec::new(),
            ))
        } else {
            Ok(Vec::new())
        };
    }
    let name = object.metadata.name.as_deref().unwrap_or(ctx.name);
    let replica_sets = ctx.view.replica_sets_of(ctx.namespace, name);
    if replica_sets.is_empty() {
        return Ok(Vec::new());
    }
    let digest = TemplateDigest::of(template);
    // Two ReplicaSets with one template only exist by hand; the newest names the revision.
    let Some(matched) = replica_sets
        .iter()
        .filter(|r| r.template == digest)
        .max_by_key(|r| r.revision)
    else {
        return Ok(Vec::new());
    };
    let revision = if matched.revision > 0 {
        format!(" (revision {})", matched.revision)
    } else {
        String::new()
    };
    // Short: the engine appends what it left out, and warnings are cut at 240 characters.
    let message = format!(
        "template equals ReplicaSet {}{revision}: left as sent so the controller reuses it",
        matched.key.name
    );
    Ok(vec![Finding::new(
        RULE,
        REUSES_REPLICA_SET,
        Severity::Warn,
        message,
    )
    .with_fix(Fix::Keep(vec![vec![
        "spec".to_owned(),
        "template".to_owned(),
    ]]))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::engine::{run, Context, FindingOutcome};
    use crate::policy::finding::Endpoint;
    use crate::policy::load::embedded_default;
    use crate::policy::rules::deployment::RULES;
    use crate::store::{Store, StoredKind};
    use k8s_openapi::api::authentication::v1::UserInfo;
    use serde_json::{json, Value};

    const NAMESPACE: &str = "shop";

    /// A Deployment as the API server sends it on UPDATE (defaulted), with image `tag` and
    /// the template labels `labels`.
    fn deployment(tag: &str, labels: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"namespace": NAMESPACE, "name": "web", "generation": 3,
                "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                "template": {"metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": format!("nginx:{tag}"),
                        "imagePullPolicy": "IfNotPresent", "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"}],
                        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                        "dnsPolicy": "ClusterFirst", "securityContext": {},
                        "schedulerName": "default-scheduler"}}}})
    }

    /// The ReplicaSet the controller made from `deployment` as revision `revision`.
    fn replica_set(deployment: &Value, hash: &str, revision: u32) -> Value {
        let mut template = deployment["spec"]["template"].clone();
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"namespace": NAMESPACE, "name": format!("web-{hash}"),
                "annotations": {"deployment.kubernetes.io/revision": revision.to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                    "uid": "u", "controller": true}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web", "pod-template-hash": hash}},
                "template": template}})
    }

    struct Outcome {
        patch: Vec<Value>,
        warnings: Vec<String>,
        findings: Vec<(String, FindingOutcome)>,
    }

    fn mutate(store: &Store, object: &Value, old: &Value) -> Outcome {
        let policies = embedded_default();
        let policy = policies.governing(NAMESPACE).unwrap();
        let typed: Deployment = serde_json::from_value(object.clone()).unwrap();
        let typed_old: Deployment = serde_json::from_value(old.clone()).unwrap();
        let raw = serde_json::value::to_raw_value(object).unwrap();
        let user = UserInfo {
            username: Some("admin".into()),
            ..UserInfo::default()
        };
        let ctx = Context {
            operation: Operation::Update,
            namespace: NAMESPACE,
            name: "web",
            object: Some(&typed),
            old_object: Some(&typed_old),
            user: &user,
            policy,
            view: store,
            intent: Default::default(),
        };
        let verdict = run(
            RULES,
            &ctx,
            Endpoint::Mutate,
            Some(crate::policy::patch::ObjectJson::Sent(&raw)),
            None,
        );
        Outcome {
            patch: verdict
                .patch
                .iter()
                .map(|op| serde_json::to_value(op).unwrap())
                .collect(),
            warnings: verdict.warnings,
            findings: verdict
                .findings
                .into_iter()
                .map(|f| (f.source(), f.outcome))
                .collect(),
        }
    }

    fn touches_template(patch: &[Value]) -> bool {
        patch
            .iter()
            .any(|op| op["path"].as_str().unwrap().starts_with("/spec/template"))
    }

    #[test]
    fn the_rollback_rule_runs_before_every_rule_that_edits() {
        assert_eq!(
            RULES[0].name, RULE,
            "a Keep only holds back later rules' edits"
        );
    }

    /// Undo to a revision made before the webhook: the template the user sent has no version
    /// label; the label is not added (the controller reuses the ReplicaSet), and the warning
    /// says why and what was left out. The Deployment's own label may still be refreshed.
    #[test]
    fn undo_to_a_pre_webhook_revision_gets_no_template_patch() {
        let revision_1 = deployment("1.25.3", json!({"app": "web"}));
        let revision_2 = deployment(
            "1.25.4",
            json!({"app": "web", "app.kubernetes.io/version": "1.25.4"}),
        );
        let store = Store::offline();
        store
            .apply_object(&replica_set(&revision_1, "756f4c7d5", 1))
            .unwrap();
        store
            .apply_object(&replica_set(&revision_2, "7c6dd55f58", 2))
            .unwrap();
        let out = mutate(&store, &revision_1, &revision_2);
        assert!(!touches_template(&out.patch), "{:?}", out.patch);
        assert!(
            out.findings.contains(&(
                "rollback.reusesReplicaSet".to_owned(),
                FindingOutcome::Warned
            )),
            "{:?}",
            out.findings
        );
        let warning = out
            .warnings
            .iter()
            .find(|w| w.contains("rollback.reusesReplicaSet"))
            .unwrap();
        assert!(
            warning.contains("ReplicaSet web-756f4c7d5 (revision 1)")
                && warning.contains("versionLabel"),
            "{warning}"
        );

        // Without the ReplicaSet the same write is an ordinary template change: labelled.
        let empty = Store::offline();
        let out = mutate(&empty, &revision_1, &revision_2);
        assert!(touches_template(&out.patch), "{:?}", out.patch);
        assert!(out.warnings.iter().all(|w| !w.contains("rollback")));
    }

    /// A template equal to no ReplicaSet is mutated as usual, and nothing is said about
    /// rollbacks.
    #[test]
    fn a_new_template_is_mutated_as_usual() {
        let revision_1 = deployment("1.25.3", json!({"app": "web"}));
        let store = Store::offline();
        store
            .apply_object(&replica_set(&revision_1, "756f4c7d5", 1))
            .unwrap();
        let out = mutate(
            &store,
            &deployment("1.25.5", json!({"app": "web"})),
            &revision_1,
        );
        assert!(touches_template(&out.patch), "{:?}", out.patch);
        assert!(out
            .findings
            .iter()
            .all(|(source, _)| !source.starts_with("rollback")));
    }

    /// ReplicaSets not synced: a changed template gets an evaluation error (onError allow: a
    /// warning, and the usual mutation); an unchanged one gets nothing from this rule.
    #[test]
    fn not_synced_replica_sets_answer_by_on_error_only_for_template_changes() {
        let revision_1 = deployment("1.25.3", json!({"app": "web"}));
        let store = Store::expecting(&[StoredKind::ReplicaSet]);
        let out = mutate(
            &store,
            &deployment("1.25.5", json!({"app": "web"})),
            &revision_1,
        );
        assert!(
            out.warnings
                .iter()
                .any(|w| w.contains("rollback.error") && w.contains("ReplicaSet not listed yet")),
            "{:?}",
            out.warnings
        );
        assert!(touches_template(&out.patch));
        let unchanged = mutate(&store, &revision_1, &revision_1);
        assert!(unchanged
            .findings
            .iter()
            .all(|(source, _)| !source.starts_with("rollback")));
    }
}
