//! Policy reports from an [`AuditResult`], in the two flavours in use:
//! `openreports.io/v1alpha1` `Report`/`ClusterReport` and `wgpolicyk8s.io/v1alpha2`
//! `PolicyReport`/`ClusterPolicyReport` (Kyverno's default, what Policy Reporter reads).
//!
//! Both carry the same results; the schemas (../shared/crds) differ only in the top-level
//! `source` and `configuration` OpenReports adds. Everything is sorted and no field depends on
//! the clock unless the caller passes a timestamp, so an unchanged cluster gives byte-identical
//! reports and a server-side apply of them changes nothing.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{
    AuditFinding, AuditResult, AuditedObject, Counts, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
    REPORT_NAME, SOURCE,
};

/// Default for [`ReportOptions::max_results`]: well under etcd's 1.5 MiB object limit with
/// messages of a few hundred bytes.
pub const DEFAULT_MAX_RESULTS: usize = 1000;
/// Annotation saying how many results a capped report left out.
pub const LEFT_OUT_ANNOTATION: &str = "rollout-guard.io/results-left-out";
/// Annotation with the digest of the policies the report was made with.
pub const DIGEST_ANNOTATION: &str = "rollout-guard.io/policy-digest";

/// Which report API to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// `openreports.io/v1alpha1` `Report` and `ClusterReport`.
    OpenReports,
    /// `wgpolicyk8s.io/v1alpha2` `PolicyReport` and `ClusterPolicyReport`.
    Wgpolicyk8s,
}

impl Flavor {
    /// The API group.
    pub fn group(self) -> &'static str {
        match self {
            Flavor::OpenReports => "openreports.io",
            Flavor::Wgpolicyk8s => "wgpolicyk8s.io",
        }
    }

    /// The API version written.
    pub fn version(self) -> &'static str {
        match self {
            Flavor::OpenReports => "v1alpha1",
            Flavor::Wgpolicyk8s => "v1alpha2",
        }
    }

    /// `group/version`.
    pub fn api_version(self) -> &'static str {
        match self {
            Flavor::OpenReports => "openreports.io/v1alpha1",
            Flavor::Wgpolicyk8s => "wgpolicyk8s.io/v1alpha2",
        }
    }

    /// The kind of a namespaced (`cluster` false) or cluster-wide report.
    pub fn kind(self, cluster: bool) -> &'static str {
        match (self, cluster) {
            (Flavor::OpenReports, false) => "Report",
            (Flavor::OpenReports, true) => "ClusterReport",
            (Flavor::Wgpolicyk8s, false) => "PolicyReport",
            (Flavor::Wgpolicyk8s, true) => "ClusterPolicyReport",
        }
    }

    /// The resource (plural) of a namespaced or cluster-wide report.
    pub fn plural(self, cluster: bool) -> &'static str {
        match (self, cluster) {
            (Flavor::OpenReports, false) => "reports",
            (Flavor::OpenReports, true) => "clusterreports",
            (Flavor::Wgpolicyk8s, false) => "policyreports",
            (Flavor::Wgpolicyk8s, true) => "clusterpolicyreports",
        }
    }

    /// The flavour as the command line spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::OpenReports => "openreports",
            Flavor::Wgpolicyk8s => "wgpolicyk8s",
        }
    }
}

/// When the results were produced, as the reports' `timestamp` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds within the second.
    pub nanos: i32,
}

/// How to build reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOptions {
    /// Most results one report holds; the rest are counted in the summary and in the
    /// [`LEFT_OUT_ANNOTATION`]. Failures are kept first, then errors, then warnings.
    pub max_results: usize,
    /// The `timestamp` of every result; `None` leaves it out. Pass one that changes only when
    /// the results can (the policy set's load time), never "now", or every round rewrites
    /// every report.
    pub timestamp: Option<Timestamp>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            max_results: DEFAULT_MAX_RESULTS,
            timestamp: None,
        }
    }
}

/// One report, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Its flavour.
    pub flavor: Flavor,
    /// Its namespace; `None` for the cluster-wide report.
    pub namespace: Option<String>,
    /// Its name ([`REPORT_NAME`]).
    pub name: String,
    /// How many results the cap left out.
    pub left_out: usize,
    /// The complete object (`apiVersion`, `kind`, `metadata`, `summary`, `results`, ...).
    pub object: Value,
}

impl Report {
    /// `apiVersion` of the object.
    pub fn api_version(&self) -> &'static str {
        self.flavor.api_version()
    }

    /// `kind` of the object.
    pub fn kind(&self) -> &'static str {
        self.flavor.kind(self.namespace.is_none())
    }

    /// The resource to write it to.
    pub fn plural(&self) -> &'static str {
        self.flavor.plural(self.namespace.is_none())
    }
}

/// The reports of an audit: one per namespace with an audited object (sorted by namespace),
/// then the cluster-wide one when a cluster-scoped object was audited.
pub fn reports(result: &AuditResult, flavor: Flavor, options: &ReportOptions) -> Vec<Report> {
    let mut by_scope: BTreeMap<Option<&str>, Vec<&AuditedObject>> = BTreeMap::new();
    for object in &result.objects {
        let scope = (!object.namespace.is_empty()).then_some(object.namespace.as_str());
        by_scope.entry(scope).or_default().push(object);
    }
    let mut reports: Vec<Report> = by_scope
        .into_iter()
        .map(|(namespace, objects)| {
            build(flavor, namespace, objects, &result.policy_digest, options)
        })
        .collect();
    // `None` sorts first in the map; the cluster report reads better last.
    let cluster_first = reports.first().is_some_and(|r| r.namespace.is_none());
    reports.rotate_left(usize::from(cluster_first));
    reports
}

