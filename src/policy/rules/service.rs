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
use crate::policy::objects::{
    DeploymentInfo, Labels, Requirement, Selector, ServiceInfo, WorkloadInfo, WorkloadKind,
    ROLLOUTS_POD_TEMPLATE_HASH, STATEFUL_SET_POD_NAME,
};
use crate::policy::rules::deployment::intstr::{Amount, Rounding};
use crate::policy::view::{ClusterView, SyncStatus};

/// The kinds of other objects the rule reads (only their sync state matters to it): everything
/// that can run a pod a Service selects.
const READS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Rollout", "Pod"];

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

/// How many pod sources a message describes before summarising the rest.
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
    if old
        .as_ref()
        .is_some_and(|old| switched_by_argo_rollouts(&old.selector, &new.selector))
    {
        // Argo Rollouts moves its active and preview Services between ReplicaSets by this label
        // alone, after its own availability checks (and a preview Service on purpose before the
        // pods are up): the controller's switch is not ours to judge.
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
    let target = Selection::of(ctx.view, ctx.namespace, &new.selector);
    let switched = old
        .as_ref()
        .and_then(|old| switched_version(settings, &old.selector, &new.selector));

    if let (Some((key, from, to)), Some(old)) = (switched, &old) {
        let current = Selection::of(ctx.view, ctx.namespace, &old.selector);
        let switch = Switch {
            key,
            from: from.unwrap_or("(any)"),
            to,
            back: switches_back(ctx.view, &new, &old.selector),
            selector: &new.selector,
        };
        if let Some(finding) = judge_switch(settings, &switch, &target, &current) {
            findings.push(finding);
            return Ok(findings);
        }
    }
    if target.sources.is_empty() {
        findings.push(Finding::new(
            RULE,
            "selectsNothing",
            Severity::Warn,
            format!(
                "selector {} matches no pod template (Deployment, StatefulSet, DaemonSet, \
                 Rollout) and no pod in {}: no endpoints until one exists (fine if it comes \
                 next, as with Helm)",
                describe_labels(&new.selector),
                ctx.namespace
            ),
        ));
    }
    Ok(findings)
}

/// Whether the only label whose value differs between the two selectors is Argo Rollouts' own.
fn switched_by_argo_rollouts(old: &Labels, new: &Labels) -> bool {
    let differs = |a: &Labels, b: &Labels| a.iter().filter(|(k, v)| b.get(k) != Some(*v)).count();
    let hash_differs = old.get(ROLLOUTS_POD_TEMPLATE_HASH) != new.get(ROLLOUTS_POD_TEMPLATE_HASH);
    let other = |a: &Labels, b: &Labels| {
        a.iter()
            .any(|(k, v)| k != ROLLOUTS_POD_TEMPLATE_HASH && b.get(k) != Some(v))
    };
    hash_differs
        && differs(old, new) + differs(new, old) > 0
        && !other(old, new)
        && !other(new, old)
}

/// Whether the new selector is one this Service had before its current one: the rollback of a
/// blue/green switch. The store remembers the selector before the last change it saw; when its
/// copy of the Service lags behind the request (it still holds the selector the update moves
/// back to), that copy is the earlier one.
fn switches_back(view: &dyn ClusterView, new: &ServiceInfo, old_selector: &Labels) -> bool {
    let (namespace, name) = (&*new.key.namespace, &*new.key.name);
    let previous = view.previous_service_selector(namespace, name);
    let stored = view.service(namespace, name).map(|s| s.selector.clone());
    [previous, stored]
        .into_iter()
        .flatten()
        .any(|earlier| earlier == new.selector && earlier != *old_selector)
}

/// One blue/green switch being judged.
struct Switch<'a> {
    key: &'a str,
    from: &'a str,
    to: &'a str,
    /// Back to the selector the Service had before.
    back: bool,
    selector: &'a Labels,
}

/// Pods available, and how many the policy asks for among `desired`: `minAvailable` of the
/// desired pods, a percentage rounded up as a PodDisruptionBudget's `minAvailable` is, never
/// more than desired and never less than one.
fn required_available(settings: &BlueGreenRule, desired: i64) -> i64 {
    let wanted = Amount::from_policy(&settings.min_available)
        .map_or(desired, |amount| amount.resolve(desired, Rounding::Up));
    wanted.min(desired).max(1)
}

