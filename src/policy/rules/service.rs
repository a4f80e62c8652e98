//! Rules for v1 Services (blue/green selector switches).
//!
//! Blue/green with plain Services: two Deployments (`version: blue` / `version: green`) run side
//! by side and the Service's selector is switched from one version to the other. The Service
//! controller does exactly what the selector says: switched to a version whose pods do not exist
//! or are not ready, the Service has no ready endpoints and every request fails until they are.
//! Nothing in Kubernetes checks this, so the webhook does, against the cluster store.

use k8s_openapi::api::core::v1::Service;
use kube::core::admission::Operation;

use crate::policy::config::{BlueGreenRule, RuleSettings, Rules};
use crate::policy::engine::{Context, RuleEntry};
use crate::policy::finding::{EvalError, Finding, RulePhase, Severity};
use crate::policy::objects::{DeploymentInfo, Labels, Requirement, Selector, ServiceInfo};
use crate::policy::view::SyncStatus;

/// The kinds of other objects the rule reads (only their sync state matters to it).
const READS: &[&str] = &["Deployment"];

/// The rule's key under `rules`.
pub const RULE: &str = "blueGreen";

/// Every check this rule reports (keys of its `checks` in a policy).
pub const CHECKS: &[&str] = &["switchToUnavailable", "selectsNothing", "podTemplateHash"];

/// The Service rules.
pub const RULES: &[RuleEntry<Service>] = &[RuleEntry {
    name: RULE,
    phase: RulePhase::Validating,
    settings: |rules: &Rules| -> &dyn RuleSettings { &rules.blue_green },
    evaluate,
}];

/// The label the Deployment controller adds to every pod of one ReplicaSet; its value is a hash
/// of the pod template, so it changes with every rollout.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// How many matching Deployments a message describes before summarising the rest.
const MAX_DESCRIBED: usize = 3;

/// Evaluates the blue/green checks for one Service write.
pub fn evaluate(ctx: &Context<'_, Service>) -> Result<Vec<Finding>, EvalError> {
    let settings = &ctx.rules().blue_green;
    let Some(service) = ctx.object else {
        return Ok(Vec::new()); // DELETE: nothing is switched.
    };
    let new = ServiceInfo::from_service(service, ctx.namespace);
    // ExternalName Services and Services without a selector (endpoints managed by hand or by
    // another controller) route to no pods of ours.
    if new.selector.is_empty() || new.service_type == "ExternalName" {
        return Ok(Vec::new());
    }
    let old = ctx
        .old_object
        .map(|old| ServiceInfo::from_service(old, ctx.namespace));
    let selector_changed = match (&ctx.operation, &old) {
        (Operation::Create, _) => true,
        (Operation::Update, Some(old)) => old.selector != new.selector,
        _ => false,
    };
    if !selector_changed {
        // Re-applying an unchanged selector switches nothing; re-warning on every apply is noise.
        return Ok(Vec::new());
    }

    let mut findings = Vec::new();
    if let Some(hash) = new.selector.get(POD_TEMPLATE_HASH) {
        findings.push(Finding::new(
            RULE,
            "podTemplateHash",
            Severity::Warn,
            format!(
                "selector uses {POD_TEMPLATE_HASH}={hash}: the Deployment controller gives every \
                 rollout a new hash, so after the next rollout this Service selects no pods. \
                 Select on a version label instead"
            ),
        ));
    }

    // Everything below reads other objects; the podTemplateHash finding above is still
    // reported when the store is not synced.
    if let SyncStatus::NotSynced(reason) = ctx.view.sync_status_for(READS) {
        return Err(EvalError::not_synced(reason, findings));
    }
    let selector = Selector::from_labels(&new.selector);
    let matching = ctx.view.deployments_matching(ctx.namespace, &selector);
    let switched = old
        .as_ref()
        .and_then(|old| switched_version(settings, &old.selector, &new.selector));

    if let Some((key, from, to)) = switched {
        let running: Vec<&DeploymentInfo> = matching
            .iter()
            .map(AsRef::as_ref)
            .filter(|d| serves_traffic(d))
            .collect();
        if running.is_empty() {
            let selector_text = describe_labels(&new.selector);
            let found = if matching.is_empty() {
                format!("no Deployment's pod template matches {selector_text}")
            } else {
                describe_unavailable(&matching)
            };
            let from = from.map_or_else(|| "(any)".to_owned(), str::to_owned);
            findings.push(Finding::new(
                RULE,
                "switchToUnavailable",
                Severity::Deny,
                format!(
                    "switching {key} from {from} to {to} would send all traffic to pods that are \
                     not running: {found}. Roll out a Deployment whose pod template has \
                     {selector_text} and wait until it is fully available (kubectl rollout \
                     status), then switch"
                ),
            ));
            return Ok(findings);
        }
    }
    if matching.is_empty() {
        findings.push(Finding::new(
            RULE,
            "selectsNothing",
            Severity::Warn,
            format!(
                "selector {} matches no Deployment's pod template in {}: the Service has no \
                 endpoints until one exists (fine if it is created next, as Helm does)",
                describe_labels(&new.selector),
                ctx.namespace
            ),
        ));
    }
    Ok(findings)
}

