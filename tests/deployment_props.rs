//! Property tests of the Deployment rules through the real review path: for arbitrary rollout
//! settings and images on a defaulted Deployment, mutate's patch applies, never touches
//! `spec.selector`, never leaves maxSurge and maxUnavailable both 0 or a progress deadline that
//! API validation refuses, and mutate on its own output yields no patch.

use base64::Engine as _;
use proptest::prelude::*;
use rollout_guard::admission::{review, ReviewContext};
use rollout_guard::policy::load::embedded_default;
use rollout_guard::policy::{EmptyView, Endpoint};
use serde_json::{json, Value};

fn int_or_percent() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!("25%"))),
        (0i64..6).prop_map(|n| Some(json!(n))),
        (0i64..=100).prop_map(|p| Some(json!(format!("{p}%")))),
    ]
}

fn image() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,90}"
            .prop_map(|tag| format!("registry.example.com/app:{tag}")),
        "[a-f0-9]{64}".prop_map(|hex| format!("registry.example.com/app@sha256:{hex}")),
        "[0-9]{1,3}\\.[0-9]{1,3}".prop_map(|tag| format!("localhost:5000/team/app:{tag}")),
        Just("localhost:5000/team/app".to_owned()),
        Just("nginx".to_owned()),
    ]
}

fn is_zero(value: Option<&Value>) -> bool {
    matches!(value, Some(v) if *v == json!(0) || *v == json!("0%"))
}

#[derive(Debug, Clone)]
struct Settings {
    replicas: i64,
    surge: Option<Value>,
    unavailable: Option<Value>,
    min_ready: Option<i64>,
    deadline: Option<i64>,
    history: Option<i64>,
    image: String,
    old_image: Option<String>,
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        0i64..12,
        int_or_percent(),
        int_or_percent(),
        proptest::option::of(0i64..700),
        proptest::option::of(prop_oneof![Just(600i64), 1i64..2000]),
        proptest::option::of(0i64..15),
        image(),
        proptest::option::of(image()),
    )
        .prop_map(
            |(replicas, surge, unavailable, min_ready, deadline, history, image, old_image)| {
                Settings {
                    replicas,
                    surge,
                    unavailable,
                    min_ready,
                    deadline,
                    history,
                    image,
                    old_image,
                }
            },
        )
}

fn deployment(s: &Settings, image: &str) -> Value {
    let mut rolling = serde_json::Map::new();
    if let Some(v) = &s.surge {
        rolling.insert("maxSurge".into(), v.clone());
    }
    if let Some(v) = &s.unavailable {
        rolling.insert("maxUnavailable".into(), v.clone());
    }
    let mut spec = json!({
        "replicas": s.replicas,
        "selector": {"matchLabels": {"app": "web", "app.kubernetes.io/version": "pinned"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling},
        "template": {
            "metadata": {"creationTimestamp": null,
                         "labels": {"app": "web", "app.kubernetes.io/version": "pinned"}},
            "spec": {
                "containers": [{
                    "name": "web", "image": image, "imagePullPolicy": "IfNotPresent",
                    "resources": {}, "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "failureThreshold": 3,
                                       "periodSeconds": 10, "successThreshold": 1,
                                       "timeoutSeconds": 1}
                }],
                "dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
                "schedulerName": "default-scheduler", "securityContext": {},
                "terminationGracePeriodSeconds": 30
            }
        }
    });
    for (key, value) in [
        ("minReadySeconds", s.min_ready),
        ("progressDeadlineSeconds", s.deadline),
        ("revisionHistoryLimit", s.history),
    ] {
        if let Some(v) = value {
            spec[key] = json!(v);
        }
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": spec, "status": {}
    })
}

/// Mutate's patch for `object` (and `old`), as JSON Patch operations.
fn mutate(object: &Value, old: Option<&Value>) -> Vec<Value> {
    let policies = embedded_default();
    let ctx = ReviewContext {
        policies: &policies,
        view: &EmptyView,
        own_namespace: Some("rollout-guard"),
        now: std::time::SystemTime::now(),
    };
    let body = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "prop", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "web", "namespace": "shop",
            "operation": if old.is_some() { "UPDATE" } else { "CREATE" },
            "userInfo": {"username": "prop"},
            "object": object, "oldObject": old.cloned().unwrap_or(Value::Null)
        }
    });
    let reviewed = review(Endpoint::Mutate, &serde_json::to_vec(&body).unwrap(), &ctx).unwrap();
    let out: Value = serde_json::from_slice(&reviewed.body).unwrap();
    assert_eq!(out["response"]["uid"], json!("prop"));
    match out["response"]["patch"].as_str() {
        None => Vec::new(),
        Some(encoded) => serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap(),
    }
}

fn apply(object: &Value, ops: &[Value]) -> Value {
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops.to_vec())).unwrap();
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).expect("patch applies to its input");
    patched
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutate_is_valid_and_idempotent(s in settings()) {
        // Inputs the API server accepts: not both 0, deadline above minReadySeconds.
        prop_assume!(!(is_zero(s.surge.as_ref()) && is_zero(s.unavailable.as_ref())));
        prop_assume!(s.deadline.unwrap_or(600) > s.min_ready.unwrap_or(0));

        let object = deployment(&s, &s.image);
        let old = s.old_image.as_ref().map(|image| deployment(&s, image));
        let ops = mutate(&object, old.as_ref());
        for op in &ops {
            let path = op["path"].as_str().unwrap_or("");
            prop_assert!(!path.starts_with("/spec/selector"), "selector patched: {op}");
        }
        let patched = apply(&object, &ops);
        prop_assert_eq!(&patched["spec"]["selector"], &object["spec"]["selector"]);
        let rolling = &patched["spec"]["strategy"]["rollingUpdate"];
        prop_assert!(
            !(is_zero(rolling.get("maxSurge")) && is_zero(rolling.get("maxUnavailable"))),
            "maxSurge and maxUnavailable both 0: {rolling}"
        );
        let ready = patched["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
        let deadline = patched["spec"]["progressDeadlineSeconds"].as_i64().unwrap_or(600);
        prop_assert!(deadline > ready, "progressDeadlineSeconds {deadline} <= minReadySeconds {ready}");
        let typed: Result<k8s_openapi::api::apps::v1::Deployment, _> =
            serde_json::from_value(patched.clone());
        prop_assert!(typed.is_ok(), "patched object is not a Deployment: {typed:?}");

        let again = mutate(&patched, old.as_ref());
        prop_assert!(again.is_empty(), "second mutate patched again: {again:?}");
    }
}
