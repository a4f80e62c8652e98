//! Whole-review properties across kinds, through `admission::review` (the path the webhook and
//! `check` take), for generated Deployments, Services, Ingresses and HTTPRoutes on CREATE and on
//! UPDATE with a related oldObject:
//!
//! - no input panics, and every well-formed review gets an AdmissionReview echoing its uid;
//! - every patch applies (RFC 6902, the json-patch crate) to the object it was made for;
//! - mutate is idempotent: mutate on its own output, with the same oldObject, patches nothing
//!   (the API server reinvokes webhooks, and a second patch would restart pods on every apply);
//! - no patch ever touches `/spec/selector` (immutable on Deployments).
//!
//! Case counts are small so the suite runs in seconds; the fuzz targets (fuzz/) go wider.

use base64::Engine as _;
use proptest::prelude::*;
use proptest::sample::select;
use rollout_guard::admission::{review, ReviewContext};
use rollout_guard::policy::finding::Endpoint;
use rollout_guard::policy::load::{embedded_default, parse_sources, Source};
use rollout_guard::policy::set::PolicySet;
use rollout_guard::store::Store;
use serde_json::{json, Map, Value};

const LABEL_KEYS: &[&str] = &[
    "app",
    "version",
    "app.kubernetes.io/name",
    "app.kubernetes.io/version",
    "team",
];
const LABEL_VALUES: &[&str] = &["web", "v1", "v2", "1.2.3", "web-v1", "web-v2", ""];
const IMAGES: &[&str] = &[
    "web",
    "web:1.2.3",
    "web:1.2.4",
    "registry.example.com:5000/team/web:v2.0.0-rc.1",
    "ghcr.io/org/web:latest",
    "web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "web:2.0@sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
    "quay.io/a/b/c:Tag_With.Odd-Chars_and_a_very_long_suffix_that_goes_past_sixty_three_chars",
];
const DEPLOYMENT_ANNOTATIONS: &[&str] = &[
    "kubernetes.io/change-cause",
    "rollout-guard.io/opt-out",
    "argocd.argoproj.io/tracking-id",
    "deployment.kubernetes.io/revision",
];
const NGINX: &str = "nginx.ingress.kubernetes.io/";
const CANARY_KEYS: &[&str] = &[
    "canary",
    "canary-weight",
    "canary-weight-total",
    "canary-by-header",
    "canary-by-header-value",
    "canary-by-header-pattern",
    "canary-by-cookie",
    "canary-weigth",
    "affinity",
];
const CANARY_VALUES: &[&str] = &[
    "true", "false", "yes", "0", "10", "10%", "0.5", "100", "1000", "always", "never", "^v2$",
    "[a-z", "",
];
const SERVICES: &[&str] = &["web", "web-v1", "web-v2", "api", "missing"];
const HOSTS: &[&str] = &["shop.example.com", "api.example.com", ""];
const PATHS: &[&str] = &["/", "/api", "/api/"];

fn labels() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map(select(LABEL_KEYS), select(LABEL_VALUES), 0..4).prop_map(|m| {
        m.into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect()
    })
}

fn int_or_percent() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i32..12).prop_map(|n| json!(n)),
        (0u32..130).prop_map(|p| json!(format!("{p}%"))),
        Just(json!("25%")),
    ]
}

fn container() -> impl Strategy<Value = Value> {
    (
        select(&["web", "sidecar", "app"][..]),
        select(IMAGES),
        any::<bool>(),
        proptest::collection::vec((select(&["MODE", "LEVEL"][..]), select(LABEL_VALUES)), 0..2),
    )
        .prop_map(|(name, image, ready, env)| {
            let mut c = json!({
                "name": name,
                "image": image,
                "env": env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                "resources": {"limits": {"cpu": "500m"}},
            });
            if ready {
                c["readinessProbe"] = json!({"httpGet": {"path": "/ready", "port": 8080}});
            }
            c
        })
}

