use std::path::Path;

use serde_json::{json, Value};

use super::*;
use crate::check::check_documents;
use crate::manifest::{parse_text, read_paths};
use crate::policy::load::embedded_default;
use std::time::SystemTime;

fn documents(yaml: &str) -> Vec<Document> {
    parse_text(Path::new("case.yaml"), yaml).unwrap()
}

fn example(dir: &str) -> Vec<Document> {
    read_paths(&[Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)]).unwrap()
}

fn audit(documents: &[Document]) -> AuditResult {
    run_manifests(
        documents,
        &embedded_default(),
        &AuditOptions::at(SystemTime::now()),
    )
    .0
}

/// `kind/namespace/name policy.rule result` of every result, in report order.
fn result_lines(report: &Report) -> Vec<String> {
    report.object["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let resource = &r["resources"][0];
            format!(
                "{}/{} {}.{} {}",
                resource["kind"].as_str().unwrap(),
                resource["name"].as_str().unwrap(),
                r["policy"].as_str().unwrap(),
                r["rule"].as_str().unwrap_or_default(),
                r["result"].as_str().unwrap()
            )
        })
        .collect()
}

const SHOP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, uid: 0b9f6c1e-1}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.27"}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web-canary
  namespace: shop
  annotations: {nginx.ingress.kubernetes.io/canary: "true", nginx.ingress.kubernetes.io/canary-weight: "10"}
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: dns, namespace: kube-system}
spec:
  selector: {matchLabels: {app: dns}}
  template:
    metadata: {labels: {app: dns}}
    spec: {containers: [{name: dns, image: "coredns:1.11"}]}
"#;

/// The audit gives check's verdicts: the same findings, rule by rule, for every object the
/// webhook looks at, over the repository's examples and the cases here.
#[test]
fn audit_findings_are_checks_findings() {
    for docs in [
        example("examples/strategies"),
        example("examples/manifests"),
        documents(SHOP),
    ] {
        let checked = check_documents(&docs, &embedded_default());
        let audited = audit(&docs);
        let mut audited_objects = audited.objects.iter();
        for evaluation in checked
            .iter()
            .filter(|e| e.decision != Decision::NotChecked)
        {
            let object = audited_objects.next().unwrap();
            assert_eq!(
                (
                    &object.kind,
                    &object.namespace,
                    &object.name,
                    object.decision
                ),
                (
                    &evaluation.kind,
                    &evaluation.namespace,
                    &evaluation.name,
                    evaluation.decision
                )
            );
            let mut want: Vec<(String, &str)> = evaluation
                .findings
                .iter()
                .map(|f| (f.rule.clone(), f.outcome.as_str()))
                .collect();
            let mut got: Vec<(String, &str)> = object
                .findings
                .iter()
                .map(|f| {
                    let outcome = match f.outcome {
                        AuditOutcome::Fail => "denied",
                        AuditOutcome::Warn => "warned",
                        AuditOutcome::Patch => "patched",
                        // Errors are answered by onError: warned or denied, as check says.
                        AuditOutcome::Error | AuditOutcome::WouldPatch => "",
                        AuditOutcome::Bypassed => "bypassed",
                    };
                    (format!("{}.{}", f.rule, f.check), outcome)
                })
                .collect();
            want.sort();
            got.sort();
            for ((want_rule, want_outcome), (got_rule, got_outcome)) in want.iter().zip(&got) {
                assert_eq!(want_rule, got_rule, "{}", evaluation.location);
                if !got_outcome.is_empty() {
                    assert_eq!(want_outcome, got_outcome, "{}", evaluation.location);
                }
            }
            assert_eq!(want.len(), got.len(), "{}", evaluation.location);
        }
        assert!(audited_objects.next().is_none());
        assert_eq!(
            audited.not_checked,
            checked
                .iter()
                .filter(|e| e.decision == Decision::NotChecked)
                .count()
        );
    }
}

