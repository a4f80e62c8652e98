//! Prometheus metrics, hand-rolled: fixed label sets backed by atomics on the request path, text
//! format 0.0.4 rendered at scrape time.
//!
//! Labels are low-cardinality by construction: endpoints, kinds, operations and decisions are
//! closed sets (anything unexpected counts as `other`); `rule`/`check` come from the rule code
//! (static strings), capped anyway. Object names never become labels.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use crate::admission::Reviewed;
use crate::policy::finding::Endpoint;
use crate::policy::view::{ObjectCounts, SyncStatus};
use crate::reload::ReloadStatus;

const ENDPOINTS: [&str; 2] = ["mutate", "validate"];
const KINDS: [&str; 5] = ["Deployment", "Service", "Ingress", "HTTPRoute", "other"];
const OPERATIONS: [&str; 5] = ["CREATE", "UPDATE", "DELETE", "CONNECT", "other"];
/// `Verdict::decision()` words, plus `invalid` for a review whose object could not be read.
const DECISIONS: [&str; 5] = ["allow", "patch", "warn", "deny", "invalid"];
/// How a rule check's finding ended up; `warn` includes rewrites announced with a warning.
const OUTCOMES: [&str; 3] = ["patch", "warn", "deny"];
/// Upper bounds in seconds: a healthy review takes well under a millisecond; the tail buckets
/// show slow clients and the approach of the API server's timeout.
const DURATION_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 5.0,
];
/// Distinct `rule.check` series kept; more would mean a bug, and counts go to `other`.
const MAX_FINDING_SERIES: usize = 256;
/// Distinct break-glass series kept (endpoint × rule.check × result), capped like findings.
const MAX_BREAK_GLASS_SERIES: usize = 256;

/// Why a request got no AdmissionReview back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// Not JSON, truncated, fields of the wrong type.
    Malformed,
    /// JSON but not an `admission.k8s.io/v1` AdmissionReview.
    WrongType,
    /// An AdmissionReview without a request or uid.
    NoRequest,
    /// Body over `--max-body-bytes`.
    TooLarge,
    /// Body not received within `--request-timeout-ms`.
    Timeout,
    /// The connection failed while the body was read.
    BodyRead,
    /// A content type other than JSON.
    ContentType,
    /// Wrong method for the path.
    Method,
    /// Unknown path.
    NotFound,
    /// TLS handshake failed or timed out (plain HTTP to the TLS port, scanners, old TLS).
    TlsHandshake,
    /// An API call without valid credentials.
    Unauthenticated,
    /// An API call over the rate limit.
    RateLimited,
    /// An API call whose manifests cannot be read.
    Manifests,
    /// An API call whose credentials could not be checked (API server unreachable).
    AuthUnavailable,
    /// An API call with a query parameter it does not take.
    Query,
}

impl BadRequest {
    const ALL: [BadRequest; 15] = [
        Self::Malformed,
        Self::WrongType,
        Self::NoRequest,
        Self::TooLarge,
        Self::Timeout,
        Self::BodyRead,
        Self::ContentType,
        Self::Method,
        Self::NotFound,
        Self::TlsHandshake,
        Self::Unauthenticated,
        Self::RateLimited,
        Self::Manifests,
        Self::AuthUnavailable,
        Self::Query,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::WrongType => "wrong_type",
            Self::NoRequest => "no_request",
            Self::TooLarge => "too_large",
            Self::Timeout => "timeout",
            Self::BodyRead => "body_read",
            Self::ContentType => "content_type",
            Self::Method => "method",
            Self::NotFound => "not_found",
            Self::TlsHandshake => "tls_handshake",
            Self::Unauthenticated => "unauthenticated",
            Self::RateLimited => "rate_limited",
            Self::Manifests => "manifests",
            Self::AuthUnavailable => "auth_unavailable",
            Self::Query => "query",
        }
    }
}

struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        // Non-cumulative per bucket; rendering accumulates. Values above the last bound only
        // count in `+Inf` (= count).
        if let Some(i) = DURATION_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// All counters of one process.
pub struct Metrics {
    requests: Vec<AtomicU64>,
    durations: [Histogram; ENDPOINTS.len()],
    findings: RwLock<HashMap<String, [AtomicU64; OUTCOMES.len()]>>,
    /// Break-glass overrides by endpoint, denial `rule.check` and result (`bypassed` or why
    /// not). Rare, so a lock is fine; the user is never a label.
    break_glass: Mutex<BTreeMap<(&'static str, String, &'static str), u64>>,
    bad_requests: [AtomicU64; BadRequest::ALL.len()],
    tls_reloads_ok: AtomicU64,
    tls_reloads_failed: AtomicU64,
    /// The live audit's series (rendered only with `serve --audit`).
    pub audit: std::sync::Arc<crate::audit::live_metrics::AuditMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What `/metrics` reads from other components at scrape time.
pub struct ScrapeInputs<'a> {
    /// The policy reloader's status.
    pub policy: &'a ReloadStatus,
    /// The cluster store's sync state.
    pub store: &'a SyncStatus,
    /// Objects the store holds, per kind.
    pub objects: &'a ObjectCounts,
}

