//! `rollingUpdate`: rolling-update settings that keep a release available.
//!
//! The API server defaults a Deployment before webhooks see it (maxUnavailable and maxSurge 25%,
//! progressDeadlineSeconds 600, revisionHistoryLimit 10; minReadySeconds stays 0/absent), so a
//! field holding exactly that default is taken as "not chosen" and brought to the policy's
//! target quietly. A value the user chose is only rewritten when it is less safe than the
//! policy allows, and then the mode decides (rewrite and warn, warn, deny).
//!
//! The result must pass API validation, or the whole request fails: maxSurge and maxUnavailable
//! may not both be 0, and progressDeadlineSeconds must exceed minReadySeconds.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use crate::policy::config::RollingUpdateRule;
use crate::policy::engine::Context;
use crate::policy::finding::{EvalError, Finding, Fix, Severity};
use crate::policy::glob::any_match;
use crate::policy::patch::Edit;
use crate::policy::rules::deployment::intstr::{fenceposts, Amount, Rounding};
use crate::policy::rules::deployment::template;

/// The rule's key under `rules`.
pub const RULE: &str = "rollingUpdate";

/// apps/v1 defaults (k8s.io/kubernetes pkg/apis/apps/v1/defaults.go).
const DEFAULT_SURGE_OR_UNAVAILABLE: Amount = Amount::Percent(25);
const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;

const STRATEGY: [&str; 3] = ["spec", "strategy", "rollingUpdate"];

fn strategy_path(field: &str) -> Vec<String> {
    STRATEGY
        .iter()
        .map(|s| (*s).to_owned())
        .chain([field.to_owned()])
        .collect()
}

/// A field as the object holds it: absent (or exactly the API default, written as the API
/// server writes it) counts as not chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    current: Amount,
    present: bool,
    chosen: bool,
}

fn read_amount(value: Option<&IntOrString>, field: &str) -> Result<Field, EvalError> {
    match value {
        None => Ok(Field {
            current: DEFAULT_SURGE_OR_UNAVAILABLE,
            present: false,
            chosen: false,
        }),
        Some(raw) => {
            let current = Amount::from_k8s(raw)
                .map_err(|e| EvalError::Unreadable(format!("{field}: {e}")))?;
            // Only the string "25%" is the API default; an int 25 is a (strange) choice.
            let is_default = matches!(raw, IntOrString::String(s) if s == "25%");
            Ok(Field {
                current,
                present: true,
                chosen: !is_default,
            })
        }
    }
}

fn policy_amount(
    value: &crate::policy::config::IntOrPercent,
    field: &str,
) -> Result<Amount, EvalError> {
    Amount::from_policy(value)
        .map_err(|e| EvalError::Unreadable(format!("policy rollingUpdate.{field}: {e}")))
}

/// Why maxUnavailable ends where it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnavailableReason {
    NotChosen,
    Kept,
    AboveLimit,
    AllPodsDown,
}

fn pods(n: i64) -> String {
    if n == 1 {
        "1 pod".to_owned()
    } else {
        format!("{n} pods")
    }
}