/// A Deployment as the API server hands it to a webhook: mostly defaulted, sometimes not.
fn deployment() -> impl Strategy<Value = Value> {
    let strategy = prop_oneof![
        (int_or_percent(), int_or_percent()).prop_map(|(unavailable, surge)| json!({
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": unavailable, "maxSurge": surge},
        })),
        Just(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        ),
        Just(json!({"type": "Recreate"})),
    ];
    (
        (
            select(&["web", "web-v2", "api"][..]),
            labels(),
            proptest::collection::btree_map(
                select(DEPLOYMENT_ANNOTATIONS),
                select(&["deploy web", "*", "versionLabel", ""][..]),
                0..3,
            ),
            proptest::option::of(0i32..20),
        ),
        (
            strategy,
            prop_oneof![Just(600), 0i32..1200],
            prop_oneof![Just(10), 0i32..20],
            0i32..30,
        ),
        (
            labels(),
            labels(),
            proptest::collection::vec(container(), 1..3),
        ),
    )
        .prop_map(
            |(
                (name, meta_labels, annotations, replicas),
                (strategy, deadline, history, min_ready),
                (selector, extra_template_labels, containers),
            )| {
                // The template must carry the selector's labels, or the API server would refuse
                // the object before any webhook sees it.
                let mut template_labels = extra_template_labels;
                template_labels.extend(selector.clone());
                let mut spec = json!({
                    "selector": {"matchLabels": selector},
                    "strategy": strategy,
                    "progressDeadlineSeconds": deadline,
                    "revisionHistoryLimit": history,
                    "minReadySeconds": min_ready,
                    "template": {
                        "metadata": {"labels": template_labels},
                        "spec": {"containers": containers},
                    },
                });
                if let Some(replicas) = replicas {
                    spec["replicas"] = json!(replicas);
                }
                json!({
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": name, "namespace": "shop", "labels": meta_labels, "annotations": annotations},
                    "spec": spec,
                })
            },
        )
}

/// How the stored object differs from the new one on UPDATE.
#[derive(Debug, Clone)]
enum Change {
    Nothing,
    Image(&'static str),
    Replicas(i32),
    Label(&'static str, &'static str),
    Annotation(&'static str, &'static str),
    RestartedAt,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        Just(Change::Nothing),
        select(IMAGES).prop_map(Change::Image),
        (0i32..20).prop_map(Change::Replicas),
        (select(LABEL_KEYS), select(LABEL_VALUES)).prop_map(|(k, v)| Change::Label(k, v)),
        (
            select(DEPLOYMENT_ANNOTATIONS),
            select(&["old cause", ""][..])
        )
            .prop_map(|(k, v)| Change::Annotation(k, v)),
        Just(Change::RestartedAt),
    ]
}

/// The stored object an UPDATE started from: `object` with `change` undone.
fn old_of(object: &Value, change: &Change) -> Value {
    let mut old = object.clone();
    match change {
        Change::Nothing => {}
        Change::Image(image) => {
            if let Some(c) = old.pointer_mut("/spec/template/spec/containers/0") {
                c["image"] = json!(image);
            }
        }
        Change::Replicas(n) => old["spec"]["replicas"] = json!(n),
        Change::Label(k, v) => old["metadata"]["labels"][*k] = json!(v),
        Change::Annotation(k, v) => old["metadata"]["annotations"][*k] = json!(v),
        Change::RestartedAt => {
            if let Some(t) = old.pointer_mut("/spec/template/metadata") {
                t["annotations"] =
                    json!({"kubectl.kubernetes.io/restartedAt": "2024-01-01T00:00:00Z"});
            }
        }
    }
    old
}

fn service() -> impl Strategy<Value = Value> {
    (
        select(SERVICES),
        labels(),
        proptest::collection::vec((1u16..10000, select(&["http", "grpc"][..])), 0..3),
    )
        .prop_map(|(name, selector, ports)| {
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {
                    "selector": selector,
                    "ports": ports.iter().map(|(p, n)| json!({"port": p, "name": n})).collect::<Vec<_>>(),
                },
            })
        })
}

