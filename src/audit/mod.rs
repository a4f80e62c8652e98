//! Background audit: re-judges objects that already exist and turns the verdicts into policy
//! reports (OpenReports `Report`/`ClusterReport`, or `wgpolicyk8s.io/v1alpha2`
//! `PolicyReport`/`ClusterPolicyReport`, what Kyverno writes and Policy Reporter reads).
//!
//! Pure: no IO, no clock, no tokio. The live loop (Lease, listing, server-side apply, stale
//! removal) and `rollout-guard audit` are thin edges around two calls:
//!
//! ```text
//! let result = audit::run(&documents, view, &policies, &AuditOptions::at(now));
//! let reports = audit::reports(&result, Flavor::OpenReports, &ReportOptions::default());
//! ```
//!
//! - [`run`] judges every object with [`crate::evaluate::evaluate_verdict`] (`evaluate_one` without
//!   the patched object), the evaluation behind
//!   admission, `check`, `POST /v1/evaluate` and `test`: the same verdicts and patches. Each
//!   object is reviewed as on CREATE (mutate, the patch applied, validate) against `view` as it
//!   is: the objects are already in the cluster state, so they are not added to it again
//!   ([`crate::evaluate::Cluster::Exactly`]).
//! - **Where the objects come from.** The store keeps compact summaries (`DeploymentInfo`, ...),
//!   not whole objects, and rules read whole objects. So the caller supplies them: live, the
//!   audit lists each audited kind from the API server page by page ([`live_document`] wraps
//!   each item), calls [`run`] per page against the store's view and merges the pages with
//!   [`AuditResult::absorb`] (the order does not matter: reports are sorted); offline
//!   ([`run_manifests`], `rollout-guard audit --objects`) the manifests are both the objects and
//!   the cluster state, as in `check`.
//! - [`reports`] builds one report per namespace with an audited object and one cluster report
//!   when a cluster-scoped object was audited, all named [`REPORT_NAME`] and labelled
//!   [`MANAGED_BY_LABEL`]`: `[`MANAGED_BY_VALUE`], so a writer applies them in place and deletes
//!   the ones it did not produce this round (stale). Output is deterministic: an unchanged
//!   cluster gives byte-identical reports, so nothing churns in etcd.
//! - One result per object and check that is not a pass (denied: `fail`, warned or would be
//!   patched: `warn`, could not evaluate: `error`); a rule that ran on an object without a
//!   finding counts once as a `pass` in the summary. Each report keeps at most
//!   [`ReportOptions::max_results`] results (failures first) and says how many it left out.
//!
//! The live loop judges through [`cache::run_cached`]: a periodic run reuses the verdict of every
//! object whose version, policies and consulted cluster state did not move since it was judged.
//!
//! Report-only rules (`mode: reportOnly`) never patch: their fixes show as `would-patch` results
//! with the patch as readable lines.

pub mod cache;
pub mod command;
pub mod lease;
pub mod live_metrics;
pub mod report;
pub mod run_loop;
pub mod writer;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::Value;

use crate::admission::ReviewContext;
use crate::evaluate::{evaluate_verdict, Decision, Evaluation, Requester, RuleFinding};
use crate::manifest::Document;
use crate::policy::engine::FindingOutcome;
use crate::policy::set::PolicySet;
use crate::policy::view::ClusterView;
use crate::store::layered::LayeredView;

pub use report::{reports, Flavor, Report, ReportOptions, Timestamp};

/// The name of every report rollout-guard writes (one per namespace, one cluster-wide).
pub const REPORT_NAME: &str = "rollout-guard";
/// The label every report carries, so a writer finds its own (and stale) reports.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "rollout-guard";
/// `source` of every result.
pub const SOURCE: &str = "rollout-guard";
/// The user the audit reviews objects as.
pub const AUDIT_USER: &str = "rollout-guard-audit";

/// How to audit.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The namespace rollout-guard runs in (never governed), as `serve --namespace` says.
    pub own_namespace: Option<String>,
    /// Who the reviews name as the requester (change-cause rules read it).
    pub requester: Requester,
    /// The time the objects are judged at (break-glass overrides expire); passed in so the
    /// audit stays pure.
    pub now: SystemTime,
    /// The webhook's count of admission reviews in flight, when the audit runs beside it: the
    /// audit gives way to them (see [`AuditOptions::give_way`]).
    pub reviews_in_flight: Option<Arc<AtomicUsize>>,
    /// The audit's work/rest rhythm while reviews keep arriving (see [`Pace`]); shared by the
    /// clones of one run's options.
    pub pace: Arc<Mutex<Pace>>,
}