/// Evaluates the rule.
pub fn evaluate(ctx: &Context<'_, Deployment>) -> Result<Vec<Finding>, EvalError> {
    let rule = &ctx.rules().rolling_update;
    let Some(spec) = ctx.object.and_then(|d| d.spec.as_ref()) else {
        return Ok(Vec::new());
    };
    let strategy_type = spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate");
    match strategy_type {
        "Recreate" => return Ok(recreate(rule, ctx.namespace)),
        "RollingUpdate" => {}
        // Anything else fails API validation; nothing sensible to say about it here.
        _ => return Ok(Vec::new()),
    }
    let mut findings = strategy_findings(rule, spec)?;
    findings.extend(timing_findings(rule, spec));
    findings.extend(readiness_findings(ctx.object));
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
    spec: &DeploymentSpec,
) -> Result<Vec<Finding>, EvalError> {
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let surge = read_amount(rolling.and_then(|r| r.max_surge.as_ref()), "maxSurge")?;
    let unavailable = read_amount(
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        "maxUnavailable",
    )?;
    let surge_target = policy_amount(&rule.max_surge, "maxSurge")?;
    let unavailable_target = policy_amount(&rule.max_unavailable, "maxUnavailable")?;
    let limit = policy_amount(&rule.max_unavailable_limit, "maxUnavailableLimit")?;
    // `replicas` is defaulted to 1 by the API server; absent only in offline manifests.
    let replicas = i64::from(spec.replicas.unwrap_or(1).max(0));
    let limit_pods = limit.resolve(replicas, Rounding::Down);

    let mut surge_final = if surge.chosen {
        surge.current
    } else {
        surge_target
    };
    let current_down = unavailable.current.resolve(replicas, Rounding::Down);
    // A Deployment scaled to zero runs nothing a rollout could take down: only defaults filled.
    let reason = if !unavailable.chosen {
        UnavailableReason::NotChosen
    } else if replicas >= 1 && current_down >= replicas {
        UnavailableReason::AllPodsDown
    } else if replicas >= 1 && current_down > limit_pods {
        UnavailableReason::AboveLimit
    } else {
        UnavailableReason::Kept
    };
    let mut unavailable_final = match reason {
        UnavailableReason::Kept => unavailable.current,
        _ => unavailable_target,
    };
    let mut forced_by_zero_surge = false;
    if surge_final.is_zero() && unavailable_final.is_zero() {
        // API validation refuses both 0 ("may not be 0 when maxSurge is 0"). Give way on the
        // side the user did not choose; surge first, since extra pods keep capacity.
        if !surge.chosen {
            surge_final = Amount::Pods(1);
        } else if reason != UnavailableReason::Kept {
            unavailable_final = Amount::Pods(1);
            forced_by_zero_surge = true;
        }
        // Both chosen as 0: the API server rejects the object with its own message.
    }

    let mut findings = Vec::new();
    if surge_final != surge.current || !surge.present {
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
                strategy_path("maxSurge"),
                surge_final.to_json(),
            )])),
        );
    }

    let (_, final_down) = fenceposts(surge_final, unavailable_final, replicas);
    let limit_text = format!("policy allows at most {} ({limit})", pods(limit_pods));
    if replicas >= 1 && final_down >= replicas {
        // Even the policy's answer cannot keep a pod up: maxSurge 0 leaves no room to start a
        // new pod first. Only the user can fix it, by allowing surge or adding replicas.
        findings.push(Finding::new(
            RULE,
            "allPodsDown",
            Severity::Deny,
            format!(
                "maxSurge {surge_final} with {} leaves Kubernetes no way to start a new pod \
                 before stopping an old one, so every rollout takes all pods down; set maxSurge \
                 to 1 or more (or add replicas)",
                pods(replicas)
            ),
        ));
        return Ok(findings);
    }
    let edit = || {
        vec![Edit::set(
            strategy_path("maxUnavailable"),
            unavailable_final.to_json(),
        )]
    };
    let forced = if forced_by_zero_surge {
        " (at least 1 because maxSurge is 0)"
    } else {
        ""
    };
    match reason {
        UnavailableReason::Kept => {}
        UnavailableReason::NotChosen => {
            if unavailable_final != unavailable.current || !unavailable.present {
                findings.push(
                    Finding::new(
                        RULE,
                        "maxUnavailable",
                        Severity::Warn,
                        format!(
                            "maxUnavailable is the Kubernetes default \
                             ({DEFAULT_SURGE_OR_UNAVAILABLE}); set to {unavailable_final}{forced} \
                             by policy"
                        ),
                    )
                    .with_fix(Fix::Routine(edit())),
                );
            }
        }
        UnavailableReason::AllPodsDown => findings.push(
            Finding::new(
                RULE,
                "allPodsDown",
                Severity::Deny,
                format!(
                    "maxUnavailable {} of {} replicas = {} may be down at once, so a rollout can \
                     take every pod down and the service is unavailable until new pods are \
                     ready; use maxUnavailable {unavailable_final}{forced} ({limit_text})",
                    unavailable.current,
                    replicas,
                    pods(current_down)
                ),
            )
            .with_fix(Fix::Override(edit())),
        ),
        UnavailableReason::AboveLimit => findings.push(
            Finding::new(
                RULE,
                "maxUnavailable",
                Severity::Deny,
                format!(
                    "maxUnavailable {} of {} replicas = {} may be down at once during a \
                     rollout; {limit_text}; use maxUnavailable {unavailable_final}{forced}",
                    unavailable.current,
                    replicas,
                    pods(current_down)
                ),
            )
            .with_fix(Fix::Override(edit())),
        ),
    }
    Ok(findings)
}

/// Whether the rule filled in a default or rewrote a user's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Default,
    Unsafe,
}

