//! Break-glass: the people a policy names may bypass named rules' denials, one object at a time,
//! with an override annotation; everyone else's override is ignored, and says so.
//!
//! During an incident the alternative is editing the policy ConfigMap or deleting the webhook,
//! which turns the rule off for everybody and leaves no trace of who did it and why. An override
//! is the opposite: it lets one request through, for people the policy owners named in advance
//! (`spec.breakGlass`), and records it where the cluster's own audit trail is:
//!
//! - a warning `kubectl` prints (`rollout-guard break-glass: <rule.check> bypassed by <user> ...`),
//! - audit annotations on the AdmissionResponse (`break-glass`, `break-glass-user`,
//!   `break-glass-grant`, `break-glass-reason`, or `break-glass-refused`), which the API server
//!   writes into its audit log at every audit level,
//! - the counter `rollout_guard_break_glass_total{endpoint,rule,check,result}` (no user names:
//!   labels stay low-cardinality) and an info log line with user, rule, object and reason
//!   (`server::routes`).
//!
//! The annotation, on the object (on DELETE, on the stored object, since a DELETE carries no
//! new one):
//!
//! ```yaml
//! metadata:
//!   annotations:
//!     rollout-guard.io/override: "ingressCanary.mainRemoved, blueGreen: INC-4411 roll back shop"
//! ```
//!
//! names rules (`blueGreen`: any of its checks) or checks (`ingressCanary.mainRemoved`), comma
//! separated, then after the first `:` the reason. It is read only when the request would be
//! denied, and only the denials it names are bypassed, each only when a grant of the governing
//! policy covers that rule or check, names the requester (user, group or service account), holds
//! in the namespace and for the object's labels, has not expired, and has a reason when it
//! requires one. A denial that is not bypassed stands, with a warning that says why the override
//! was not honoured. Patches are never affected: break-glass only turns denials into warnings.
//!
//! Pure: the clock comes in as `now`, namespace labels from the cluster view.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::jiff::Timestamp;

use crate::policy::config::{
    BreakGlassGrant, BreakGlassNamespaces, LabelOperator, LabelRequirement, LabelSelectorSpec,
    RolloutPolicy,
};
use crate::policy::engine::{warning_text, FindingOutcome, Verdict, ERROR_CHECK};
use crate::policy::labels::Labels;
use crate::policy::load::FieldPath;
use crate::policy::objects::{Requirement, Selector};
use crate::policy::view::ClusterView;

/// The annotation an object carries to ask for a bypass.
pub const OVERRIDE_ANNOTATION: &str = "rollout-guard.io/override";

/// The source break-glass warnings are written under (`rollout-guard break-glass: ...`).
pub const WARNING_SOURCE: &str = "break-glass";

/// Groups (and the user) every requester, or every one of a kind, has: a grant naming them would
/// let anyone bypass, so the loader refuses them.
pub const EVERYONE: &[&str] = &[
    "system:authenticated",
    "system:unauthenticated",
    "system:serviceaccounts",
    "system:anonymous",
];

/// The username prefix of service accounts (`system:serviceaccount:<namespace>:<name>`).
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// The label the API server puts on every Namespace.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Longest reason kept in audit annotations and log lines.
pub const MAX_REASON_CHARS: usize = 256;

/// What the override annotation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRequest {
    /// Rules (`blueGreen`) and checks (`ingressCanary.mainRemoved`), as written.
    pub rules: Vec<String>,
    /// The reason, on one line; empty when none was given.
    pub reason: String,
}

impl OverrideRequest {
    /// Whether the annotation names the denial `source` (`rule.check`), by its rule or itself.
    pub fn names(&self, source: &str) -> bool {
        let rule = source.split_once('.').map_or(source, |(rule, _)| rule);
        self.rules.iter().any(|r| r == rule || r == source)
    }
}

/// Reads the annotation's value: `<rule>[,<rule>...]: <reason>` (the reason may be left out,
/// with its colon). Rule and check names are checked against the rule catalog, so a typo is
/// reported rather than silently bypassing nothing.
pub fn parse_override(value: &str) -> Result<OverrideRequest, String> {
    let (rules, reason) = value.split_once(':').unwrap_or((value, ""));
    let rules: Vec<String> = rules
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    if rules.is_empty() {
        return Err("it names no rule".to_owned());
    }
    for rule in &rules {
        if let Some(problem) = rule_name_problem(rule) {
            return Err(problem);
        }
    }
    // One line: the reason goes into warnings, audit annotations and log lines.
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(OverrideRequest { rules, reason })
}

