//! Writes the audit's policy reports into the cluster, and removes the ones that went stale.
//!
//! - **Which API**: `--audit-reports auto` asks discovery which of `openreports.io/v1alpha1`
//!   (OpenReports: `Report`, `ClusterReport`) and `wgpolicyk8s.io/v1alpha2` (`PolicyReport`,
//!   `ClusterPolicyReport`, what Kyverno writes by default and Policy Reporter reads) the API
//!   server serves, and prefers OpenReports; with neither, nothing is written (said once in the
//!   log). Asked again on every run, so installing a CRD later is picked up without a restart.
//! - **In place**: every report is written with server-side apply (field manager
//!   `rollout-guard`, forced: the reports are ours alone), so a report keeps its name and is
//!   updated, never re-created, and nothing piles up in etcd.
//! - **Unchanged reports are not written**: each report carries the digest of its content in
//!   the annotation [`DIGEST_ANNOTATION`]; the owned reports are listed first (one paged list per
//!   kind, by the label [`MANAGED_BY_LABEL`]` = rollout-guard`) and a report whose digest is
//!   already there is skipped. The digest lives in the cluster, not in memory, so a replica that
//!   just took over the lease skips them too.
//! - **Stale reports are deleted**: an owned report of the kinds written that the run did not
//!   produce (its namespace has no results any more, or the namespace is gone) is deleted, and
//!   so are our reports in the other API when it is served (after a switch of flavour).
//! - **Bounded**: at most [`WriterSettings::concurrency`] calls in flight and at most
//!   [`WriterSettings::writes_per_second`] started per second, so a first run over a large
//!   cluster does not burst thousands of writes at the API server.
//!
//! RBAC: get, list, watch, create, update, patch and delete on the four report resources
//! (the chart's ClusterRole rules, only when the audit is enabled).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::Value;
use sha2::Digest as _;

/// Label every report we write carries; stale-report deletion only ever touches reports with it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`], and the server-side apply field manager.
pub const MANAGER: &str = "rollout-guard";
/// Annotation holding the digest of a report's content, to skip writes that change nothing.
pub const DIGEST_ANNOTATION: &str = "rollout-guard.io/report-digest";

/// Page size of the list of owned reports.
const LIST_PAGE: u32 = 250;

/// `--audit-reports`: which report API to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportsSetting {
    /// OpenReports when served, else wgpolicyk8s when served, else none.
    Auto,
    /// `openreports.io/v1alpha1` Report / ClusterReport.
    Openreports,
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport / ClusterPolicyReport.
    Wgpolicyk8s,
    /// Write no reports (the audit still runs and exports its metrics).
    Off,
}

impl ReportsSetting {
    /// As the flag spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Openreports => "openreports",
            Self::Wgpolicyk8s => "wgpolicyk8s",
            Self::Off => "off",
        }
    }
}

/// A report API the writer can write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReportApi {
    /// `openreports.io/v1alpha1`.
    OpenReports,
    /// `wgpolicyk8s.io/v1alpha2`.
    Wgpolicyk8s,
}

impl ReportApi {
    /// Both, in the order `auto` prefers them.
    pub const ALL: [ReportApi; 2] = [ReportApi::OpenReports, ReportApi::Wgpolicyk8s];

    /// `group/version`.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::OpenReports => "openreports.io/v1alpha1",
            Self::Wgpolicyk8s => "wgpolicyk8s.io/v1alpha2",
        }
    }

    /// The namespaced kind and its plural.
    pub fn namespaced(self) -> (&'static str, &'static str) {
        match self {
            Self::OpenReports => ("Report", "reports"),
            Self::Wgpolicyk8s => ("PolicyReport", "policyreports"),
        }
    }

    /// The cluster-scoped kind and its plural.
    pub fn cluster(self) -> (&'static str, &'static str) {
        match self {
            Self::OpenReports => ("ClusterReport", "clusterreports"),
            Self::Wgpolicyk8s => ("ClusterPolicyReport", "clusterpolicyreports"),
        }
    }

    /// The setting that names exactly this API.
    pub fn setting(self) -> ReportsSetting {
        match self {
            Self::OpenReports => ReportsSetting::Openreports,
            Self::Wgpolicyk8s => ReportsSetting::Wgpolicyk8s,
        }
    }

    fn resource(self, (kind, plural): (&str, &str)) -> ApiResource {
        let (group, version) = self
            .api_version()
            .split_once('/')
            .unwrap_or(("", self.api_version()));
        ApiResource {
            group: group.to_owned(),
            version: version.to_owned(),
            api_version: self.api_version().to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
        }
    }

    /// Whether `kind` is one of this API's two report kinds.
    fn owns_kind(self, kind: &str) -> bool {
        kind == self.namespaced().0 || kind == self.cluster().0
    }
}