fn timing_findings(rule: &RollingUpdateRule, spec: &DeploymentSpec) -> Vec<Finding> {
    let mut findings = Vec::new();

    let ready_now = spec.min_ready_seconds.unwrap_or(0);
    let deadline_now = spec
        .progress_deadline_seconds
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS);
    let ready_change = if ready_now == 0 && ready_now != rule.min_ready_seconds {
        Some(Change::Default)
    } else if ready_now < rule.min_ready_seconds {
        Some(Change::Unsafe)
    } else {
        None
    };
    let deadline_change = if spec.progress_deadline_seconds.is_none()
        || deadline_now == DEFAULT_PROGRESS_DEADLINE_SECONDS
    {
        Some(Change::Default)
    } else if deadline_now > rule.progress_deadline_seconds {
        Some(Change::Unsafe)
    } else {
        None
    };
    let mut ready = if ready_change.is_some() {
        rule.min_ready_seconds
    } else {
        ready_now
    };
    let mut deadline = if deadline_change.is_some() {
        rule.progress_deadline_seconds
    } else {
        deadline_now
    };
    // API validation: progressDeadlineSeconds must be greater than minReadySeconds. Give way on
    // what we changed: keep the deadline the object had, then lower our minReadySeconds.
    if deadline <= ready && deadline != deadline_now {
        deadline = deadline_now;
    }
    if deadline <= ready && ready != ready_now {
        ready = (deadline - 1).max(ready_now);
    }

    if ready != ready_now || (ready_change.is_some() && spec.min_ready_seconds.is_none()) {
        let edits = vec![Edit::set(["spec", "minReadySeconds"], json!(ready))];
        findings.push(match ready_change {
            Some(Change::Unsafe) => Finding::new(
                RULE,
                "minReadySeconds",
                Severity::Deny,
                format!(
                    "minReadySeconds {ready_now} counts a new pod available {ready_now}s after it \
                     is ready, too soon to catch one that crashes right after start, so a bad \
                     version rolls on; policy requires at least {}, use {ready}",
                    rule.min_ready_seconds
                ),
            )
            .with_fix(Fix::Override(edits)),
            _ => Finding::new(
                RULE,
                "minReadySeconds",
                Severity::Warn,
                format!("minReadySeconds not set; set to {ready} by policy"),
            )
            .with_fix(Fix::Routine(edits)),
        });
    }
    if deadline != deadline_now || spec.progress_deadline_seconds.is_none() {
        let edits = vec![Edit::set(
            ["spec", "progressDeadlineSeconds"],
            json!(deadline),
        )];
        findings.push(match deadline_change {
            Some(Change::Unsafe) => Finding::new(
                RULE,
                "progressDeadlineSeconds",
                Severity::Deny,
                format!(
                    "progressDeadlineSeconds {deadline_now}: a stuck rollout is reported \
                     (ProgressDeadlineExceeded) only after {deadline_now}s; policy allows at most \
                     {}, use {deadline}",
                    rule.progress_deadline_seconds
                ),
            )
            .with_fix(Fix::Override(edits)),
            _ => Finding::new(
                RULE,
                "progressDeadlineSeconds",
                Severity::Warn,
                format!(
                    "progressDeadlineSeconds is the Kubernetes default \
                     ({DEFAULT_PROGRESS_DEADLINE_SECONDS}); set to {deadline} by policy"
                ),
            )
            .with_fix(Fix::Routine(edits)),
        });
    }

    let history_now = spec.revision_history_limit;
    let history = history_now.unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT);
    if history_now.is_none() || history == DEFAULT_REVISION_HISTORY_LIMIT {
        if history_now != Some(rule.revision_history_limit) {
            findings.push(
                Finding::new(
                    RULE,
                    "revisionHistoryLimit",
                    Severity::Warn,
                    format!(
                        "revisionHistoryLimit is the Kubernetes default \
                         ({DEFAULT_REVISION_HISTORY_LIMIT}); set to {} by policy",
                        rule.revision_history_limit
                    ),
                )
                .with_fix(Fix::Routine(vec![Edit::set(
                    ["spec", "revisionHistoryLimit"],
                    json!(rule.revision_history_limit),
                )])),
            );
        }
    } else if history < rule.min_revision_history_limit {
        findings.push(
            Finding::new(
                RULE,
                "revisionHistoryLimit",
                Severity::Deny,
                format!(
                    "revisionHistoryLimit {history} keeps too few old ReplicaSets for \
                     `kubectl rollout undo` to go back to; policy requires at least {}, use {}",
                    rule.min_revision_history_limit, rule.revision_history_limit
                ),
            )
            .with_fix(Fix::Override(vec![Edit::set(
                ["spec", "revisionHistoryLimit"],
                json!(rule.revision_history_limit),
            )])),
        );
    }
    findings
}

fn readiness_findings(deployment: Option<&Deployment>) -> Vec<Finding> {
    let Some(deployment) = deployment else {
        return Vec::new();
    };
    let without: Vec<&str> = template::containers(deployment)
        .iter()
        .filter(|c| c.readiness_probe.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if without.is_empty() {
        return Vec::new();
    }
    // Severity Deny: the default policy (mutate, no fix) turns it into a warning;
    // `checks: {readinessProbe: enforce}` makes it deny.
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
