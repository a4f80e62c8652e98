//! Structured fuzzing of the rules: objects shaped like Deployments, Services, Ingresses and
//! HTTPRoutes are built from the fuzzer's bytes (values drawn from the vocabularies the rules
//! care about, with arbitrary strings and numbers mixed in), wrapped in a valid AdmissionReview
//! and answered against a small store of related objects.
//!
//! Beyond "never panics": every answer echoes the uid, every patch applies (RFC 6902, the
//! json-patch crate) to the object it was made for, and no patch touches `/spec/selector`.
//!
//! A plain function over a `Case`, no libFuzzer: `fuzz_targets/rule_engine.rs` wraps it for
//! cargo fuzz (which builds the `Case` from its bytes with `arbitrary`) and `tests/fuzz_replay.rs`
//! runs it in CI, so both check the same properties.

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use base64::Engine as _;
use rollout_guard::admission::{review, ReviewContext};
use rollout_guard::policy::finding::Endpoint;
use rollout_guard::policy::load::{embedded_default, parse_sources, Source};
use rollout_guard::policy::set::PolicySet;
use rollout_guard::store::Store;
use serde_json::{json, Map, Value};

const NAMESPACES: &[&str] = &["shop", "default", "other"];
const NAMES: &[&str] = &["web", "web-v1", "web-v2", "web-canary", "api"];
const LABEL_KEYS: &[&str] = &[
    "app",
    "version",
    "app.kubernetes.io/name",
    "app.kubernetes.io/version",
    "pod-template-hash",
    "argocd.argoproj.io/instance",
];
const LABEL_VALUES: &[&str] = &["web", "v1", "v2", "1.2.3", "", "web-v1", "web-v2"];
const ANNOTATION_KEYS: &[&str] = &[
    "kubernetes.io/change-cause",
    "rollout-guard.io/opt-out",
    "nginx.ingress.kubernetes.io/canary",
    "nginx.ingress.kubernetes.io/canary-weight",
    "nginx.ingress.kubernetes.io/canary-weight-total",
    "nginx.ingress.kubernetes.io/canary-by-header",
    "nginx.ingress.kubernetes.io/canary-by-header-value",
    "nginx.ingress.kubernetes.io/canary-by-header-pattern",
    "nginx.ingress.kubernetes.io/canary-by-cookie",
    "nginx.ingress.kubernetes.io/canary-weigth",
    "nginx.ingress.kubernetes.io/affinity",
    "kubectl.kubernetes.io/restartedAt",
    "argocd.argoproj.io/tracking-id",
];
const ANNOTATION_VALUES: &[&str] = &[
    "true", "false", "yes", "10", "10%", "0.5", "100", "1000", "-1", "always", "never", "[a-z",
    "^v2$", "cookie", "*", "",
];
const IMAGES: &[&str] = &[
    "web",
    "web:1.2.3",
    "registry.example.com:5000/team/web:v2.0.0-rc.1",
    "web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "web:latest@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ":",
    "",
];
const HOSTS: &[&str] = &["shop.example.com", "api.example.com", "", "*.example.com"];
const PATHS: &[&str] = &["/", "/api", "/api/", ""];
const PATH_TYPES: &[&str] = &["Prefix", "Exact", "ImplementationSpecific", "Bogus"];
const MATCH_TYPES: &[&str] = &["Exact", "RegularExpression", "PathPrefix", "Bogus"];

/// A string from a vocabulary, or an arbitrary one.
#[derive(Debug, Arbitrary)]
enum Word {
    Known(u8),
    Raw(String),
}

impl Word {
    fn pick(&self, vocabulary: &[&str]) -> String {
        match self {
            Word::Known(i) => vocabulary[usize::from(*i) % vocabulary.len()].to_owned(),
            Word::Raw(s) => s.clone(),
        }
    }
}