fn index_of(values: &[&str], value: &str) -> usize {
    values
        .iter()
        .position(|v| *v == value)
        .unwrap_or(values.len() - 1)
}

fn endpoint_index(endpoint: Endpoint) -> usize {
    match endpoint {
        Endpoint::Mutate => 0,
        Endpoint::Validate => 1,
    }
}

impl Metrics {
    /// Zeroed counters.
    pub fn new() -> Self {
        let series = ENDPOINTS.len() * KINDS.len() * OPERATIONS.len() * DECISIONS.len();
        Self {
            requests: (0..series).map(|_| AtomicU64::new(0)).collect(),
            durations: std::array::from_fn(|_| Histogram::new()),
            findings: RwLock::new(HashMap::new()),
            break_glass: Mutex::new(BTreeMap::new()),
            bad_requests: std::array::from_fn(|_| AtomicU64::new(0)),
            tls_reloads_ok: AtomicU64::new(0),
            tls_reloads_failed: AtomicU64::new(0),
            audit: std::sync::Arc::default(),
        }
    }

    fn request_slot(endpoint: usize, kind: usize, operation: usize, decision: usize) -> usize {
        ((endpoint * KINDS.len() + kind) * OPERATIONS.len() + operation) * DECISIONS.len()
            + decision
    }

    /// Counts an answered review and the rule findings in it.
    pub fn record_review(&self, endpoint: Endpoint, reviewed: &Reviewed) {
        let verdict = &reviewed.verdict;
        let decision = if reviewed.invalid.is_some() {
            "invalid"
        } else {
            verdict.decision()
        };
        let slot = Self::request_slot(
            endpoint_index(endpoint),
            index_of(&KINDS, &reviewed.summary.kind),
            index_of(&OPERATIONS, reviewed.summary.operation),
            index_of(&DECISIONS, decision),
        );
        self.requests[slot].fetch_add(1, Ordering::Relaxed);

        for source in &verdict.fired {
            let outcome = if verdict.denials.iter().any(|d| &d.source == source) {
                2
            } else if verdict.warnings.iter().any(|w| warning_from(w, source))
                // A bypassed denial is reported by break-glass's warning, not its own.
                || verdict
                    .break_glass
                    .iter()
                    .any(|o| o.bypassed() && &o.source == source)
            {
                1
            } else {
                0
            };
            self.count_finding(source, outcome);
        }
        if !verdict.break_glass.is_empty() {
            let mut counts = self.break_glass.lock().unwrap_or_else(|p| p.into_inner());
            for record in &verdict.break_glass {
                let mut key = (
                    endpoint.as_str(),
                    record.source.clone(),
                    record.outcome.result(),
                );
                if counts.len() >= MAX_BREAK_GLASS_SERIES && !counts.contains_key(&key) {
                    key.1 = "other.other".to_owned();
                }
                *counts.entry(key).or_insert(0) += 1;
            }
        }
    }

