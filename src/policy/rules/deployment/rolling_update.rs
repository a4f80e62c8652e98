//! `rollingUpdate`: rolling-update settings that keep a release available.
//!
//! Fill, never fight. The API server defaults a Deployment before webhooks see it
//! (maxUnavailable and maxSurge 25%, progressDeadlineSeconds 600, revisionHistoryLimit 10;
//! minReadySeconds stays absent), so [`Intent`] decides who chose each field:
//!
//! - absent or defaulted (nobody chose it): filled with the policy's target, quietly;
//! - chosen (in the applied configuration, or written by this request) and less safe than the
//!   policy: reported, never rewritten: a warning in `mutate` mode, a denial in `enforce` mode
//!   when the request writes the value (a value it only carries along warns). A GitOps tool
//!   would put a rewritten value back on its next apply (drift, OutOfSync, self-heal loops).
//!   `overrideChosen: true` opts in to rewriting (with a warning) anyway;
//! - unchanged by an UPDATE and named by no applied configuration: left alone. A write that does
//!   not touch these fields (pause, scale, annotate, a re-apply) gets no patch from this rule.
//!
//! revisionHistoryLimit is never lowered below the stored value: the controller deletes the
//! ReplicaSets beyond it, and with them the revisions `kubectl rollout undo` goes back to.
//!
//! The result must pass API validation, or the whole request fails: maxSurge and maxUnavailable
//! may not both be 0, and progressDeadlineSeconds must exceed minReadySeconds.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, RollingUpdateDeployment};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::admission::Operation;
use serde_json::json;

use crate::policy::config::RollingUpdateRule;
use crate::policy::engine::Context;
use crate::policy::finding::{EvalError, Finding, Fix, Severity};
use crate::policy::glob::any_match;
use crate::policy::intent::{Choice, Intent};
use crate::policy::patch::Edit;
use crate::policy::rules::deployment::intstr::{fenceposts, Amount, Rounding};
use crate::policy::rules::deployment::template;

/// The rule's key under `rules`.
pub const RULE: &str = "rollingUpdate";

/// apps/v1 defaults (k8s.io/kubernetes pkg/apis/apps/v1/defaults.go).
const DEFAULT_SURGE_OR_UNAVAILABLE: Amount = Amount::Percent(25);
const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
const DEFAULT_MIN_READY_SECONDS: i32 = 0;

const SURGE_PATH: &[&str] = &["spec", "strategy", "rollingUpdate", "maxSurge"];
const UNAVAILABLE_PATH: &[&str] = &["spec", "strategy", "rollingUpdate", "maxUnavailable"];
const MIN_READY_PATH: &[&str] = &["spec", "minReadySeconds"];
const DEADLINE_PATH: &[&str] = &["spec", "progressDeadlineSeconds"];
const HISTORY_PATH: &[&str] = &["spec", "revisionHistoryLimit"];

fn owned(path: &[&str]) -> Vec<String> {
    path.iter().map(|s| (*s).to_owned()).collect()
}

fn rolling(d: &Deployment) -> Option<&RollingUpdateDeployment> {
    d.spec.as_ref()?.strategy.as_ref()?.rolling_update.as_ref()
}

fn read_surge(d: &Deployment) -> Option<&IntOrString> {
    rolling(d)?.max_surge.as_ref()
}

fn read_unavailable(d: &Deployment) -> Option<&IntOrString> {
    rolling(d)?.max_unavailable.as_ref()
}

fn read_min_ready(d: &Deployment) -> Option<&i32> {
    d.spec.as_ref()?.min_ready_seconds.as_ref()
}

fn read_deadline(d: &Deployment) -> Option<&i32> {
    d.spec.as_ref()?.progress_deadline_seconds.as_ref()
}

fn read_history(d: &Deployment) -> Option<&i32> {
    d.spec.as_ref()?.revision_history_limit.as_ref()
}

/// A field as the request holds it, and who chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field<T> {
    /// The value in effect (the API default when absent).
    current: T,
    present: bool,
    choice: Choice,
    /// UPDATE: the stored object held the same value (a chosen value only carried along).
    carried: bool,
}

impl<T> Field<T> {
    fn fillable(&self) -> bool {
        self.choice.is_fillable()
    }
}

