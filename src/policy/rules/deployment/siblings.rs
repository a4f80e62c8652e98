//! Label-based canaries: two Deployments of one app behind one Service (the classic recipe:
//! same `app`, a `track`/`version` label that differs, a Service selecting only `app`).
//!
//! Two mistakes break it silently:
//! - Overlapping selectors. A Deployment's ReplicaSets adopt every orphaned pod their selector
//!   matches, and the Kubernetes docs warn that controllers with overlapping selectors fight
//!   over pods; scaling one can delete the other's pods and `kubectl rollout` status lies.
//! - A canary the Service cannot reach: its pods lack a label the Service selects on, so it runs
//!   but gets none of the traffic the release relies on it to get.

use k8s_openapi::api::apps::v1::Deployment;
use kube::core::admission::Operation;

use crate::policy::config::DeploymentSiblingsRule;
use crate::policy::engine::Context;
use crate::policy::finding::{EvalError, Finding, Severity};
use crate::policy::objects::{DeploymentInfo, Labels, Selector, ServiceInfo, Shared};
use crate::policy::rules::service::{describe_labels, describe_selector};
use crate::policy::view::SyncStatus;

/// The kinds of other objects the rule reads (only their sync state matters to it).
const READS: &[&str] = &["Deployment", "Service"];

/// The rule's key under `rules`.
pub const RULE: &str = "deploymentSiblings";

/// Every check this rule reports (keys of its `checks` in a policy).
pub const CHECKS: &[&str] = &["selectorOverlap", "canaryUnreachable"];

/// Evaluates the sibling checks for one Deployment write.
pub fn evaluate(ctx: &Context<'_, Deployment>) -> Result<Vec<Finding>, EvalError> {
    let Some(deployment) = ctx.object else {
        return Ok(Vec::new()); // DELETE
    };
    let me = DeploymentInfo::from_deployment(deployment, ctx.namespace);
    if me.template_labels.is_empty() && me.selector.is_empty() {
        return Ok(Vec::new()); // the API server rejects such a Deployment anyway
    }
    if let SyncStatus::NotSynced(reason) = ctx.view.sync_status_for(READS) {
        return Err(EvalError::not_synced(reason, Vec::new()));
    }
    let before = match (&ctx.operation, ctx.old_object) {
        (Operation::Update, Some(old)) => Some(DeploymentInfo::from_deployment(old, ctx.namespace)),
        _ => None,
    };
    let settings = &ctx.rules().deployment_siblings;
    let mut findings = selector_overlaps(ctx, &me, before.as_ref());
    findings.extend(unreachable_canary(ctx, settings, &me));
    Ok(findings)
}

/// Whether either Deployment's selector matches the other's pod-template labels.
fn overlaps(a: &DeploymentInfo, b: &DeploymentInfo) -> bool {
    a.selector.matches(&b.template_labels) || b.selector.matches(&a.template_labels)
}

fn selector_overlaps(
    ctx: &Context<'_, Deployment>,
    me: &DeploymentInfo,
    before: Option<&DeploymentInfo>,
) -> Vec<Finding> {
    let mut others: Vec<Shared<DeploymentInfo>> = ctx
        .view
        .deployments_selecting(ctx.namespace, &me.template_labels);
    others.extend(ctx.view.deployments_matching(ctx.namespace, &me.selector));
    others.sort_by(|a, b| a.key.cmp(&b.key));
    others.dedup_by(|a, b| a.key == b.key);

    others
        .iter()
        .filter(|other| other.key.name != me.key.name)
        .map(|other| {
            let (selecting, selected) = if other.selector.matches(&me.template_labels) {
                (&**other, me)
            } else {
                (me, &**other)
            };
            let shared: Labels = me
                .template_labels
                .iter()
                .filter(|(k, v)| other.template_labels.get(k) == Some(v))
                .collect();
            // An overlap that predates this update (only the template changed; a selector is
            // immutable) is reported but not denied: denying would block the very updates
            // (scale down, relabel the template) that repair it. Nor is an overlap with a
            // Deployment scaled to 0: nothing is left to fight over, and creating the new
            // Deployment next to the old one scaled down is how a Deployment is renamed or
            // replaced (its selector cannot change).
            let existed = before.is_some_and(|old| overlaps(old, other));
            let idle = other.replicas == 0;
            let severity = if existed || idle {
                Severity::Warn
            } else {
                Severity::Deny
            };
            let already = if existed {
                " (already before this change)"
            } else if idle {
                " (it is scaled to 0: delete it once this one runs)"
            } else {
                ""
            };
            Finding::new(
                RULE,
                "selectorOverlap",
                severity,
                format!(
                    "Deployments {} and {} overlap{already}: {}'s selector {} matches {}'s pods \
                     (shared labels {}), so both controllers adopt and scale the same pods. Add a \
                     label such as track: canary to one's selector and pod template",
                    me.key.name,
                    other.key.name,
                    selecting.key.name,
                    describe_selector(&selecting.selector),
                    selected.key.name,
                    describe_labels(&shared),
                ),
            )
        })
        .collect()
}