/// Why `name` is not a rule (`ingressCanary`) or check (`ingressCanary.mainRemoved`) of this
/// build, if it is not. Shared by the loader (grants) and the annotation parser.
pub fn rule_name_problem(name: &str) -> Option<String> {
    use crate::policy::load::{rule_info, RULE_CATALOG};
    let (rule, check) = match name.split_once('.') {
        Some((rule, check)) => (rule, Some(check)),
        None => (name, None),
    };
    let Some(info) = rule_info(rule) else {
        let known: Vec<&str> = RULE_CATALOG.iter().map(|r| r.name).collect();
        return Some(format!(
            "unknown rule {rule:?} (one of {}; `rule` or `rule.check`)",
            known.join(", ")
        ));
    };
    match check {
        Some(check) if check != ERROR_CHECK && !info.checks.contains(&check) => Some(format!(
            "{rule} has no check {check:?} (its checks: {}, and {ERROR_CHECK} for the rule failing closed)",
            info.checks.join(", ")
        )),
        _ => None,
    }
}

/// The request as break-glass judges it.
pub struct Request<'a> {
    /// Who asks.
    pub user: &'a UserInfo,
    /// The object's namespace.
    pub namespace: &'a str,
    /// The object's labels (on DELETE, the stored object's).
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// The object's annotations (on DELETE, the stored object's).
    pub annotations: Option<&'a BTreeMap<String, String>>,
    /// The time the request is judged at (grants expire).
    pub now: SystemTime,
}

/// Why an override of one denial was not honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The annotation cannot be read.
    Malformed(String),
    /// The annotation names other rules.
    NotRequested(Vec<String>),
    /// No grant of the policy covers the rule or check.
    NotCovered,
    /// Grants cover it, but none names the requester.
    NotNamed(Vec<String>),
    /// The grant that names the requester has expired.
    Expired {
        /// The grant.
        grant: String,
        /// Its `expires`, as written.
        at: String,
    },
    /// The grant does not hold in the object's namespace.
    Namespace {
        /// The grant.
        grant: String,
        /// Whether the Namespace's labels were known (a label selector cannot be confirmed on
        /// a Namespace the view has not seen).
        labels_known: bool,
    },
    /// The grant's object selector does not select the object.
    Object {
        /// The grant.
        grant: String,
    },
    /// The grant requires a reason and the annotation gives none.
    NoReason {
        /// The grant.
        grant: String,
    },
}

impl Refusal {
    /// A low-cardinality word for the metric's `result` and the audit annotation.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::NotRequested(_) => "not-requested",
            Refusal::NotCovered => "not-covered",
            Refusal::NotNamed(_) => "not-named",
            Refusal::Expired { .. } => "expired",
            Refusal::Namespace { .. } => "namespace",
            Refusal::Object { .. } => "object",
            Refusal::NoReason { .. } => "no-reason",
        }
    }

    fn explain(&self, source: &str, user: &str, policy: &str, namespace: &str) -> String {
        match self {
            Refusal::Malformed(why) => format!(
                "annotation {OVERRIDE_ANNOTATION} cannot be read: {why}; write \"<rule>[,<rule>]: <reason>\""
            ),
            Refusal::NotRequested(named) => {
                format!("the annotation names {}, not {source}", named.join(", "))
            }
            Refusal::NotCovered => format!("no break-glass grant of policy {policy} covers it"),
            Refusal::NotNamed(grants) => format!(
                "{user} is not named for it in policy {policy} (grants: {})",
                grants.join(", ")
            ),
            Refusal::Expired { grant, at } => format!("grant {grant} expired at {at}"),
            Refusal::Namespace {
                grant,
                labels_known: true,
            } => format!("grant {grant} does not hold in namespace {namespace}"),
            Refusal::Namespace {
                grant,
                labels_known: false,
            } => format!(
                "grant {grant} selects namespaces by label and the labels of namespace {namespace} are not known"
            ),
            Refusal::Object { grant } => {
                format!("grant {grant}'s objectSelector does not select this object")
            }
            Refusal::NoReason { grant } => {
                format!("grant {grant} requires a reason: \"{source}: <why>\"")
            }
        }
    }
}

/// What became of an override of one denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The denial was bypassed under this grant.
    Bypassed {
        /// The grant's name.
        grant: String,
    },
    /// The denial stands.
    Refused(Refusal),
}

