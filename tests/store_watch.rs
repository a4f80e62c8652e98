//! The live watchers against a small fake API server started by the test: list JSON with a
//! resourceVersion, `?watch=true` as a chunked stream of watch events, 404 for resources it does
//! not serve. The store must sync, follow adds/modifies/deletes, report a broken watch with its
//! reason and recover by relisting.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rollout_guard::policy::objects::{Labels, Selector};
use rollout_guard::policy::view::{ClusterView, SyncStatus};
use rollout_guard::store::watch::{spawn_watchers_with, WatchSettings};
use rollout_guard::store::{KindSync, Store, StoredKind};
use serde_json::{json, Value};
use tokio::sync::watch;

/// One resource collection (`/apis/apps/v1/deployments`) of the fake API server.
struct FakeResource {
    list_kind: String,
    state: Mutex<ResourceState>,
    /// Bumped on every change so open watch streams wake up.
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct ResourceState {
    resource_version: u64,
    /// `namespace/name` → object.
    objects: BTreeMap<String, Value>,
    /// Every event with the resourceVersion it happened at.
    log: Vec<(u64, Value)>,
    /// While set, list requests fail with HTTP 500.
    fail_lists: bool,
    /// `limit` of each list request served.
    list_limits: Vec<Option<usize>>,
}

fn object_key(object: &Value) -> String {
    format!(
        "{}/{}",
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

impl FakeResource {
    fn new(list_kind: &str) -> Arc<Self> {
        Arc::new(Self {
            list_kind: list_kind.to_owned(),
            state: Mutex::new(ResourceState::default()),
            changed: watch::channel(0).0,
        })
    }

    fn record(&self, event_type: &str, object: Option<Value>, error: Option<Value>) {
        let mut state = self.state.lock().unwrap();
        state.resource_version += 1;
        let rv = state.resource_version;
        let event = match (object, error) {
            (Some(mut object), _) => {
                object["metadata"]["resourceVersion"] = json!(rv.to_string());
                let key = object_key(&object);
                if event_type == "DELETED" {
                    state.objects.remove(&key);
                } else {
                    state.objects.insert(key, object.clone());
                }
                json!({"type": event_type, "object": object})
            }
            (None, Some(status)) => json!({"type": "ERROR", "object": status}),
            (None, None) => unreachable!(),
        };
        state.log.push((rv, event));
        drop(state);
        self.changed.send_replace(rv);
    }

    fn add(&self, object: Value) {
        self.record("ADDED", Some(object), None);
    }

    fn modify(&self, object: Value) {
        self.record("MODIFIED", Some(object), None);
    }

    fn delete(&self, object: Value) {
        self.record("DELETED", Some(object), None);
    }

    /// Removes an object without any watch event, as if it was deleted while the client was
    /// disconnected: only a relist can notice.
    fn delete_unseen(&self, namespace: &str, name: &str) {
        let mut state = self.state.lock().unwrap();
        state.objects.remove(&format!("{namespace}/{name}"));
        state.resource_version += 1;
    }

    /// Ends watches the way the API server does when the client fell out of the watch window.
    fn expire_watches(&self) {
        self.record(
            "ERROR",
            None,
            Some(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "too old resource version", "reason": "Expired", "code": 410}),
            ),
        );
    }

    fn set_fail_lists(&self, fail: bool) {
        self.state.lock().unwrap().fail_lists = fail;
    }

    /// One page of the list, as the API server pages it: at most `limit` objects (all when
    /// unset), `metadata.continue` naming where the next page starts (here: an offset).
    fn list(&self, limit: Option<usize>, from: usize) -> Response {
        let mut state = self.state.lock().unwrap();
        if state.fail_lists {
            return status_response(500, "InternalError", "etcd is having a bad day");
        }
        state.list_limits.push(limit);
        let page_size = limit.unwrap_or(usize::MAX);
        let items: Vec<&Value> = state.objects.values().skip(from).take(page_size).collect();
        let next = from + items.len();
        let mut metadata = json!({"resourceVersion": state.resource_version.to_string()});
        if next < state.objects.len() {
            metadata["continue"] = json!(next.to_string());
        }
        let body = json!({
            "apiVersion": "v1",
            "kind": self.list_kind,
            "metadata": metadata,
            "items": items,
        });
        axum::Json(body).into_response()
    }

    /// The `limit` of every list request so far.
    fn list_limits(&self) -> Vec<Option<usize>> {
        self.state.lock().unwrap().list_limits.clone()
    }

    fn watch(self: Arc<Self>, from: u64) -> Response {
        let bookmark = json!({"type": "BOOKMARK", "object": {"kind": "Bookmark", "apiVersion": "v1",
            "metadata": {"resourceVersion": from.to_string()}}});
        let first = format!("{bookmark}\n");
        let receiver = self.changed.subscribe();
        let stream = futures::stream::unfold(
            (self, receiver, from, Some(first)),
            |(resource, mut receiver, cursor, first)| async move {
                if let Some(first) = first {
                    return Some((
                        Ok::<_, Infallible>(first),
                        (resource, receiver, cursor, None),
                    ));
                }
                loop {
                    let pending: Vec<(u64, Value)> = {
                        let state = resource.state.lock().unwrap();
                        state
                            .log
                            .iter()
                            .filter(|(rv, _)| *rv > cursor)
                            .cloned()
                            .collect()
                    };
                    if let Some((last, _)) = pending.last() {
                        let last = *last;
                        let chunk: String = pending.iter().map(|(_, e)| format!("{e}\n")).collect();
                        return Some((Ok(chunk), (resource, receiver, last, None)));
                    }
                    if receiver.changed().await.is_err() {
                        return None;
                    }
                }
            },
        );
        Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap()
    }
}

fn status_response(code: u16, reason: &str, message: &str) -> Response {
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), axum::Json(status)).into_response()
}