/// The first of `keys` present in `labels`, with its value.
fn first_label<'a>(labels: &'a Labels, keys: &'a [String]) -> Option<(&'a str, &'a str)> {
    keys.iter()
        .find_map(|k| labels.get(k).map(|v| (k.as_str(), v)))
}

fn unreachable_canary(
    ctx: &Context<'_, Deployment>,
    settings: &DeploymentSiblingsRule,
    me: &DeploymentInfo,
) -> Vec<Finding> {
    let labels = &me.template_labels;
    let (Some((app_key, app)), Some((_, version))) = (
        first_label(labels, &settings.app_label_keys),
        first_label(labels, &settings.version_label_keys),
    ) else {
        return Vec::new();
    };
    // Some Service already sends traffic to these pods (for example a dedicated canary Service
    // behind a weighted Ingress or HTTPRoute): it is reachable.
    if !ctx
        .view
        .services_selecting(ctx.namespace, labels)
        .is_empty()
    {
        return Vec::new();
    }
    let same_app = Selector::from_labels(&Labels::from([(app_key.to_owned(), app.to_owned())]));
    let siblings: Vec<Shared<DeploymentInfo>> = ctx
        .view
        .deployments_matching(ctx.namespace, &same_app)
        .into_iter()
        .filter(|d| d.key.name != me.key.name)
        .filter(|d| {
            first_label(&d.template_labels, &settings.version_label_keys)
                .is_some_and(|(_, v)| v != version)
        })
        .collect();

    let mut reported: Vec<String> = Vec::new();
    let mut findings = Vec::new();
    for sibling in &siblings {
        for service in ctx
            .view
            .services_selecting(ctx.namespace, &sibling.template_labels)
        {
            // A Service pinned to a version is a blue/green or per-version Service: not reaching
            // the other version is its purpose.
            let pinned = settings
                .version_label_keys
                .iter()
                .any(|k| service.selector.contains_key(k));
            if pinned || reported.iter().any(|r| **r == *service.key.name) {
                continue;
            }
            reported.push(service.key.name.to_string());
            findings.push(missing_labels_finding(me, sibling, &service, version));
        }
    }
    findings
}