/// A JSON scalar of any type, biased to the numbers fields like `replicas` hold.
#[derive(Debug, Arbitrary)]
enum Scalar {
    Small(u8),
    Int(i64),
    Float(f64),
    Percent(i16),
    Text(String),
    Bool(bool),
    Null,
}

impl Scalar {
    fn value(&self) -> Value {
        match self {
            Scalar::Small(n) => json!(n),
            Scalar::Int(n) => json!(n),
            Scalar::Float(f) => json!(f),
            Scalar::Percent(p) => json!(format!("{p}%")),
            Scalar::Text(s) => json!(s),
            Scalar::Bool(b) => json!(b),
            Scalar::Null => Value::Null,
        }
    }
}

fn map(pairs: &[(Word, Word)], keys: &[&str], values: &[&str]) -> Value {
    let mut out = Map::new();
    for (k, v) in pairs.iter().take(8) {
        out.insert(k.pick(keys), json!(v.pick(values)));
    }
    Value::Object(out)
}

#[derive(Debug, Arbitrary)]
enum Operation {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Arbitrary)]
struct Meta {
    name: Word,
    labels: Vec<(Word, Word)>,
    annotations: Vec<(Word, Word)>,
}

impl Meta {
    fn value(&self, namespace: &str) -> Value {
        json!({
            "name": self.name.pick(NAMES),
            "namespace": namespace,
            "labels": map(&self.labels, LABEL_KEYS, LABEL_VALUES),
            "annotations": map(&self.annotations, ANNOTATION_KEYS, ANNOTATION_VALUES),
        })
    }
}

#[derive(Debug, Arbitrary)]
struct Container {
    name: Word,
    image: Word,
    readiness_probe: bool,
    env: Vec<(Word, Word)>,
}

#[derive(Debug, Arbitrary)]
struct DeploymentShape {
    meta: Meta,
    replicas: Option<Scalar>,
    strategy_type: Option<Word>,
    max_unavailable: Option<Scalar>,
    max_surge: Option<Scalar>,
    min_ready_seconds: Option<Scalar>,
    progress_deadline_seconds: Option<Scalar>,
    revision_history_limit: Option<Scalar>,
    selector: Vec<(Word, Word)>,
    template_labels: Vec<(Word, Word)>,
    template_annotations: Vec<(Word, Word)>,
    containers: Vec<Container>,
}

impl DeploymentShape {
    fn value(&self, namespace: &str) -> Value {
        let mut spec = Map::new();
        if let Some(r) = &self.replicas {
            spec.insert("replicas".into(), r.value());
        }
        let mut strategy = Map::new();
        if let Some(t) = &self.strategy_type {
            strategy.insert("type".into(), json!(t.pick(&["RollingUpdate", "Recreate"])));
        }
        let mut rolling = Map::new();
        if let Some(v) = &self.max_unavailable {
            rolling.insert("maxUnavailable".into(), v.value());
        }
        if let Some(v) = &self.max_surge {
            rolling.insert("maxSurge".into(), v.value());
        }
        if !rolling.is_empty() {
            strategy.insert("rollingUpdate".into(), Value::Object(rolling));
        }
        if !strategy.is_empty() {
            spec.insert("strategy".into(), Value::Object(strategy));
        }
        for (key, field) in [
            ("minReadySeconds", &self.min_ready_seconds),
            ("progressDeadlineSeconds", &self.progress_deadline_seconds),
            ("revisionHistoryLimit", &self.revision_history_limit),
        ] {
            if let Some(v) = field {
                spec.insert(key.into(), v.value());
            }
        }
        spec.insert(
            "selector".into(),
            json!({"matchLabels": map(&self.selector, LABEL_KEYS, LABEL_VALUES)}),
        );
        let containers: Vec<Value> = self
            .containers
            .iter()
            .take(4)
            .map(|c| {
                let mut container = json!({
                    "name": c.name.pick(NAMES),
                    "image": c.image.pick(IMAGES),
                    "env": c.env.iter().take(4).map(|(k, v)| json!({"name": k.pick(LABEL_KEYS), "value": v.pick(LABEL_VALUES)})).collect::<Vec<_>>(),
                });
                if c.readiness_probe {
                    container["readinessProbe"] = json!({"httpGet": {"path": "/ready", "port": 8080}});
                }
                container
            })
            .collect();
        spec.insert(
            "template".into(),
            json!({
                "metadata": {
                    "labels": map(&self.template_labels, LABEL_KEYS, LABEL_VALUES),
                    "annotations": map(&self.template_annotations, ANNOTATION_KEYS, ANNOTATION_VALUES),
                },
                "spec": {"containers": containers},
            }),
        );
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.meta.value(namespace),
            "spec": spec,
        })
    }
}