/// How long the audit waits for reviews in flight before it judges one object anyway: under
/// load that never pauses it still progresses, one object per wait.
const GIVE_WAY_AT_MOST: Duration = Duration::from_millis(2);
/// How long it sleeps between looks.
const GIVE_WAY_NAP: Duration = Duration::from_micros(50);
/// A review seen in flight less than this long ago means reviews keep arriving.
const BUSY_FOR: Duration = Duration::from_millis(20);
/// How long the audit works, while reviews keep arriving, before it rests.
const WORK_SLICE: Duration = Duration::from_micros(500);
/// How long it rests then.
const REST: Duration = Duration::from_millis(2);

/// The audit's duty cycle under admission load. Waiting only while a review is in flight
/// (see [`AuditOptions::give_way`]) cannot help the review that arrives just after the wait:
/// it starts beside an object the audit is already judging. Measured on the bench's two cores
/// (back-to-back audits of 40k objects, 2000 reviews/s), p99 was 1.7 to 4.4 ms with waiting
/// alone and 1.26 to 1.42 ms with this rhythm (1.15 ms with no audit at all): while reviews
/// keep arriving the audit works at most [`WORK_SLICE`] and then rests [`REST`], so at most a
/// fifth of the reviews share the machine with it. An idle webhook leaves the audit at full
/// speed; under constant load a run takes about five times as long.
#[derive(Debug, Default)]
pub struct Pace {
    /// When a review was last seen in flight.
    busy_at: Option<Instant>,
    /// When the current work slice began (in the future while resting).
    slice_began: Option<Instant>,
}

impl Pace {
    /// Before the next object, at `now`: how long to rest first, if at all.
    fn rest(&mut self, now: Instant, review_in_flight: bool) -> Option<Duration> {
        if review_in_flight {
            self.busy_at = Some(now);
        }
        let busy = self
            .busy_at
            .is_some_and(|at| now.saturating_duration_since(at) < BUSY_FOR);
        if !busy {
            self.slice_began = None;
            return None;
        }
        let began = *self.slice_began.get_or_insert(now);
        if now.saturating_duration_since(began) < WORK_SLICE {
            return None;
        }
        // The next slice begins when the rest ends.
        self.slice_began = Some(now + REST);
        Some(REST)
    }
}

impl AuditOptions {
    /// The defaults, judging at `now`.
    pub fn at(now: SystemTime) -> Self {
        Self {
            now,
            own_namespace: None,
            requester: Requester {
                username: AUDIT_USER.to_owned(),
                groups: vec!["system:authenticated".to_owned()],
            },
            reviews_in_flight: None,
            pace: Arc::default(),
        }
    }

    /// Before reading (from a file or list page) or judging an object: waits, asleep, while admission reviews are in flight (at most
    /// [`GIVE_WAY_AT_MOST`]). The audit thread is `SCHED_IDLE`, so it never takes a core a
    /// review wants; but on the two cores the bench measures, a review running beside the audit
    /// on the other core still got slower (shared caches and memory bandwidth, and SMT siblings
    /// on a VM): admission p99 rose 1.3 to 2.6 times. Giving way bounds that overlap to the rest
    /// of one object's reading or evaluation; [`Pace`] rests between work slices while reviews
    /// keep arriving, for the reviews that arrive mid-object.
    pub fn give_way(&self) {
        let Some(in_flight) = &self.reviews_in_flight else {
            return;
        };
        let busy = in_flight.load(Ordering::Relaxed) > 0;
        let rest = self
            .pace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .rest(Instant::now(), busy);
        if let Some(rest) = rest {
            std::thread::sleep(rest);
        }
        if in_flight.load(Ordering::Relaxed) == 0 {
            return;
        }
        let started = Instant::now();
        while in_flight.load(Ordering::Relaxed) > 0 && started.elapsed() < GIVE_WAY_AT_MOST {
            std::thread::sleep(GIVE_WAY_NAP);
        }
    }
}

/// What one result says, in the reports' words plus the two kinds of `warn` we tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditOutcome {
    /// Admission would deny the object (`fail`).
    Fail,
    /// The rule could not evaluate, or the object cannot be read (`error`).
    Error,
    /// Admission would warn (`warn`).
    Warn,
    /// Admission would patch the object: it lacks what the mutating webhook fills in (created
    /// while the webhook was down or before it was installed) (`warn`).
    Patch,
    /// A report-only rule would patch it (`warn`).
    WouldPatch,
    /// Admission would deny it, but a break-glass override of a person the policy names lets
    /// it through (`skip`, as Kyverno reports a policy exception).
    Bypassed,
}

