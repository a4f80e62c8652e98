//! Runs a kind's rules over one request and folds the outcomes into a verdict.
//!
//! This is the one place where modes, per-check overrides, opt-outs and failure modes are
//! applied; rules only report findings.

use std::collections::BTreeSet;

use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::admission::Operation;

use crate::policy::config::{RolloutPolicy, RuleSettings, Rules};
use crate::policy::finding::{
    decide, decide_error, Endpoint, EvalError, Finding, Outcome, RulePhase,
};
use crate::policy::patch::{Edit, ObjectJson, PatchBuilder, PatchOp};
use crate::policy::view::ClusterView;

/// Everything a rule may read about one request.
pub struct Context<'a, K> {
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: Operation,
    /// Namespace of the object.
    pub namespace: &'a str,
    /// Name of the object (empty on CREATE with generateName).
    pub name: &'a str,
    /// The object as it would be stored (absent on DELETE).
    pub object: Option<&'a K>,
    /// The stored object (UPDATE and DELETE).
    pub old_object: Option<&'a K>,
    /// Who asked.
    pub user: &'a UserInfo,
    /// The policy governing the namespace.
    pub policy: &'a RolloutPolicy,
    /// Other objects in the cluster.
    pub view: &'a dyn ClusterView,
    /// The object's applied configuration, read once for every rule that asks
    /// ([`crate::policy::intent::Intent::of`]); `IntentCache::default()` when building one.
    pub intent: crate::policy::intent::IntentCache<'a>,
}

impl<K> Context<'_, K> {
    /// The rule settings of the governing policy.
    pub fn rules(&self) -> &Rules {
        &self.policy.spec.rules
    }
}

/// Signature of a rule's evaluation.
pub type Evaluate<K> = fn(&Context<'_, K>) -> Result<Vec<Finding>, EvalError>;

/// A rule as the engine sees it.
pub struct RuleEntry<K> {
    /// The rule's key under `rules`.
    pub name: &'static str,
    /// When it runs.
    pub phase: RulePhase,
    /// Its settings in a policy.
    pub settings: fn(&Rules) -> &dyn RuleSettings,
    /// Its evaluation.
    pub evaluate: Evaluate<K>,
}

/// A denial, with the rule and check that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// `rule.check`.
    pub source: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// What a finding became in a verdict, as reports show it (`check`, the API, `test`, the
/// audit). Findings that became nothing (mode off, quiet on this endpoint) are not recorded.
// Deserialize and JsonSchema: `PolicyTest` files expect outcomes by these names.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum FindingOutcome {
    /// Fixed by the patch (with a warning too when a value someone chose was rewritten).
    Patched,
    /// Reported as a warning.
    Warned,
    /// Refused the request.
    Denied,
    /// Would have refused the request; bypassed by a break-glass override of a person the
    /// policy names (reported as a warning, recorded in the audit annotations).
    Bypassed,
    /// Report-only: what the fix would patch is recorded (`RecordedFinding::patch`), nothing
    /// is applied.
    WouldPatch,
}

impl FindingOutcome {
    /// The outcome as reports spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingOutcome::Patched => "patched",
            FindingOutcome::Warned => "warned",
            FindingOutcome::Denied => "denied",
            FindingOutcome::WouldPatch => "would-patch",
            FindingOutcome::Bypassed => "bypassed",
        }
    }
}

/// One finding as it ended up in the verdict: which rule and check, what it became, and the
/// rule's message (without the `rollout-guard rule.check:` prefix warnings carry).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedFinding {
    /// The rule's key under `rules` (`ingressCanary`).
    pub rule: &'static str,
    /// The check (`missingMain`); `error` when the rule could not evaluate and answered by its
    /// `onError`.
    pub check: &'static str,
    /// What it became.
    pub outcome: FindingOutcome,
    /// What is wrong and what to do.
    pub message: String,
    /// The JSON Patch operations this finding contributed (`patched`) or would contribute
    /// (`would-patch`), against the object as sent; empty for the other outcomes.
    pub patch: Vec<PatchOp>,
}