fn ingress() -> impl Strategy<Value = Value> {
    let path = (
        select(PATHS),
        select(&["Prefix", "Exact", "ImplementationSpecific"][..]),
        select(SERVICES),
        prop_oneof![Just(80u16), 1u16..9000],
    )
        .prop_map(|(path, path_type, service, port)| {
            json!({"path": path, "pathType": path_type,
                   "backend": {"service": {"name": service, "port": {"number": port}}}})
        });
    (
        select(&["web", "web-canary", "api"][..]),
        proptest::collection::btree_map(select(CANARY_KEYS), select(CANARY_VALUES), 0..5),
        proptest::option::of(select(&["nginx", "other"][..])),
        proptest::collection::vec(
            (select(HOSTS), proptest::collection::vec(path, 1..3)),
            0..3,
        ),
    )
        .prop_map(|(name, annotations, class, rules)| {
            let annotations: Map<String, Value> = annotations
                .into_iter()
                .map(|(k, v)| (format!("{NGINX}{k}"), json!(v)))
                .collect();
            let mut spec = json!({
                "rules": rules.into_iter().map(|(host, paths)| json!({"host": host, "http": {"paths": paths}})).collect::<Vec<_>>(),
            });
            if let Some(class) = class {
                spec["ingressClassName"] = json!(class);
            }
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": name, "namespace": "shop", "annotations": annotations,
                             "creationTimestamp": "2024-03-01T00:00:00Z"},
                "spec": spec,
            })
        })
}

fn http_route() -> impl Strategy<Value = Value> {
    let backend = (
        select(SERVICES),
        proptest::option::of(prop_oneof![
            0i64..200,
            Just(1_000_000),
            Just(1_000_001),
            Just(-1)
        ]),
        proptest::option::of(prop_oneof![Just(80u16), 1u16..9000]),
    )
        .prop_map(|(name, weight, port)| {
            let mut b = json!({"name": name});
            if let Some(w) = weight {
                b["weight"] = json!(w);
            }
            if let Some(p) = port {
                b["port"] = json!(p);
            }
            b
        });
    let header = (
        select(&["Exact", "RegularExpression"][..]),
        select(&["x-canary", "cookie"][..]),
        select(CANARY_VALUES),
    )
        .prop_map(|(t, n, v)| json!({"type": t, "name": n, "value": v}));
    (
        select(&["web", "api"][..]),
        proptest::collection::vec(
            (
                proptest::collection::vec(header, 0..2),
                proptest::collection::vec(backend, 0..4),
            ),
            0..3,
        ),
    )
        .prop_map(|(name, rules)| {
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {
                    "parentRefs": [{"name": "public", "namespace": "gateways"}],
                    "hostnames": ["shop.example.com"],
                    "rules": rules.into_iter().map(|(headers, backends)| json!({
                        "matches": [{"headers": headers}],
                        "backendRefs": backends,
                    })).collect::<Vec<_>>(),
                },
            })
        })
}

/// A small cluster for the cross-object rules (shared with the rule_engine fuzz target): an
/// nginx IngressClass, a main Ingress and a canary on shop.example.com/, their Services, two
/// Deployments and an HTTPRoute.
fn store() -> Store {
    let store = Store::offline();
    let objects: Value = serde_json::from_str(include_str!("data/small-cluster.json")).unwrap();
    for object in objects.as_array().unwrap() {
        store.apply_object(object).unwrap();
    }
    store
}

/// Every rule enforced (deny paths) and, separately, the shipped default (mutate paths).
fn policies() -> Vec<PolicySet> {
    let enforce = parse_sources(&[Source {
        name: "enforce.yaml".into(),
        text: "apiVersion: rollout-guard.io/v1alpha1\nkind: RolloutPolicy\nmetadata: {name: enforce}\n\
               spec:\n  rules:\n    versionLabel: {mode: enforce}\n    changeCause: {mode: enforce}\n    \
               rollingUpdate: {mode: enforce}\n    ingressCanary: {mode: enforce}\n    httpRoute: {mode: enforce}\n"
            .into(),
    }])
    .expect("the enforce policy loads");
    vec![embedded_default(), enforce]
}

fn review_body(operation: &str, object: &Value, old_object: &Value) -> Vec<u8> {
    let subject = if object.is_null() { old_object } else { object };
    let api_version = subject["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "property-uid",
            "kind": {"group": group, "version": version, "kind": subject["kind"]},
            "name": subject["metadata"]["name"],
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": object,
            "oldObject": old_object,
        }
    }))
    .unwrap()
}