fn amount_field(
    intent: &Intent<'_, Deployment>,
    path: &[&str],
    read: fn(&Deployment) -> Option<&IntOrString>,
    object: &Deployment,
    old: Option<&Deployment>,
) -> Result<Field<Amount>, EvalError> {
    let default = IntOrString::String("25%".to_owned());
    // Only the string "25%" is the API default; an int 25 is a (strange) choice.
    let choice = intent.chose(path, read, Some(&default));
    let current = match read(object) {
        None => DEFAULT_SURGE_OR_UNAVAILABLE,
        Some(raw) => Amount::from_k8s(raw)
            .map_err(|e| EvalError::Unreadable(format!("{}: {e}", path[path.len() - 1])))?,
    };
    Ok(Field {
        current,
        present: read(object).is_some(),
        choice,
        carried: old.is_some_and(|o| read(o) == read(object)),
    })
}

fn int_field(
    intent: &Intent<'_, Deployment>,
    path: &[&str],
    read: fn(&Deployment) -> Option<&i32>,
    default: i32,
    object: &Deployment,
    old: Option<&Deployment>,
) -> Field<i32> {
    Field {
        current: read(object).copied().unwrap_or(default),
        present: read(object).is_some(),
        choice: intent.chose(path, read, Some(&default)),
        carried: old.is_some_and(|o| read(o) == read(object)),
    }
}

fn policy_amount(
    value: &crate::policy::config::IntOrPercent,
    field: &str,
) -> Result<Amount, EvalError> {
    Amount::from_policy(value)
        .map_err(|e| EvalError::Unreadable(format!("policy rollingUpdate.{field}: {e}")))
}

fn pods(n: i64) -> String {
    if n == 1 {
        "1 pod".to_owned()
    } else {
        format!("{n} pods")
    }
}

/// A chosen value less safe than the policy: reported, rewritten only with `overrideChosen`.
/// A value this request only carries along (an image update of a Deployment whose manifest has
/// it) warns even in `enforce`: refusing would block a release over a setting it did not touch.
fn unsafe_choice(
    rule: &RollingUpdateRule,
    check: &'static str,
    carried: bool,
    message: String,
    edits: Vec<Edit>,
) -> Finding {
    let severity = if carried {
        Severity::Warn
    } else {
        Severity::Deny
    };
    let (message, fix) = if rule.override_chosen {
        (
            format!("{message}; rewritten by policy (overrideChosen)"),
            Fix::Override(edits),
        )
    } else {
        (format!("{message}; kept, because it was chosen"), Fix::None)
    };
    Finding::new(RULE, check, severity, message).with_fix(fix)
}

/// Evaluates the rule.
pub fn evaluate(ctx: &Context<'_, Deployment>) -> Result<Vec<Finding>, EvalError> {
    let rule = &ctx.rules().rolling_update;
    let Some(deployment) = ctx.object else {
        return Ok(Vec::new());
    };
    let Some(spec) = deployment.spec.as_ref() else {
        return Ok(Vec::new());
    };
    if !matches!(ctx.operation, Operation::Create | Operation::Update) {
        return Ok(Vec::new());
    }
    let strategy_type = spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate");
    let intent = Intent::of(ctx);
    let old = ctx.old_object.filter(|_| intent.is_update());
    let old_type = old
        .and_then(|o| o.spec.as_ref())
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate");
    match strategy_type {
        // Reported when the request sets it, not on every write of a Deployment that has it.
        "Recreate" if old.is_none() || old_type != "Recreate" => {
            return Ok(recreate(rule, ctx.namespace))
        }
        "Recreate" => return Ok(Vec::new()),
        "RollingUpdate" => {}
        // Anything else fails API validation; nothing sensible to say about it here.
        _ => return Ok(Vec::new()),
    }
    let mut findings = strategy_findings(rule, &intent, deployment, old, spec)?;
    findings.extend(timing_findings(rule, &intent, deployment, old));
    // Probes live in the pod template: only worth saying when the request writes it.
    if old.is_none_or(|o| template::template_changed(deployment, o)) {
        findings.extend(readiness_findings(deployment));
    }
    Ok(findings)
}