impl AuditOutcome {
    /// The `result` (OpenReports, wgpolicyk8s v1alpha2) of this outcome.
    pub fn result(self) -> &'static str {
        match self {
            AuditOutcome::Fail => "fail",
            AuditOutcome::Error => "error",
            AuditOutcome::Warn | AuditOutcome::Patch | AuditOutcome::WouldPatch => "warn",
            AuditOutcome::Bypassed => "skip",
        }
    }

    /// The `severity` of a result with this outcome.
    pub fn severity(self) -> &'static str {
        match self {
            AuditOutcome::Fail => "high",
            AuditOutcome::Error | AuditOutcome::Warn => "medium",
            AuditOutcome::Patch | AuditOutcome::WouldPatch => "low",
            AuditOutcome::Bypassed => "info",
        }
    }

    /// How the `outcome` property spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Fail => "denied",
            AuditOutcome::Error => "error",
            AuditOutcome::Warn => "warned",
            AuditOutcome::Patch => "patched",
            AuditOutcome::WouldPatch => "would-patch",
            AuditOutcome::Bypassed => "bypassed",
        }
    }
}

/// Counts as a report's summary has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Rules that ran on an object without a finding.
    pub pass: usize,
    /// Denials.
    pub fail: usize,
    /// Warnings and patches (would-be or report-only).
    pub warn: usize,
    /// Rules that could not evaluate, objects that cannot be read.
    pub error: usize,
    /// Denials a break-glass override lets through.
    pub skip: usize,
}

impl Counts {
    fn add_result(&mut self, outcome: AuditOutcome) {
        match outcome.result() {
            "fail" => self.fail += 1,
            "error" => self.error += 1,
            "skip" => self.skip += 1,
            _ => self.warn += 1,
        }
    }

    /// Adds another count to this one.
    pub fn add(&mut self, other: &Counts) {
        self.pass += other.pass;
        self.fail += other.fail;
        self.warn += other.warn;
        self.error += other.error;
        self.skip += other.skip;
    }
}

/// One result that is not a pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditFinding {
    /// The rule's key under `rules` (`rollingUpdate`); `object` for an unreadable object.
    pub rule: String,
    /// The check (`maxUnavailable`; `error` when the rule could not evaluate).
    pub check: String,
    /// What it is.
    pub outcome: AuditOutcome,
    /// What is wrong and what to do.
    pub message: String,
    /// What would be (or, for a report-only rule, would have been) patched, as readable lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patch: Vec<String>,
}

/// One audited object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditedObject {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`, when the object has one (live objects do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Where it was read (`file:line`, or `cluster` live).
    pub location: String,
    /// The RolloutPolicy that governed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// What admission would decide for it now.
    pub decision: Decision,
    /// Rules that ran without a finding.
    pub passed: Vec<String>,
    /// Everything that is not a pass, by rule and check.
    pub findings: Vec<AuditFinding>,
}

impl AuditedObject {
    /// The object's counts: one pass per rule that passed, one result per finding.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            pass: self.passed.len(),
            ..Counts::default()
        };
        for finding in &self.findings {
            counts.add_result(finding.outcome);
        }
        counts
    }
}

/// The audit of a set of objects: what reports and metrics are built from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditResult {
    /// The digest of the policies the objects were judged by.
    pub policy_digest: String,
    /// Objects the policies looked at (kinds rollout-guard handles, governed namespaces).
    /// Shared with the verdicts the live audit keeps between runs ([`cache`]), not copied.
    pub objects: Vec<Arc<AuditedObject>>,
    /// Objects not looked at (other kinds, exempt or ungoverned namespaces).
    pub not_checked: usize,
    /// The sum of every audited object's counts.
    pub totals: Counts,
}

impl AuditResult {
    /// Adds another page of the same audit (same policies).
    pub fn absorb(&mut self, other: AuditResult) {
        if self.policy_digest.is_empty() {
            self.policy_digest = other.policy_digest;
        }
        self.objects.extend(other.objects);
        self.not_checked += other.not_checked;
        self.totals.add(&other.totals);
    }

    /// Counts by rule key and namespace (empty for cluster-scoped), for metrics. Passes count
    /// under the rule that passed.
    pub fn counts_by_rule_namespace(&self) -> BTreeMap<(String, String), Counts> {
        let mut by = BTreeMap::<(String, String), Counts>::new();
        for object in &self.objects {
            for rule in &object.passed {
                by.entry((rule.clone(), object.namespace.clone()))
                    .or_default()
                    .pass += 1;
            }
            for finding in &object.findings {
                by.entry((finding.rule.clone(), object.namespace.clone()))
                    .or_default()
                    .add_result(finding.outcome);
            }
        }
        by
    }