#[derive(Debug, Arbitrary)]
struct ServiceShape {
    meta: Meta,
    selector: Vec<(Word, Word)>,
    ports: Vec<(u16, Word)>,
}

impl ServiceShape {
    fn value(&self, namespace: &str) -> Value {
        let ports: Vec<Value> = self
            .ports
            .iter()
            .take(3)
            .map(|(port, name)| json!({"port": port, "name": name.pick(&["http", "grpc"])}))
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.meta.value(namespace),
            "spec": {"selector": map(&self.selector, LABEL_KEYS, LABEL_VALUES), "ports": ports},
        })
    }
}

#[derive(Debug, Arbitrary)]
struct IngressPath {
    path: Word,
    path_type: Option<Word>,
    service: Word,
    port: Option<Scalar>,
}

#[derive(Debug, Arbitrary)]
struct IngressShape {
    meta: Meta,
    class: Option<Word>,
    rules: Vec<(Word, Vec<IngressPath>)>,
    default_backend: Option<Word>,
}

impl IngressShape {
    fn value(&self, namespace: &str) -> Value {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .take(3)
            .map(|(host, paths)| {
                let paths: Vec<Value> = paths
                    .iter()
                    .take(3)
                    .map(|p| {
                        let mut port = json!({"number": 80});
                        if let Some(s) = &p.port {
                            port = match s.value() {
                                Value::String(name) => json!({"name": name}),
                                other => json!({"number": other}),
                            };
                        }
                        let mut path = json!({
                            "path": p.path.pick(PATHS),
                            "backend": {"service": {"name": p.service.pick(NAMES), "port": port}},
                        });
                        if let Some(t) = &p.path_type {
                            path["pathType"] = json!(t.pick(PATH_TYPES));
                        }
                        path
                    })
                    .collect();
                json!({"host": host.pick(HOSTS), "http": {"paths": paths}})
            })
            .collect();
        let mut spec = json!({"rules": rules});
        if let Some(class) = &self.class {
            spec["ingressClassName"] = json!(class.pick(&["nginx", "other"]));
        }
        if let Some(backend) = &self.default_backend {
            spec["defaultBackend"] =
                json!({"service": {"name": backend.pick(NAMES), "port": {"number": 80}}});
        }
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": self.meta.value(namespace),
            "spec": spec,
        })
    }
}

#[derive(Debug, Arbitrary)]
struct BackendRef {
    name: Word,
    namespace: Option<Word>,
    port: Option<Scalar>,
    weight: Option<Scalar>,
    kind: Option<Word>,
}

#[derive(Debug, Arbitrary)]
struct RouteMatch {
    path: Option<(Word, Word)>,
    headers: Vec<(Word, Word, Word)>,
}

#[derive(Debug, Arbitrary)]
struct HttpRouteShape {
    meta: Meta,
    api_version: bool,
    hostnames: Vec<Word>,
    rules: Vec<(Vec<RouteMatch>, Vec<BackendRef>)>,
}