/// The version key whose value the update changed (or added), with old and new value.
fn switched_version<'a>(
    settings: &'a BlueGreenRule,
    old: &'a Labels,
    new: &'a Labels,
) -> Option<(&'a str, Option<&'a str>, &'a str)> {
    settings.version_label_keys.iter().find_map(|key| {
        let to = new.get(key)?;
        let from = old.get(key);
        (from != Some(to)).then_some((key.as_str(), from, to))
    })
}

/// Fully rolled out, available, and running at least one pod (a Deployment scaled to zero is
/// "complete" by its status, but a Service switched to it has no endpoints).
fn serves_traffic(deployment: &DeploymentInfo) -> bool {
    deployment.replicas > 0 && deployment.is_fully_available()
}

/// Why each matching Deployment cannot take the traffic yet.
fn describe_unavailable(matching: &[crate::policy::objects::Shared<DeploymentInfo>]) -> String {
    let mut parts: Vec<String> = matching
        .iter()
        .take(MAX_DESCRIBED)
        .map(|d| format!("{} matches but {}", d.key.name, why_unavailable(d)))
        .collect();
    if matching.len() > MAX_DESCRIBED {
        parts.push(format!("{} more", matching.len() - MAX_DESCRIBED));
    }
    parts.join("; ")
}

/// What keeps one Deployment from being fully available, in the controller's own terms.
pub(crate) fn why_unavailable(d: &DeploymentInfo) -> String {
    if d.replicas == 0 {
        return "is scaled to 0 replicas".to_owned();
    }
    let mut text = format!(
        "only {}/{} replicas are available",
        d.available_replicas, d.replicas
    );
    let mut notes = Vec::new();
    match (d.observed_generation, d.generation) {
        (Some(observed), Some(generation)) if observed < generation => {
            notes.push(format!(
                "observedGeneration {observed} < generation {generation}"
            ));
        }
        (None, Some(_)) => notes.push("not yet observed by the controller".to_owned()),
        _ => {}
    }
    if d.updated_replicas < d.replicas {
        notes.push(format!("{}/{} updated", d.updated_replicas, d.replicas));
    }
    if d.status_replicas > d.replicas {
        notes.push(format!(
            "{} old replicas still running",
            d.status_replicas - d.replicas
        ));
    }
    if d.available_replicas == d.replicas && notes.is_empty() {
        text = "the rollout is not complete".to_owned();
    }
    if !notes.is_empty() {
        text.push_str(&format!(" ({})", notes.join(", ")));
    }
    text
}