/// What each object contributes: results for what is not a pass, passes only in the summary,
/// nothing for what the webhook does not look at.
#[test]
fn results_and_summary_table() {
    struct Case {
        name: &'static str,
        yaml: &'static str,
        /// Result lines of the `shop` report.
        results: &'static [&'static str],
        /// `pass, fail, warn, error` of the `shop` report.
        summary: (u64, u64, u64, u64),
    }
    let cases = [
        Case {
            name: "a deployment missing its version label is reported as a would-be patch",
            yaml: r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.27"}]}
"#,
            // API-server defaults (maxUnavailable 25%, ...) and absent fields the mutating
            // webhook fills in: each a `warn` of its own; deploymentSiblings and rollback ran
            // and passed.
            results: &[
                "Deployment/web changeCause.missing warn",
                "Deployment/web rollingUpdate.maxUnavailable warn",
                "Deployment/web rollingUpdate.minReadySeconds warn",
                "Deployment/web rollingUpdate.progressDeadlineSeconds warn",
                "Deployment/web rollingUpdate.readinessProbe warn",
                "Deployment/web rollingUpdate.revisionHistoryLimit warn",
                "Deployment/web versionLabel.missing warn",
            ],
            summary: (2, 0, 7, 0),
        },
        Case {
            name: "a canary without a main Ingress warns (the next object may add it); the \
                   ConfigMap and kube-system are not looked at",
            yaml: SHOP,
            results: &[
                "Deployment/web changeCause.missing warn",
                "Deployment/web rollingUpdate.maxUnavailable warn",
                "Deployment/web rollingUpdate.minReadySeconds warn",
                "Deployment/web rollingUpdate.progressDeadlineSeconds warn",
                "Deployment/web rollingUpdate.readinessProbe warn",
                "Deployment/web rollingUpdate.revisionHistoryLimit warn",
                "Deployment/web versionLabel.missing warn",
                "Ingress/web-canary ingressCanary.backendService warn",
                "Ingress/web-canary ingressCanary.missingMain warn",
            ],
            summary: (2, 0, 9, 0),
        },
    ];
    for case in cases {
        let result = audit(&documents(case.yaml));
        let reports = reports(&result, Flavor::OpenReports, &ReportOptions::default());
        let shop = reports
            .iter()
            .find(|r| r.namespace.as_deref() == Some("shop"))
            .unwrap_or_else(|| panic!("{}: no shop report", case.name));
        let summary = &shop.object["summary"];
        let got = (
            summary["pass"].as_u64().unwrap(),
            summary["fail"].as_u64().unwrap(),
            summary["warn"].as_u64().unwrap(),
            summary["error"].as_u64().unwrap(),
        );
        assert_eq!(
            (result_lines(shop), got),
            (
                case.results.iter().map(|s| s.to_string()).collect(),
                case.summary
            ),
            "{}",
            case.name
        );
        assert!(
            reports
                .iter()
                .all(|r| r.namespace.as_deref() != Some("kube-system")),
            "{}: kube-system is never governed",
            case.name
        );
    }
}

/// Denials are `fail` with severity high, and every result names its object, rule and source.
#[test]
fn denials_fail_with_their_rule() {
    let result = audit(&example("examples/strategies"));
    assert!(result.any_fail());
    let reports = reports(&result, Flavor::Wgpolicyk8s, &ReportOptions::default());
    let failed: Vec<&Value> = reports
        .iter()
        .flat_map(|r| r.object["results"].as_array().unwrap())
        .filter(|r| r["result"] == "fail")
        .collect();
    assert!(
        failed
            .iter()
            .any(|r| r["policy"] == "httpRoute" && r["rule"] == "shadowedMatch"),
        "{failed:#?}"
    );
    for result in failed {
        assert_eq!(result["severity"], "high");
        assert_eq!(result["source"], SOURCE);
        assert_eq!(result["properties"]["outcome"], "denied");
        assert!(result["properties"]["rolloutPolicy"].is_string());
        assert!(!result["message"].as_str().unwrap().is_empty());
    }
    let summary_fail: u64 = reports
        .iter()
        .map(|r| r.object["summary"]["fail"].as_u64().unwrap())
        .sum();
    assert_eq!(summary_fail as usize, result.totals.fail);
}

/// An unchanged cluster gives byte-identical reports, whatever order the objects were listed
/// in (pages merge in any order), in both flavours.
#[test]
fn reports_are_byte_identical_for_the_same_cluster() {
    let mut docs = example("examples/strategies");
    docs.extend(documents(SHOP));
    let options = AuditOptions::at(SystemTime::now());
    let policies = embedded_default();
    let forward = run_manifests(&docs, &policies, &options).0;
    // The same cluster, listed backwards in two pages.
    let (view, _) = LayeredView::new(&docs, None);
    let mut backwards: Vec<Document> = docs.clone();
    backwards.reverse();
    let (first, second) = backwards.split_at(backwards.len() / 2);
    let mut paged = run(first, &view, &policies, &options);
    paged.absorb(run(second, &view, &policies, &options));
    assert_eq!(paged.totals, forward.totals);
    for flavor in [Flavor::OpenReports, Flavor::Wgpolicyk8s] {
        let bytes = |result: &AuditResult| -> Vec<String> {
            reports(result, flavor, &ReportOptions::default())
                .iter()
                .map(|r| serde_json::to_string(&r.object).unwrap())
                .collect()
        };
        assert_eq!(bytes(&forward), bytes(&paged), "{flavor:?}");
        assert_eq!(bytes(&forward), bytes(&forward.clone()));
    }
}