impl Outcome {
    /// `bypassed` or the refusal's code: the metric's `result` label.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Bypassed { .. } => "bypassed",
            Outcome::Refused(refusal) => refusal.code(),
        }
    }
}

/// One override of one denial, honoured or not: what audit annotations, metrics and the log
/// line record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The denial's `rule.check`.
    pub source: String,
    /// `userInfo.username` of the requester.
    pub user: String,
    /// The reason the annotation gives (cut to [`MAX_REASON_CHARS`]).
    pub reason: String,
    /// What became of it.
    pub outcome: Outcome,
}

impl Override {
    /// Whether the denial was bypassed.
    pub fn bypassed(&self) -> bool {
        matches!(self.outcome, Outcome::Bypassed { .. })
    }

    /// The rule and check of the denial, for metric labels.
    pub fn rule_and_check(&self) -> (&str, &str) {
        self.source.split_once('.').unwrap_or((&self.source, ""))
    }
}

/// Applies the object's override annotation, if any, to the verdict's denials: each one it may
/// bypass becomes a warning and its finding `bypassed`; each other stands, with a warning saying
/// why the override was not honoured. Every override is recorded in `verdict.break_glass`.
/// Without denials, or without the annotation, nothing happens.
pub fn apply(
    verdict: &mut Verdict,
    policy: &RolloutPolicy,
    request: &Request<'_>,
    view: &dyn ClusterView,
) {
    if verdict.denials.is_empty() {
        return;
    }
    let Some(value) = request.annotations.and_then(|a| a.get(OVERRIDE_ANNOTATION)) else {
        return;
    };
    let asked = parse_override(value);
    let user = request.user.username.as_deref().unwrap_or_default();
    let reason = asked
        .as_ref()
        .map(|a| a.reason.chars().take(MAX_REASON_CHARS).collect::<String>())
        .unwrap_or_default();
    let policy_name = policy.metadata.name.as_str();

    for denial in std::mem::take(&mut verdict.denials) {
        let outcome = match &asked {
            Err(why) => Outcome::Refused(Refusal::Malformed(why.clone())),
            Ok(asked) => judge(&denial.source, asked, policy, request, view),
        };
        let warning = match &outcome {
            Outcome::Bypassed { grant } => {
                let said = if reason.is_empty() {
                    "no reason given"
                } else {
                    reason.as_str()
                };
                if let Some(finding) = verdict.findings.iter_mut().find(|f| {
                    f.outcome == FindingOutcome::Denied
                        && f.source() == denial.source
                        && f.message == denial.message
                }) {
                    finding.outcome = FindingOutcome::Bypassed;
                }
                format!(
                    "{} bypassed by {user} (grant {grant}): {said}; it would have denied: {}",
                    denial.source, denial.message
                )
            }
            Outcome::Refused(refusal) => format!(
                "override of {} not honoured: {}; the denial stands",
                denial.source,
                refusal.explain(&denial.source, user, policy_name, request.namespace)
            ),
        };
        let warning = warning_text(WARNING_SOURCE, &warning);
        if !verdict.warnings.contains(&warning) {
            verdict.warnings.push(warning);
        }
        if !matches!(outcome, Outcome::Bypassed { .. }) {
            verdict.denials.push(denial.clone());
        }
        verdict.break_glass.push(Override {
            source: denial.source,
            user: user.to_owned(),
            reason: reason.clone(),
            outcome,
        });
    }
}

/// Whether the override may bypass the denial `source`, and under which grant; otherwise why
/// not, from the grant that came closest.
fn judge(
    source: &str,
    asked: &OverrideRequest,
    policy: &RolloutPolicy,
    request: &Request<'_>,
    view: &dyn ClusterView,
) -> Outcome {
    if !asked.names(source) {
        return Outcome::Refused(Refusal::NotRequested(asked.rules.clone()));
    }
    let covering: Vec<&BreakGlassGrant> = policy
        .spec
        .break_glass
        .iter()
        .filter(|grant| covers(grant, source))
        .collect();
    if covering.is_empty() {
        return Outcome::Refused(Refusal::NotCovered);
    }
    let naming: Vec<&BreakGlassGrant> = covering
        .iter()
        .copied()
        .filter(|grant| names_requester(grant, request.user))
        .collect();
    if naming.is_empty() {
        return Outcome::Refused(Refusal::NotNamed(
            covering.iter().map(|g| g.name.clone()).collect(),
        ));
    }
    let mut first_refusal = None;
    for grant in naming {
        match holds(grant, asked, request, view) {
            Ok(()) => {
                return Outcome::Bypassed {
                    grant: grant.name.clone(),
                }
            }
            Err(refusal) => {
                first_refusal.get_or_insert(refusal);
            }
        }
    }
    Outcome::Refused(first_refusal.unwrap_or(Refusal::NotCovered))
}