impl HttpRouteShape {
    fn value(&self, namespace: &str) -> Value {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .take(3)
            .map(|(matches, backends)| {
                let matches: Vec<Value> = matches
                    .iter()
                    .take(3)
                    .map(|m| {
                        let mut out = json!({
                            "headers": m.headers.iter().take(3).map(|(t, n, v)| json!({
                                "type": t.pick(MATCH_TYPES), "name": n.pick(&["x-canary", ""]), "value": v.pick(ANNOTATION_VALUES),
                            })).collect::<Vec<_>>(),
                        });
                        if let Some((t, v)) = &m.path {
                            out["path"] = json!({"type": t.pick(MATCH_TYPES), "value": v.pick(PATHS)});
                        }
                        out
                    })
                    .collect();
                let backends: Vec<Value> = backends
                    .iter()
                    .take(4)
                    .map(|b| {
                        let mut out = json!({"name": b.name.pick(NAMES)});
                        if let Some(ns) = &b.namespace {
                            out["namespace"] = json!(ns.pick(NAMESPACES));
                        }
                        if let Some(p) = &b.port {
                            out["port"] = p.value();
                        }
                        if let Some(w) = &b.weight {
                            out["weight"] = w.value();
                        }
                        if let Some(k) = &b.kind {
                            out["kind"] = json!(k.pick(&["Service", "ServiceImport"]));
                        }
                        out
                    })
                    .collect();
                json!({"matches": matches, "backendRefs": backends})
            })
            .collect();
        json!({
            "apiVersion": if self.api_version { "gateway.networking.k8s.io/v1" } else { "gateway.networking.k8s.io/v1beta1" },
            "kind": "HTTPRoute",
            "metadata": self.meta.value(namespace),
            "spec": {
                "parentRefs": [{"name": "public", "namespace": "gateways"}],
                "hostnames": self.hostnames.iter().take(3).map(|h| h.pick(HOSTS)).collect::<Vec<_>>(),
                "rules": rules,
            },
        })
    }
}

#[derive(Debug, Arbitrary)]
enum Object {
    Deployment(Box<DeploymentShape>),
    Service(ServiceShape),
    Ingress(IngressShape),
    HttpRoute(HttpRouteShape),
}

impl Object {
    fn value(&self, namespace: &str) -> Value {
        match self {
            Object::Deployment(d) => d.value(namespace),
            Object::Service(s) => s.value(namespace),
            Object::Ingress(i) => i.value(namespace),
            Object::HttpRoute(r) => r.value(namespace),
        }
    }
}

/// How the old object relates to the new one on UPDATE/DELETE.
#[derive(Debug, Arbitrary)]
enum OldObject {
    /// The same object (a no-op apply).
    Same,
    /// An independently generated object (any differences at all).
    Other(Object),
    /// The same object with one top-level spec field replaced.
    Tweaked(Word, Scalar),
}

/// One fuzzed review: the object, how the old object relates to it, and where it is answered.
#[derive(Debug, Arbitrary)]
pub struct Case {
    operation: Operation,
    mutate: bool,
    strict_policy: bool,
    namespace: Word,
    username: Word,
    object: Object,
    old_object: OldObject,
}

/// A store with the objects the cross-object rules look for: an nginx IngressClass, a main
/// Ingress with its Services, Deployments of two versions and an HTTPRoute.
fn store() -> Store {
    let store = Store::offline();
    let objects: Value = serde_json::from_str(include_str!("../../tests/data/small-cluster.json"))
        .expect("tests/data/small-cluster.json is JSON");
    for object in objects.as_array().into_iter().flatten() {
        // The fixture objects are valid; a failure here would show as missing state, not a crash.
        let _ = store.apply_object(object);
    }
    store
}

/// Every rule in its strictest mode, so deny paths run too.
const STRICT_POLICY: &str = "apiVersion: rollout-guard.io/v1alpha1
kind: RolloutPolicy
metadata: {name: strict}
spec:
  optOut: {annotation: rollout-guard.io/opt-out, allowedRules: [versionLabel, ingressCanary]}
  rules:
    versionLabel: {mode: enforce}
    changeCause: {mode: enforce}
    rollingUpdate: {mode: enforce}
    ingressCanary: {mode: enforce}
    httpRoute: {mode: enforce}