/// The fake API server: resource collections by path; everything else is 404.
#[derive(Default)]
struct FakeApi {
    resources: Mutex<HashMap<String, Arc<FakeResource>>>,
}

impl FakeApi {
    /// Serves a collection at `path` (as a CRD appearing when it is installed).
    fn serve(&self, path: &str, list_kind: &str) -> Arc<FakeResource> {
        let resource = FakeResource::new(list_kind);
        self.resources
            .lock()
            .unwrap()
            .insert(path.to_owned(), resource.clone());
        resource
    }
}

async fn handle(State(api): State<Arc<FakeApi>>, uri: Uri) -> Response {
    let resource = api.resources.lock().unwrap().get(uri.path()).cloned();
    let Some(resource) = resource else {
        return status_response(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    let params: HashMap<&str, &str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    if params.get("watch") == Some(&"true") {
        let from = params
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        resource.watch(from)
    } else {
        let limit = params.get("limit").and_then(|v| v.parse().ok());
        let from = params
            .get("continue")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        resource.list(limit, from)
    }
}

/// Starts the fake on a free port; returns a client for it.
async fn start(api: Arc<FakeApi>) -> kube::Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(handle).with_state(api);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

fn fast() -> WatchSettings {
    WatchSettings {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        rediscover_every: Duration::from_millis(50),
    }
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

fn deployment(name: &str, version: &str, available: i32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"namespace": "shop", "name": name, "generation": 1,
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "version": version}},
            "template": {"metadata": {"labels": {"app": "web", "version": version}},
                "spec": {"containers": [{"name": "web", "image": format!("web:{version}")}]}}},
        "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
            "availableReplicas": available}})
}

fn service(name: &str, selector: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "shop", "name": name},
        "spec": {"selector": selector, "ports": [{"port": 80}]}})
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Serves every built-in kind the store watches, empty.
struct Cluster {
    api: Arc<FakeApi>,
    deployments: Arc<FakeResource>,
    services: Arc<FakeResource>,
    ingresses: Arc<FakeResource>,
    ingress_classes: Arc<FakeResource>,
    namespaces: Arc<FakeResource>,
    stateful_sets: Arc<FakeResource>,
    pods: Arc<FakeResource>,
    replica_sets: Arc<FakeResource>,
}

fn cluster() -> Cluster {
    let api = Arc::new(FakeApi::default());
    Cluster {
        deployments: api.serve("/apis/apps/v1/deployments", "DeploymentList"),
        services: api.serve("/api/v1/services", "ServiceList"),
        ingresses: api.serve("/apis/networking.k8s.io/v1/ingresses", "IngressList"),
        ingress_classes: api.serve(
            "/apis/networking.k8s.io/v1/ingressclasses",
            "IngressClassList",
        ),
        namespaces: api.serve("/api/v1/namespaces", "NamespaceList"),
        stateful_sets: api.serve("/apis/apps/v1/statefulsets", "StatefulSetList"),
        replica_sets: api.serve("/apis/apps/v1/replicasets", "ReplicaSetList"),
        pods: {
            api.serve("/apis/apps/v1/daemonsets", "DaemonSetList");
            api.serve("/api/v1/pods", "PodList")
        },
        api,
    }
}