impl RecordedFinding {
    /// `rule.check`, as `fired`, warnings and denials name it.
    pub fn source(&self) -> String {
        format!("{}.{}", self.rule, self.check)
    }

    /// Whether the rule could not evaluate and answered by its `onError` setting (the store
    /// not synced, an object it cannot read).
    pub fn is_evaluation_error(&self) -> bool {
        self.check == ERROR_CHECK
    }
}

/// The check name under which a rule's evaluation errors are reported (`rule.error`).
pub const ERROR_CHECK: &str = "error";

/// The decision for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// Reasons to refuse; empty means allowed.
    pub denials: Vec<Denial>,
    /// Short messages for the user (`kubectl` prints them).
    pub warnings: Vec<String>,
    /// JSON Patch operations against the object as sent.
    pub patch: Vec<PatchOp>,
    /// The policy that governed the object, if any.
    pub policy: Option<String>,
    /// Rules that ran.
    pub rules_run: Vec<&'static str>,
    /// `rule.check` of every finding that produced a patch, warning or denial.
    pub fired: BTreeSet<String>,
    /// Rules the object opted out of.
    pub skipped: Vec<&'static str>,
    /// Why the request was not evaluated at all (excluded namespace, subresource, ...).
    pub exempt: Option<String>,
    /// Every finding that produced a patch, warning or denial, in the order the rules ran, with
    /// its rule and check: what reports list per rule (`fired` only names them).
    pub findings: Vec<RecordedFinding>,
    /// Set when the request is a DELETE the system makes while cleaning up (namespace
    /// deletion, garbage collection): its denials were turned into warnings
    /// (`admission::cleanup`).
    pub cleanup: Option<&'static str>,
    /// Break-glass overrides of this request's denials, honoured or not
    /// (`policy::break_glass`).
    pub break_glass: Vec<crate::policy::break_glass::Override>,
}

impl Verdict {
    /// True when nothing denies.
    pub fn allowed(&self) -> bool {
        self.denials.is_empty()
    }

    /// A verdict for a request that rules do not look at.
    pub fn exempt(reason: impl Into<String>) -> Self {
        Self {
            exempt: Some(reason.into()),
            ..Self::default()
        }
    }

    /// The decision as a low-cardinality word for metrics and logs.
    pub fn decision(&self) -> &'static str {
        if !self.allowed() {
            "deny"
        } else if !self.patch.is_empty() {
            "patch"
        } else if !self.warnings.is_empty() {
            "warn"
        } else {
            "allow"
        }
    }
}

/// Longest warning we send; the API server truncates longer ones and `kubectl` prints every one.
pub const MAX_WARNING_CHARS: usize = 240;