/// Why the writer could not do its job this run (it is tried again on the next).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Discovery failed for a reason other than the API not being served.
    #[error("cannot ask the API server whether {api_version} is served: {source}")]
    Discovery {
        /// The group/version asked about.
        api_version: &'static str,
        /// The client error.
        source: kube::Error,
    },
    /// The owned reports could not be listed, so neither unchanged nor stale ones are known.
    #[error("cannot list the {kind}s rollout-guard wrote: {source}")]
    List {
        /// The kind listed.
        kind: &'static str,
        /// The client error.
        source: kube::Error,
    },
}

/// Which APIs discovery found served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Served(pub BTreeSet<ReportApi>);

impl Served {
    /// The API to write with `setting`, and, when it is `None`, why not (for the log).
    pub fn choose(&self, setting: ReportsSetting) -> Result<ReportApi, String> {
        let wanted: &[ReportApi] = match setting {
            ReportsSetting::Off => return Err("--audit-reports off".to_owned()),
            ReportsSetting::Auto => &ReportApi::ALL,
            ReportsSetting::Openreports => &[ReportApi::OpenReports],
            ReportsSetting::Wgpolicyk8s => &[ReportApi::Wgpolicyk8s],
        };
        wanted
            .iter()
            .copied()
            .find(|api| self.0.contains(api))
            .ok_or_else(|| {
                let names: Vec<&str> = wanted.iter().map(|a| a.api_version()).collect();
                format!(
                    "the API server serves no {} (install its CRDs, or choose another \
                     --audit-reports)",
                    names.join(" nor ")
                )
            })
    }
}

/// Asks discovery which report APIs are served: an API counts when its group/version lists
/// both report resources. A 404 means not served; any other failure is an error.
pub async fn discover(client: &Client) -> Result<Served, WriteError> {
    let mut served = BTreeSet::new();
    for api in ReportApi::ALL {
        match client.list_api_group_resources(api.api_version()).await {
            Ok(list) => {
                let names: BTreeSet<&str> =
                    list.resources.iter().map(|r| r.name.as_str()).collect();
                if names.contains(api.namespaced().1) && names.contains(api.cluster().1) {
                    served.insert(api);
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(WriteError::Discovery {
                    api_version: api.api_version(),
                    source,
                })
            }
        }
    }
    Ok(Served(served))
}

/// Limits on the writer's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterSettings {
    /// Calls (apply or delete) in flight at once.
    pub concurrency: usize,
    /// Calls started per second; 0 for no limit.
    pub writes_per_second: u32,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            writes_per_second: 20,
        }
    }
}

/// What one [`ReportWriter::sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Reports written (created or changed) with server-side apply.
    pub applied: usize,
    /// Reports already in the cluster as they are (not written).
    pub unchanged: usize,
    /// Stale reports deleted.
    pub deleted: usize,
    /// Calls that failed; each with its reason in `errors`.
    pub failed: usize,
    /// Why each failed call failed (`Kind namespace/name: error`).
    pub errors: Vec<String>,
}

/// Identity of a report object: kind, namespace (empty for cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReportKey {
    /// Report kind.
    pub kind: String,
    /// Namespace; empty for the cluster-scoped kind.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ReportKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One call the writer makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Server-side apply of this report (labels and digest annotation already set).
    Apply(ReportKey, Value),
    /// Delete this stale report.
    Delete(ReportKey),
}

