//! The live background audit inside `serve --audit`: while this replica leads (see
//! [`super::lease`]), on every period, after every policy reload that swapped a new set in,
//! and when it becomes the leader, it lists the audited kinds page by page, judges every object
//! with the audit core ([`crate::audit::run`], the webhook's own evaluation) against the live
//! store, builds the reports ([`crate::audit::reports`]) and hands them to the
//! [`super::writer`].
//!
//! Admission latency comes first:
//! - evaluation and report building run on one dedicated thread at a lower scheduling priority
//!   (SCHED_IDLE on Linux), never on the tokio workers that answer admission reviews; when the two
//!   cores are busy the scheduler gives the review threads the CPU;
//! - objects arrive a page at a time ([`AuditSettings::page_size`]), so the full objects held
//!   at once are one page, and the loop awaits between pages (the list call), so a run never
//!   holds a core for the whole cluster at once;
//! - a run waits for the store to be synced: judging against a half-listed cluster would
//!   report violations that are not there.
//!
//! A run stops early (nothing written) when the replica stops leading or the server shuts down.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::audit::cache::{file_identity, run_cached, AuditCache, CacheUse, Identity};
use crate::audit::live_metrics::{AuditMetrics, RunFigures, RunOutcome, WriteOutcome};
use crate::audit::writer::{self, ReportApi, ReportWriter, ReportsSetting, WriterSettings};
use crate::audit::{self as core, AuditOptions, AuditResult, Flavor, ReportOptions};
use crate::manifest::Document;
use crate::policy::view::{ClusterView, SyncStatus};
use crate::reload::ActivePolicies;
use crate::store::watch::{GATEWAY_GROUP, HTTP_ROUTE_VERSIONS};
use crate::store::Store;

/// How the live audit runs.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Time between runs (a policy reload or a new leadership starts one sooner).
    pub period: Duration,
    /// Which report API to write, if any.
    pub reports: ReportsSetting,
    /// Results kept per report; the report says how many were left out.
    pub result_cap: usize,
    /// Objects per list call (and per evaluation batch).
    pub page_size: u32,
    /// Bounds on the report writes.
    pub writer: WriterSettings,
    /// rollout-guard's own namespace (never governed, as in admission).
    pub own_namespace: Option<String>,
    /// The webhook's admission reviews in flight, which the audit gives way to
    /// ([`AuditOptions::give_way`]); `None` for an audit without a webhook beside it.
    pub reviews_in_flight: Option<Arc<std::sync::atomic::AtomicUsize>>,
}

/// Where the audited objects come from.
#[derive(Clone)]
pub enum AuditSource {
    /// Listed from the API server (and reports written there).
    Cluster(kube::Client),
    /// `serve --objects` manifests, read file by file (no reports written: no API server).
    Manifests(Vec<PathBuf>),
}

/// A kind the audit lists: the kinds the webhook judges.
#[derive(Debug, Clone, Copy)]
struct AuditedKind {
    group: &'static str,
    versions: &'static [&'static str],
    kind: &'static str,
    plural: &'static str,
}

const AUDITED_KINDS: [AuditedKind; 4] = [
    AuditedKind {
        group: "apps",
        versions: &["v1"],
        kind: "Deployment",
        plural: "deployments",
    },
    AuditedKind {
        group: "",
        versions: &["v1"],
        kind: "Service",
        plural: "services",
    },
    AuditedKind {
        group: "networking.k8s.io",
        versions: &["v1"],
        kind: "Ingress",
        plural: "ingresses",
    },
    AuditedKind {
        group: GATEWAY_GROUP,
        versions: HTTP_ROUTE_VERSIONS,
        kind: "HTTPRoute",
        plural: "httproutes",
    },
];

