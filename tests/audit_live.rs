//! The live audit loop against a fake API server (tests/common/fake_api.rs): while leading it
//! lists the audited kinds page by page, judges them against the store, writes one report per
//! namespace with server-side apply, runs again after a policy reload, removes the report of a
//! namespace whose objects are gone, and stops when it stops leading or the server shuts down.
//! No timed assertions: waits are on conditions.

mod common;
#[path = "common/fake_api.rs"]
mod fake_api;

use std::sync::Arc;
use std::time::Duration;

use fake_api::FakeApi;
use rollout_guard::audit::live_metrics::AuditMetrics;
use rollout_guard::audit::run_loop::{AuditSettings, AuditSource, LiveAudit};
use rollout_guard::audit::writer::{ReportsSetting, WriterSettings};
use rollout_guard::policy::load::embedded_default;
use rollout_guard::reload::ActivePolicies;
use rollout_guard::store::Store;
use serde_json::{json, Value};
use tokio::sync::watch;

const OPENREPORTS: &str = "openreports.io/v1alpha1";

/// maxUnavailable 100%: every pod may go down at once (examples/manifests/all-down.yaml).
fn all_down(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"namespace": namespace, "name": name, "uid": format!("uid-{name}"),
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
        "spec": {"replicas": 4,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%", "maxSurge": 0}},
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "ghcr.io/example/api:v3.2.1",
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}}]}}}})
}

/// A Deployment the default policy has nothing against (its rolling-update settings are the
/// policy's targets, it has a version label and a change-cause).
fn fine(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"namespace": namespace, "name": name, "uid": format!("uid-{name}"),
            "labels": {"app.kubernetes.io/version": "v1.0.0"},
            "annotations": {"kubernetes.io/change-cause": "image web:v1.0.0"}},
        "spec": {"replicas": 2, "revisionHistoryLimit": 5, "progressDeadlineSeconds": 300, "minReadySeconds": 5,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name, "app.kubernetes.io/version": "v1.0.0"}},
                "spec": {"containers": [{"name": "web", "image": "ghcr.io/example/web:v1.0.0",
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}}]}}}})
}

/// Polls until `condition` holds. The bound only keeps a broken build from hanging CI; nothing
/// is asserted about how long it took.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..1500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

fn scrape(metrics: &AuditMetrics) -> String {
    let mut out = String::new();
    metrics.render(&mut out);
    out
}