#[tokio::test]
async fn watchers_sync_and_follow_events_with_gateway_api_absent_then_installed() {
    let cluster = cluster();
    cluster.deployments.add(deployment("web-v1", "v1", 2));
    cluster
        .services
        .add(service("web", json!({"app": "web", "version": "v1"})));
    cluster
        .namespaces
        .add(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "shop", "labels": {"team": "checkout"}}}));
    cluster.ingress_classes.add(json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "k8s.io/ingress-nginx"}}));
    // ReferenceGrant only at v1beta1 (the standard channel): the v1 list 404s, v1beta1 is used.
    let grants = cluster.api.serve(
        "/apis/gateway.networking.k8s.io/v1beta1/referencegrants",
        "ReferenceGrantList",
    );
    grants.add(json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": {"namespace": "backends", "name": "from-shop"},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "shop"}],
            "to": [{"group": "", "kind": "Service"}]}}));

    let client = start(cluster.api.clone()).await;
    let store = Arc::new(Store::expecting(&[]));
    let handles = spawn_watchers_with(client, store.clone(), fast());

    // HTTPRoute and Argo Rollouts' Rollout are not served at all: absent, held empty, and not
    // holding the sync back.
    eventually("store synced", || store.sync_status() == SyncStatus::Synced).await;
    let sync = store.kind_sync();
    assert!(
        matches!(&sync[&StoredKind::Rollout], KindSync::Absent(reason) if reason.contains("argoproj.io/v1alpha1")),
        "{sync:?}"
    );
    assert!(
        matches!(&sync[&StoredKind::HttpRoute], KindSync::Absent(reason) if reason.contains("v1beta1")),
        "{sync:?}"
    );
    assert!(
        matches!(&sync[&StoredKind::Gateway], KindSync::Absent(_)),
        "{sync:?}"
    );
    assert_eq!(sync[&StoredKind::ReferenceGrant], KindSync::Synced);
    assert_eq!(store.reference_grants("backends").len(), 1);
    assert_eq!(
        store.namespace_labels("shop"),
        Some(labels(&[("team", "checkout")]))
    );
    assert_eq!(store.default_ingress_classes().len(), 1);
    let v1 = store
        .deployment("shop", "web-v1")
        .expect("listed deployment");
    assert!(v1.is_fully_available());
    assert_eq!(
        store.services_selecting("shop", &v1.template_labels).len(),
        1
    );

    // ADDED
    cluster.deployments.add(deployment("web-v2", "v2", 0));
    eventually("web-v2 added", || {
        store.deployment("shop", "web-v2").is_some()
    })
    .await;
    assert!(!store
        .deployment("shop", "web-v2")
        .unwrap()
        .is_fully_available());

    // MODIFIED: the rollout finishes.
    cluster.deployments.modify(deployment("web-v2", "v2", 2));
    eventually("web-v2 available", || {
        store
            .deployment("shop", "web-v2")
            .is_some_and(|d| d.is_fully_available())
    })
    .await;
    let v2 = Selector::from_labels(&labels(&[("app", "web"), ("version", "v2")]));
    assert_eq!(store.deployments_matching("shop", &v2).len(), 1);

    // DELETED
    cluster.deployments.delete(deployment("web-v1", "v1", 2));
    eventually("web-v1 deleted", || {
        store.deployment("shop", "web-v1").is_none()
    })
    .await;
    cluster.ingresses.add(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"namespace": "shop", "name": "web"},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}));
    eventually("ingress added", || {
        store.ingresses_at("shop.example.com", "/").len() == 1
    })
    .await;

    // The Gateway API CRDs get installed: the next rediscovery lists HTTPRoutes.
    let routes = cluster.api.serve(
        "/apis/gateway.networking.k8s.io/v1/httproutes",
        "HTTPRouteList",
    );
    routes.add(
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"namespace": "shop", "name": "web"},
        "spec": {"rules": [{"backendRefs": [{"name": "web-v1", "port": 80, "weight": 90},
            {"name": "web-v2", "port": 80, "weight": 10}]}]}}),
    );
    let gateways = cluster
        .api
        .serve("/apis/gateway.networking.k8s.io/v1/gateways", "GatewayList");
    gateways.add(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"namespace": "gateways", "name": "public"},
        "spec": {"gatewayClassName": "example", "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}]}}));
    eventually(
        "httproute and gateway listed after the CRDs appeared",
        || {
            store.counts().http_routes == 1
                && store.kind_sync()[&StoredKind::HttpRoute] == KindSync::Synced
                && store.kind_sync()[&StoredKind::Gateway] == KindSync::Synced
        },
    )
    .await;
    let gateway = store.gateway("gateways", "public").expect("listed gateway");
    assert_eq!(&*gateway.listeners[0].name, "http");
    assert_eq!(gateway.listeners[0].port, 80);
    assert_eq!(store.sync_status(), SyncStatus::Synced);

    for handle in handles {
        handle.abort();
    }
}