/// A report as it will be applied: [`MANAGED_BY_LABEL`] set and [`DIGEST_ANNOTATION`] holding
/// the digest of everything else in it. `None` when the report has no name or no kind.
pub fn prepare(report: &Value) -> Option<(ReportKey, Value)> {
    let kind = report["kind"].as_str()?.to_owned();
    let name = report["metadata"]["name"].as_str()?.to_owned();
    let namespace = report["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut report = report.clone();
    let metadata = report["metadata"].as_object_mut()?;
    // Server-owned fields never go into an apply.
    for field in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "managedFields",
        "generation",
    ] {
        metadata.remove(field);
    }
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(
            MANAGED_BY_LABEL.to_owned(),
            Value::String(MANAGER.to_owned()),
        );
    }
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if let Some(annotations) = annotations.as_object_mut() {
        annotations.remove(DIGEST_ANNOTATION);
    }
    // serde_json maps are sorted (no `preserve_order`), so the text is canonical.
    let digest = hex(&sha2::Sha256::digest(report.to_string().as_bytes())[..16]);
    if let Some(annotations) = report["metadata"]["annotations"].as_object_mut() {
        annotations.insert(DIGEST_ANNOTATION.to_owned(), Value::String(digest));
    }
    Some((
        ReportKey {
            kind,
            namespace,
            name,
        },
        report,
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What to do, given the desired reports (already [`prepare`]d) and the digests of the owned
/// reports in the cluster (`None` for one without the annotation). Pure: applies in the order
/// given, then deletes in key order.
pub fn plan(
    desired: Vec<(ReportKey, Value)>,
    existing: &BTreeMap<ReportKey, Option<String>>,
) -> (Vec<Operation>, usize) {
    let mut operations = Vec::new();
    let mut unchanged = 0;
    let mut wanted = BTreeSet::new();
    for (key, report) in desired {
        let digest = report["metadata"]["annotations"][DIGEST_ANNOTATION].as_str();
        let there = existing.get(&key).and_then(|d| d.as_deref());
        wanted.insert(key.clone());
        if digest.is_some() && there == digest {
            unchanged += 1;
        } else {
            operations.push(Operation::Apply(key, report));
        }
    }
    for key in existing.keys() {
        if !wanted.contains(key) {
            operations.push(Operation::Delete(key.clone()));
        }
    }
    (operations, unchanged)
}

/// Writes reports through one API server client.
#[derive(Clone)]
pub struct ReportWriter {
    client: Client,
    settings: WriterSettings,
}

impl ReportWriter {
    /// A writer with these limits.
    pub fn new(client: Client, settings: WriterSettings) -> Self {
        Self { client, settings }
    }

    fn api_for(&self, api: ReportApi, key: &ReportKey) -> Api<DynamicObject> {
        if key.kind == api.cluster().0 {
            Api::all_with(self.client.clone(), &api.resource(api.cluster()))
        } else {
            Api::namespaced_with(
                self.client.clone(),
                &key.namespace,
                &api.resource(api.namespaced()),
            )
        }
    }

    /// The reports of `api` carrying our label, with their digests.
    pub async fn owned(
        &self,
        api: ReportApi,
    ) -> Result<BTreeMap<ReportKey, Option<String>>, WriteError> {
        let mut owned = BTreeMap::new();
        for (kind, plural) in [api.namespaced(), api.cluster()] {
            let list_api: Api<DynamicObject> =
                Api::all_with(self.client.clone(), &api.resource((kind, plural)));
            let mut params = ListParams::default()
                .labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"))
                .limit(LIST_PAGE);
            loop {
                let page = list_api
                    .list_metadata(&params)
                    .await
                    .map_err(|source| WriteError::List { kind, source })?;
                for item in &page.items {
                    let key = ReportKey {
                        kind: kind.to_owned(),
                        namespace: item.metadata.namespace.clone().unwrap_or_default(),
                        name: item.metadata.name.clone().unwrap_or_default(),
                    };
                    let digest = item
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(DIGEST_ANNOTATION))
                        .cloned();
                    owned.insert(key, digest);
                }
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(next) => params = params.continue_token(&next),
                    None => break,
                }
            }
        }
        Ok(owned)
    }

    /// Makes the cluster's owned reports of `api` exactly `reports`: applies what changed,
    /// skips what did not, deletes the rest. `reports` must be of `api`'s kinds (others are
    /// counted as failed, never written). Per-report failures are counted, not fatal; an `Err`
    /// means nothing was written because the owned reports could not be listed.
    pub async fn sync(
        &self,
        api: ReportApi,
        reports: &[Value],
    ) -> Result<WriteSummary, WriteError> {
        let mut summary = WriteSummary::default();
        let mut desired = Vec::with_capacity(reports.len());
        for report in reports {
            match prepare(report) {
                Some((key, prepared)) if api.owns_kind(&key.kind) => desired.push((key, prepared)),
                Some((key, _)) => {
                    summary.failed += 1;
                    summary
                        .errors
                        .push(format!("{key}: not a report kind of {}", api.api_version()));
                }
                None => {
                    summary.failed += 1;
                    summary
                        .errors
                        .push("a report without kind or metadata.name".to_owned());
                }
            }
        }
        let existing = self.owned(api).await?;
        let (operations, unchanged) = plan(desired, &existing);
        summary.unchanged = unchanged;

        let pace = Pace::new(self.settings.writes_per_second);
        let pace = &pace;
        let results: Vec<(bool, Result<(), String>)> =
            futures::stream::iter(operations.into_iter().map(|operation| async move {
                pace.wait().await;
                match operation {
                    Operation::Apply(key, report) => (true, self.apply(api, &key, &report).await),
                    Operation::Delete(key) => (false, self.delete(api, &key).await),
                }
            }))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        for (is_apply, result) in results {
            match result {
                Ok(()) if is_apply => summary.applied += 1,
                Ok(()) => summary.deleted += 1,
                Err(error) => {
                    summary.failed += 1;
                    summary.errors.push(error);
                }
            }
        }
        Ok(summary)
    }

    async fn apply(&self, api: ReportApi, key: &ReportKey, report: &Value) -> Result<(), String> {
        let params = PatchParams::apply(MANAGER).force();
        self.api_for(api, key)
            .patch(&key.name, &params, &Patch::Apply(report))
            .await
            .map(|_| ())
            .map_err(|error| format!("{key}: {error}"))
    }

    async fn delete(&self, api: ReportApi, key: &ReportKey) -> Result<(), String> {
        match self
            .api_for(api, key)
            .delete(&key.name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            // Already gone (deleted with its namespace, or by hand): what we wanted.
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(format!("{key}: {error}")),
        }
    }
}