fn recreate(rule: &RollingUpdateRule, namespace: &str) -> Vec<Finding> {
    if !any_match(&rule.recreate_namespaces, namespace) {
        return Vec::new();
    }
    vec![Finding::new(
        RULE,
        "recreateStrategy",
        Severity::Deny,
        format!(
            "strategy Recreate stops every pod before starting the new version, so the \
             Deployment is unavailable during each rollout; namespace {namespace} requires \
             strategy RollingUpdate"
        ),
    )]
}

fn strategy_findings(
    rule: &RollingUpdateRule,
    intent: &Intent<'_, Deployment>,
    deployment: &Deployment,
    old: Option<&Deployment>,
    spec: &DeploymentSpec,
) -> Result<Vec<Finding>, EvalError> {
    let surge = amount_field(intent, SURGE_PATH, read_surge, deployment, old)?;
    let unavailable = amount_field(intent, UNAVAILABLE_PATH, read_unavailable, deployment, old)?;
    let touched = |f: &Field<Amount>| f.fillable() || f.choice.is_chosen();
    if !touched(&surge) && !touched(&unavailable) {
        // An UPDATE that leaves the strategy as stored: nothing to fill, nothing newly chosen.
        return Ok(Vec::new());
    }
    let surge_target = policy_amount(&rule.max_surge, "maxSurge")?;
    let unavailable_target = policy_amount(&rule.max_unavailable, "maxUnavailable")?;
    let limit = policy_amount(&rule.max_unavailable_limit, "maxUnavailableLimit")?;
    // `replicas` is defaulted to 1 by the API server; absent only in offline manifests.
    let replicas = i64::from(spec.replicas.unwrap_or(1).max(0));
    let limit_pods = limit.resolve(replicas, Rounding::Down);

    // A surge pod that can never be scheduled (hostPort, one pod per node) stalls a rollout
    // whose maxUnavailable is 0 until the progress deadline: fill values that let it progress.
    let unschedulable = (unavailable.fillable()
        && unavailable_target.resolve(replicas, Rounding::Down) == 0)
        .then(|| template::surge_unschedulable(deployment))
        .flatten();

    let mut surge_final = match (surge.fillable(), &unschedulable) {
        (false, _) => surge.current,
        (true, Some(_)) => Amount::Pods(0),
        (true, None) => surge_target,
    };
    let mut unavailable_final = match (unavailable.fillable(), &unschedulable) {
        (false, _) => unavailable.current,
        (true, Some(_)) => Amount::Pods(1),
        (true, None) => unavailable_target,
    };
    let mut forced_by_zero_surge = false;
    if surge_final.is_zero() && unavailable_final.is_zero() {
        // API validation refuses both 0 ("may not be 0 when maxSurge is 0"). Give way on the
        // side nobody chose; surge first, since extra pods keep capacity.
        if surge.fillable() {
            surge_final = Amount::Pods(1);
        } else if unavailable.fillable() {
            unavailable_final = Amount::Pods(1);
            forced_by_zero_surge = true;
        }
        // Both chosen as 0: the API server rejects the object with its own message.
    }

    let mut findings = Vec::new();
    if let Some(reason) = &unschedulable {
        findings.push(Finding::new(
            RULE,
            "unschedulableSurge",
            Severity::Warn,
            format!(
                "{reason}, so a surge pod may never be scheduled and maxUnavailable 0 would stall \
                 every rollout until the progress deadline; filled maxUnavailable \
                 {unavailable_final} and maxSurge {surge_final} instead"
            ),
        ));
    }
    if surge.fillable() && (surge_final != surge.current || !surge.present) {
        findings.push(
            Finding::new(
                RULE,
                "maxSurge",
                Severity::Warn,
                format!(
                    "maxSurge is the Kubernetes default ({DEFAULT_SURGE_OR_UNAVAILABLE}); set to \
                     {surge_final} by policy"
                ),
            )
            .with_fix(Fix::Routine(vec![Edit::set(
                owned(SURGE_PATH),
                surge_final.to_json(),
            )])),
        );
    }

    let edit = |value: Amount| vec![Edit::set(owned(UNAVAILABLE_PATH), value.to_json())];
    if unavailable.fillable() {
        let (_, final_down) = fenceposts(surge_final, unavailable_final, replicas);
        if unschedulable.is_none()
            && surge.choice.is_chosen()
            && replicas >= 1
            && final_down >= replicas
        {
            // The chosen maxSurge 0 leaves no way to start a new pod before stopping an old
            // one, even with the policy's value. Only the user can fix it.
            findings.push(Finding::new(
                RULE,
                "allPodsDown",
                if surge.carried {
                    Severity::Warn
                } else {
                    Severity::Deny
                },
                format!(
                    "maxSurge {surge_final} with {} leaves Kubernetes no way to start a new pod \
                     before stopping an old one, so every rollout takes all pods down; set \
                     maxSurge to 1 or more (or add replicas)",
                    pods(replicas)
                ),
            ));
            return Ok(findings);
        }
        if unavailable_final != unavailable.current || !unavailable.present {
            let forced = if forced_by_zero_surge {
                " (at least 1 because maxSurge is 0)"
            } else {
                ""
            };
            findings.push(
                Finding::new(
                    RULE,
                    "maxUnavailable",
                    Severity::Warn,
                    format!(
                        "maxUnavailable is the Kubernetes default \
                         ({DEFAULT_SURGE_OR_UNAVAILABLE}); set to {unavailable_final}{forced} by \
                         policy"
                    ),
                )
                .with_fix(Fix::Routine(edit(unavailable_final))),
            );
        }
        return Ok(findings);
    }
    if !unavailable.choice.is_chosen() {
        return Ok(findings);
    }
    // A chosen maxUnavailable: judged, never rewritten unless the policy opts in.
    let current_down = unavailable.current.resolve(replicas, Rounding::Down);
    let mut suggestion = unavailable_target;
    if surge_final.is_zero() && suggestion.is_zero() {
        suggestion = Amount::Pods(1);
    }
    let limit_text = format!("policy allows at most {} ({limit})", pods(limit_pods));
    // A Deployment scaled to zero runs nothing a rollout could take down.
    if replicas >= 1 && current_down >= replicas {
        findings.push(unsafe_choice(
            rule,
            "allPodsDown",
            unavailable.carried,
            format!(
                "maxUnavailable {} of {} replicas = {} may be down at once, so a rollout can take \
                 every pod down and the service is unavailable until new pods are ready \
                 ({limit_text}); the policy's value is {suggestion}",
                unavailable.current,
                replicas,
                pods(current_down)
            ),
            edit(suggestion),
        ));
    } else if replicas >= 1 && current_down > limit_pods {
        findings.push(unsafe_choice(
            rule,
            "maxUnavailable",
            unavailable.carried,
            format!(
                "maxUnavailable {} of {} replicas = {} may be down at once during a rollout; \
                 {limit_text}; the policy's value is {suggestion}",
                unavailable.current,
                replicas,
                pods(current_down)
            ),
            edit(suggestion),
        ));
    }
    Ok(findings)
}