fn pod(name: &str, owner: Option<&str>, ready: bool) -> Value {
    let owners: Vec<Value> = owner
        .map(|kind| {
            json!({"apiVersion": "apps/v1", "kind": kind, "name": "web-5d8f", "uid": "u1",
            "controller": true})
        })
        .into_iter()
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": "shop", "name": name, "labels": {"app": "debug"},
            "ownerReferences": owners},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
}

/// Only pods no templated kind runs are kept; a kept pod that a ReplicaSet adopts leaves the
/// store. StatefulSets are kept as workloads with their template labels.
#[tokio::test]
async fn pods_are_kept_only_without_a_templated_controller() {
    let cluster = cluster();
    cluster.pods.add(pod("bare", None, true));
    cluster
        .pods
        .add(pod("web-5d8f-abcde", Some("ReplicaSet"), true));
    cluster
        .stateful_sets
        .add(json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"namespace": "shop", "name": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}}},
        "status": {"replicas": 2, "availableReplicas": 2}}));
    let client = start(cluster.api.clone()).await;
    let store = Arc::new(Store::expecting(&[]));
    let handles = spawn_watchers_with(client, store.clone(), fast());

    eventually("store synced", || store.sync_status() == SyncStatus::Synced).await;
    assert_eq!(store.counts().pods, 1, "only the bare pod is kept");
    let debug = labels(&[("app", "debug")]);
    assert!(store.pods_matching("shop", &debug)[0].ready);
    assert_eq!(
        store
            .workloads_running("shop", &labels(&[("app", "db")]))
            .len(),
        1
    );

    // A ReplicaSet adopts the bare pod: it is now counted through the ReplicaSet, not kept.
    cluster.pods.modify(pod("bare", Some("ReplicaSet"), true));
    eventually("adopted pod forgotten", || store.counts().pods == 0).await;
    // A new bare pod that is not ready yet.
    cluster.pods.add(pod("probe", None, false));
    eventually("new bare pod kept", || store.counts().pods == 1).await;
    assert!(!store.pods_matching("shop", &debug)[0].ready);

    for handle in handles {
        handle.abort();
    }
}

/// A ReplicaSet of Deployment `web` (`owner`: its controller's kind, `None` for a bare one),
/// with the template of image `tag`.
fn replica_set(name: &str, owner: Option<&str>, revision: &str, tag: &str) -> Value {
    let owners: Vec<Value> = owner
        .map(|kind| {
            json!({"apiVersion": "apps/v1", "kind": kind, "name": "web", "uid": "u1",
            "controller": true, "blockOwnerDeletion": true})
        })
        .into_iter()
        .collect();
    let hash = name.rsplit('-').next().unwrap_or_default();
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"namespace": "shop", "name": name, "ownerReferences": owners,
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web", "pod-template-hash": hash}},
            "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": hash}},
                "spec": {"containers": [{"name": "web", "image": format!("web:{tag}")}]}}},
        "status": {"replicas": 1, "availableReplicas": 1}})
}