";

struct Fixtures {
    default: PolicySet,
    strict: PolicySet,
    store: Store,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| Fixtures {
        default: embedded_default(),
        strict: parse_sources(&[Source {
            name: "strict.yaml".into(),
            text: STRICT_POLICY.into(),
        }])
        .expect("the strict fuzz policy must load (update it when the policy format changes)"),
        store: store(),
    })
}

fn group_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

pub fn rule_engine(case: Case) {
    let fixtures = fixtures();
    let namespace = case.namespace.pick(NAMESPACES);
    let object = case.object.value(&namespace);
    let old_object = match &case.old_object {
        OldObject::Same => object.clone(),
        OldObject::Other(other) => other.value(&namespace),
        OldObject::Tweaked(field, value) => {
            let mut old = object.clone();
            old["spec"][field.pick(&["replicas", "selector", "template", "strategy", "rules"])] =
                value.value();
            old
        }
    };
    let (operation, object, old_object) = match case.operation {
        Operation::Create => ("CREATE", object, Value::Null),
        Operation::Update => ("UPDATE", object, old_object),
        Operation::Delete => ("DELETE", Value::Null, old_object),
    };
    let subject = if object.is_null() {
        &old_object
    } else {
        &object
    };
    let (group, version) = group_version(subject["apiVersion"].as_str().unwrap_or_default());
    let username = case.username.pick(&[
        "alice",
        "system:serviceaccount:argocd:argocd-application-controller",
        "",
    ]);
    let ctx = ReviewContext {
        policies: if case.strict_policy {
            &fixtures.strict
        } else {
            &fixtures.default
        },
        view: &fixtures.store,
        own_namespace: Some("rollout-guard"),
        // A fixed clock: a fuzz case must replay the same way.
        now: std::time::SystemTime::UNIX_EPOCH,
    };
    let endpoint = if case.mutate {
        Endpoint::Mutate
    } else {
        Endpoint::Validate
    };
    // The review of `object` as the API server sends it, and the patch of the answer.
    let answer_for = |object: &Value| -> Option<json_patch::Patch> {
        let body = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "fuzz-uid",
                "kind": {"group": group, "version": version, "kind": subject["kind"]},
                "name": subject["metadata"]["name"],
                "namespace": namespace,
                "operation": operation,
                "userInfo": {"username": username},
                "object": object,
                "oldObject": old_object,
            }
        });
        let body = serde_json::to_vec(&body).ok()?;
        let reviewed = review(endpoint, &body, &ctx)
            .unwrap_or_else(|e| panic!("a well-formed review was refused: {e}"));
        let answer: Value = serde_json::from_slice(&reviewed.body).expect("answer is JSON");
        assert_eq!(answer["response"]["uid"], "fuzz-uid");
        let encoded = answer["response"]["patch"].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("patch is base64");
        Some(serde_json::from_slice(&bytes).expect("patch is RFC 6902"))
    };
    let Some(patch) = answer_for(&object) else {
        return;
    };
    assert!(endpoint == Endpoint::Mutate, "validate must never patch");
    for op in &patch.0 {
        let path = op.path().to_string();
        assert!(!path.starts_with("/spec/selector"), "patch touches {path}");
    }
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch)
        .unwrap_or_else(|e| panic!("patch does not apply: {e}\npatch: {patch:?}"));
    // Reinvocation: the API server may call a mutating webhook again with its own output, and
    // a second patch would restart pods on every apply.
    let again = answer_for(&patched);
    assert!(
        again.is_none(),
        "mutate is not idempotent: second patch {again:?}\nfirst patch {patch:?}"
    );
}