/// The judgement of a switch: `None` when the new selection has enough available pods.
///
/// - No pod available for the new selector: denied, unless the Service has none available now
///   either (the switch cannot make it worse: a warning).
/// - Some, but fewer than `minAvailable` of the desired: denied, unless it is a switch back to
///   the previous selection (the rollback during an incident) or the new selection has at least
///   as many available pods as the current one (the switch does not lower them): a warning.
fn judge_switch(
    settings: &BlueGreenRule,
    switch: &Switch<'_>,
    target: &Selection,
    current: &Selection,
) -> Option<Finding> {
    let (desired, available) = (target.desired(), target.available());
    let required = required_available(settings, desired);
    if available >= required {
        return None;
    }
    let Switch { key, from, to, .. } = switch;
    let selector = describe_labels(switch.selector);
    let now = current.available();
    let (severity, message) = if available == 0 {
        let found = if target.sources.is_empty() {
            format!(
                "nothing runs pods with {selector} (no Deployment, StatefulSet, DaemonSet, \
                 Rollout or pod)"
            )
        } else {
            target.describe()
        };
        if now == 0 {
            (
                Severity::Warn,
                format!(
                    "switching {key} from {from} to {to}: no pod is available for either ({found}); \
                     the Service has no endpoints until one is"
                ),
            )
        } else {
            (
                Severity::Deny,
                format!(
                    "switching {key} from {from} to {to} would send all traffic to pods that are \
                     not running: {found}, while {now} are available now. Roll out a workload \
                     whose pod template has {selector} and wait until it is available \
                     (kubectl rollout status), then switch"
                ),
            )
        }
    } else if switch.back {
        (
            Severity::Warn,
            format!(
                "switching {key} back to {to}, which this Service selected before: only \
                 {available} of {desired} pods are available (minAvailable asks {required}); \
                 allowed as a rollback"
            ),
        )
    } else if available >= now {
        (
            Severity::Warn,
            format!(
                "switching {key} from {from} to {to}: only {available} of {desired} pods are \
                 available (minAvailable asks {required}), but not fewer than the {now} now"
            ),
        )
    } else {
        (
            Severity::Deny,
            format!(
                "switching {key} from {from} to {to} would move all traffic from {now} available \
                 pods to {available} of {desired} ({}); blueGreen.minAvailable asks for at least \
                 {required}. Wait until more are available (kubectl rollout status), or switch \
                 back to a version this Service selected before",
                target.describe()
            ),
        )
    };
    Some(Finding::new(RULE, "switchToUnavailable", severity, message))
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

/// Pods of one workload (or the bare pods, together) that a selector selects.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodSource {
    /// `web-v2`, `StatefulSet db`, `2 pods`.
    what: String,
    /// Pods wanted.
    desired: i64,
    /// Pods available (ready, for bare pods).
    available: i64,
    /// Why not all are available, in the controller's terms; empty when they are.
    why: String,
}

/// Everything in a namespace that can run pods a selector selects.
#[derive(Debug, Default)]
struct Selection {
    sources: Vec<PodSource>,
}