fn object_key(object: &AuditedObject) -> (&str, &str, &str, &str) {
    (
        &object.kind,
        &object.name,
        &object.api_version,
        object.uid.as_deref().unwrap_or_default(),
    )
}

fn build(
    flavor: Flavor,
    namespace: Option<&str>,
    mut objects: Vec<&AuditedObject>,
    digest: &str,
    options: &ReportOptions,
) -> Report {
    objects.sort_by(|a, b| object_key(a).cmp(&object_key(b)));
    let mut summary = Counts::default();
    let mut results: Vec<(&AuditedObject, &AuditFinding)> = Vec::new();
    for object in &objects {
        summary.add(&object.counts());
        results.extend(object.findings.iter().map(|finding| (*object, finding)));
    }
    let left_out = results.len().saturating_sub(options.max_results);
    if left_out > 0 {
        // Keep the most severe: a stable sort by outcome keeps object order within each.
        results.sort_by_key(|(_, finding)| finding.outcome);
        results.truncate(options.max_results);
        results.sort_by(|(a, fa), (b, fb)| {
            (object_key(a), &fa.rule, &fa.check).cmp(&(object_key(b), &fb.rule, &fb.check))
        });
    }

    let mut labels = Map::new();
    labels.insert(MANAGED_BY_LABEL.to_owned(), json!(MANAGED_BY_VALUE));
    let mut annotations = Map::new();
    annotations.insert(DIGEST_ANNOTATION.to_owned(), json!(digest));
    if left_out > 0 {
        annotations.insert(LEFT_OUT_ANNOTATION.to_owned(), json!(left_out.to_string()));
    }
    let mut metadata = Map::new();
    metadata.insert("name".to_owned(), json!(REPORT_NAME));
    if let Some(namespace) = namespace {
        metadata.insert("namespace".to_owned(), json!(namespace));
    }
    metadata.insert("labels".to_owned(), Value::Object(labels));
    metadata.insert("annotations".to_owned(), Value::Object(annotations));

    let mut object = Map::new();
    object.insert("apiVersion".to_owned(), json!(flavor.api_version()));
    object.insert("kind".to_owned(), json!(flavor.kind(namespace.is_none())));
    object.insert("metadata".to_owned(), Value::Object(metadata));
    if flavor == Flavor::OpenReports {
        object.insert("source".to_owned(), json!(SOURCE));
        object.insert(
            "configuration".to_owned(),
            json!({"limits": {"maxResults": options.max_results}}),
        );
    }
    object.insert(
        "summary".to_owned(),
        json!({
            "pass": summary.pass,
            "fail": summary.fail,
            "warn": summary.warn,
            "error": summary.error,
            "skip": summary.skip,
        }),
    );
    object.insert(
        "results".to_owned(),
        Value::Array(
            results
                .iter()
                .map(|(object, finding)| result(object, finding, options))
                .collect(),
        ),
    );
    Report {
        flavor,
        namespace: namespace.map(str::to_owned),
        name: REPORT_NAME.to_owned(),
        left_out,
        object: Value::Object(object),
    }
}

/// One result: the fields both schemas share (`policy` required; `result`, `severity`,
/// `source`, `resources`, `properties` with string values, `timestamp`).
fn result(object: &AuditedObject, finding: &AuditFinding, options: &ReportOptions) -> Value {
    let mut resource = Map::new();
    resource.insert("apiVersion".to_owned(), json!(object.api_version));
    resource.insert("kind".to_owned(), json!(object.kind));
    if !object.namespace.is_empty() {
        resource.insert("namespace".to_owned(), json!(object.namespace));
    }
    resource.insert("name".to_owned(), json!(object.name));
    if let Some(uid) = &object.uid {
        resource.insert("uid".to_owned(), json!(uid));
    }
    let mut properties = Map::new();
    properties.insert("outcome".to_owned(), json!(finding.outcome.as_str()));
    if let Some(policy) = &object.policy {
        properties.insert("rolloutPolicy".to_owned(), json!(policy));
    }
    if !finding.patch.is_empty() {
        properties.insert("patch".to_owned(), json!(finding.patch.join("\n")));
    }
    let mut result = Map::new();
    result.insert("policy".to_owned(), json!(finding.rule));
    if !finding.check.is_empty() {
        result.insert("rule".to_owned(), json!(finding.check));
    }
    result.insert("result".to_owned(), json!(finding.outcome.result()));
    result.insert("severity".to_owned(), json!(finding.outcome.severity()));
    result.insert("message".to_owned(), json!(finding.message));
    result.insert("source".to_owned(), json!(SOURCE));
    result.insert("scored".to_owned(), json!(true));
    result.insert("resources".to_owned(), json!([resource]));
    result.insert("properties".to_owned(), Value::Object(properties));
    if let Some(timestamp) = options.timestamp {
        result.insert(
            "timestamp".to_owned(),
            json!({"seconds": timestamp.seconds, "nanos": timestamp.nanos}),
        );
    }
    Value::Object(result)
}