/// A warning as sent: `rollout-guard rule.check: message`, cut to [`MAX_WARNING_CHARS`].
pub fn warning_text(source: &str, message: &str) -> String {
    let text = format!("rollout-guard {source}: {message}");
    if text.chars().count() <= MAX_WARNING_CHARS {
        text
    } else {
        let mut cut: String = text.chars().take(MAX_WARNING_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// Which rules the object opts out of, limited to what the policy allows.
fn opted_out(
    policy: &RolloutPolicy,
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Vec<String> {
    let Some(value) = annotations.and_then(|a| a.get(&policy.spec.opt_out.annotation)) else {
        return Vec::new();
    };
    let allowed = &policy.spec.opt_out.allowed_rules;
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .flat_map(|requested| {
            allowed
                .iter()
                .filter(move |rule| requested == "*" || requested == rule.as_str())
                .cloned()
        })
        .collect()
}

/// A `Fix::Keep` in force for the rest of a request: which paths, and which later findings'
/// edits it held back (or, not enforced, only saw).
struct Kept {
    paths: Vec<Vec<String>>,
    enforce: bool,
    rule: &'static str,
    check: &'static str,
    message: String,
    /// `rule.check` of each finding with an edit at or under `paths`.
    affected: BTreeSet<String>,
}

impl Kept {
    /// Whether `edit` changes something at or under a kept path (or replaces a parent of one).
    fn touches(&self, edit: &Edit) -> bool {
        let path = match edit {
            Edit::Set { path, .. } | Edit::Remove { path } => path,
        };
        self.paths
            .iter()
            .any(|kept| path.starts_with(kept) || kept.starts_with(path))
    }

    /// The finding as the verdict records it, naming what it held back.
    fn into_recorded(self) -> Option<(RecordedFinding, String)> {
        if self.affected.is_empty() {
            return None;
        }
        let affected: Vec<&str> = self.affected.iter().map(String::as_str).collect();
        let message = if self.enforce {
            format!("{} (left out: {})", self.message, affected.join(", "))
        } else {
            format!(
                "{} (not enforced in mode warn: {} changed it)",
                self.message,
                affected.join(", ")
            )
        };
        let source = format!("{}.{}", self.rule, self.check);
        let warning = warning_text(&source, &message);
        Some((
            RecordedFinding {
                rule: self.rule,
                check: self.check,
                outcome: FindingOutcome::Warned,
                message,
                patch: Vec::new(),
            },
            warning,
        ))
    }
}

/// Runs `rules` for one request. `object_json` is the object as sent (or parsed), read only along
/// the paths a patch touches (most requests need none); `annotations` are the object's (or, on DELETE, the old object's), for opt-out.
pub fn run<K>(
    rules: &[RuleEntry<K>],
    ctx: &Context<'_, K>,
    endpoint: Endpoint,
    object_json: Option<ObjectJson<'_>>,
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Verdict {
    let mut verdict = Verdict {
        policy: Some(ctx.policy.metadata.name.clone()),
        ..Verdict::default()
    };
    let opt_outs = opted_out(ctx.policy, annotations);
    let mut builder: Option<PatchBuilder> = None;
    // Set by a `Fix::Keep` (the rollback rule, which runs first): later edits under its paths
    // are held back.
    let mut kept: Option<Kept> = None;

    for rule in rules {
        if endpoint == Endpoint::Mutate && rule.phase == RulePhase::Validating {
            continue;
        }
        let settings = (rule.settings)(ctx.rules());
        if settings.mode() == crate::policy::Mode::Off {
            continue;
        }
        if opt_outs.iter().any(|name| name == rule.name) {
            verdict.skipped.push(rule.name);
            continue;
        }
        verdict.rules_run.push(rule.name);
        let (findings, error) = match (rule.evaluate)(ctx) {
            Ok(findings) => (findings, None),
            Err(mut error) => (error.take_checked(), Some(error)),
        };
        if let Some(error) = error {
            let source = format!("{}.{ERROR_CHECK}", rule.name);
            let message = match settings.on_error() {
                crate::policy::config::FailureMode::Allow => {
                    format!("{error}; allowed without this check")
                }
                crate::policy::config::FailureMode::Deny => {
                    format!("{error}; denied because the rule fails closed (onError: deny), retry shortly")
                }
            };
            let outcome = match decide_error(settings.on_error()) {
                Outcome::Deny => {
                    verdict.denials.push(Denial {
                        source: source.clone(),
                        message: message.clone(),
                    });
                    FindingOutcome::Denied
                }
                _ => {
                    verdict.warnings.push(warning_text(&source, &message));
                    FindingOutcome::Warned
                }
            };
            verdict.findings.push(RecordedFinding {
                rule: rule.name,
                check: ERROR_CHECK,
                outcome,
                message,
                patch: Vec::new(),
            });
            verdict.fired.insert(source);
        }
        for finding in findings {
            let mode = settings.mode_for(finding.check);
            let source = format!("{}.{}", finding.rule, finding.check);
            let mut finding_patch = Vec::new();
            let outcome = match decide(&finding, mode, endpoint, rule.phase) {
                Outcome::Nothing => continue,
                Outcome::Warning => {
                    verdict
                        .warnings
                        .push(warning_text(&source, &finding.message));
                    FindingOutcome::Warned
                }
                Outcome::Deny => {
                    verdict.denials.push(Denial {
                        source: source.clone(),
                        message: finding.message.clone(),
                    });
                    FindingOutcome::Denied
                }
                Outcome::Keep { paths, enforce } => {
                    // Reported at the end, and only if some edit was affected.
                    if kept.is_none() {
                        kept = Some(Kept {
                            paths,
                            enforce,
                            rule: finding.rule,
                            check: finding.check,
                            message: finding.message,
                            affected: BTreeSet::new(),
                        });
                    }
                    continue;
                }
                Outcome::Patch { mut edits, warn } => {
                    if let Some(kept) = kept.as_mut() {
                        if edits.iter().any(|edit| kept.touches(edit)) {
                            kept.affected.insert(source.clone());
                            if kept.enforce {
                                edits.retain(|edit| !kept.touches(edit));
                            }
                        }
                        if edits.is_empty() {
                            continue;
                        }
                    }
                    if builder.is_none() {
                        match object_json {
                            Some(object) => builder = Some(PatchBuilder::new(object)),
                            // Nothing to patch against (validate endpoint, DELETE): report instead.
                            None => {
                                verdict
                                    .warnings
                                    .push(warning_text(&source, &finding.message));
                                verdict.findings.push(RecordedFinding {
                                    rule: finding.rule,
                                    check: finding.check,
                                    outcome: FindingOutcome::Warned,
                                    message: finding.message,
                                    patch: Vec::new(),
                                });
                                verdict.fired.insert(source);
                                continue;
                            }
                        }
                    }
                    let Some(builder) = builder.as_mut() else {
                        continue;
                    };
                    let before = builder.ops().len();
                    for edit in &edits {
                        if let Err(error) = builder.apply(edit) {
                            // A rule asked for an impossible edit: a bug, reported, never applied.
                            verdict.warnings.push(warning_text(
                                &source,
                                &format!("internal: fix not applied: {error}"),
                            ));
                        }
                    }
                    if builder.ops().len() == before {
                        // Already satisfied: nothing changed, nothing to report.
                        continue;
                    }
                    finding_patch = builder.ops()[before..].to_vec();
                    if warn {
                        verdict
                            .warnings
                            .push(warning_text(&source, &finding.message));
                    }
                    FindingOutcome::Patched
                }
                Outcome::WouldPatch { mut edits } => {
                    // Computed on a builder of its own against the object as sent, so what is
                    // recorded is exactly what `mutate` would patch (kept paths included), and
                    // nothing reaches the real patch.
                    if let Some(kept) = kept.as_ref().filter(|kept| kept.enforce) {
                        edits.retain(|edit| !kept.touches(edit));
                    }
                    let Some(object) = object_json else {
                        continue;
                    };
                    let mut shadow = PatchBuilder::new(object);
                    for edit in &edits {
                        if let Err(error) = shadow.apply(edit) {
                            verdict.warnings.push(warning_text(
                                &source,
                                &format!("internal: fix cannot be computed: {error}"),
                            ));
                        }
                    }
                    finding_patch = shadow.finish();
                    if finding_patch.is_empty() {
                        continue;
                    }
                    FindingOutcome::WouldPatch
                }
            };
            verdict.findings.push(RecordedFinding {
                rule: finding.rule,
                check: finding.check,
                outcome,
                message: finding.message,
                patch: finding_patch,
            });
            verdict.fired.insert(source);
        }
    }
    if let Some((recorded, warning)) = kept.and_then(Kept::into_recorded) {
        verdict.warnings.push(warning);
        verdict.fired.insert(recorded.source());
        verdict.findings.push(recorded);
    }
    if let Some(builder) = builder {
        verdict.patch = builder.finish();
    }
    verdict
}