impl Selection {
    /// Deployments (or the Argo Rollouts whose template they are), StatefulSets, DaemonSets,
    /// Rollouts and the pods no templated workload runs, whose pods `selector` selects.
    fn of(view: &dyn ClusterView, namespace: &str, selector: &Labels) -> Self {
        let mut sources = Vec::new();
        // The Deployment controller adds pod-template-hash to the pods, not the template.
        let template_part: Labels = selector
            .iter()
            .filter(|(k, _)| *k != POD_TEMPLATE_HASH)
            .collect();
        let mut workloads: Vec<std::sync::Arc<WorkloadInfo>> =
            view.workloads_running(namespace, selector);
        if !template_part.is_empty() {
            for deployment in
                view.deployments_matching(namespace, &Selector::from_labels(&template_part))
            {
                // A Rollout with this Deployment as its workloadRef runs these pods (the
                // Deployment is being scaled down): count both.
                workloads.extend(view.rollouts_with_template_of(namespace, &deployment.key.name));
                sources.push(PodSource {
                    what: deployment.key.name.to_string(),
                    desired: i64::from(deployment.replicas),
                    available: i64::from(deployment.available_replicas.max(0)),
                    why: if deployment.replicas > 0 && deployment.is_fully_available() {
                        String::new()
                    } else {
                        why_unavailable(&deployment)
                    },
                });
            }
        }
        workloads.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
        workloads.dedup_by(|a, b| a.kind == b.kind && a.key == b.key);
        sources.extend(workloads.iter().map(|w| workload_source(w, selector)));
        let pods = view.pods_matching(namespace, selector);
        if !pods.is_empty() {
            let ready = pods.iter().filter(|p| p.ready).count();
            let what = match pods.as_slice() {
                [one] => format!("pod {}", one.key.name),
                many => format!("{} pods", many.len()),
            };
            sources.push(PodSource {
                what,
                desired: pods.len() as i64,
                available: ready as i64,
                why: if ready == pods.len() {
                    String::new()
                } else {
                    format!("{ready}/{} ready", pods.len())
                },
            });
        }
        Self { sources }
    }

    fn desired(&self) -> i64 {
        self.sources.iter().map(|s| s.desired).sum()
    }

    fn available(&self) -> i64 {
        self.sources
            .iter()
            .map(|s| s.available.min(s.desired))
            .sum()
    }

    /// Why each source cannot take the traffic yet, the first few of them.
    fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .sources
            .iter()
            .take(MAX_DESCRIBED)
            .map(|s| {
                if s.why.is_empty() {
                    format!("{} has {}/{} available", s.what, s.available, s.desired)
                } else {
                    format!("{} matches but {}", s.what, s.why)
                }
            })
            .collect();
        if self.sources.len() > MAX_DESCRIBED {
            parts.push(format!("{} more", self.sources.len() - MAX_DESCRIBED));
        }
        parts.join("; ")
    }
}

