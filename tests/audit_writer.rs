//! The report writer against a fake API server (tests/common/fake_api.rs): which report API
//! discovery finds, server-side apply of each report by the `rollout-guard` field manager, no
//! write when a report is unchanged, deletion of our stale reports (and only ours), and the
//! bound on concurrent writes.

#[path = "common/fake_api.rs"]
mod fake_api;

use std::time::Duration;

use fake_api::FakeApi;
use rollout_guard::audit::writer::{
    discover, ReportApi, ReportWriter, ReportsSetting, WriterSettings, DIGEST_ANNOTATION,
    MANAGED_BY_LABEL,
};
use serde_json::{json, Value};

const OPENREPORTS: &str = "openreports.io/v1alpha1";
const WGPOLICY: &str = "wgpolicyk8s.io/v1alpha2";

/// A Report for `namespace` with `failures` failing results, as the CRD's schema takes it.
fn report(namespace: &str, failures: usize) -> Value {
    let results: Vec<Value> = (0..failures)
        .map(|n| {
            json!({"policy": "rollout-guard/default", "rule": "rollingUpdate.maxUnavailable",
            "result": "fail", "source": "rollout-guard", "message": "maxUnavailable 100% takes every pod down",
            "resources": [{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": namespace,
                "name": format!("web-{n}")}]})
        })
        .collect();
    json!({"apiVersion": OPENREPORTS, "kind": "Report",
        "metadata": {"name": "rollout-guard", "namespace": namespace},
        "source": "rollout-guard",
        "summary": {"pass": 2, "fail": failures, "warn": 0, "error": 0, "skip": 0},
        "results": results})
}

fn cluster_report(failures: usize) -> Value {
    json!({"apiVersion": OPENREPORTS, "kind": "ClusterReport",
        "metadata": {"name": "rollout-guard"},
        "summary": {"pass": 1, "fail": failures, "warn": 0, "error": 0, "skip": 0},
        "results": []})
}

fn writer(client: kube::Client) -> ReportWriter {
    ReportWriter::new(
        client,
        WriterSettings {
            concurrency: 2,
            writes_per_second: 0,
        },
    )
}

fn count(api: &FakeApi, method: &str) -> usize {
    api.requests().iter().filter(|r| r.method == method).count()
}

#[tokio::test]
async fn discovery_prefers_openreports_and_falls_back_to_wgpolicyk8s() {
    let api = FakeApi::new();
    let client = api.start().await;
    let none = discover(&client).await.unwrap();
    assert!(none.0.is_empty());
    assert!(none.choose(ReportsSetting::Auto).is_err());

    api.serve_wgpolicyk8s();
    let wg = discover(&client).await.unwrap();
    assert_eq!(wg.choose(ReportsSetting::Auto), Ok(ReportApi::Wgpolicyk8s));
    assert!(wg.choose(ReportsSetting::Openreports).is_err());

    api.serve_openreports();
    let both = discover(&client).await.unwrap();
    assert_eq!(
        both.choose(ReportsSetting::Auto),
        Ok(ReportApi::OpenReports)
    );
    assert_eq!(
        both.choose(ReportsSetting::Wgpolicyk8s),
        Ok(ReportApi::Wgpolicyk8s)
    );

    // A group/version that lists only one of the two resources does not count.
    let api = FakeApi::new();
    api.serve_api(OPENREPORTS, &[("reports", "Report", true)]);
    let client = api.start().await;
    assert!(discover(&client).await.unwrap().0.is_empty());

    // Discovery failing for another reason is an error, not "not served".
    let api = FakeApi::new();
    api.fail("/apis/openreports.io", 500);
    let client = api.start().await;
    assert!(discover(&client).await.is_err());
}