/// Names, labels and kinds a writer relies on to apply in place and find stale reports.
#[test]
fn reports_are_named_and_labelled_for_apply() {
    let result = audit(&documents(SHOP));
    for (flavor, kind, api_version) in [
        (Flavor::OpenReports, "Report", "openreports.io/v1alpha1"),
        (
            Flavor::Wgpolicyk8s,
            "PolicyReport",
            "wgpolicyk8s.io/v1alpha2",
        ),
    ] {
        let reports = reports(&result, flavor, &ReportOptions::default());
        assert_eq!(reports.len(), 1, "only shop has audited objects");
        let report = &reports[0];
        assert_eq!(report.kind(), kind);
        assert_eq!(report.object["kind"], kind);
        assert_eq!(report.object["apiVersion"], api_version);
        assert_eq!(report.object["metadata"]["name"], REPORT_NAME);
        assert_eq!(report.object["metadata"]["namespace"], "shop");
        assert_eq!(
            report.object["metadata"]["labels"][MANAGED_BY_LABEL],
            MANAGED_BY_VALUE
        );
        assert_eq!(
            report.object["metadata"]["annotations"][report::DIGEST_ANNOTATION],
            result.policy_digest.as_str()
        );
        assert_eq!(
            report.object.get("source").is_some(),
            flavor == Flavor::OpenReports,
            "only OpenReports has a top-level source"
        );
        let uid = report.object["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resources"][0]["name"] == "web")
            .map(|r| r["resources"][0]["uid"].clone());
        assert_eq!(uid, Some(json!("0b9f6c1e-1")));
    }
}

fn synthetic(namespace: &str, name: &str, findings: &[AuditOutcome]) -> AuditedObject {
    AuditedObject {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: namespace.into(),
        name: name.into(),
        uid: None,
        location: "cluster".into(),
        policy: Some("default".into()),
        decision: Decision::Allowed,
        passed: vec!["deploymentSiblings".into()],
        findings: findings
            .iter()
            .enumerate()
            .map(|(index, outcome)| AuditFinding {
                rule: "rollingUpdate".into(),
                check: format!("check{index}"),
                outcome: *outcome,
                message: format!("{outcome:?}"),
                patch: Vec::new(),
            })
            .collect(),
    }
}

fn result_of(objects: Vec<AuditedObject>) -> AuditResult {
    let mut result = AuditResult {
        policy_digest: "d".into(),
        ..AuditResult::default()
    };
    for object in objects {
        result.totals.add(&object.counts());
        result.objects.push(std::sync::Arc::new(object));
    }
    result
}

/// A capped report keeps failures first, counts everything in the summary and says how many
/// results it left out.
#[test]
fn the_result_cap_keeps_failures_and_says_what_it_left_out() {
    use AuditOutcome::*;
    let result = result_of(vec![
        synthetic("shop", "a", &[Warn, Patch]),
        synthetic("shop", "b", &[Warn, Fail]),
        synthetic("shop", "c", &[Error]),
    ]);
    let options = ReportOptions {
        max_results: 2,
        timestamp: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
    };
    for flavor in [Flavor::OpenReports, Flavor::Wgpolicyk8s] {
        let reports = reports(&result, flavor, &options);
        let report = &reports[0];
        assert_eq!(report.left_out, 3);
        assert_eq!(
            report.object["metadata"]["annotations"][report::LEFT_OUT_ANNOTATION],
            "3"
        );
        assert_eq!(
            report.object["summary"],
            json!({"pass": 3, "fail": 1, "warn": 3, "error": 1, "skip": 0})
        );
        let kept: Vec<(&str, &str)> = report.object["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["resources"][0]["name"].as_str().unwrap(),
                    r["result"].as_str().unwrap(),
                )
            })
            .collect();
        // The failure and the error, in object order.
        assert_eq!(kept, [("b", "fail"), ("c", "error")], "{flavor:?}");
        assert_eq!(
            report.object["results"][0]["timestamp"],
            json!({"seconds": 1_700_000_000, "nanos": 0})
        );
        if flavor == Flavor::OpenReports {
            assert_eq!(report.object["configuration"]["limits"]["maxResults"], 2);
        }
    }
    // Under the cap nothing is left out and nothing says so.
    let reports = reports(&result, Flavor::OpenReports, &ReportOptions::default());
    assert_eq!(reports[0].left_out, 0);
    assert!(reports[0].object["metadata"]["annotations"]
        .get(report::LEFT_OUT_ANNOTATION)
        .is_none());
}