    /// Whether any object would be denied.
    pub fn any_fail(&self) -> bool {
        self.totals.fail > 0
    }

    fn push(&mut self, evaluation: Evaluation, document: &Document) {
        self.push_audited(audited(evaluation, document).map(Arc::new));
    }

    /// Adds one object's audit; `None` for an object the policies do not look at.
    fn push_audited(&mut self, audited: Option<Arc<AuditedObject>>) {
        match audited {
            Some(object) => {
                self.totals.add(&object.counts());
                self.objects.push(object);
            }
            None => self.not_checked += 1,
        }
    }
}

/// Wraps an object read from the API server as a document to audit.
pub fn live_document(value: Value) -> Document {
    Document {
        file: "cluster".into(),
        line: 0,
        value,
    }
}

/// Audits `objects` against `view` as the cluster state (the objects are taken to be in it
/// already, as the store's are).
pub fn run(
    objects: &[Document],
    view: &dyn ClusterView,
    policies: &PolicySet,
    options: &AuditOptions,
) -> AuditResult {
    let ctx = ReviewContext {
        policies,
        view,
        own_namespace: options.own_namespace.as_deref(),
        now: options.now,
    };
    let mut result = AuditResult {
        policy_digest: policies.digest().to_string(),
        ..AuditResult::default()
    };
    for (index, document) in objects.iter().enumerate() {
        let evaluation = evaluate_verdict(
            &format!("audit-{}", index + 1),
            document,
            &ctx,
            &options.requester,
        );
        result.push(evaluation, document);
    }
    result
}

/// Audits manifests that are the whole cluster (`rollout-guard audit --objects`): each is
/// judged with the others as cluster state, as `check` does. Also returns the problems of
/// storing them as cluster state (an object defined twice, ...), with `file:line`.
pub fn run_manifests(
    documents: &[Document],
    policies: &PolicySet,
    options: &AuditOptions,
) -> (AuditResult, Vec<String>) {
    let (view, warnings) = LayeredView::new(documents, None);
    (run(documents, &view, policies, options), warnings)
}

/// The audit's view of one evaluation; `None` when the webhook would not look at the object.
fn audited(evaluation: Evaluation, document: &Document) -> Option<AuditedObject> {
    if evaluation.decision == Decision::NotChecked {
        return None;
    }
    let mut object = AuditedObject {
        api_version: evaluation.api_version.clone(),
        kind: evaluation.kind.clone(),
        namespace: evaluation.namespace.clone(),
        name: evaluation.name.clone(),
        uid: document.metadata_text("uid").map(str::to_owned),
        location: evaluation.location.clone(),
        policy: evaluation.policy.clone(),
        decision: evaluation.decision,
        passed: Vec::new(),
        findings: Vec::new(),
    };
    if evaluation.decision == Decision::Invalid {
        object.findings.push(AuditFinding {
            rule: "object".to_owned(),
            check: "invalid".to_owned(),
            outcome: AuditOutcome::Error,
            message: evaluation
                .error
                .clone()
                .unwrap_or_else(|| "the object cannot be read".to_owned()),
            patch: Vec::new(),
        });
        return Some(object);
    }
    for finding in &evaluation.findings {
        object.findings.push(audit_finding(finding));
    }
    object.passed = evaluation
        .rules_run
        .iter()
        .filter(|rule| !object.findings.iter().any(|f| f.rule == **rule))
        .map(|rule| (*rule).to_owned())
        .collect();
    object.passed.sort();
    object.findings.sort_by(|a, b| {
        (&a.rule, &a.check, a.outcome, &a.message).cmp(&(&b.rule, &b.check, b.outcome, &b.message))
    });
    Some(object)
}

fn audit_finding(finding: &RuleFinding) -> AuditFinding {
    let (rule, check) = finding
        .rule
        .split_once('.')
        .map(|(rule, check)| (rule.to_owned(), check.to_owned()))
        .unwrap_or_else(|| (finding.rule.clone(), String::new()));
    let outcome = if finding.is_evaluation_error() {
        AuditOutcome::Error
    } else {
        match finding.outcome {
            FindingOutcome::Denied => AuditOutcome::Fail,
            FindingOutcome::Warned => AuditOutcome::Warn,
            FindingOutcome::Patched => AuditOutcome::Patch,
            FindingOutcome::Bypassed => AuditOutcome::Bypassed,
            FindingOutcome::WouldPatch => AuditOutcome::WouldPatch,
        }
    };
    AuditFinding {
        rule,
        check,
        outcome,
        message: finding.message.clone(),
        patch: finding.patch.clone(),
    }
}

#[cfg(test)]
mod tests;