/// Whether the grant lists the denial's rule or the check itself.
pub fn covers(grant: &BreakGlassGrant, source: &str) -> bool {
    let rule = source.split_once('.').map_or(source, |(rule, _)| rule);
    grant.rules.iter().any(|r| r == rule || r == source)
}

/// Whether the grant names the requester: its username, a service account (as the API server
/// names them), or one of its groups.
pub fn names_requester(grant: &BreakGlassGrant, user: &UserInfo) -> bool {
    let username = user.username.as_deref().unwrap_or_default();
    if username.is_empty() {
        return false;
    }
    let service_account = username
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'));
    grant.users.iter().any(|u| u == username)
        || service_account.is_some_and(|(namespace, name)| {
            grant
                .service_accounts
                .iter()
                .any(|sa| sa.split_once('/') == Some((namespace, name)))
        })
        || user
            .groups
            .iter()
            .flatten()
            .any(|group| grant.groups.contains(group))
}

/// The grant's other conditions, in the order a person fixes them: expiry, namespace, object,
/// reason.
fn holds(
    grant: &BreakGlassGrant,
    asked: &OverrideRequest,
    request: &Request<'_>,
    view: &dyn ClusterView,
) -> Result<(), Refusal> {
    if let Some(expires) = &grant.expires {
        // The loader validates `expires`; one that does not read (a policy built without the
        // loader) fails closed.
        let expired = match (
            expires.parse::<Timestamp>(),
            Timestamp::try_from(request.now),
        ) {
            (Ok(expires), Ok(now)) => now >= expires,
            _ => true,
        };
        if expired {
            return Err(Refusal::Expired {
                grant: grant.name.clone(),
                at: expires.clone(),
            });
        }
    }
    if let Some(namespaces) = &grant.namespaces {
        namespace_holds(grant, namespaces, request.namespace, view)?;
    }
    if let Some(selector) = &grant.object_selector {
        let labels = request.labels.map(Labels::from).unwrap_or_default();
        if !selects(selector_of(selector), &labels) {
            return Err(Refusal::Object {
                grant: grant.name.clone(),
            });
        }
    }
    if grant.require_reason && asked.reason.is_empty() {
        return Err(Refusal::NoReason {
            grant: grant.name.clone(),
        });
    }
    Ok(())
}

fn namespace_holds(
    grant: &BreakGlassGrant,
    namespaces: &BreakGlassNamespaces,
    namespace: &str,
    view: &dyn ClusterView,
) -> Result<(), Refusal> {
    let refused = |labels_known| Refusal::Namespace {
        grant: grant.name.clone(),
        labels_known,
    };
    if !namespaces.names.is_empty() && !crate::policy::glob::any_match(&namespaces.names, namespace)
    {
        return Err(refused(true));
    }
    if namespaces.match_labels.is_empty() && namespaces.match_expressions.is_empty() {
        return Ok(());
    }
    // Only read when a label selector needs it (a policy test then has to declare Namespaces).
    let known = view.namespace_labels(namespace);
    let labels: Labels = known
        .iter()
        .flat_map(Labels::iter)
        .filter(|(key, _)| *key != NAMESPACE_NAME_LABEL)
        .chain([(NAMESPACE_NAME_LABEL, namespace)])
        .collect();
    let selector = selector_of(&LabelSelectorSpec {
        match_labels: namespaces.match_labels.clone(),
        match_expressions: namespaces.match_expressions.clone(),
    });
    if selects(selector, &labels) {
        Ok(())
    } else {
        Err(refused(known.is_some()))
    }
}

/// A policy selector as the store's selectors read it.
fn selector_of(spec: &LabelSelectorSpec) -> Selector {
    Selector {
        match_labels: Labels::from(&spec.match_labels),
        match_expressions: spec
            .match_expressions
            .iter()
            .map(
                |LabelRequirement {
                     key,
                     operator,
                     values,
                 }| match operator {
                    LabelOperator::In => Requirement::In(key.clone(), values.clone()),
                    LabelOperator::NotIn => Requirement::NotIn(key.clone(), values.clone()),
                    LabelOperator::Exists => Requirement::Exists(key.clone()),
                    LabelOperator::DoesNotExist => Requirement::DoesNotExist(key.clone()),
                },
            )
            .collect(),
    }
}