fn timing_findings(
    rule: &RollingUpdateRule,
    intent: &Intent<'_, Deployment>,
    deployment: &Deployment,
    old: Option<&Deployment>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let ready = int_field(
        intent,
        MIN_READY_PATH,
        read_min_ready,
        DEFAULT_MIN_READY_SECONDS,
        deployment,
        old,
    );
    let deadline = int_field(
        intent,
        DEADLINE_PATH,
        read_deadline,
        DEFAULT_PROGRESS_DEADLINE_SECONDS,
        deployment,
        old,
    );
    let mut ready_final = if ready.fillable() {
        rule.min_ready_seconds
    } else {
        ready.current
    };
    let mut deadline_final = if deadline.fillable() {
        rule.progress_deadline_seconds
    } else {
        deadline.current
    };
    // API validation: progressDeadlineSeconds must be greater than minReadySeconds. Give way on
    // what we filled: keep the deadline the object had, then lower our minReadySeconds.
    if deadline_final <= ready_final && deadline_final != deadline.current {
        deadline_final = deadline.current;
    }
    if deadline_final <= ready_final && ready_final != ready.current {
        ready_final = (deadline_final - 1).max(ready.current);
    }

    if ready.fillable() && (ready_final != ready.current || !ready.present) {
        findings.push(
            Finding::new(
                RULE,
                "minReadySeconds",
                Severity::Warn,
                format!("minReadySeconds not set; set to {ready_final} by policy"),
            )
            .with_fix(Fix::Routine(vec![Edit::set(
                owned(MIN_READY_PATH),
                json!(ready_final),
            )])),
        );
    } else if ready.choice.is_chosen() && ready.current < rule.min_ready_seconds {
        let now = ready.current;
        findings.push(unsafe_choice(
            rule,
            "minReadySeconds",
            ready.carried,
            format!(
                "minReadySeconds {now} counts a new pod available {now}s after it is ready, too \
                 soon to catch one that crashes right after start; policy requires at least {0}",
                rule.min_ready_seconds
            ),
            vec![Edit::set(
                owned(MIN_READY_PATH),
                json!(rule.min_ready_seconds),
            )],
        ));
    }

    if deadline.fillable() && (deadline_final != deadline.current || !deadline.present) {
        findings.push(
            Finding::new(
                RULE,
                "progressDeadlineSeconds",
                Severity::Warn,
                format!(
                    "progressDeadlineSeconds is the Kubernetes default \
                     ({DEFAULT_PROGRESS_DEADLINE_SECONDS}); set to {deadline_final} by policy"
                ),
            )
            .with_fix(Fix::Routine(vec![Edit::set(
                owned(DEADLINE_PATH),
                json!(deadline_final),
            )])),
        );
    } else if deadline.choice.is_chosen()
        && deadline.current > rule.progress_deadline_seconds
        && rule.progress_deadline_seconds > ready.current
    {
        let now = deadline.current;
        findings.push(unsafe_choice(
            rule,
            "progressDeadlineSeconds",
            deadline.carried,
            format!(
                "progressDeadlineSeconds {now}: a stuck rollout is reported \
                 (ProgressDeadlineExceeded) only after {now}s; policy allows at most {0}, the \
                 policy's value is {0}",
                rule.progress_deadline_seconds
            ),
            vec![Edit::set(
                owned(DEADLINE_PATH),
                json!(rule.progress_deadline_seconds),
            )],
        ));
    }

    let history = int_field(
        intent,
        HISTORY_PATH,
        read_history,
        DEFAULT_REVISION_HISTORY_LIMIT,
        deployment,
        old,
    );
    if history.fillable() {
        // Never below what the stored Deployment keeps: the controller would delete the
        // ReplicaSets beyond it, the revisions `kubectl rollout undo` goes back to.
        let stored = old.and_then(read_history).copied();
        let target = stored.map_or(rule.revision_history_limit, |s| {
            s.max(rule.revision_history_limit)
        });
        if !history.present || history.current != target {
            findings.push(
                Finding::new(
                    RULE,
                    "revisionHistoryLimit",
                    Severity::Warn,
                    format!(
                        "revisionHistoryLimit is the Kubernetes default \
                         ({DEFAULT_REVISION_HISTORY_LIMIT}); set to {target} by policy"
                    ),
                )
                .with_fix(Fix::Routine(vec![Edit::set(
                    owned(HISTORY_PATH),
                    json!(target),
                )])),
            );
        }
    } else if history.choice.is_chosen() && history.current < rule.min_revision_history_limit {
        let now = history.current;
        // Raising it never deletes anything, so the override edit is safe to offer.
        findings.push(unsafe_choice(
            rule,
            "revisionHistoryLimit",
            history.carried,
            format!(
                "revisionHistoryLimit {now} keeps too few old ReplicaSets for `kubectl rollout \
                 undo` to go back to; policy requires at least {}, the policy's value is {}",
                rule.min_revision_history_limit, rule.revision_history_limit
            ),
            vec![Edit::set(
                owned(HISTORY_PATH),
                json!(rule
                    .revision_history_limit
                    .max(rule.min_revision_history_limit)),
            )],
        ));
    }
    findings
}

fn readiness_findings(deployment: &Deployment) -> Vec<Finding> {
    let without: Vec<&str> = template::containers(deployment)
        .iter()
        .filter(|c| c.readiness_probe.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if without.is_empty() {
        return Vec::new();
    }
    // Severity Deny: the default policy (mutate, no fix) turns it into a warning;
    // `checks: {readinessProbe: enforce}` makes it deny. Never filled: a probe that does not
    // match what the container serves would keep every new pod out of service.
    vec![Finding::new(
        RULE,
        "readinessProbe",
        Severity::Deny,
        format!(
            "container(s) {} have no readinessProbe: Kubernetes counts a pod ready as soon as it \
             starts, sends it traffic and continues the rollout even if the new version is not \
             serving; add a readinessProbe",
            without.join(", ")
        ),
    )]
}