/// Spaces the starts of calls at least `1 / rate` apart (shared by the concurrent calls).
struct Pace {
    gap: Duration,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Pace {
    fn new(per_second: u32) -> Self {
        Self {
            gap: if per_second == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs(1) / per_second
            },
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    async fn wait(&self) {
        if self.gap.is_zero() {
            return;
        }
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(tokio::time::Instant::now());
            *next = at + self.gap;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(namespace: &str, failures: u64) -> Value {
        json!({"apiVersion": "openreports.io/v1alpha1", "kind": "Report",
            "metadata": {"name": "rollout-guard", "namespace": namespace,
                "labels": {"team": "a"}, "resourceVersion": "7"},
            "summary": {"fail": failures, "pass": 3}, "results": []})
    }

    fn key(namespace: &str) -> ReportKey {
        ReportKey {
            kind: "Report".into(),
            namespace: namespace.into(),
            name: "rollout-guard".into(),
        }
    }

    #[test]
    fn prepare_labels_the_report_and_digests_its_content() {
        let (k, prepared) = prepare(&report("shop", 1)).unwrap();
        assert_eq!(k, key("shop"));
        assert_eq!(prepared["metadata"]["labels"][MANAGED_BY_LABEL], MANAGER);
        assert_eq!(prepared["metadata"]["labels"]["team"], "a");
        assert!(prepared["metadata"].get("resourceVersion").is_none());
        let digest = prepared["metadata"]["annotations"][DIGEST_ANNOTATION]
            .as_str()
            .unwrap();
        assert_eq!(digest.len(), 32);
        // Same content, same digest, also when prepared twice; other content, other digest.
        let (_, again) = prepare(&prepared).unwrap();
        assert_eq!(again, prepared);
        let (_, other) = prepare(&report("shop", 2)).unwrap();
        assert_ne!(other["metadata"]["annotations"][DIGEST_ANNOTATION], digest);
        assert!(prepare(&json!({"kind": "Report", "metadata": {}})).is_none());
    }

    #[test]
    fn plan_applies_changes_skips_unchanged_and_deletes_stale() {
        let (shop, shop_report) = prepare(&report("shop", 1)).unwrap();
        let (blog, blog_report) = prepare(&report("blog", 1)).unwrap();
        let shop_digest = shop_report["metadata"]["annotations"][DIGEST_ANNOTATION]
            .as_str()
            .map(str::to_owned);
        let existing = BTreeMap::from([
            (shop.clone(), shop_digest),
            (key("gone"), Some("abc".into())),
            (key("blog"), None),
        ]);
        let (operations, unchanged) = plan(
            vec![(shop, shop_report), (blog.clone(), blog_report.clone())],
            &existing,
        );
        assert_eq!(unchanged, 1);
        assert_eq!(
            operations,
            vec![
                Operation::Apply(blog, blog_report),
                Operation::Delete(key("gone"))
            ]
        );
    }

    #[test]
    fn auto_prefers_openreports_and_falls_back_to_wgpolicyk8s() {
        let both = Served(ReportApi::ALL.into());
        let wg_only = Served([ReportApi::Wgpolicyk8s].into());
        let none = Served::default();
        assert_eq!(
            both.choose(ReportsSetting::Auto),
            Ok(ReportApi::OpenReports)
        );
        assert_eq!(
            wg_only.choose(ReportsSetting::Auto),
            Ok(ReportApi::Wgpolicyk8s)
        );
        assert_eq!(
            both.choose(ReportsSetting::Wgpolicyk8s),
            Ok(ReportApi::Wgpolicyk8s)
        );
        let why = none.choose(ReportsSetting::Auto).unwrap_err();
        assert!(
            why.contains("openreports.io/v1alpha1 nor wgpolicyk8s.io/v1alpha2"),
            "{why}"
        );
        assert!(wg_only.choose(ReportsSetting::Openreports).is_err());
        assert!(both.choose(ReportsSetting::Off).is_err());
    }
}