/// Kubernetes semantics: an empty selector (`{}`) selects everything. (The store's
/// `Selector::matches` answers "which pods", where empty selects nothing.)
fn selects(selector: Selector, labels: &Labels) -> bool {
    selector.is_empty() || selector.matches(labels)
}

/// Problems of one grant that the schema cannot express, each at its field (relative to the
/// grant). The loader reports them with file and line.
pub fn grant_problems(grant: &BreakGlassGrant) -> Vec<(FieldPath, String)> {
    let mut problems: Vec<(FieldPath, String)> = Vec::new();
    let root = FieldPath::default();
    let dns_label = |s: &str| {
        (1..=63).contains(&s.len())
            && !s.starts_with('-')
            && !s.ends_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !dns_label(&grant.name) {
        problems.push((
            root.key("name"),
            format!(
                "invalid grant name {:?}: lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit",
                grant.name
            ),
        ));
    }
    if grant.rules.is_empty() {
        problems.push((
            root.key("rules"),
            "list the rules (`ingressCanary`) or checks (`ingressCanary.mainRemoved`) the grant may bypass".to_owned(),
        ));
    }
    for (index, rule) in grant.rules.iter().enumerate() {
        if let Some(problem) = rule_name_problem(rule) {
            problems.push((root.key("rules").index(index), problem));
        }
    }
    if grant.users.is_empty() && grant.groups.is_empty() && grant.service_accounts.is_empty() {
        problems.push((
            root.clone(),
            "name at least one of users, groups or serviceAccounts: a grant that names nobody lets nobody bypass".to_owned(),
        ));
    }
    for (field, names) in [("users", &grant.users), ("groups", &grant.groups)] {
        for (index, name) in names.iter().enumerate() {
            let at = root.key(field).index(index);
            if name.trim().is_empty() {
                problems.push((at, "must not be empty".to_owned()));
            } else if EVERYONE.contains(&name.as_str()) {
                problems.push((
                    at,
                    format!("{name:?} is everyone (or everyone of a kind): name the people who may bypass"),
                ));
            } else if field == "users" && name.starts_with(SERVICE_ACCOUNT_PREFIX) {
                problems.push((
                    at,
                    format!("write service accounts under serviceAccounts as namespace/name, not {name:?}"),
                ));
            }
        }
    }
    for (index, account) in grant.service_accounts.iter().enumerate() {
        if !is_service_account_ref(account) {
            problems.push((
                root.key("serviceAccounts").index(index),
                format!("{account:?} is not namespace/name (e.g. ops/incident-bot)"),
            ));
        }
    }
    if let Some(expires) = &grant.expires {
        if let Err(error) = expires.parse::<Timestamp>() {
            problems.push((
                root.key("expires"),
                format!("{expires:?} is not an RFC 3339 time like 2026-12-31T00:00:00Z: {error}"),
            ));
        }
    }
    let requirements = grant
        .namespaces
        .iter()
        .map(|n| ("namespaces", &n.match_expressions))
        .chain(
            grant
                .object_selector
                .iter()
                .map(|s| ("objectSelector", &s.match_expressions)),
        );
    for (field, expressions) in requirements {
        for (index, requirement) in expressions.iter().enumerate() {
            let needs_values = matches!(
                requirement.operator,
                LabelOperator::In | LabelOperator::NotIn
            );
            if needs_values == requirement.values.is_empty() {
                let message = if needs_values {
                    format!("{:?} needs at least one value", requirement.operator)
                } else {
                    format!("{:?} takes no values", requirement.operator)
                };
                problems.push((
                    root.key(field).key("matchExpressions").index(index),
                    message,
                ));
            }
        }
    }
    problems
}

/// `namespace/name` of a service account: a DNS label, `/`, a DNS subdomain.
fn is_service_account_ref(account: &str) -> bool {
    let Some((namespace, name)) = account.split_once('/') else {
        return false;
    };
    let part = |s: &str, dots: bool| {
        !s.is_empty()
            && !s.starts_with(['-', '.'])
            && !s.ends_with(['-', '.'])
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.')
            })
    };
    part(namespace, false) && part(name, true)
}

#[cfg(test)]
mod tests;
