//! What rules report, and how a rule's mode turns findings into a verdict.
//!
//! Violations are data: a rule returns the findings it sees and the fixes it would make; whether a
//! finding becomes a patch, a warning or a denial is decided here, in one place, from the mode.

use crate::policy::config::{FailureMode, Mode};
use crate::policy::patch::Edit;

/// What `enforce` does with a finding that has no routine fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The finding harms a rollout or traffic: enforce denies.
    Deny,
    /// The finding is worth knowing but not worth blocking a release: always a warning.
    Warn,
}

/// How a finding can be fixed by the mutating webhook.
#[derive(Debug, Clone, PartialEq)]
pub enum Fix {
    /// Nothing to patch: the user has to change the object.
    None,
    /// Fills in something the user did not choose (a missing label, an API-server default): done
    /// quietly in `mutate` and `enforce` modes.
    Routine(Vec<Edit>),
    /// Rewrites a value the user chose: done with a warning in `mutate` mode; `enforce` denies
    /// instead (when the severity is `Deny`).
    Override(Vec<Edit>),
    /// Nothing at or under these paths may change for this request: the edits later rules make
    /// there are left out (`mutate`, `enforce`) or only reported (`warn`), and the finding is
    /// reported only when some edit was affected. Never a denial. The rollback rule: a
    /// template equal to one of the Deployment's ReplicaSets must reach the controller as sent,
    /// or it rolls every pod through a new ReplicaSet instead of reusing that one.
    Keep(Vec<Vec<String>>),
}

/// One thing a rule found on one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The rule's key under `rules` (e.g. `rollingUpdate`).
    pub rule: &'static str,
    /// The check within the rule (e.g. `maxUnavailable`); per-check modes key on it.
    pub check: &'static str,
    /// What is wrong, what happens because of it and how to fix it.
    pub message: String,
    /// What `enforce` does when the fix is not routine.
    pub severity: Severity,
    /// The patch that would fix it, if any.
    pub fix: Fix,
}

impl Finding {
    /// A finding without a fix.
    pub fn new(
        rule: &'static str,
        check: &'static str,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        Self {
            rule,
            check,
            message: message.into(),
            severity,
            fix: Fix::None,
        }
    }

    /// The same finding with a fix.
    pub fn with_fix(mut self, fix: Fix) -> Self {
        self.fix = fix;
        self
    }
}

/// Why a rule could not evaluate. Mapped to allow-with-warning or deny by the rule's
/// `onError` setting, never to a panic or an HTTP error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The cluster store has not completed its first sync (or its watch broke).
    #[error("cluster state is not synced yet ({reason})")]
    NotSynced {
        /// Which kinds are not synced, and why.
        reason: String,
        /// Findings of the checks that need no other objects, made before the rule stopped:
        /// they are reported as usual, so a bad value is caught even before the first sync.
        checked: Vec<Finding>,
    },
    /// The object cannot be read the way the rule needs.
    #[error("the object cannot be evaluated: {0}")]
    Unreadable(String),
}

impl EvalError {
    /// Not synced, with the findings made so far.
    pub fn not_synced(reason: String, checked: Vec<Finding>) -> Self {
        EvalError::NotSynced { reason, checked }
    }

    /// Splits off the findings made before the rule stopped.
    pub fn take_checked(&mut self) -> Vec<Finding> {
        match self {
            EvalError::NotSynced { checked, .. } => std::mem::take(checked),
            EvalError::Unreadable(_) => Vec::new(),
        }
    }
}

/// Which webhook endpoint is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/mutate`: may patch.
    Mutate,
    /// `/validate`: sees the final object, may only allow or deny.
    Validate,
}

impl Endpoint {
    /// Lowercase name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }
}

/// When a rule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulePhase {
    /// A rule of the object itself that can fix things: everything on `/mutate`; on `/validate`
    /// only its denials (the final object may have been changed by other webhooks after us).
    Mutating,
    /// A rule that needs the final object or other objects: only on `/validate`.
    Validating,
}

/// What one finding became.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing (mode off, or nothing to report on this endpoint).
    Nothing,
    /// Apply these edits; warn with the message when `warn` is true.
    Patch { edits: Vec<Edit>, warn: bool },
    /// Report-only: record what these edits would change, apply nothing, tell nobody.
    WouldPatch { edits: Vec<Edit> },
    /// Later rules' edits at or under `paths` are left out (`enforce: true`) or only reported.
    Keep {
        paths: Vec<Vec<String>>,
        enforce: bool,
    },
    /// Tell the user.
    Warning,
    /// Refuse the request.
    Deny,
}