    fn count_finding(&self, source: &str, outcome: usize) {
        {
            let findings = self.findings.read().unwrap_or_else(|p| p.into_inner());
            if let Some(counts) = findings.get(source) {
                counts[outcome].fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        // First sighting of this check: take the write lock once.
        let mut findings = self.findings.write().unwrap_or_else(|p| p.into_inner());
        let key = if findings.len() < MAX_FINDING_SERIES || findings.contains_key(source) {
            source
        } else {
            "other.other"
        };
        findings
            .entry(key.to_owned())
            .or_insert_with(|| std::array::from_fn(|_| AtomicU64::new(0)))[outcome]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Observes the time spent answering one request on an endpoint (body read included).
    pub fn observe_duration(&self, endpoint: Endpoint, elapsed: Duration) {
        self.durations[endpoint_index(endpoint)].observe(elapsed);
    }

    /// Counts a request answered with an HTTP error.
    pub fn record_bad_request(&self, reason: BadRequest) {
        if let Some(i) = BadRequest::ALL.iter().position(|r| *r == reason) {
            self.bad_requests[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a TLS certificate reload attempt.
    pub fn record_tls_reload(&self, ok: bool) {
        let counter = if ok {
            &self.tls_reloads_ok
        } else {
            &self.tls_reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, inputs: &ScrapeInputs<'_>) -> String {
        let mut out = String::with_capacity(4096);

        header(
            &mut out,
            "rollout_guard_requests_total",
            "counter",
            "Admission reviews answered, by endpoint, object kind, operation and decision.",
        );
        for (e, endpoint) in ENDPOINTS.iter().enumerate() {
            for (k, kind) in KINDS.iter().enumerate() {
                for (o, operation) in OPERATIONS.iter().enumerate() {
                    for (d, decision) in DECISIONS.iter().enumerate() {
                        let value =
                            self.requests[Self::request_slot(e, k, o, d)].load(Ordering::Relaxed);
                        // Only series that happened: the full matrix would be 250 zero lines.
                        if value > 0 {
                            let _ = writeln!(
                                out,
                                "rollout_guard_requests_total{{endpoint=\"{endpoint}\",kind=\"{kind}\",operation=\"{operation}\",decision=\"{decision}\"}} {value}"
                            );
                        }
                    }
                }
            }
        }

        header(
            &mut out,
            "rollout_guard_rule_findings_total",
            "counter",
            "Rule check findings that produced a patch, warning or denial.",
        );
        {
            let findings = self.findings.read().unwrap_or_else(|p| p.into_inner());
            let mut sources: Vec<&String> = findings.keys().collect();
            sources.sort();
            for source in sources {
                let (rule, check) = source.split_once('.').unwrap_or((source, ""));
                for (i, outcome) in OUTCOMES.iter().enumerate() {
                    let value = findings[source][i].load(Ordering::Relaxed);
                    if value > 0 {
                        let _ = writeln!(
                            out,
                            "rollout_guard_rule_findings_total{{rule=\"{}\",check=\"{}\",outcome=\"{outcome}\"}} {value}",
                            escape(rule),
                            escape(check)
                        );
                    }
                }
            }
        }

        header(
            &mut out,
            "rollout_guard_break_glass_total",
            "counter",
            "Break-glass overrides of denials, by endpoint, rule, check and result (bypassed, or why the override was not honoured).",
        );
        {
            let counts = self.break_glass.lock().unwrap_or_else(|p| p.into_inner());
            for ((endpoint, source, result), value) in counts.iter() {
                let (rule, check) = source.split_once('.').unwrap_or((source, ""));
                let _ = writeln!(
                    out,
                    "rollout_guard_break_glass_total{{endpoint=\"{endpoint}\",rule=\"{}\",check=\"{}\",result=\"{result}\"}} {value}",
                    escape(rule),
                    escape(check)
                );
            }
        }

        header(
            &mut out,
            "rollout_guard_request_duration_seconds",
            "histogram",
            "Time to answer an admission request, body read included.",
        );
        for (e, endpoint) in ENDPOINTS.iter().enumerate() {
            let histogram = &self.durations[e];
            let mut cumulative = 0;
            for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
                cumulative += histogram.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "rollout_guard_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = histogram.count.load(Ordering::Relaxed);
            let sum = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "rollout_guard_request_duration_seconds_bucket{{endpoint=\"{endpoint}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "rollout_guard_request_duration_seconds_sum{{endpoint=\"{endpoint}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "rollout_guard_request_duration_seconds_count{{endpoint=\"{endpoint}\"}} {count}"
            );
        }

        header(
            &mut out,
            "rollout_guard_bad_requests_total",
            "counter",
            "Requests answered with an HTTP error instead of an AdmissionReview, by reason.",
        );
        for (i, reason) in BadRequest::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "rollout_guard_bad_requests_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.bad_requests[i].load(Ordering::Relaxed)
            );
        }

        header(
            &mut out,
            "rollout_guard_policy_reloads_total",
            "counter",
            "Policy directory reloads, by result (a rejected reload keeps the previous policies).",
        );
        let _ = writeln!(
            out,
            "rollout_guard_policy_reloads_total{{result=\"ok\"}} {}",
            inputs.policy.reloads_ok
        );
        let _ = writeln!(
            out,
            "rollout_guard_policy_reloads_total{{result=\"error\"}} {}",
            inputs.policy.reloads_failed
        );
        header(
            &mut out,
            "rollout_guard_policy_info",
            "gauge",
            "The active policy set, identified by the digest of its sources.",
        );
        let _ = writeln!(
            out,
            "rollout_guard_policy_info{{digest=\"{}\"}} 1",
            escape(&inputs.policy.active_digest)
        );

        header(
            &mut out,
            "rollout_guard_tls_reloads_total",
            "counter",
            "Serving certificate reloads, by result (a failed reload keeps the previous pair).",
        );
        let _ = writeln!(
            out,
            "rollout_guard_tls_reloads_total{{result=\"ok\"}} {}",
            self.tls_reloads_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "rollout_guard_tls_reloads_total{{result=\"error\"}} {}",
            self.tls_reloads_failed.load(Ordering::Relaxed)
        );

        header(
            &mut out,
            "rollout_guard_store_synced",
            "gauge",
            "1 when the cluster store has completed its initial sync, else 0.",
        );
        let synced = u8::from(*inputs.store == SyncStatus::Synced);
        let _ = writeln!(out, "rollout_guard_store_synced {synced}");

        header(
            &mut out,
            "rollout_guard_store_objects",
            "gauge",
            "Objects held by the cluster store, by kind.",
        );
        let counts = inputs.objects;
        for (kind, count) in [
            ("Deployment", counts.deployments),
            ("Service", counts.services),
            ("Ingress", counts.ingresses),
            ("IngressClass", counts.ingress_classes),
            ("HTTPRoute", counts.http_routes),
            ("ReferenceGrant", counts.reference_grants),
            ("Gateway", counts.gateways),
            ("Namespace", counts.namespaces),
            ("StatefulSet", counts.stateful_sets),
            ("DaemonSet", counts.daemon_sets),
            ("Rollout", counts.rollouts),
            ("Pod", counts.pods),
            ("ReplicaSet", counts.replica_sets),
        ] {
            let _ = writeln!(
                out,
                "rollout_guard_store_objects{{kind=\"{kind}\"}} {count}"
            );
        }
        self.audit.render(&mut out);
        out
    }
}

/// Whether `warning` is the one the engine wrote for `source` (`rollout-guard {source}: ...`).
fn warning_from(warning: &str, source: &str) -> bool {
    warning
        .strip_prefix("rollout-guard ")
        .and_then(|rest| rest.strip_prefix(source))
        .is_some_and(|rest| rest.starts_with(':'))
}

/// The `# HELP` and `# TYPE` lines of one metric family (also used by the audit's metrics).
pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label value escaping of the text format: backslash, double quote and newline.
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Summary;
    use crate::policy::engine::{Denial, Verdict};

    fn reviewed(kind: &str, operation: &'static str, verdict: Verdict) -> Reviewed {
        Reviewed {
            body: Vec::new(),
            verdict,
            summary: Summary {
                kind: kind.to_owned(),
                operation,
                ..Summary::default()
            },
            invalid: None,
        }
    }

    fn scrape(metrics: &Metrics) -> String {
        metrics.render(&ScrapeInputs {
            policy: &ReloadStatus {
                active_digest: "abc123".into(),
                ..ReloadStatus::default()
            },
            store: &SyncStatus::NotSynced("services".into()),
            objects: &ObjectCounts::default(),
        })
    }

    #[test]
    fn counts_reviews_by_bounded_labels() {
        let metrics = Metrics::new();
        let mut denied = Verdict::default();
        denied.denials.push(Denial {
            source: "rollingUpdate.maxUnavailable".into(),
            message: "unsafe".into(),
        });
        denied.fired.insert("rollingUpdate.maxUnavailable".into());
        denied
            .warnings
            .push("rollout-guard versionLabel.value: kept".into());
        denied.fired.insert("versionLabel.value".into());
        metrics.record_review(
            Endpoint::Validate,
            &reviewed("Deployment", "CREATE", denied),
        );
        metrics.record_review(
            Endpoint::Mutate,
            &reviewed("CronJob", "PATCH", Verdict::exempt("kind")),
        );

        let text = scrape(&metrics);
        assert!(text.contains(
            "rollout_guard_requests_total{endpoint=\"validate\",kind=\"Deployment\",operation=\"CREATE\",decision=\"deny\"} 1"
        ), "{text}");
        assert!(text.contains(
            "rollout_guard_requests_total{endpoint=\"mutate\",kind=\"other\",operation=\"other\",decision=\"allow\"} 1"
        ), "{text}");
        assert!(text.contains(
            "rollout_guard_rule_findings_total{rule=\"rollingUpdate\",check=\"maxUnavailable\",outcome=\"deny\"} 1"
        ), "{text}");
        assert!(text.contains(
            "rollout_guard_rule_findings_total{rule=\"versionLabel\",check=\"value\",outcome=\"warn\"} 1"
        ), "{text}");
        assert!(text.contains("rollout_guard_policy_info{digest=\"abc123\"} 1"));
        assert!(text.contains("rollout_guard_store_synced 0"));
    }

    #[test]
    fn break_glass_overrides_are_counted_by_rule_and_result_never_by_user() {
        use crate::policy::break_glass::{Outcome, Override, Refusal};
        let metrics = Metrics::new();
        let record = |source: &str, user: &str, outcome: Outcome| Override {
            source: source.to_owned(),
            user: user.to_owned(),
            reason: "INC-4411 roll back".to_owned(),
            outcome,
        };
        // alice's override bypassed mainRemoved; the same annotation did not name crossNamespace.
        let mut bypassed = Verdict::default();
        bypassed.fired.insert("ingressCanary.mainRemoved".into());
        bypassed
            .warnings
            .push("rollout-guard break-glass: ingressCanary.mainRemoved bypassed by alice".into());
        bypassed.break_glass.push(record(
            "ingressCanary.mainRemoved",
            "alice@example.com",
            Outcome::Bypassed {
                grant: "oncall".into(),
            },
        ));
        // bob's was not honoured: the denial stands.
        let mut refused = Verdict::default();
        refused.fired.insert("ingressCanary.mainRemoved".into());
        refused.denials.push(Denial {
            source: "ingressCanary.mainRemoved".into(),
            message: "a canary needs it".into(),
        });
        refused.break_glass.push(record(
            "ingressCanary.mainRemoved",
            "bob@example.com",
            Outcome::Refused(Refusal::NotNamed(vec!["oncall".into()])),
        ));
        for verdict in [bypassed.clone(), bypassed, refused] {
            metrics.record_review(Endpoint::Validate, &reviewed("Ingress", "DELETE", verdict));
        }

        let text = scrape(&metrics);
        assert!(
            text.contains("# TYPE rollout_guard_break_glass_total counter"),
            "{text}"
        );
        assert!(text.contains(
            "rollout_guard_break_glass_total{endpoint=\"validate\",rule=\"ingressCanary\",check=\"mainRemoved\",result=\"bypassed\"} 2"
        ), "{text}");
        assert!(text.contains(
            "rollout_guard_break_glass_total{endpoint=\"validate\",rule=\"ingressCanary\",check=\"mainRemoved\",result=\"not-named\"} 1"
        ), "{text}");
        // A bypassed denial is a warning, not a patch, in the findings series.
        assert!(text.contains(
            "rollout_guard_rule_findings_total{rule=\"ingressCanary\",check=\"mainRemoved\",outcome=\"warn\"} 2"
        ), "{text}");
        assert!(text.contains(
            "rollout_guard_rule_findings_total{rule=\"ingressCanary\",check=\"mainRemoved\",outcome=\"deny\"} 1"
        ), "{text}");
        assert!(!text.contains("outcome=\"patch\""), "{text}");
        for private in ["alice", "bob", "oncall", "INC-4411"] {
            assert!(!text.contains(private), "{private} in the metrics: {text}");
        }
    }

    #[test]
    fn histogram_is_cumulative_and_counts_overflow_only_in_inf() {
        let metrics = Metrics::new();
        metrics.observe_duration(Endpoint::Mutate, Duration::from_micros(300));
        metrics.observe_duration(Endpoint::Mutate, Duration::from_secs(60));
        let text = scrape(&metrics);
        assert!(text.contains(
            "rollout_guard_request_duration_seconds_bucket{endpoint=\"mutate\",le=\"0.00025\"} 0"
        ));
        assert!(text.contains(
            "rollout_guard_request_duration_seconds_bucket{endpoint=\"mutate\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains(
            "rollout_guard_request_duration_seconds_bucket{endpoint=\"mutate\",le=\"5\"} 1"
        ));
        assert!(text.contains(
            "rollout_guard_request_duration_seconds_bucket{endpoint=\"mutate\",le=\"+Inf\"} 2"
        ));
        assert!(
            text.contains("rollout_guard_request_duration_seconds_count{endpoint=\"mutate\"} 2")
        );
    }

    #[test]
    fn warning_attribution_needs_the_exact_source() {
        assert!(warning_from("rollout-guard a.b: text", "a.b"));
        assert!(!warning_from("rollout-guard a.bc: text", "a.b"));
        assert!(!warning_from("something else", "a.b"));
    }

    #[test]
    fn finding_series_are_capped() {
        let metrics = Metrics::new();
        for i in 0..(MAX_FINDING_SERIES + 10) {
            metrics.count_finding(&format!("rule.check{i}"), 0);
        }
        let findings = metrics.findings.read().unwrap();
        assert_eq!(findings.len(), MAX_FINDING_SERIES + 1);
        assert_eq!(findings["other.other"][0].load(Ordering::Relaxed), 10);
    }
}
