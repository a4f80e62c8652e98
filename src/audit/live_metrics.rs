//! The live audit's metrics, rendered on the admin port's `/metrics` with the rest.
//!
//! Low cardinality by construction: rules are the engine's `rule.check` names (a closed set),
//! namespaces are capped at [`MAX_VIOLATION_SERIES`] series (the rest are summed under
//! `namespace="other"`), and no object name ever becomes a label (the reports carry those).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::server::metrics::{escape, header};

/// Most `(rule, namespace)` violation series exported; more are summed into `namespace="other"`.
pub const MAX_VIOLATION_SERIES: usize = 2000;

/// How an audit run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Listed, evaluated and (when reports are on) written.
    Ok,
    /// Could not list or write; tried again on the next trigger.
    Error,
    /// Stopped early because this replica stopped leading or the server is shutting down.
    Aborted,
}

impl RunOutcome {
    const ALL: [RunOutcome; 3] = [Self::Ok, Self::Error, Self::Aborted];

    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Aborted => "aborted",
        }
    }
}

/// A report write, by what the writer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written with server-side apply.
    Applied,
    /// Already as it should be; not written.
    Unchanged,
    /// A stale report deleted.
    Deleted,
    /// A call that failed.
    Failed,
}

impl WriteOutcome {
    const ALL: [WriteOutcome; 4] = [Self::Applied, Self::Unchanged, Self::Deleted, Self::Failed];

    fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Unchanged => "unchanged",
            Self::Deleted => "deleted",
            Self::Failed => "error",
        }
    }
}

/// What the last completed run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFigures {
    /// Wall time from the first list to the last write, in seconds.
    pub duration_seconds: f64,
    /// CPU time the evaluation took on the audit thread, in seconds.
    pub cpu_seconds: f64,
    /// Objects evaluated.
    pub objects: u64,
    /// Unix time the run finished.
    pub finished_unix_seconds: f64,
}

/// The live audit's counters and gauges.
#[derive(Debug, Default)]
pub struct AuditMetrics {
    enabled: AtomicU64,
    leader: AtomicU64,
    runs: [AtomicU64; 3],
    writes: [AtomicU64; 4],
    last: Mutex<Option<RunFigures>>,
    violations: Mutex<BTreeMap<(String, String), u64>>,
}

impl AuditMetrics {
    /// Marks the audit as configured (`--audit`): its series are rendered only then.
    pub fn enable(&self) {
        self.enabled.store(1, Ordering::Relaxed);
    }

    /// Whether this replica holds the audit lease.
    pub fn set_leader(&self, leading: bool) {
        self.leader.store(u64::from(leading), Ordering::Relaxed);
    }