/// Decides what one finding becomes, given its mode, the endpoint and the rule's phase.
pub fn decide(finding: &Finding, mode: Mode, endpoint: Endpoint, phase: RulePhase) -> Outcome {
    // A mutating rule's findings reach the user once, through /mutate; /validate repeats only the
    // denials so a later webhook cannot undo what enforce requires.
    let quiet_on_validate = phase == RulePhase::Mutating && endpoint == Endpoint::Validate;
    let outcome = match (mode, &finding.fix) {
        (Mode::Off, _) => Outcome::Nothing,
        // Only /mutate patches, so only there is anything to keep.
        (_, Fix::Keep(_)) if endpoint == Endpoint::Validate => Outcome::Nothing,
        (mode, Fix::Keep(paths)) => Outcome::Keep {
            paths: paths.clone(),
            // Report-only changes nothing, other rules' edits included.
            enforce: !matches!(mode, Mode::Warn | Mode::ReportOnly),
        },
        (Mode::Warn, _) => Outcome::Warning,
        (Mode::Mutate, Fix::Routine(edits)) => Outcome::Patch {
            edits: edits.clone(),
            warn: false,
        },
        (Mode::Mutate, Fix::Override(edits)) => Outcome::Patch {
            edits: edits.clone(),
            warn: true,
        },
        (Mode::Mutate, Fix::None) => Outcome::Warning,
        (Mode::ReportOnly, Fix::Routine(edits) | Fix::Override(edits)) => Outcome::WouldPatch {
            edits: edits.clone(),
        },
        (Mode::ReportOnly, Fix::None) => Outcome::Warning,
        (Mode::Enforce, Fix::Routine(edits)) => Outcome::Patch {
            edits: edits.clone(),
            warn: false,
        },
        (Mode::Enforce, _) => match finding.severity {
            Severity::Deny => Outcome::Deny,
            Severity::Warn => Outcome::Warning,
        },
    };
    match outcome {
        // Only /mutate can patch; on /validate a fixable finding means the mutating webhook has
        // not run (or was undone): report it rather than silently passing.
        Outcome::Patch { .. } if endpoint == Endpoint::Validate => {
            if quiet_on_validate {
                Outcome::Nothing
            } else {
                Outcome::Warning
            }
        }
        Outcome::Warning if quiet_on_validate => Outcome::Nothing,
        // Recorded once, by /mutate, which sees the object the fix would apply to.
        Outcome::WouldPatch { .. } if endpoint == Endpoint::Validate => Outcome::Nothing,
        other => other,
    }
}

/// What a rule that could not evaluate does.
pub fn decide_error(on_error: FailureMode) -> Outcome {
    match on_error {
        FailureMode::Allow => Outcome::Warning,
        FailureMode::Deny => Outcome::Deny,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finding(fix: Fix, severity: Severity) -> Finding {
        Finding::new("rule", "check", severity, "msg").with_fix(fix)
    }

    #[test]
    fn modes_on_mutate_endpoint() {
        let routine = Fix::Routine(vec![Edit::set(["a"], json!(1))]);
        let over = Fix::Override(vec![Edit::set(["a"], json!(1))]);
        let keep = Fix::Keep(vec![vec!["spec".to_owned(), "template".to_owned()]]);
        let cases = [
            (Mode::Off, routine.clone(), Severity::Deny, "nothing"),
            (Mode::Warn, routine.clone(), Severity::Deny, "warning"),
            (Mode::Mutate, routine.clone(), Severity::Deny, "patch-quiet"),
            (Mode::Mutate, over.clone(), Severity::Deny, "patch-warn"),
            (Mode::Mutate, Fix::None, Severity::Deny, "warning"),
            (
                Mode::Enforce,
                routine.clone(),
                Severity::Deny,
                "patch-quiet",
            ),
            (Mode::Enforce, over.clone(), Severity::Deny, "deny"),
            (Mode::Enforce, over.clone(), Severity::Warn, "warning"),
            (Mode::Enforce, Fix::None, Severity::Deny, "deny"),
            (Mode::Off, keep.clone(), Severity::Warn, "nothing"),
            (Mode::Warn, keep.clone(), Severity::Warn, "keep-report"),
            (Mode::Mutate, keep.clone(), Severity::Warn, "keep"),
            (Mode::Enforce, keep.clone(), Severity::Deny, "keep"),
            (
                Mode::ReportOnly,
                routine.clone(),
                Severity::Deny,
                "would-patch",
            ),
            (
                Mode::ReportOnly,
                over.clone(),
                Severity::Deny,
                "would-patch",
            ),
            (Mode::ReportOnly, Fix::None, Severity::Deny, "warning"),
            (
                Mode::ReportOnly,
                keep.clone(),
                Severity::Warn,
                "keep-report",
            ),
        ];
        for (mode, fix, severity, expected) in cases {
            let got = match decide(
                &finding(fix, severity),
                mode,
                Endpoint::Mutate,
                RulePhase::Mutating,
            ) {
                Outcome::Nothing => "nothing",
                Outcome::Warning => "warning",
                Outcome::Deny => "deny",
                Outcome::Patch { warn: false, .. } => "patch-quiet",
                Outcome::Patch { warn: true, .. } => "patch-warn",
                Outcome::Keep { enforce: true, .. } => "keep",
                Outcome::Keep { enforce: false, .. } => "keep-report",
                Outcome::WouldPatch { .. } => "would-patch",
            };
            assert_eq!(got, expected, "mode {mode:?}");
        }
    }

    #[test]
    fn mutating_rules_only_deny_on_validate() {
        let over = Fix::Override(vec![Edit::set(["a"], json!(1))]);
        let f = finding(over, Severity::Deny);
        assert_eq!(
            decide(&f, Mode::Mutate, Endpoint::Validate, RulePhase::Mutating),
            Outcome::Nothing
        );
        assert_eq!(
            decide(&f, Mode::Warn, Endpoint::Validate, RulePhase::Mutating),
            Outcome::Nothing
        );
        assert_eq!(
            decide(&f, Mode::Enforce, Endpoint::Validate, RulePhase::Mutating),
            Outcome::Deny
        );
        assert_eq!(
            decide(&f, Mode::Warn, Endpoint::Validate, RulePhase::Validating),
            Outcome::Warning
        );
        // Report-only never speaks on /validate: /mutate recorded what it would patch.
        for phase in [RulePhase::Mutating, RulePhase::Validating] {
            assert_eq!(
                decide(&f, Mode::ReportOnly, Endpoint::Validate, phase),
                Outcome::Nothing
            );
        }
        let keep = finding(Fix::Keep(vec![vec!["spec".into()]]), Severity::Deny);
        for mode in [Mode::Warn, Mode::Mutate, Mode::Enforce] {
            assert_eq!(
                decide(&keep, mode, Endpoint::Validate, RulePhase::Mutating),
                Outcome::Nothing,
                "nothing to keep on validate ({mode:?})"
            );
        }
    }
}