/// Answers a review and checks the invariants every answer must meet; returns the patch (as
/// JSON Patch operations) and the answer.
fn answer(
    endpoint: Endpoint,
    operation: &str,
    object: &Value,
    old_object: &Value,
    policies: &PolicySet,
    store: &Store,
) -> Result<(Option<json_patch::Patch>, Value), TestCaseError> {
    let ctx = ReviewContext {
        policies,
        view: store,
        own_namespace: Some("rollout-guard"),
        now: std::time::SystemTime::now(),
    };
    let body = review_body(operation, object, old_object);
    let reviewed = review(endpoint, &body, &ctx)
        .map_err(|e| TestCaseError::fail(format!("well-formed review refused: {e}")))?;
    prop_assert!(
        reviewed.invalid.is_none(),
        "object read as invalid: {:?}",
        reviewed.invalid
    );
    let answer: Value = serde_json::from_slice(&reviewed.body).unwrap();
    prop_assert_eq!(&answer["response"]["uid"], "property-uid");
    let Some(encoded) = answer["response"]["patch"].as_str() else {
        return Ok((None, answer));
    };
    prop_assert_eq!(&answer["response"]["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| TestCaseError::fail(format!("patch is not base64: {e}")))?;
    let patch: json_patch::Patch = serde_json::from_slice(&bytes)
        .map_err(|e| TestCaseError::fail(format!("patch is not RFC 6902: {e}")))?;
    for op in &patch.0 {
        let path = op.path().to_string();
        prop_assert!(
            !(path == "/spec/selector" || path.starts_with("/spec/selector/")),
            "patch touches {}",
            path
        );
    }
    Ok((Some(patch), answer))
}

/// All four properties for one request, under every policy.
fn check(operation: &str, object: &Value, old_object: &Value) -> Result<(), TestCaseError> {
    let store = store();
    for policies in policies() {
        let (patch, _) = answer(
            Endpoint::Validate,
            operation,
            object,
            old_object,
            &policies,
            &store,
        )?;
        prop_assert!(patch.is_none(), "validate must never patch");
        let (patch, _) = answer(
            Endpoint::Mutate,
            operation,
            object,
            old_object,
            &policies,
            &store,
        )?;
        let Some(patch) = patch else { continue };
        let mut patched = object.clone();
        json_patch::patch(&mut patched, &patch)
            .map_err(|e| TestCaseError::fail(format!("patch does not apply: {e}")))?;
        // Reinvocation: the API server calls us again with our own output.
        let (again, answer) = answer(
            Endpoint::Mutate,
            operation,
            &patched,
            old_object,
            &policies,
            &store,
        )?;
        prop_assert!(
            again.is_none(),
            "mutate is not idempotent: second patch {:?}\nfirst patch {:?}\nanswer {}",
            again,
            patch,
            answer
        );
    }
    Ok(())
}

/// 48 cases per property by default (seconds); `PROPTEST_CASES=5000` for a longer hunt.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(48);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Guards against a vacuous suite: the generated Deployments must reach the mutating rules, or
/// "every patch applies" and "mutate is idempotent" would hold trivially.
#[test]
fn generated_deployments_get_patched() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let store = store();
    let policies = embedded_default();
    let patched = (0..32)
        .filter(|_| {
            let object = deployment().new_tree(&mut runner).unwrap().current();
            let (patch, _) = answer(
                Endpoint::Mutate,
                "CREATE",
                &object,
                &Value::Null,
                &policies,
                &store,
            )
            .unwrap();
            patch.is_some()
        })
        .count();
    assert!(patched > 0, "no generated Deployment was patched");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn deployment_create(object in deployment()) {
        check("CREATE", &object, &Value::Null)?;
    }

    #[test]
    fn deployment_update(object in deployment(), change in change()) {
        let old = old_of(&object, &change);
        check("UPDATE", &object, &old)?;
    }

    #[test]
    fn service_create_and_update(object in service(), old in service()) {
        check("CREATE", &object, &Value::Null)?;
        let mut old = old;
        old["metadata"]["name"] = object["metadata"]["name"].clone();
        check("UPDATE", &object, &old)?;
    }

    #[test]
    fn ingress_create_update_delete(object in ingress(), old in ingress()) {
        check("CREATE", &object, &Value::Null)?;
        let mut old = old;
        old["metadata"]["name"] = object["metadata"]["name"].clone();
        check("UPDATE", &object, &old)?;
        check("DELETE", &Value::Null, &old)?;
    }

    #[test]
    fn http_route_create_and_update(object in http_route(), old in http_route()) {
        check("CREATE", &object, &Value::Null)?;
        check("UPDATE", &object, &old)?;
    }
}