#[tokio::test]
async fn reports_are_applied_in_place_skipped_when_unchanged_and_removed_when_stale() {
    let api = FakeApi::new();
    api.serve_openreports();
    // Someone else's report in the same namespace: never touched.
    api.insert(
        "reports",
        json!({"apiVersion": OPENREPORTS, "kind": "Report",
            "metadata": {"name": "kyverno-polr", "namespace": "shop",
                "labels": {MANAGED_BY_LABEL: "kyverno"}}, "results": []}),
    );
    let client = api.start().await;
    let writer = writer(client);

    // First run: both reports and the cluster report created with server-side apply.
    let first = vec![report("shop", 2), report("blog", 1), cluster_report(0)];
    let summary = writer.sync(ReportApi::OpenReports, &first).await.unwrap();
    assert_eq!(
        (
            summary.applied,
            summary.unchanged,
            summary.deleted,
            summary.failed
        ),
        (3, 0, 0, 0),
        "{summary:?}"
    );
    let patches: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 3);
    for patch in &patches {
        assert_eq!(patch.content_type, "application/apply-patch+yaml");
        assert!(
            patch.query.contains("fieldManager=rollout-guard"),
            "{patch:?}"
        );
        assert!(patch.query.contains("force=true"), "{patch:?}");
    }
    assert!(patches
        .iter()
        .any(|p| p.path == "/apis/openreports.io/v1alpha1/clusterreports/rollout-guard"));
    let shop = api
        .get(OPENREPORTS, "reports", "shop", "rollout-guard")
        .unwrap();
    assert_eq!(
        shop["metadata"]["labels"][MANAGED_BY_LABEL],
        "rollout-guard"
    );
    assert_eq!(shop["results"].as_array().unwrap().len(), 2);
    let uid = shop["metadata"]["uid"].clone();

    // Second run, same results: nothing written.
    api.clear_requests();
    let summary = writer.sync(ReportApi::OpenReports, &first).await.unwrap();
    assert_eq!(
        (summary.applied, summary.unchanged, summary.deleted),
        (0, 3, 0),
        "{summary:?}"
    );
    assert_eq!(count(&api, "PATCH") + count(&api, "DELETE"), 0);

    // Third run: shop changed, blog has no results any more, the cluster report is the same.
    api.clear_requests();
    let third = vec![report("shop", 1), cluster_report(0)];
    let summary = writer.sync(ReportApi::OpenReports, &third).await.unwrap();
    assert_eq!(
        (summary.applied, summary.unchanged, summary.deleted),
        (1, 1, 1),
        "{summary:?}"
    );
    let shop = api
        .get(OPENREPORTS, "reports", "shop", "rollout-guard")
        .unwrap();
    assert_eq!(
        shop["metadata"]["uid"], uid,
        "updated in place, not re-created"
    );
    assert_eq!(shop["results"].as_array().unwrap().len(), 1);
    assert!(api
        .get(OPENREPORTS, "reports", "blog", "rollout-guard")
        .is_none());
    assert!(
        api.get(OPENREPORTS, "reports", "shop", "kyverno-polr")
            .is_some(),
        "a report we do not own is never deleted"
    );

    // A report edited by hand (digest gone) is written again.
    let mut edited = api
        .get(OPENREPORTS, "reports", "shop", "rollout-guard")
        .unwrap();
    edited["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove(DIGEST_ANNOTATION);
    edited["results"] = json!([]);
    api.insert("reports", edited);
    let summary = writer.sync(ReportApi::OpenReports, &third).await.unwrap();
    assert_eq!((summary.applied, summary.unchanged), (1, 1), "{summary:?}");
    let shop = api
        .get(OPENREPORTS, "reports", "shop", "rollout-guard")
        .unwrap();
    assert_eq!(shop["results"].as_array().unwrap().len(), 1);

    // Nothing to report: every report of ours goes.
    let summary = writer.sync(ReportApi::OpenReports, &[]).await.unwrap();
    assert_eq!(summary.deleted, 2, "{summary:?}");
    assert_eq!(
        api.all(OPENREPORTS, "reports").len(),
        1,
        "only kyverno's is left"
    );
    assert!(api.all(OPENREPORTS, "clusterreports").is_empty());
}

#[tokio::test]
async fn wgpolicyk8s_reports_are_written_to_their_own_api_and_wrong_kinds_refused() {
    let api = FakeApi::new();
    api.serve_wgpolicyk8s();
    let client = api.start().await;
    let writer = writer(client);
    let policy_report = json!({"apiVersion": WGPOLICY, "kind": "PolicyReport",
        "metadata": {"name": "rollout-guard", "namespace": "shop"},
        "summary": {"pass": 1, "fail": 0, "warn": 0, "error": 0, "skip": 0}, "results": []});
    let summary = writer
        .sync(ReportApi::Wgpolicyk8s, &[policy_report, report("shop", 1)])
        .await
        .unwrap();
    assert_eq!((summary.applied, summary.failed), (1, 1), "{summary:?}");
    assert!(summary.errors[0].contains("not a report kind of wgpolicyk8s.io/v1alpha2"));
    assert!(api
        .get(WGPOLICY, "policyreports", "shop", "rollout-guard")
        .is_some());
    assert!(api.all(OPENREPORTS, "reports").is_empty());
}

#[tokio::test]
async fn writes_are_bounded_and_failures_counted_not_fatal() {
    let api = FakeApi::new();
    api.serve_openreports();
    api.set_write_delay(Duration::from_millis(20));
    let client = api.start().await;
    let writer = ReportWriter::new(
        client,
        WriterSettings {
            concurrency: 3,
            writes_per_second: 0,
        },
    );
    let reports: Vec<Value> = (0..24).map(|n| report(&format!("team-{n}"), 1)).collect();
    let summary = writer.sync(ReportApi::OpenReports, &reports).await.unwrap();
    assert_eq!(summary.applied, 24, "{summary:?}");
    assert!(
        api.max_writes_in_flight() <= 3,
        "{} writes at once",
        api.max_writes_in_flight()
    );

    // One namespace's writes fail: counted with the reason, the others still written.
    api.set_write_delay(Duration::ZERO);
    api.fail("/apis/openreports.io/v1alpha1/namespaces/team-3/", 500);
    let changed: Vec<Value> = (0..24).map(|n| report(&format!("team-{n}"), 2)).collect();
    let summary = writer.sync(ReportApi::OpenReports, &changed).await.unwrap();
    assert_eq!((summary.applied, summary.failed), (23, 1), "{summary:?}");
    assert!(summary.errors[0].contains("team-3"), "{:?}", summary.errors);

    // The owned reports cannot be listed: an error, and nothing written.
    api.heal();
    // 500, not 503: the kube client retries 503s with backoff by itself.
    api.fail("/apis/openreports.io/v1alpha1/reports", 500);
    api.clear_requests();
    assert!(writer.sync(ReportApi::OpenReports, &reports).await.is_err());
    assert_eq!(count(&api, "PATCH"), 0);
}