/// Parses `--audit-period`-style durations: `500ms`, `30s`, `10m`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 30s, 10m, 1h, 500ms)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (ms, s, m or h)"
            ))
        }
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 7.0 * 86400.0 {
        return Err(format!("`{text}` must be above zero and at most a week"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A list response, items unread (each is read on its own, see [`ListPage::read`]).
#[derive(Deserialize)]
struct RawList<'a> {
    #[serde(default)]
    metadata: RawListMeta,
    #[serde(borrow, default)]
    items: Vec<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize, Default)]
struct RawListMeta {
    #[serde(rename = "continue", default)]
    continue_: Option<String>,
}

/// Why a run could not finish.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("cannot list {kind}s: {source}")]
    List {
        kind: &'static str,
        source: kube::Error,
    },
    #[error("cannot read the list of {kind}s: {message}")]
    UnreadableList { kind: &'static str, message: String },
    #[error("cannot read --objects: {0}")]
    Manifests(String),
    #[error("the audit thread stopped")]
    ThreadGone,
    #[error(transparent)]
    Write(#[from] writer::WriteError),
}

/// Why a run stopped early.
enum Stop {
    /// Leadership lost or shutting down.
    Aborted,
    /// Could not complete.
    Failed(RunError),
}

impl From<RunError> for Stop {
    fn from(error: RunError) -> Self {
        Stop::Failed(error)
    }
}

/// The live audit's state.
pub struct LiveAudit {
    settings: AuditSettings,
    source: AuditSource,
    policies: ActivePolicies,
    store: Arc<Store>,
    metrics: Arc<AuditMetrics>,
    thread: AuditThread,
    /// Verdicts kept between runs; used on the audit thread only (the lock is never contended).
    cache: Arc<std::sync::Mutex<AuditCache>>,
    /// The last "reports are not written because …", so it is logged once, not every run.
    last_no_reports: Option<String>,
}

impl LiveAudit {
    /// Prepares the audit (starts its thread).
    pub fn new(
        settings: AuditSettings,
        source: AuditSource,
        policies: ActivePolicies,
        store: Arc<Store>,
        metrics: Arc<AuditMetrics>,
    ) -> std::io::Result<Self> {
        metrics.enable();
        Ok(Self {
            settings,
            source,
            policies,
            store,
            metrics,
            thread: AuditThread::spawn()?,
            cache: Arc::default(),
            last_no_reports: None,
        })
    }

    /// Runs until `shutdown` turns true: audits while `leading` is true, on the period, after
    /// policy changes (`policy_changes` ticks) and on becoming the leader.
    pub async fn run(
        mut self,
        mut leading: watch::Receiver<bool>,
        mut policy_changes: watch::Receiver<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            // Follower: wait to lead.
            while !*leading.borrow_and_update() {
                self.metrics.set_leader(false);
                tokio::select! {
                    changed = leading.changed() => if changed.is_err() { return },
                    _ = shutdown.changed() => return,
                }
            }
            self.metrics.set_leader(true);
            if *shutdown.borrow() {
                return;
            }
            if !self.wait_for_store(&mut leading, &mut shutdown).await {
                continue;
            }
            policy_changes.borrow_and_update();
            match self.run_once(&leading, &shutdown).await {
                Ok(()) => self.metrics.record_run(RunOutcome::Ok),
                Err(Stop::Aborted) => {
                    tracing::info!("audit run stopped: no longer leading or shutting down");
                    self.metrics.record_run(RunOutcome::Aborted);
                }
                Err(Stop::Failed(error)) => {
                    tracing::warn!(%error, "audit run failed; retried on the next period");
                    self.metrics.record_run(RunOutcome::Error);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.period) => {}
                changed = policy_changes.changed() => {
                    if changed.is_ok() {
                        tracing::info!("policies reloaded; auditing again");
                    }
                }
                changed = leading.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Waits until the store has synced. `false` when leadership ended meanwhile.
    async fn wait_for_store(
        &self,
        leading: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut said = false;
        loop {
            match self.store.sync_status() {
                SyncStatus::Synced => return true,
                SyncStatus::NotSynced(why) => {
                    if !said {
                        tracing::info!(%why, "audit waits for the store to sync");
                        said = true;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = leading.changed() => if !*leading.borrow() { return false },
                _ = shutdown.changed() => return false,
            }
        }
    }

    async fn run_once(
        &mut self,
        leading: &watch::Receiver<bool>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        let started = Instant::now();
        let policies = self.policies.current();
        // Every step whose cost grows with the cluster runs on the audit thread, the bookkeeping
        // too (moving 40k cache entries, counting results by rule and namespace, dropping them):
        // while a tokio worker does it, the admission reviews queued on that worker wait.
        let cache = Arc::clone(&self.cache);
        self.thread
            .run(move || lock(&cache).begin_run())
            .await
            .ok_or(RunError::ThreadGone)?;
        let mut cache_use = CacheUse::default();
        // One instant for the whole run: a break-glass grant expiring mid-run must not judge
        // one page by a different clock than the next.
        let options = Arc::new(AuditOptions {
            own_namespace: self.settings.own_namespace.clone(),
            reviews_in_flight: self.settings.reviews_in_flight.clone(),
            ..AuditOptions::at(std::time::SystemTime::now())
        });
        let stopped = || !*leading.borrow() || *shutdown.borrow();
        // The run's result so far; it moves into each page's job and back (a move, not a copy),
        // so pages are added to it on the audit thread.
        let mut result = AuditResult::default();
        let mut cpu = Duration::ZERO;
        let mut objects = 0u64;
        match self.source.clone() {
            AuditSource::Cluster(client) => {
                for kind in AUDITED_KINDS {
                    let mut pages = Pages::new(&client, kind, self.settings.page_size);
                    while let Some(page) = pages.next().await? {
                        if stopped() {
                            self.thread.discard(result);
                            return Err(Stop::Aborted);
                        }
                        let (policies, store, options, cache) = (
                            Arc::clone(&policies),
                            Arc::clone(&self.store),
                            Arc::clone(&options),
                            Arc::clone(&self.cache),
                        );
                        let mut so_far = std::mem::take(&mut result);
                        // The page is read on the audit thread too: a page of 500 Deployments
                        // is megabytes of JSON, tens of milliseconds a review thread would
                        // otherwise not answer in.
                        let (judged, page_cpu) = self
                            .thread
                            .run(move || {
                                options.give_way();
                                let (items, next) = page.read(|| options.give_way())?;
                                let count = items.len();
                                let mut documents: Vec<Document> =
                                    items.into_iter().map(core::live_document).collect();
                                let (judged, used) = run_cached(
                                    &mut documents,
                                    &store,
                                    &policies,
                                    &options,
                                    Identity::ResourceVersion,
                                    &mut lock(&cache),
                                );
                                so_far.absorb(judged);
                                Ok::<_, RunError>((so_far, used, count, next))
                            })
                            .await
                            .ok_or(RunError::ThreadGone)?;
                        let (so_far, used, count, next) = judged?;
                        result = so_far;
                        pages.advance(next);
                        objects += count as u64;
                        cpu += page_cpu;
                        cache_use.add(used);
                    }
                }
            }
            AuditSource::Manifests(paths) => {
                let files = crate::manifest::files(&paths)
                    .map_err(|e| RunError::Manifests(e.to_string()))?;
                for file in files {
                    if stopped() {
                        self.thread.discard(result);
                        return Err(Stop::Aborted);
                    }
                    let (policies, store, options, cache) = (
                        Arc::clone(&policies),
                        Arc::clone(&self.store),
                        Arc::clone(&options),
                        Arc::clone(&self.cache),
                    );
                    let mut so_far = std::mem::take(&mut result);
                    let (page, page_cpu) = self
                        .thread
                        .run(move || {
                            // Reading and parsing the file is not the audit's cost in a
                            // cluster (the list does it there): only the evaluation is timed.
                            options.give_way();
                            let text = std::fs::read_to_string(&file).map_err(|source| {
                                crate::manifest::ManifestError::Io {
                                    path: file.clone(),
                                    source,
                                }
                                .to_string()
                            })?;
                            let mut documents =
                                crate::manifest::parse_text_pausing(&file, &text, || {
                                    options.give_way()
                                })
                                .map_err(|e| e.to_string())?;
                            let cpu_before = thread_cpu();
                            let (judged, used) = run_cached(
                                &mut documents,
                                &store,
                                &policies,
                                &options,
                                file_identity(&text),
                                &mut lock(&cache),
                            );
                            so_far.absorb(judged);
                            let measured = thread_cpu().zip(cpu_before);
                            Ok::<_, String>((so_far, used, documents.len(), measured))
                        })
                        .await
                        .ok_or(RunError::ThreadGone)?;
                    let (so_far, used, count, measured) = page.map_err(RunError::Manifests)?;
                    result = so_far;
                    objects += count as u64;
                    cpu +=
                        measured.map_or(page_cpu, |(after, before)| after.saturating_sub(before));
                    cache_use.add(used);
                }
            }
        }
        if stopped() {
            self.thread.discard(result);
            return Err(Stop::Aborted);
        }

        let target = self.report_target().await;
        let flavor = match &target {
            Ok(ReportTarget::Write { api, .. }) => Some(flavor_of(*api)),
            _ => None,
        };
        let report_options = ReportOptions {
            max_results: self.settings.result_cap,
            ..ReportOptions::default()
        };
        let cache = Arc::clone(&self.cache);
        // The result is counted, turned into reports and dropped on the audit thread.
        let (summary, summary_cpu) = self
            .thread
            .run(move || {
                lock(&cache).finish_run();
                let violations = violations_by_rule_namespace(&result);
                let reports: Vec<Value> = flavor.map_or_else(Vec::new, |flavor| {
                    core::reports(&result, flavor, &report_options)
                        .into_iter()
                        .map(|report| report.object)
                        .collect()
                });
                (violations, result.totals, reports)
            })
            .await
            .ok_or(RunError::ThreadGone)?;
        cpu += summary_cpu;
        let (violations, totals, reports) = summary;

        let written = match target? {
            ReportTarget::Write {
                client,
                api,
                served,
            } => {
                self.write_reports(client, api, &served, &reports, leading, shutdown)
                    .await?
            }
            ReportTarget::None(words) => words,
        };
        let figures = RunFigures {
            duration_seconds: started.elapsed().as_secs_f64(),
            cpu_seconds: cpu.as_secs_f64(),
            objects,
            finished_unix_seconds: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        };
        tracing::info!(
            objects,
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            cpu_ms = u64::try_from(cpu.as_millis()).unwrap_or(u64::MAX),
            pass = totals.pass,
            fail = totals.fail,
            warn = totals.warn,
            error = totals.error,
            reused = cache_use.reused,
            judged = cache_use.judged,
            reports = %written,
            "audit run complete"
        );
        self.metrics.record_completed(figures, violations);
        Ok(())
    }

    /// Where this run's reports go.
    async fn report_target(&mut self) -> Result<ReportTarget, Stop> {
        let client = match (&self.source, self.settings.reports) {
            (_, ReportsSetting::Off) => return Ok(ReportTarget::None("off".to_owned())),
            (AuditSource::Manifests(_), _) => {
                self.no_reports("no API server (--objects)");
                return Ok(ReportTarget::None("none: no API server".to_owned()));
            }
            (AuditSource::Cluster(client), _) => client.clone(),
        };
        let served = writer::discover(&client).await.map_err(RunError::from)?;
        let api = match served.choose(self.settings.reports) {
            Ok(api) => api,
            Err(why) => {
                self.no_reports(&why);
                return Ok(ReportTarget::None(format!("none: {why}")));
            }
        };
        if self.last_no_reports.take().is_some() {
            tracing::info!(api = api.api_version(), "audit reports are written again");
        }
        Ok(ReportTarget::Write {
            client,
            api,
            served,
        })
    }

    /// Writes the reports built for `api`; returns a few words on what was written (for the log).
    async fn write_reports(
        &mut self,
        client: kube::Client,
        api: ReportApi,
        served: &writer::Served,
        reports: &[Value],
        leading: &watch::Receiver<bool>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<String, Stop> {
        let report_writer = ReportWriter::new(client, self.settings.writer);
        let lost = wait_until_stopped(leading.clone(), shutdown.clone());
        let summary = tokio::select! {
            summary = report_writer.sync(api, reports) => summary.map_err(RunError::from)?,
            _ = lost => return Err(Stop::Aborted),
        };
        // Ours in the other API (written before a switch of flavour) are stale too.
        let mut deleted_elsewhere = 0;
        for other in ReportApi::ALL {
            if other != api && served.0.contains(&other) {
                match report_writer.sync(other, &[]).await {
                    Ok(cleaned) => {
                        deleted_elsewhere += cleaned.deleted;
                        self.record_summary(&cleaned);
                    }
                    Err(error) => tracing::warn!(%error, "cannot remove old reports"),
                }
            }
        }
        self.record_summary(&summary);
        for error in summary.errors.iter().take(5) {
            tracing::warn!(%error, "report write failed");
        }
        Ok(format!(
            "{}: {} applied, {} unchanged, {} deleted, {} failed",
            api.api_version(),
            summary.applied,
            summary.unchanged,
            summary.deleted + deleted_elsewhere,
            summary.failed
        ))
    }

    fn record_summary(&self, summary: &writer::WriteSummary) {
        self.metrics
            .record_writes(WriteOutcome::Applied, summary.applied);
        self.metrics
            .record_writes(WriteOutcome::Unchanged, summary.unchanged);
        self.metrics
            .record_writes(WriteOutcome::Deleted, summary.deleted);
        self.metrics
            .record_writes(WriteOutcome::Failed, summary.failed);
    }

    fn no_reports(&mut self, why: &str) {
        if self.last_no_reports.as_deref() != Some(why) {
            tracing::warn!(
                setting = self.settings.reports.as_str(),
                "audit reports are not written: {why}; the audit still runs and exports metrics"
            );
            self.last_no_reports = Some(why.to_owned());
        }
    }
}

/// Where a run's reports go.
enum ReportTarget {
    /// Write them to `api` (of those the API server `served`).
    Write {
        client: kube::Client,
        api: ReportApi,
        served: writer::Served,
    },
    /// None are written; a few words for the log on why.
    None(String),
}

/// Per `(rule, namespace)`, the results that are not a pass (only those with some).
fn violations_by_rule_namespace(result: &AuditResult) -> BTreeMap<(String, String), u64> {
    result
        .counts_by_rule_namespace()
        .into_iter()
        .map(|(key, counts)| {
            let not_passed = counts.fail + counts.warn + counts.error;
            (key, u64::try_from(not_passed).unwrap_or(u64::MAX))
        })
        .filter(|(_, count)| *count > 0)
        .collect()
}

fn flavor_of(api: ReportApi) -> Flavor {
    match api {
        ReportApi::OpenReports => Flavor::OpenReports,
        ReportApi::Wgpolicyk8s => Flavor::Wgpolicyk8s,
    }
}

async fn wait_until_stopped(
    mut leading: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if !*leading.borrow_and_update() || *shutdown.borrow_and_update() {
            return;
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { return },
            changed = shutdown.changed() => if changed.is_err() { return },
        }
    }
}

/// One kind's list, page by page.
struct Pages<'a> {
    client: &'a kube::Client,
    kind: AuditedKind,
    page_size: u32,
    /// The version found served, once the first page came back.
    version: Option<&'static str>,
    next: Option<String>,
    done: bool,
}

impl<'a> Pages<'a> {
    fn new(client: &'a kube::Client, kind: AuditedKind, page_size: u32) -> Self {
        Self {
            client,
            kind,
            page_size: page_size.max(1),
            version: None,
            next: None,
            done: false,
        }
    }

    fn path(&self, version: &str) -> String {
        if self.kind.group.is_empty() {
            format!("/api/{version}/{}", self.kind.plural)
        } else {
            format!("/apis/{}/{version}/{}", self.kind.group, self.kind.plural)
        }
    }

    /// The next page, as the API server sent it (read it with [`ListPage::read`], then pass its
    /// continue token to [`Pages::advance`]); `None` after the last page, or when the kind is
    /// not served (a CRD that is not installed).
    async fn next(&mut self) -> Result<Option<ListPage>, RunError> {
        if self.done {
            return Ok(None);
        }
        let versions: Vec<&'static str> = match self.version {
            Some(version) => vec![version],
            None => self.kind.versions.to_vec(),
        };
        for version in versions {
            let mut params = kube::api::ListParams::default().limit(self.page_size);
            if let Some(token) = &self.next {
                params = params.continue_token(token);
            }
            let request = kube::core::Request::new(self.path(version))
                .list(&params)
                .map_err(|e| RunError::List {
                    kind: self.kind.kind,
                    source: kube::Error::BuildRequest(e),
                })?;
            match self.client.request_text(request).await {
                Ok(text) => {
                    self.version = Some(version);
                    // Until `advance` says otherwise, this was the last page.
                    self.done = true;
                    let api_version = if self.kind.group.is_empty() {
                        version.to_owned()
                    } else {
                        format!("{}/{version}", self.kind.group)
                    };
                    return Ok(Some(ListPage {
                        text,
                        api_version,
                        kind: self.kind.kind,
                    }));
                }
                Err(kube::Error::Api(status)) if status.code == 404 && self.version.is_none() => {
                    continue;
                }
                Err(source) => {
                    return Err(RunError::List {
                        kind: self.kind.kind,
                        source,
                    })
                }
            }
        }
        // No version served: the CRD is not installed; nothing of this kind to audit.
        self.done = true;
        Ok(None)
    }

    /// Moves past the page just read: `next` is its continue token (`None` on the last page).
    fn advance(&mut self, next: Option<String>) {
        self.next = next.filter(|token| !token.is_empty());
        self.done = self.next.is_none();
    }
}

/// One page of a list, unread.
struct ListPage {
    text: String,
    api_version: String,
    kind: &'static str,
}

impl ListPage {
    /// The page's objects, each with its apiVersion and kind (list items lack them) and without
    /// managedFields, and the continue token. The items are read one at a time with `between`
    /// before each: a page of 500 Deployments is megabytes, and the audit gives way to
    /// admission reviews between objects rather than after the whole page.
    fn read(self, mut between: impl FnMut()) -> Result<(Vec<Value>, Option<String>), RunError> {
        let unreadable = |e: serde_json::Error| RunError::UnreadableList {
            kind: self.kind,
            message: e.to_string(),
        };
        let list: RawList = serde_json::from_str(&self.text).map_err(unreadable)?;
        let mut items = Vec::with_capacity(list.items.len());
        for raw in list.items {
            between();
            let mut item: Value = serde_json::from_str(raw.get()).map_err(unreadable)?;
            if let Some(object) = item.as_object_mut() {
                object.insert("apiVersion".into(), Value::String(self.api_version.clone()));
                object.insert("kind".into(), Value::String(self.kind.to_owned()));
                if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
                    metadata.remove("managedFields");
                }
            }
            items.push(item);
        }
        Ok((items, list.metadata.continue_))
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The thread the audit's CPU work runs on, at a lower priority than the review threads.
struct AuditThread {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl AuditThread {
    fn spawn() -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("rollout-guard-audit".to_owned())
            .spawn(move || {
                lower_priority();
                // Ends when the audit (the sender) is dropped.
                while let Ok(job) = queue.recv() {
                    job();
                }
            })?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the audit thread; returns its result and the thread's CPU time for it
    /// (wall time where the platform does not say). `None` if the thread is gone.
    async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Option<(R, Duration)> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let wall = Instant::now();
            let before = thread_cpu();
            let value = work();
            let cpu = match (before, thread_cpu()) {
                (Some(before), Some(after)) => after.saturating_sub(before),
                _ => wall.elapsed(),
            };
            let _ = done.send((value, cpu));
        });
        self.jobs.send(job).ok()?;
        result.await.ok()
    }

    /// Drops `value` on the audit thread, without waiting: dropping a run's result (tens of
    /// thousands of verdicts) is work a review thread must not do.
    fn discard<T: Send + 'static>(&self, value: T) {
        // If the thread is gone the job comes back and is dropped here: nothing else to do.
        let _ = self.jobs.send(Box::new(move || drop(value)));
    }
}

/// The audit cache, also after a panic on the audit thread: its entries are whole values (one
/// being judged is simply missing and judged again next run).
fn lock(cache: &std::sync::Mutex<AuditCache>) -> std::sync::MutexGuard<'_, AuditCache> {
    cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// CPU time of the calling thread: the first field of `/proc/thread-self/schedstat`
/// (nanoseconds on the CPU). `None` off Linux.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// SCHED_IDLE for the calling thread (Linux schedules each thread on its own): it runs only on
/// CPU time no other thread wants, so an audit never delays an admission review on a busy
/// node; it still progresses, slowly, under full load. Nice 10 where SCHED_IDLE is refused.
#[cfg(target_os = "linux")]
fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads the param we pass by reference for the call only; pid 0
    // is the calling thread. setpriority and gettid take plain integers.
    let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if idle == 0 {
        return;
    }
    let idle_error = std::io::Error::last_os_error();
    // SAFETY: as above, plain integers.
    let nice = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10)
    };
    if nice != 0 {
        tracing::debug!(
            sched_idle = %idle_error,
            nice = %std::io::Error::last_os_error(),
            "cannot lower the audit thread's priority; it runs at normal priority"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "0s", "-1s", "10 minutes", "1d", "s", "9999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    /// A list page is read on the audit thread: items get their apiVersion and kind and lose
    /// managedFields, the continue token comes back, the audit may pause before each item, and
    /// a page that is not a list is an error naming the kind, never a panic.
    #[test]
    fn list_pages_are_read_into_objects_or_refused() {
        let page = |text: &str| ListPage {
            text: text.to_owned(),
            api_version: "apps/v1".to_owned(),
            kind: "Deployment",
        };
        let mut pauses = 0;
        let (items, next) = page(
            r#"{"kind": "DeploymentList", "metadata": {"continue": "abc"},
                "items": [{"metadata": {"name": "web", "managedFields": [{"manager": "kubectl"}]}},
                          {"metadata": {"name": "api"}}]}"#,
        )
        .read(|| pauses += 1)
        .unwrap();
        assert_eq!(next.as_deref(), Some("abc"));
        assert_eq!(items.len(), 2);
        assert_eq!(pauses, 2, "one pause before each item");
        assert_eq!(items[1]["metadata"]["name"], "api");
        assert_eq!(items[0]["apiVersion"], "apps/v1");
        assert_eq!(items[0]["kind"], "Deployment");
        assert_eq!(items[0]["metadata"]["name"], "web");
        assert!(items[0]["metadata"].get("managedFields").is_none());

        let (items, next) = page(r#"{"metadata": {}}"#).read(|| {}).unwrap();
        assert!(items.is_empty() && next.is_none());

        for broken in ["", "<html>502</html>", r#"{"items": 5}"#, r#"{"items": [1"#] {
            match page(broken).read(|| {}) {
                Err(RunError::UnreadableList { kind, message }) => {
                    assert_eq!(kind, "Deployment");
                    assert!(!message.is_empty(), "{broken}");
                }
                other => panic!("{broken}: {:?}", other.map(|(items, _)| items.len())),
            }
        }
    }

    #[test]
    fn thread_cpu_moves_forward() {
        if let Some(before) = thread_cpu() {
            let mut x = 0u64;
            for i in 0..2_000_000u64 {
                x = x.wrapping_add(i * i);
            }
            std::hint::black_box(x);
            assert!(thread_cpu().unwrap() > before, "busy work took no CPU time");
        }
    }
}