fn failing_rules(report: &Value) -> Vec<String> {
    report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["result"] != "pass")
        .map(|r| {
            format!(
                "{}.{}",
                r["policy"].as_str().unwrap_or(""),
                r["rule"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The settings the tests start from: a period no test waits for, 100 results per report, the
/// default write bounds, no namespace of rollout-guard's own, no webhook to give way to.
fn settings(reports: ReportsSetting, page_size: u32) -> AuditSettings {
    AuditSettings {
        reviews_in_flight: None,
        period: Duration::from_secs(3600),
        reports,
        result_cap: 100,
        page_size,
        writer: WriterSettings::default(),
        own_namespace: None,
    }
}

/// An audit of the fake API server behind `client`, judged against `store` with the embedded
/// default policy; with the policies and metrics it reports to.
fn live_audit(
    settings: AuditSettings,
    client: kube::Client,
    store: Arc<Store>,
) -> (LiveAudit, ActivePolicies, Arc<AuditMetrics>) {
    let policies = ActivePolicies::new(embedded_default());
    let metrics = Arc::new(AuditMetrics::default());
    let audit = LiveAudit::new(
        settings,
        AuditSource::Cluster(client),
        policies.clone(),
        store,
        Arc::clone(&metrics),
    )
    .unwrap();
    (audit, policies, metrics)
}

#[tokio::test]
async fn the_leader_audits_pages_writes_reports_and_reruns_after_a_policy_reload() {
    let api = FakeApi::new();
    api.serve_openreports();
    let store = Arc::new(Store::offline());
    for deployment in [
        all_down("shop", "api"),
        fine("shop", "web"),
        fine("blog", "web"),
    ] {
        api.insert("deployments", deployment.clone());
        store.apply_object(&deployment).unwrap();
    }
    // Services, Ingresses: served, empty. HTTPRoute: the Gateway API CRDs are not installed.
    let client = api.start().await;
    let (audit, policies, metrics) = live_audit(
        AuditSettings {
            writer: WriterSettings {
                concurrency: 2,
                writes_per_second: 0,
            },
            own_namespace: Some("rollout-guard".into()),
            ..settings(ReportsSetting::Auto, 2)
        },
        client,
        Arc::clone(&store),
    );
    let (leading_tx, leading) = watch::channel(true);
    let (shutdown_tx, shutdown) = watch::channel(false);
    let task = tokio::spawn(audit.run(leading, policies.subscribe(), shutdown));

    eventually("first run written", || {
        scrape(&metrics).contains("rollout_guard_audit_runs_total{result=\"ok\"} 1")
    })
    .await;
    let shop = api
        .get(OPENREPORTS, "reports", "shop", "rollout-guard")
        .expect("a report for shop");
    assert_eq!(shop["kind"], "Report");
    assert_eq!(
        shop["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "rollout-guard"
    );
    let failing = failing_rules(&shop);
    assert!(
        failing.iter().any(|r| r.starts_with("rollingUpdate.")),
        "{failing:?} in {shop:#}"
    );
    assert!(
        shop["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["resources"][0]["name"] == "api"),
        "only api breaks policy: {shop:#}"
    );
    let blog = api
        .get(OPENREPORTS, "reports", "blog", "rollout-guard")
        .expect("a report for blog, which has an audited object");
    assert!(failing_rules(&blog).is_empty(), "{blog:#}");

    // Paged: 3 Deployments in pages of 2, the second asked for with the continue token.
    let deployment_lists: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/apis/apps/v1/deployments")
        .map(|r| r.query)
        .collect();
    assert_eq!(deployment_lists.len(), 2, "{deployment_lists:?}");
    assert!(deployment_lists.iter().all(|q| q.contains("limit=2")));
    assert!(
        deployment_lists[1].contains("continue="),
        "{deployment_lists:?}"
    );

    let text = scrape(&metrics);
    assert!(text.contains("rollout_guard_audit_leader 1"), "{text}");
    assert!(
        text.lines().any(|l| l
            .starts_with("rollout_guard_audit_violations{rule=\"rollingUpdate\"")
            && l.contains("namespace=\"shop\"")),
        "{text}"
    );
    assert!(!text.contains("namespace=\"blog\""), "{text}");
    assert!(
        text.contains("rollout_guard_audit_last_objects 3"),
        "{text}"
    );

    // shop's objects are gone; a policy reload starts the next run at once (the period is an
    // hour): shop's report is removed, blog's is left unchanged (not written again).
    for name in ["api", "web"] {
        let gone = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"namespace": "shop", "name": name}});
        store.delete_object(&gone).unwrap();
    }
    api.remove("apps/v1", "deployments", "shop", "api");
    api.remove("apps/v1", "deployments", "shop", "web");
    api.clear_requests();
    policies.activate(embedded_default());
    eventually("second run", || {
        scrape(&metrics).contains("rollout_guard_audit_runs_total{result=\"ok\"} 2")
    })
    .await;
    assert!(api
        .get(OPENREPORTS, "reports", "shop", "rollout-guard")
        .is_none());
    assert!(api
        .get(OPENREPORTS, "reports", "blog", "rollout-guard")
        .is_some());
    let patches = api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(patches, 0, "blog's report did not change");
    let text = scrape(&metrics);
    assert!(
        !text.contains("namespace=\"shop\""),
        "shop's violations cleared: {text}"
    );

    // No longer leading: the loop goes back to waiting, and says so.
    leading_tx.send_replace(false);
    eventually("not leading", || {
        scrape(&metrics).contains("rollout_guard_audit_leader 0")
    })
    .await;
    shutdown_tx.send_replace(true);
    task.await.unwrap();
}

/// Leadership lost between two list pages: the run stops (counted as aborted, nothing written,
/// its partial result dropped on the audit thread), and when this replica leads again the same
/// thread runs a complete audit.
#[tokio::test]
async fn a_run_that_loses_leadership_mid_list_stops_and_the_next_lead_completes() {
    let api = FakeApi::new();
    api.serve_openreports();
    let store = Arc::new(Store::offline());
    for deployment in [all_down("shop", "api"), fine("shop", "web")] {
        api.insert("deployments", deployment.clone());
        store.apply_object(&deployment).unwrap();
    }
    let client = api.start().await;
    let (audit, policies, metrics) = live_audit(settings(ReportsSetting::Auto, 1), client, store);
    let (leading_tx, leading) = watch::channel(true);
    let leading_tx = Arc::new(leading_tx);
    // The first page of Deployments is answered, then this replica is no longer the leader.
    let demote = Arc::clone(&leading_tx);
    api.after_next_get("/apis/apps/v1/deployments", move |_| {
        demote.send_replace(false);
    });
    let (shutdown_tx, shutdown) = watch::channel(false);
    let task = tokio::spawn(audit.run(leading, policies.subscribe(), shutdown));

    eventually("run aborted", || {
        scrape(&metrics).contains("rollout_guard_audit_runs_total{result=\"aborted\"} 1")
    })
    .await;
    eventually("following", || {
        scrape(&metrics).contains("rollout_guard_audit_leader 0")
    })
    .await;
    assert!(
        api.requests().iter().all(|r| r.method == "GET"),
        "an aborted run writes nothing"
    );
    assert!(scrape(&metrics).contains("rollout_guard_audit_runs_total{result=\"ok\"} 0"));

    leading_tx.send_replace(true);
    eventually("complete run after leading again", || {
        scrape(&metrics).contains("rollout_guard_audit_runs_total{result=\"ok\"} 1")
    })
    .await;
    let shop = api
        .get(OPENREPORTS, "reports", "shop", "rollout-guard")
        .expect("a report for shop");
    assert!(
        failing_rules(&shop)
            .iter()
            .any(|r| r.starts_with("rollingUpdate.")),
        "{shop:#}"
    );
    assert!(scrape(&metrics).contains("rollout_guard_audit_last_objects 2"));
    shutdown_tx.send_replace(true);
    task.await.unwrap();
}

/// With `--audit-reports openreports` on a cluster that only serves wgpolicyk8s, nothing is
/// written, the run still completes and the metrics still count the violations.
#[tokio::test]
async fn without_the_chosen_report_api_the_audit_still_runs_and_writes_nothing() {
    let api = FakeApi::new();
    api.serve_wgpolicyk8s();
    let store = Arc::new(Store::offline());
    let deployment = all_down("shop", "api");
    api.insert("deployments", deployment.clone());
    store.apply_object(&deployment).unwrap();
    let client = api.start().await;
    let (audit, policies, metrics) =
        live_audit(settings(ReportsSetting::Openreports, 100), client, store);
    let (_leading_tx, leading) = watch::channel(true);
    let (shutdown_tx, shutdown) = watch::channel(false);
    let task = tokio::spawn(audit.run(leading, policies.subscribe(), shutdown));
    eventually("run complete", || {
        scrape(&metrics).contains("rollout_guard_audit_runs_total{result=\"ok\"} 1")
    })
    .await;
    assert!(
        api.requests().iter().all(|r| r.method == "GET"),
        "nothing written"
    );
    assert!(api
        .all("wgpolicyk8s.io/v1alpha2", "policyreports")
        .is_empty());
    assert!(scrape(&metrics).contains("namespace=\"shop\""));
    shutdown_tx.send_replace(true);
    task.await.unwrap();
}

/// The real binary: `serve --objects OBJECTS --audit --audit-period PERIOD`, with certificates
/// made in `dir`.
fn serve_audit(
    dir: &common::TempDir,
    objects: &std::path::Path,
    period: &str,
) -> common::ServeProcess {
    use std::ffi::OsStr;
    const BIN: &str = env!("CARGO_BIN_EXE_rollout-guard");
    let certs = dir.0.join("certs");
    let status = std::process::Command::new(BIN)
        .args(["certs", "generate", "--out"])
        .arg(&certs)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let (cert, key) = (certs.join("tls.crt"), certs.join("tls.key"));
    let args: Vec<&OsStr> = vec![
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
        "--objects".as_ref(),
        objects.as_os_str(),
        "--audit".as_ref(),
        "--audit-period".as_ref(),
        period.as_ref(),
    ];
    common::ServeProcess::spawn(BIN, dir.path("server.log"), &args, Duration::from_secs(60))
}

/// `serve --objects --audit`: the real binary audits the manifests it was given (no API server,
/// so no reports, said once in the log) and exports the violations on the admin port.
#[tokio::test]
async fn serve_with_objects_audits_the_manifests_and_exports_metrics() {
    let dir = common::TempDir::new("audit-serve");
    let manifests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/manifests");
    let server = serve_audit(&dir, &manifests, "1h");
    let url = format!("http://{}/metrics", server.admin);
    let mut text = String::new();
    for _ in 0..1500 {
        text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        if text.contains("rollout_guard_audit_runs_total{result=\"ok\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        text.contains("rollout_guard_audit_runs_total{result=\"ok\"} 1"),
        "{text}\n{}",
        server.logs()
    );
    // examples/manifests/all-down.yaml: maxUnavailable 100% in shop.
    assert!(
        text.contains("rollout_guard_audit_violations{rule=\"rollingUpdate\",namespace=\"shop\"}"),
        "{text}"
    );
    assert!(text.contains("rollout_guard_audit_leader 1"), "{text}");
    let logs = server.logs();
    assert!(
        logs.contains("audit reports are not written: no API server (--objects)"),
        "{logs}"
    );
}

/// The `judged` and `reused` counts of every completed run in `logs` (the text log, colours
/// and all), in order.
fn run_counts(logs: &str) -> Vec<(u64, u64)> {
    let plain = |line: &str| {
        let mut text = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // An ANSI colour: ESC [ ... m.
                chars.by_ref().find(|c| *c == 'm');
            } else {
                text.push(c);
            }
        }
        text
    };
    let field = |line: &str, name: &str| -> Option<u64> {
        let at = line.find(&format!(" {name}="))? + name.len() + 2;
        let digits: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    logs.lines()
        .filter(|line| line.contains("audit run complete"))
        .map(plain)
        .filter_map(|line| Some((field(&line, "judged")?, field(&line, "reused")?)))
        .collect()
}

/// `serve --objects --audit` keeps a verdict while the file its object came from is byte for
/// byte the same, and judges every object of an edited file again (the store, loaded at start,
/// does not change here, so only the file's text decides).
#[tokio::test]
async fn serve_with_objects_judges_again_only_the_objects_of_an_edited_file() {
    let dir = common::TempDir::new("audit-files");
    let objects = dir.0.join("objects");
    std::fs::create_dir(&objects).unwrap();
    let write = |name: &str, value: &Value| {
        std::fs::write(
            objects.join(name),
            serde_json::to_vec_pretty(value).unwrap(),
        )
        .unwrap();
    };
    write("a.json", &fine("shop", "a"));
    write("b.json", &all_down("shop", "b"));
    let server = serve_audit(&dir, &objects, "200ms");
    eventually("a run that reuses both verdicts", || {
        run_counts(&server.logs()).contains(&(0, 2))
    })
    .await;
    let runs = run_counts(&server.logs());
    assert_eq!(runs[0], (2, 0), "the first run judges both: {runs:?}");

    // b.json edited (its Deployment now keeps half of its pods): only it is judged again.
    let mut edited = all_down("shop", "b");
    edited["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = json!("50%");
    write("b.json", &edited);
    let before = run_counts(&server.logs()).len();
    // A run under way during the write may still have read the old b.json (and reused both).
    let settled = |runs: &[(u64, u64)]| {
        let judged_b = runs.iter().position(|run| *run == (1, 1));
        judged_b.is_some_and(|at| runs[at + 1..].contains(&(0, 2)))
    };
    eventually("b judged again, then both reused", || {
        settled(&run_counts(&server.logs())[before..])
    })
    .await;
    let after = &run_counts(&server.logs())[before..];
    assert!(
        after.iter().all(|run| [(0, 2), (1, 1)].contains(run)),
        "never more than the edited file's object judged: {after:?}"
    );
}