/// A StatefulSet, DaemonSet or Rollout as a pod source. A per-pod Service of a StatefulSet
/// (`statefulset.kubernetes.io/pod-name`) selects one pod: it counts as available when the
/// StatefulSet has any available pod (which one is not known; never a false "none").
fn workload_source(workload: &WorkloadInfo, selector: &Labels) -> PodSource {
    let one_pod =
        workload.kind == WorkloadKind::StatefulSet && selector.get(STATEFUL_SET_POD_NAME).is_some();
    let (desired, available) = if one_pod {
        (1, i64::from(workload.available > 0))
    } else {
        (
            i64::from(workload.desired),
            i64::from(workload.available.max(0)),
        )
    };
    let why = if desired == 0 {
        "is scaled to 0 replicas".to_owned()
    } else if available < desired || !workload.observed() {
        let mut text = format!("only {available}/{desired} are available");
        if !workload.observed() {
            text.push_str(" (not yet observed by the controller)");
        }
        text
    } else {
        String::new()
    };
    PodSource {
        what: format!("{} {}", workload.kind.as_str(), workload.key.name),
        desired,
        available,
        why,
    }
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

    fn service_value(selector: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "shop", "name": "web"},
            "spec": {"selector": selector, "ports": [{"port": 80}]}})
    }

    fn denied(verdict: &Verdict) -> &str {
        assert_eq!(verdict.denials.len(), 1, "{verdict:?}");
        assert_eq!(verdict.denials[0].source, "blueGreen.switchToUnavailable");
        &verdict.denials[0].message
    }

    fn warned<'a>(verdict: &'a Verdict, needle: &str) -> &'a str {
        assert!(verdict.allowed(), "{verdict:?}");
        verdict
            .warnings
            .iter()
            .find(|w| w.contains("blueGreen.switchToUnavailable") && w.contains(needle))
            .unwrap_or_else(|| panic!("no warning with {needle:?}: {verdict:?}"))
    }

    /// The availability threshold: 9 of 10 pass by default, 7 of 10 do not (75% of 10 is 8,
    /// rounded up), and an absolute minAvailable is honoured.
    #[test]
    fn nine_of_ten_available_pass_and_seven_are_denied_by_default() {
        let nine = store(&[
            deployment("web-v1", "v1", 10, 10),
            deployment("web-v2", "v2", 10, 9),
        ]);
        let verdict = switch(&nine, &policy(json!({})), "v1", "v2");
        assert!(
            verdict.allowed() && verdict.warnings.is_empty(),
            "{verdict:?}"
        );
        let seven = store(&[
            deployment("web-v1", "v1", 10, 10),
            deployment("web-v2", "v2", 10, 7),
        ]);
        let message = denied(&switch(&seven, &policy(json!({})), "v1", "v2")).to_owned();
        assert!(
            message.contains("from 10 available pods to 7 of 10")
                && message.contains("asks for at least 8"),
            "{message}"
        );
        let lenient = policy(json!({"blueGreen": {"minAvailable": 5}}));
        assert!(switch(&seven, &lenient, "v1", "v2").allowed());
        let strict = policy(json!({"blueGreen": {"minAvailable": "100%"}}));
        denied(&switch(&nine, &strict, "v1", "v2"));
    }

    /// The rollback during an incident: back to the selector the Service had before, allowed
    /// with a warning whenever that version has an available pod; never to one with none.
    #[test]
    fn a_switch_back_to_the_previous_version_is_allowed_while_it_has_available_pods() {
        let history = |v1_available: i32| {
            store(&[
                deployment("web-v1", "v1", 10, v1_available),
                deployment("web-v2", "v2", 10, 10),
                service_value(json!({"app": "web", "version": "v1"})),
                service_value(json!({"app": "web", "version": "v2"})),
            ])
        };
        let verdict = switch(&history(2), &policy(json!({})), "v2", "v1");
        let warning = warned(&verdict, "back to v1, which this Service selected before");
        assert!(warning.contains("only 2 of 10 pods"), "{warning}");
        denied(&switch(&history(0), &policy(json!({})), "v2", "v1"));
        // Without the history, the same switch is an ordinary one.
        let no_history = store(&[
            deployment("web-v1", "v1", 10, 2),
            deployment("web-v2", "v2", 10, 10),
        ]);
        denied(&switch(&no_history, &policy(json!({})), "v2", "v1"));
    }

    /// A switch that does not lower the Service's available pods is never denied: from a
    /// version with 1 available to one with 3 of 10, or between two versions with none.
    #[test]
    fn a_switch_that_does_not_lower_availability_only_warns() {
        let store = store(&[
            deployment("web-v1", "v1", 10, 1),
            deployment("web-v2", "v2", 10, 3),
        ]);
        let verdict = switch(&store, &policy(json!({})), "v1", "v2");
        warned(&verdict, "not fewer than the 1 now");
        let verdict = switch(&super::tests::store(&[]), &policy(json!({})), "v1", "v2");
        warned(&verdict, "no pod is available for either");
    }

    fn stateful_set(name: &str, version: &str, replicas: i32, available: i32) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"namespace": "shop", "name": name, "generation": 1},
            "spec": {"replicas": replicas, "serviceName": name,
                "selector": {"matchLabels": {"app": "web", "version": version}},
                "template": {"metadata": {"labels": {"app": "web", "version": version}},
                    "spec": {"containers": []}}},
            "status": {"observedGeneration": 1, "replicas": replicas,
                "availableReplicas": available}})
    }

    fn bare_pod(name: &str, version: &str, ready: bool) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "shop", "name": name,
                "labels": {"app": "web", "version": version}},
            "spec": {"containers": []},
            "status": {"conditions": [{"type": "Ready",
                "status": if ready { "True" } else { "False" }}]}})
    }

    /// Pods run by StatefulSets, DaemonSets, Rollouts and bare pods count like a Deployment's.
    #[test]
    fn pods_of_other_workloads_and_bare_pods_count() {
        let sts = store(&[
            stateful_set("web-v1", "v1", 3, 3),
            stateful_set("web-v2", "v2", 3, 3),
        ]);
        let verdict = switch(&sts, &policy(json!({})), "v1", "v2");
        assert!(
            verdict.allowed() && verdict.warnings.is_empty(),
            "{verdict:?}"
        );
        let starting = store(&[
            stateful_set("web-v1", "v1", 3, 3),
            stateful_set("web-v2", "v2", 3, 0),
        ]);
        let message = denied(&switch(&starting, &policy(json!({})), "v1", "v2")).to_owned();
        assert!(
            message.contains("StatefulSet web-v2 matches but only 0/3"),
            "{message}"
        );
        let pods = store(&[
            bare_pod("web-v1", "v1", true),
            bare_pod("web-v2-a", "v2", true),
            bare_pod("web-v2-b", "v2", false),
        ]);
        // One of the two v2 pods is ready: 1 of 2 is below 75%, but not fewer than the one now.
        let verdict = switch(&pods, &policy(json!({})), "v1", "v2");
        warned(&verdict, "only 1 of 2 pods");
        let rollout = store(&[
            deployment("web-v1", "v1", 2, 2),
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"namespace": "shop", "name": "web-v2"},
                "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web", "version": "v2"}}}},
                "status": {"availableReplicas": 2}}),
        ]);
        let verdict = switch(&rollout, &policy(json!({})), "v1", "v2");
        assert!(
            verdict.allowed() && verdict.warnings.is_empty(),
            "{verdict:?}"
        );
    }

    /// Argo Rollouts' active/preview Services: the controller's switch of
    /// rollouts-pod-template-hash is not judged, and a Rollout's Service selects something.
    #[test]
    fn argo_rollouts_services_are_left_to_the_controller() {
        let store = store(&[
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"namespace": "shop", "name": "demo"},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "demo"}}}},
            "status": {"availableReplicas": 0}}),
        ]);
        let created = service(json!({"app": "demo"}));
        let verdict = review(
            &store,
            &policy(json!({})),
            Operation::Create,
            Some(&created),
            None,
        );
        assert!(verdict.warnings.is_empty(), "{verdict:?}");
        let old = service(json!({"app": "demo", "rollouts-pod-template-hash": "6b7c9d"}));
        let new = service(json!({"app": "demo", "rollouts-pod-template-hash": "5f8d4c"}));
        let verdict = review(
            &store,
            &policy(json!({})),
            Operation::Update,
            Some(&new),
            Some(&old),
        );
        assert!(
            verdict.allowed() && verdict.warnings.is_empty(),
            "{verdict:?}"
        );
    }

    /// A per-pod Service of a StatefulSet selects a pod the StatefulSet runs.
    #[test]
    fn a_per_pod_service_of_a_stateful_set_selects_something() {
        let store = store(&[stateful_set("db", "v1", 3, 3)]);
        let per_pod = service(json!({"statefulset.kubernetes.io/pod-name": "db-2"}));
        let verdict = review(
            &store,
            &policy(json!({})),
            Operation::Create,
            Some(&per_pod),
            None,
        );
        assert!(verdict.warnings.is_empty(), "{verdict:?}");
        let missing = service(json!({"statefulset.kubernetes.io/pod-name": "db-3"}));
        let verdict = review(
            &store,
            &policy(json!({})),
            Operation::Create,
            Some(&missing),
            None,
        );
        assert!(
            verdict.warnings[0].contains("selectsNothing"),
            "{verdict:?}"
        );
    }
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
            intent: Default::default(),
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
            message.contains("nothing runs pods with app=web,version=v3"),
            "{message}"
        );
        assert!(message.contains("while 3 are available now"), "{message}");
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
        let store = store(&[
            deployment("web-v1", "v1", 3, 3),
            deployment("web-v2", "v2", 0, 0),
        ]);
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
        let mut blue = deployment("web-blue", "v1", 2, 2);
        blue["spec"]["template"]["metadata"]["labels"] = json!({"app": "web", "color": "blue"});
        let store = super::tests::store(&[blue]);
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
        store
            .apply_object(&deployment("web-v1", "v1", 3, 3))
            .unwrap();
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