/// `a=1,b=2`, as `kubectl get -l` takes it.
pub(crate) fn describe_labels(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A Deployment selector in `kubectl -l` syntax (`app=web,track in (canary),!legacy`).
pub(crate) fn describe_selector(selector: &Selector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    parts.extend(selector.match_expressions.iter().map(|r| match r {
        Requirement::In(k, values) => format!("{k} in ({})", values.join(",")),
        Requirement::NotIn(k, values) => format!("{k} notin ({})", values.join(",")),
        Requirement::Exists(k) => k.clone(),
        Requirement::DoesNotExist(k) => format!("!{k}"),
    }));
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::engine::{run, Verdict};
    use crate::policy::finding::Endpoint;
    use crate::policy::RolloutPolicy;
    use crate::store::{Store, StoredKind};
    use crate::testing::{policy_with_rules as policy, store_of as store};
    use k8s_openapi::api::authentication::v1::UserInfo;
    use serde_json::{json, Value};

    fn deployment(name: &str, version: &str, replicas: i32, available: i32) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"namespace": "shop", "name": name, "generation": 5},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web", "version": version}},
                "template": {"metadata": {"labels": {"app": "web", "version": version}}, "spec": {"containers": []}}},
            "status": {"observedGeneration": 5, "replicas": replicas, "updatedReplicas": replicas,
                "availableReplicas": available}})
    }

    fn service(selector: Value) -> Service {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "shop", "name": "web"},
            "spec": {"selector": selector, "ports": [{"port": 80}]}}))
        .unwrap()
    }

    fn review(
        store: &dyn crate::policy::view::ClusterView,
        policy: &RolloutPolicy,
        operation: Operation,
        object: Option<&Service>,
        old: Option<&Service>,
    ) -> Verdict {
        let user = UserInfo::default();
        let ctx = Context {
            operation,
            namespace: "shop",
            name: "web",
            object,
            old_object: old,
            user: &user,
            policy,
            view: store,
        };
        run(RULES, &ctx, Endpoint::Validate, None, None)
    }

    fn switch(store: &Store, policy: &RolloutPolicy, from: &str, to: &str) -> Verdict {
        let old = service(json!({"app": "web", "version": from}));
        let new = service(json!({"app": "web", "version": to}));
        review(store, policy, Operation::Update, Some(&new), Some(&old))
    }

    #[test]
    fn switch_to_an_available_version_is_allowed() {
        let store = store(&[
            deployment("web-v1", "v1", 3, 3),
            deployment("web-v2", "v2", 3, 3),
        ]);
        let verdict = switch(&store, &policy(json!({})), "v1", "v2");
        assert!(verdict.allowed(), "{verdict:?}");
        assert!(verdict.warnings.is_empty(), "{verdict:?}");
    }

    #[test]
    fn switch_to_a_version_nobody_runs_is_denied_naming_the_selector() {
        let store = store(&[deployment("web-v1", "v1", 3, 3)]);
        let verdict = switch(&store, &policy(json!({})), "v1", "v3");
        assert!(!verdict.allowed());
        let message = &verdict.denials[0].message;
        assert_eq!(verdict.denials[0].source, "blueGreen.switchToUnavailable");
        assert!(
            message.contains("switching version from v1 to v3"),
            "{message}"
        );
        assert!(
            message.contains("no Deployment's pod template matches app=web,version=v3"),
            "{message}"
        );
    }

    #[test]
    fn switch_to_a_version_still_rolling_out_is_denied_with_its_status() {
        let mut rolling = deployment("web-v3", "v3", 3, 1);
        rolling["metadata"]["generation"] = json!(5);
        rolling["status"]["observedGeneration"] = json!(4);
        let store = store(&[deployment("web-v1", "v1", 3, 3), rolling]);
        let verdict = switch(&store, &policy(json!({})), "v1", "v3");
        let message = &verdict.denials[0].message;
        assert!(
            message.contains(
                "web-v3 matches but only 1/3 replicas are available (observedGeneration 4 < generation 5)"
            ),
            "{message}"
        );
    }

    #[test]
    fn switch_to_a_version_scaled_to_zero_is_denied() {
        let store = store(&[deployment("web-v2", "v2", 0, 0)]);
        let verdict = switch(&store, &policy(json!({})), "v1", "v2");
        assert!(verdict.denials[0]
            .message
            .contains("web-v2 matches but is scaled to 0 replicas"));
    }

    #[test]
    fn warn_mode_turns_the_denial_into_a_warning() {
        let store = store(&[]);
        let verdict = switch(
            &store,
            &policy(json!({"blueGreen": {"checks": {"switchToUnavailable": "warn"}}})),
            "v1",
            "v2",
        );
        assert!(verdict.allowed());
        assert!(verdict.warnings[0].contains("blueGreen.switchToUnavailable"));
    }

    #[test]
    fn custom_version_keys_are_honoured() {
        let store = store(&[]);
        let old = service(json!({"app": "web", "color": "blue"}));
        let new = service(json!({"app": "web", "color": "green"}));
        let default = review(
            &store,
            &policy(json!({})),
            Operation::Update,
            Some(&new),
            Some(&old),
        );
        assert!(default.allowed(), "color is not a version key by default");
        assert!(default.warnings[0].contains("selectsNothing"));
        let custom = policy(json!({"blueGreen": {"versionLabelKeys": ["color"]}}));
        let verdict = review(&store, &custom, Operation::Update, Some(&new), Some(&old));
        assert!(verdict.denials[0]
            .message
            .contains("switching color from blue to green"));
    }

    #[test]
    fn create_selecting_nothing_only_warns() {
        let store = store(&[]);
        let new = service(json!({"app": "web", "version": "v1"}));
        let verdict = review(
            &store,
            &policy(json!({})),
            Operation::Create,
            Some(&new),
            None,
        );
        assert!(verdict.allowed());
        assert_eq!(verdict.warnings.len(), 1);
        assert!(verdict.warnings[0].contains("blueGreen.selectsNothing"));
        assert!(verdict.warnings[0].contains("app=web,version=v1"));
    }

    #[test]
    fn create_selecting_a_deployment_is_quiet() {
        let store = store(&[deployment("web-v1", "v1", 3, 0)]);
        let new = service(json!({"app": "web"}));
        let verdict = review(
            &store,
            &policy(json!({})),
            Operation::Create,
            Some(&new),
            None,
        );
        assert_eq!(
            verdict,
            Verdict {
                policy: Some("test".into()),
                rules_run: vec![RULE],
                ..Verdict::default()
            }
        );
    }

    #[test]
    fn pod_template_hash_selector_warns() {
        let store = store(&[]);
        let new = service(json!({"app": "web", "pod-template-hash": "5d8f7c9b6"}));
        let verdict = review(
            &store,
            &policy(json!({})),
            Operation::Create,
            Some(&new),
            None,
        );
        assert!(verdict.allowed());
        assert!(verdict
            .warnings
            .iter()
            .any(|w| w.contains("blueGreen.podTemplateHash") && w.contains("5d8f7c9b6")));
    }

    #[test]
    fn services_without_selector_and_unchanged_selectors_are_skipped() {
        let store = Store::expecting(&[StoredKind::Deployment]); // not synced: would error
        let external: Service =
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "shop", "name": "db"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"}}))
            .unwrap();
        let verdict = review(
            &store,
            &policy(json!({})),
            Operation::Create,
            Some(&external),
            None,
        );
        assert!(
            verdict.allowed() && verdict.warnings.is_empty(),
            "{verdict:?}"
        );
        let same = service(json!({"app": "web", "version": "v1"}));
        let verdict = review(
            &store,
            &policy(json!({})),
            Operation::Update,
            Some(&same),
            Some(&same),
        );
        assert!(
            verdict.allowed() && verdict.warnings.is_empty(),
            "{verdict:?}"
        );
    }

    #[test]
    fn not_synced_allows_with_a_warning_by_default_and_denies_when_failing_closed() {
        let store = Store::expecting(&[StoredKind::Deployment]);
        let open = switch(&store, &policy(json!({})), "v1", "v2");
        assert!(open.allowed());
        assert!(open.warnings[0].contains("blueGreen.error"));
        assert!(open.warnings[0].contains("not synced"));
        let closed = switch(
            &store,
            &policy(json!({"blueGreen": {"onError": "deny"}})),
            "v1",
            "v2",
        );
        assert!(!closed.allowed());
        assert!(closed.denials[0]
            .message
            .contains("Deployment not listed yet"));
    }

    #[test]
    fn a_broken_watch_of_a_kind_the_rule_does_not_read_does_not_matter() {
        let store = Store::expecting(&[StoredKind::Deployment, StoredKind::HttpRoute]);
        store.mark_synced(StoredKind::Deployment);
        store.mark_broken(StoredKind::HttpRoute, "403 Forbidden".into());
        let verdict = switch(
            &store,
            &policy(json!({"blueGreen": {"onError": "deny"}})),
            "v1",
            "v2",
        );
        assert_eq!(verdict.denials.len(), 1, "{verdict:?}");
        assert_eq!(verdict.denials[0].source, "blueGreen.switchToUnavailable");
    }

    #[test]
    fn delete_is_not_checked() {
        let store = store(&[]);
        let old = service(json!({"app": "web"}));
        let verdict = review(
            &store,
            &policy(json!({})),
            Operation::Delete,
            None,
            Some(&old),
        );
        assert!(verdict.allowed() && verdict.warnings.is_empty());
    }
}