    /// Counts a run.
    pub fn record_run(&self, outcome: RunOutcome) {
        if let Some(i) = RunOutcome::ALL.iter().position(|o| *o == outcome) {
            self.runs[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts report writes.
    pub fn record_writes(&self, outcome: WriteOutcome, count: usize) {
        if let Some(i) = WriteOutcome::ALL.iter().position(|o| *o == outcome) {
            self.writes[i].fetch_add(count as u64, Ordering::Relaxed);
        }
    }

    /// Replaces the violation gauges and the last run's figures with a completed run's.
    /// `violations` counts, per `(rule, namespace)`, the results that are not a pass.
    pub fn record_completed(
        &self,
        figures: RunFigures,
        violations: BTreeMap<(String, String), u64>,
    ) {
        let mut capped: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut namespaces_kept = 0;
        for ((rule, namespace), count) in violations {
            let key = if namespaces_kept < MAX_VIOLATION_SERIES {
                namespaces_kept += 1;
                (rule, namespace)
            } else {
                (rule, "other".to_owned())
            };
            *capped.entry(key).or_default() += count;
        }
        *self.violations.lock().unwrap_or_else(|p| p.into_inner()) = capped;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(figures);
    }

    /// The text exposition of the audit's series (nothing when the audit is off).
    pub fn render(&self, out: &mut String) {
        if self.enabled.load(Ordering::Relaxed) == 0 {
            return;
        }
        header(
            out,
            "rollout_guard_audit_leader",
            "gauge",
            "1 while this replica holds the audit Lease and runs the background audit.",
        );
        let _ = writeln!(
            out,
            "rollout_guard_audit_leader {}",
            self.leader.load(Ordering::Relaxed)
        );
        header(
            out,
            "rollout_guard_audit_runs_total",
            "counter",
            "Background audit runs, by result (aborted: leadership lost or shutting down).",
        );
        for (i, outcome) in RunOutcome::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "rollout_guard_audit_runs_total{{result=\"{}\"}} {}",
                outcome.label(),
                self.runs[i].load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "rollout_guard_audit_report_writes_total",
            "counter",
            "Policy report calls by the audit: applied, unchanged (skipped), deleted (stale), error.",
        );
        for (i, outcome) in WriteOutcome::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "rollout_guard_audit_report_writes_total{{outcome=\"{}\"}} {}",
                outcome.label(),
                self.writes[i].load(Ordering::Relaxed)
            );
        }
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(last) = last {
            for (name, help, value) in [
                (
                    "rollout_guard_audit_last_duration_seconds",
                    "Wall time of the last completed audit run (listing, evaluation, report writes).",
                    last.duration_seconds,
                ),
                (
                    "rollout_guard_audit_last_cpu_seconds",
                    "CPU time the last completed audit run's evaluation took on the audit thread.",
                    last.cpu_seconds,
                ),
                (
                    "rollout_guard_audit_last_objects",
                    "Objects evaluated by the last completed audit run.",
                    last.objects as f64,
                ),
                (
                    "rollout_guard_audit_last_success_timestamp_seconds",
                    "Unix time the last completed audit run finished.",
                    last.finished_unix_seconds,
                ),
            ] {
                header(out, name, "gauge", help);
                let _ = writeln!(out, "{name} {value}");
            }
        }
        header(
            out,
            "rollout_guard_audit_violations",
            "gauge",
            "Results that are not a pass in the last completed audit, by rule and namespace.",
        );
        let violations = self.violations.lock().unwrap_or_else(|p| p.into_inner());
        for ((rule, namespace), count) in violations.iter() {
            let _ = writeln!(
                out,
                "rollout_guard_audit_violations{{rule=\"{}\",namespace=\"{}\"}} {count}",
                escape(rule),
                escape(namespace)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_rendered_while_the_audit_is_off() {
        let metrics = AuditMetrics::default();
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_completed_run_replaces_the_violation_gauges() {
        let metrics = AuditMetrics::default();
        metrics.enable();
        metrics.set_leader(true);
        metrics.record_run(RunOutcome::Ok);
        metrics.record_writes(WriteOutcome::Applied, 3);
        let first = BTreeMap::from([
            (("rollingUpdate.maxUnavailable".into(), "shop".into()), 2),
            (("ingressCanary.missingMain".into(), "blog".into()), 1),
        ]);
        metrics.record_completed(
            RunFigures {
                duration_seconds: 1.5,
                cpu_seconds: 0.5,
                objects: 40,
                finished_unix_seconds: 1.0,
            },
            first,
        );
        let second = BTreeMap::from([(("rollingUpdate.maxUnavailable".into(), "shop".into()), 1)]);
        metrics.record_completed(RunFigures::default(), second);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains("rollout_guard_audit_leader 1"), "{out}");
        assert!(out.contains("rollout_guard_audit_runs_total{result=\"ok\"} 1"));
        assert!(out.contains("rollout_guard_audit_report_writes_total{outcome=\"applied\"} 3"));
        assert!(out.contains(
            "rollout_guard_audit_violations{rule=\"rollingUpdate.maxUnavailable\",namespace=\"shop\"} 1"
        ));
        assert!(
            !out.contains("ingressCanary.missingMain"),
            "stale series stay: {out}"
        );
    }

    #[test]
    fn violation_series_are_capped() {
        let metrics = AuditMetrics::default();
        metrics.enable();
        let many = (0..MAX_VIOLATION_SERIES + 5)
            .map(|n| (("r.c".to_owned(), format!("ns-{n:05}")), 1))
            .collect();
        metrics.record_completed(RunFigures::default(), many);
        let violations = metrics.violations.lock().unwrap();
        assert_eq!(violations.len(), MAX_VIOLATION_SERIES + 1);
        assert_eq!(violations[&("r.c".to_owned(), "other".to_owned())], 5);
    }
}