/// Cluster-scoped objects go to the cluster-wide report (last), namespaces each to their own.
#[test]
fn cluster_scoped_objects_go_to_the_cluster_report() {
    let result = result_of(vec![
        synthetic("", "everywhere", &[AuditOutcome::Warn]),
        synthetic("zoo", "z", &[AuditOutcome::Fail]),
        synthetic("app", "a", &[]),
    ]);
    for (flavor, cluster_kind) in [
        (Flavor::OpenReports, "ClusterReport"),
        (Flavor::Wgpolicyk8s, "ClusterPolicyReport"),
    ] {
        let reports = reports(&result, flavor, &ReportOptions::default());
        let scopes: Vec<Option<&str>> = reports.iter().map(|r| r.namespace.as_deref()).collect();
        assert_eq!(scopes, [Some("app"), Some("zoo"), None]);
        let cluster = &reports[2];
        assert_eq!(cluster.object["kind"], cluster_kind);
        assert_eq!(cluster.plural(), flavor.plural(true));
        assert!(cluster.object["metadata"].get("namespace").is_none());
        assert!(cluster.object["results"][0]["resources"][0]
            .get("namespace")
            .is_none());
        // A namespace whose objects all pass still gets a report: its passes, no results.
        assert_eq!(reports[0].object["results"], json!([]));
        assert_eq!(reports[0].object["summary"]["pass"], 1);
    }
    let by = result.counts_by_rule_namespace();
    assert_eq!(by[&("rollingUpdate".to_owned(), "zoo".to_owned())].fail, 1);
    assert_eq!(
        by[&("deploymentSiblings".to_owned(), "app".to_owned())].pass,
        1
    );
}

/// An object that cannot be read is an `error` result, never a panic or a silent skip.
#[test]
fn unreadable_objects_are_errors() {
    let docs = documents(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken, namespace: shop}
spec: {replicas: "three"}
"#,
    );
    let result = audit(&docs);
    assert_eq!(result.totals.error, 1, "{result:#?}");
    let reports = reports(&result, Flavor::OpenReports, &ReportOptions::default());
    let first = &reports[0].object["results"][0];
    assert_eq!(first["result"], "error");
    assert_eq!(first["policy"], "object");
}

#[test]
fn the_audit_gives_way_only_while_reviews_are_in_flight_and_never_for_ever() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let options = AuditOptions {
        reviews_in_flight: Some(Arc::clone(&in_flight)),
        ..AuditOptions::at(SystemTime::now())
    };
    // Nothing in flight (or no webhook beside the audit): no wait at all, so a wait would show.
    options.give_way();
    AuditOptions::at(SystemTime::now()).give_way();
    // A review that never ends: the audit waits its longest, then goes on.
    in_flight.store(1, Ordering::Relaxed);
    let started = std::time::Instant::now();
    options.give_way();
    assert!(started.elapsed() >= GIVE_WAY_AT_MOST);
}

#[test]
fn the_audit_rests_between_work_slices_only_while_reviews_keep_arriving() {
    let start = std::time::Instant::now();
    let at = |micros: u64| start + Duration::from_micros(micros);
    let mut pace = Pace::default();
    // An idle webhook: never a rest, however long the audit works.
    for micros in (0..50_000).step_by(100) {
        assert_eq!(pace.rest(at(micros), false), None, "idle at {micros} µs");
    }
    // A review arrives: the audit works one slice, then rests, then works the next slice.
    assert_eq!(pace.rest(at(50_000), true), None);
    assert_eq!(pace.rest(at(50_000) + WORK_SLICE / 2, false), None);
    assert_eq!(pace.rest(at(50_000) + WORK_SLICE, false), Some(REST));
    let next_slice = at(50_000) + WORK_SLICE + REST;
    assert_eq!(pace.rest(next_slice, false), None);
    assert_eq!(pace.rest(next_slice + WORK_SLICE / 2, false), None);
    assert_eq!(pace.rest(next_slice + WORK_SLICE, false), Some(REST));
    // No review seen for BUSY_FOR: full speed again, and a later review starts a fresh slice.
    let quiet = at(50_000) + BUSY_FOR;
    for step in 0..20u32 {
        assert_eq!(pace.rest(quiet + WORK_SLICE * step, false), None);
    }
    let later = quiet + WORK_SLICE * 20;
    assert_eq!(pace.rest(later, true), None);
    assert_eq!(pace.rest(later + WORK_SLICE, true), Some(REST));
}