fn missing_labels_finding(
    me: &DeploymentInfo,
    sibling: &DeploymentInfo,
    service: &ServiceInfo,
    version: &str,
) -> Finding {
    let missing: Labels = service
        .selector
        .iter()
        .filter(|(k, v)| me.template_labels.get(k) != Some(v))
        .collect();
    Finding::new(
        RULE,
        "canaryUnreachable",
        Severity::Warn,
        format!(
            "{} ({version}) looks like a canary of {} but lacks {} that Service {} selects ({}): \
             it gets none of that traffic. Add the labels to its pod template",
            me.key.name,
            sibling.key.name,
            describe_labels(&missing),
            service.key.name,
            describe_labels(&service.selector),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::engine::{run, Verdict};
    use crate::policy::finding::Endpoint;
    use crate::policy::rules::deployment::RULES;
    use crate::policy::RolloutPolicy;
    use crate::store::{Store, StoredKind};
    use crate::testing::{policy_with_rules as policy, store_of as store};
    use k8s_openapi::api::authentication::v1::UserInfo;
    use serde_json::{json, Value};

    fn deployment(name: &str, selector: Value, labels: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"namespace": "shop", "name": name},
            "spec": {"replicas": 2, "selector": {"matchLabels": selector},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}})
    }

    fn service(name: &str, selector: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "shop", "name": name},
            "spec": {"selector": selector, "ports": [{"port": 80}]}})
    }

    fn review(
        store: &Store,
        policy: &RolloutPolicy,
        operation: Operation,
        object: &Value,
        old: Option<&Value>,
    ) -> Verdict {
        let object: Deployment = serde_json::from_value(object.clone()).unwrap();
        let old: Option<Deployment> = old.map(|o| serde_json::from_value(o.clone()).unwrap());
        let user = UserInfo::default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let ctx = Context {
            operation,
            namespace: "shop",
            name: &name,
            object: Some(&object),
            old_object: old.as_ref(),
            user: &user,
            policy,
            view: store,
            intent: Default::default(),
        };
        run(RULES, &ctx, Endpoint::Validate, None, None)
    }

    fn stable() -> Value {
        deployment(
            "web",
            json!({"app": "web", "track": "stable"}),
            json!({"app": "web", "track": "stable", "version": "v1"}),
        )
    }

    #[test]
    fn distinct_selectors_behind_one_service_are_allowed() {
        let store = store(&[stable(), service("web", json!({"app": "web"}))]);
        let canary = deployment(
            "web-canary",
            json!({"app": "web", "track": "canary"}),
            json!({"app": "web", "track": "canary", "version": "v2"}),
        );
        let verdict = review(&store, &policy(json!({})), Operation::Create, &canary, None);
        assert!(verdict.allowed(), "{verdict:?}");
        assert!(verdict.warnings.is_empty(), "{verdict:?}");
    }

    #[test]
    fn overlapping_selectors_are_denied_naming_both_and_the_shared_labels() {
        let store = store(&[deployment(
            "web",
            json!({"app": "web"}),
            json!({"app": "web", "version": "v1"}),
        )]);
        let canary = deployment(
            "web-canary",
            json!({"app": "web"}),
            json!({"app": "web", "version": "v2"}),
        );
        let verdict = review(&store, &policy(json!({})), Operation::Create, &canary, None);
        assert_eq!(verdict.denials.len(), 1, "{verdict:?}");
        let denial = &verdict.denials[0];
        assert_eq!(denial.source, "deploymentSiblings.selectorOverlap");
        assert!(
            denial
                .message
                .contains("Deployments web-canary and web overlap"),
            "{}",
            denial.message
        );
        assert!(
            denial.message.contains("shared labels app=web"),
            "{}",
            denial.message
        );
        assert!(
            denial.message.contains("track: canary"),
            "{}",
            denial.message
        );
    }

    #[test]
    fn a_broad_selector_over_an_existing_deployment_is_denied() {
        // The new Deployment's selector (app=web) matches the existing one's pods, even though
        // the existing selector (app=web,track=stable) does not match the new pods.
        let store = store(&[stable()]);
        let broad = deployment(
            "web-all",
            json!({"app": "web"}),
            json!({"app": "web", "version": "v2"}),
        );
        let verdict = review(&store, &policy(json!({})), Operation::Create, &broad, None);
        assert!(
            verdict.denials[0]
                .message
                .contains("web-all's selector app=web matches web's pods"),
            "{:?}",
            verdict.denials
        );
    }

    #[test]
    fn the_deployment_itself_is_not_a_sibling_on_update() {
        let current = stable();
        let store = store(std::slice::from_ref(&current));
        let mut updated = current.clone();
        updated["spec"]["template"]["metadata"]["labels"]["version"] = json!("v2");
        let verdict = review(
            &store,
            &policy(json!({})),
            Operation::Update,
            &updated,
            Some(&current),
        );
        assert!(
            verdict.allowed() && verdict.warnings.is_empty(),
            "{verdict:?}"
        );
    }

    #[test]
    fn an_overlap_that_predates_the_update_only_warns() {
        let a = deployment("a", json!({"app": "web"}), json!({"app": "web"}));
        let b = deployment("b", json!({"app": "web"}), json!({"app": "web"}));
        let store = store(&[a, b.clone()]);
        let mut scaled = b.clone();
        scaled["spec"]["replicas"] = json!(0);
        let verdict = review(
            &store,
            &policy(json!({})),
            Operation::Update,
            &scaled,
            Some(&b),
        );
        assert!(verdict.allowed(), "{verdict:?}");
        assert!(verdict.warnings[0].contains("already before this change"));
    }

    /// Replacing a Deployment (a selector is immutable, so a rename is a new Deployment next to
    /// the old one): with the old one scaled to 0 the overlap only warns; while it still runs
    /// pods it is denied.
    #[test]
    fn an_overlap_with_a_deployment_scaled_to_zero_only_warns() {
        let mut old = deployment("web-old", json!({"app": "web"}), json!({"app": "web"}));
        old["spec"]["replicas"] = json!(0);
        let store = store(&[old]);
        let new = deployment("web", json!({"app": "web"}), json!({"app": "web"}));
        let verdict = review(&store, &policy(json!({})), Operation::Create, &new, None);
        assert!(verdict.allowed(), "{verdict:?}");
        assert!(
            verdict.warnings[0].contains("it is scaled to 0: delete it once this one runs"),
            "{verdict:?}"
        );
        let running = super::tests::store(&[deployment(
            "web-old",
            json!({"app": "web"}),
            json!({"app": "web"}),
        )]);
        let verdict = review(&running, &policy(json!({})), Operation::Create, &new, None);
        assert!(!verdict.allowed(), "{verdict:?}");
    }

    #[test]
    fn a_canary_the_service_cannot_reach_warns_with_the_missing_labels() {
        let store = store(&[
            stable(),
            service("web", json!({"app": "web", "track": "stable"})),
        ]);
        let canary = deployment(
            "web-canary",
            json!({"app": "web", "track": "canary"}),
            json!({"app": "web", "track": "canary", "version": "v2"}),
        );
        let verdict = review(&store, &policy(json!({})), Operation::Create, &canary, None);
        assert!(verdict.allowed(), "{verdict:?}");
        assert_eq!(verdict.warnings.len(), 1, "{verdict:?}");
        let warning = &verdict.warnings[0];
        assert!(
            warning.contains("deploymentSiblings.canaryUnreachable"),
            "{warning}"
        );
        assert!(
            warning.contains("lacks track=stable that Service web selects (app=web,track=stable)"),
            "{warning}"
        );
        assert!(!warning.ends_with('…'), "fits in a warning: {warning}");
    }

    #[test]
    fn canary_with_its_own_service_or_behind_a_version_pinned_service_is_quiet() {
        let canary = deployment(
            "web-canary",
            json!({"app": "web", "track": "canary"}),
            json!({"app": "web", "track": "canary", "version": "v2"}),
        );
        let own = store(&[
            stable(),
            service("web", json!({"app": "web", "track": "stable"})),
            service("web-canary", json!({"app": "web", "track": "canary"})),
        ]);
        let verdict = review(&own, &policy(json!({})), Operation::Create, &canary, None);
        assert!(verdict.warnings.is_empty(), "{verdict:?}");
        let pinned = store(&[
            stable(),
            service("web", json!({"app": "web", "version": "v1"})),
        ]);
        let verdict = review(
            &pinned,
            &policy(json!({})),
            Operation::Create,
            &canary,
            None,
        );
        assert!(
            verdict.warnings.is_empty(),
            "blue/green is not a canary: {verdict:?}"
        );
    }

    #[test]
    fn enforce_overrides_per_check_and_off() {
        let store = store(&[deployment(
            "web",
            json!({"app": "web"}),
            json!({"app": "web"}),
        )]);
        let twin = deployment("twin", json!({"app": "web"}), json!({"app": "web"}));
        let warn = policy(json!({"deploymentSiblings": {"checks": {"selectorOverlap": "warn"}}}));
        let verdict = review(&store, &warn, Operation::Create, &twin, None);
        assert!(
            verdict.allowed() && verdict.warnings.len() == 1,
            "{verdict:?}"
        );
        let off = policy(json!({"deploymentSiblings": {"mode": "off"}}));
        let verdict = review(&store, &off, Operation::Create, &twin, None);
        assert!(
            verdict.allowed() && verdict.warnings.is_empty(),
            "{verdict:?}"
        );
    }

    #[test]
    fn not_synced_allows_with_a_warning_by_default_and_denies_when_failing_closed() {
        let store = Store::expecting(&[StoredKind::Deployment]);
        let twin = deployment("twin", json!({"app": "web"}), json!({"app": "web"}));
        let verdict = review(&store, &policy(json!({})), Operation::Create, &twin, None);
        assert!(verdict.allowed());
        assert!(
            verdict.warnings[0].contains("deploymentSiblings.error"),
            "{verdict:?}"
        );
        let closed = policy(json!({"deploymentSiblings": {"onError": "deny"}}));
        let verdict = review(&store, &closed, Operation::Create, &twin, None);
        assert!(!verdict.allowed());
        assert!(verdict.denials[0].message.contains("not synced"));
    }

    #[test]
    fn only_validate_runs_the_rule() {
        let store = store(&[deployment(
            "web",
            json!({"app": "web"}),
            json!({"app": "web"}),
        )]);
        let twin: Deployment = serde_json::from_value(deployment(
            "twin",
            json!({"app": "web"}),
            json!({"app": "web"}),
        ))
        .unwrap();
        let user = UserInfo::default();
        let policy = policy(json!({}));
        let ctx = Context {
            operation: Operation::Create,
            namespace: "shop",
            name: "twin",
            object: Some(&twin),
            old_object: None,
            user: &user,
            policy: &policy,
            view: &store,
            intent: Default::default(),
        };
        let verdict = run(RULES, &ctx, Endpoint::Mutate, None, None);
        assert!(verdict.allowed());
        assert!(!verdict.rules_run.contains(&RULE));
    }
}