/// ReplicaSets a Deployment controls are kept by owner with their revision and template
/// digest, and follow adds, modifies and deletes; others are not kept.
#[tokio::test]
async fn replica_sets_are_kept_by_their_deployment() {
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use rollout_guard::policy::objects::TemplateDigest;

    let cluster = cluster();
    cluster
        .replica_sets
        .add(replica_set("web-5d8f7c9b6", Some("Deployment"), "1", "v1"));
    cluster
        .replica_sets
        .add(replica_set("web-bare", None, "1", "v1"));
    let client = start(cluster.api.clone()).await;
    let store = Arc::new(Store::expecting(&[]));
    let handles = spawn_watchers_with(client, store.clone(), fast());

    eventually("store synced", || store.sync_status() == SyncStatus::Synced).await;
    assert_eq!(store.kind_sync()[&StoredKind::ReplicaSet], KindSync::Synced);
    assert_eq!(
        store.counts().replica_sets,
        1,
        "the bare ReplicaSet is not kept"
    );
    let v1_template: PodTemplateSpec = serde_json::from_value(json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "web:v1"}]}}))
    .unwrap();
    let found = store.replica_sets_of("shop", "web");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].revision, 1);
    assert_eq!(found[0].template, TemplateDigest::of(&v1_template));

    cluster
        .replica_sets
        .add(replica_set("web-7c6dd55f58", Some("Deployment"), "2", "v2"));
    eventually("second revision added", || {
        store.replica_sets_of("shop", "web").len() == 2
    })
    .await;
    // The controller reuses revision 1 as revision 3 (a rollback).
    cluster
        .replica_sets
        .modify(replica_set("web-5d8f7c9b6", Some("Deployment"), "3", "v1"));
    eventually("revision renumbered", || {
        store
            .replica_sets_of("shop", "web")
            .iter()
            .any(|r| &*r.key.name == "web-5d8f7c9b6" && r.revision == 3)
    })
    .await;
    // Orphaned (the Deployment deleted with --cascade=orphan): no longer its ReplicaSet.
    cluster
        .replica_sets
        .modify(replica_set("web-7c6dd55f58", None, "2", "v2"));
    eventually("orphaned ReplicaSet forgotten", || {
        store.replica_sets_of("shop", "web").len() == 1
    })
    .await;
    cluster
        .replica_sets
        .delete(replica_set("web-5d8f7c9b6", Some("Deployment"), "3", "v1"));
    eventually("deleted", || store.counts().replica_sets == 0).await;
    assert!(store.replica_sets_of("shop", "web").is_empty());

    for handle in handles {
        handle.abort();
    }
}

#[tokio::test]
async fn a_broken_watch_reports_its_reason_and_recovers_by_relisting() {
    let cluster = cluster();
    cluster.deployments.add(deployment("web-v1", "v1", 2));
    cluster.deployments.add(deployment("web-old", "v0", 2));
    let client = start(cluster.api.clone()).await;
    let store = Arc::new(Store::expecting(&[]));
    let handles = spawn_watchers_with(client, store.clone(), fast());

    eventually("store synced", || store.sync_status() == SyncStatus::Synced).await;
    assert_eq!(store.counts().deployments, 2);

    // The API server expires the watch, relists fail for a while, and meanwhile web-old is
    // deleted without the watcher seeing the event.
    cluster.deployments.set_fail_lists(true);
    cluster.deployments.delete_unseen("shop", "web-old");
    cluster.deployments.expire_watches();
    eventually("deployments reported broken", || {
        matches!(
            store.kind_sync()[&StoredKind::Deployment],
            KindSync::Broken(_)
        )
    })
    .await;
    match store.sync_status() {
        SyncStatus::NotSynced(reason) => {
            assert!(reason.contains("Deployment watch broken"), "{reason}")
        }
        SyncStatus::Synced => panic!("a broken watch must not count as synced"),
    }
    // What was known before the failure is kept (rules still see it, flagged as not synced).
    assert!(store.deployment("shop", "web-old").is_some());
    // Other kinds are unaffected.
    assert_eq!(store.kind_sync()[&StoredKind::Service], KindSync::Synced);

    cluster.deployments.set_fail_lists(false);
    eventually("store synced again", || {
        store.sync_status() == SyncStatus::Synced
    })
    .await;
    // The relist replaced the kind: the object deleted while disconnected is gone.
    assert!(store.deployment("shop", "web-old").is_none());
    assert!(store.deployment("shop", "web-v1").is_some());

    // And the restarted watch follows events again.
    cluster.deployments.add(deployment("web-v2", "v2", 2));
    eventually("web-v2 added after recovery", || {
        store.deployment("shop", "web-v2").is_some()
    })
    .await;

    for handle in handles {
        handle.abort();
    }
}

/// Lists are paged (a page of full objects is what the watcher holds before reducing them to
/// the store's slices, so the page size bounds that peak): 250 Deployments arrive in pages of
/// at most 100 and all of them are in the store once it reports synced.
#[tokio::test]
async fn lists_are_paged_and_every_page_reaches_the_store() {
    let cluster = cluster();
    for n in 0..250 {
        cluster
            .deployments
            .add(deployment(&format!("web-{n:03}"), "v1", 2));
    }
    let client = start(cluster.api.clone()).await;
    let store = Arc::new(Store::expecting(&[]));
    let handles = spawn_watchers_with(client, store.clone(), fast());

    eventually("store synced", || store.sync_status() == SyncStatus::Synced).await;
    assert_eq!(store.counts().deployments, 250);
    assert!(store.deployment("shop", "web-000").is_some());
    assert!(store.deployment("shop", "web-249").is_some());
    let limits = cluster.deployments.list_limits();
    assert_eq!(limits, vec![Some(100); 3], "three pages of at most 100");

    for handle in handles {
        handle.abort();
    }
}
