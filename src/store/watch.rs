//! Live watchers: one task per kind keeps the store in step with the cluster.
//!
//! Each task lists then watches one kind cluster-wide (kube-rs `watcher`, no reflector: the
//! store keeps its own slices and indexes) and turns events into store updates:
//! - `Init` … `InitApply`* … `InitDone`: the (re)list is collected and replaces the kind's
//!   contents in one swap, so objects deleted while we were disconnected disappear; then the
//!   kind is marked synced.
//! - `Apply` / `Delete`: one object in or out.
//! - an error: the kind is marked broken with the reason (cross-object rules then answer by their
//!   `onError`), and after a backoff the watch starts over with a fresh list. Starting over rather
//!   than letting the watcher resume silently is deliberate: only a completed relist tells us the
//!   store is trustworthy again, so recovery is observable (`InitDone` → synced) instead of
//!   guessed from the next event, which in a quiet cluster may never come.
//!
//! Gateway API kinds are CRDs. When the API server does not serve them (404 on list, for every
//! version we know) the kind is held empty and counted as synced ([`KindSync::Absent`]), so a
//! cluster without Gateway API is not stuck "not synced"; the list is retried periodically and
//! picked up once the CRD is installed.
//!
//! Argo Rollouts' Rollout is a CRD too, handled the same way.
//!
//! Pods are watched, but only those no kind with a pod template runs are kept (bare pods, Jobs'
//! and operators' pods): an event for any other pod is dropped after reading its owner, and
//! removes the pod if it was kept before (a bare pod a ReplicaSet adopted).
//!
//! ReplicaSets are watched, but only those a Deployment controls are kept, reduced to their
//! owner, revision and a digest of their template (`ReplicaSetInfo`): the rollback rule asks
//! whether an incoming template is one of them.
//!
//! The webhook never calls the API server on the request path: rules only read the store.
//! RBAC needed (least privilege): `list` and `watch` on deployments, replicasets, statefulsets
//! and daemonsets (apps), services, namespaces and pods (core), ingresses and ingressclasses
//! (networking.k8s.io), httproutes, referencegrants and gateways (gateway.networking.k8s.io),
//! rollouts (argoproj.io). Nothing else.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Deserialize as _;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::policy::gateway::HttpRoute;
use crate::policy::objects::{
    DeploymentInfo, GatewayInfo, HttpRouteInfo, IngressClassInfo, IngressInfo, ObjectKey, PodInfo,
    ReferenceGrantInfo, ReplicaSetInfo, ServiceInfo, WorkloadInfo,
};
use crate::store::{Store, StoredKind, StoredObject};

/// The API group of Gateway API.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Versions tried for HTTPRoute, newest first (v1 since Gateway API v1.0; v1beta1 before).
pub const HTTP_ROUTE_VERSIONS: &[&str] = &["v1", "v1beta1"];

/// Versions tried for ReferenceGrant, newest first (the standard channel serves v1beta1; newer
/// releases add v1).
pub const REFERENCE_GRANT_VERSIONS: &[&str] = &["v1", "v1beta1"];

/// Versions tried for Gateway, newest first (v1 since Gateway API v1.0; v1beta1 before).
pub const GATEWAY_VERSIONS: &[&str] = &["v1", "v1beta1"];

/// The API group of Argo Rollouts.
pub const ARGO_ROLLOUTS_GROUP: &str = "argoproj.io";

/// Versions tried for Rollout (Argo Rollouts has only ever served v1alpha1).
pub const ROLLOUT_VERSIONS: &[&str] = &["v1alpha1"];

/// Timing of the watch tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchSettings {
    /// First wait after a failed list or watch; doubled after each further failure.
    pub backoff_initial: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
    /// How often a kind whose CRD is absent is listed again.
    pub rediscover_every: Duration,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            rediscover_every: Duration::from_secs(60),
        }
    }
}

/// Starts one watch task per stored kind with the default timing. The tasks run until aborted;
/// the store reports each kind as pending until its first list completes.
pub fn spawn_watchers(client: Client, store: Arc<Store>) -> Vec<JoinHandle<()>> {
    spawn_watchers_with(client, store, WatchSettings::default())
}

/// [`spawn_watchers`] with explicit timing (tests use short waits).
pub fn spawn_watchers_with(
    client: Client,
    store: Arc<Store>,
    settings: WatchSettings,
) -> Vec<JoinHandle<()>> {
    for kind in StoredKind::ALL {
        store.expect(kind);
    }
    let typed = |kind| (kind, settings, store.clone());
    vec![
        spawn(
            WatchedKind::new(typed(StoredKind::Deployment), Api::all(client.clone())),
            |d: Deployment| StoredObject::Deployment(DeploymentInfo::from_deployment(&d, "")),
        ),
        spawn(
            WatchedKind::new(typed(StoredKind::Service), Api::all(client.clone())),
            |s: Service| StoredObject::Service(ServiceInfo::from_service(&s, "")),
        ),
        spawn(
            WatchedKind::new(typed(StoredKind::Ingress), Api::all(client.clone())),
            |i: Ingress| StoredObject::Ingress(IngressInfo::from_ingress(&i, "")),
        ),
        spawn(
            WatchedKind::new(typed(StoredKind::IngressClass), Api::all(client.clone())),
            |c: IngressClass| StoredObject::IngressClass(IngressClassInfo::from_ingress_class(&c)),
        ),
        spawn(
            WatchedKind::new(typed(StoredKind::Namespace), Api::all(client.clone())),
            |n: Namespace| StoredObject::Namespace {
                name: n.name_any(),
                labels: n
                    .metadata
                    .labels
                    .as_ref()
                    .map(crate::policy::objects::Labels::from)
                    .unwrap_or_default(),
                terminating: n.metadata.deletion_timestamp.is_some()
                    || n.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating"),
            },
        ),
        spawn(
            WatchedKind::new(typed(StoredKind::StatefulSet), Api::all(client.clone())),
            |s: StatefulSet| StoredObject::Workload(WorkloadInfo::from_stateful_set(&s, "")),
        ),
        spawn(
            WatchedKind::new(typed(StoredKind::DaemonSet), Api::all(client.clone())),
            |d: DaemonSet| StoredObject::Workload(WorkloadInfo::from_daemon_set(&d, "")),
        ),
        spawn_filtered(
            WatchedKind::new(typed(StoredKind::Pod), Api::all(client.clone())),
            |p: Pod| PodInfo::from_pod(&p, "").map(StoredObject::Pod),
        ),
        spawn_filtered(
            WatchedKind::new(typed(StoredKind::ReplicaSet), Api::all(client.clone())),
            |r: ReplicaSet| ReplicaSetInfo::from_replica_set(&r, "").map(StoredObject::ReplicaSet),
        ),
        spawn(
            WatchedKind::crd(
                typed(StoredKind::Rollout),
                &client,
                (ARGO_ROLLOUTS_GROUP, "Rollout", "rollouts"),
                ROLLOUT_VERSIONS,
            ),
            rollout_from_watch,
        ),
        spawn(
            WatchedKind::crd(
                typed(StoredKind::HttpRoute),
                &client,
                (GATEWAY_GROUP, "HTTPRoute", "httproutes"),
                HTTP_ROUTE_VERSIONS,
            ),
            http_route_from_watch,
        ),
        spawn(
            WatchedKind::crd(
                typed(StoredKind::ReferenceGrant),
                &client,
                (GATEWAY_GROUP, "ReferenceGrant", "referencegrants"),
                REFERENCE_GRANT_VERSIONS,
            ),
            |grant: DynamicObject| {
                StoredObject::ReferenceGrant(ReferenceGrantInfo::from_value(&spec_only(grant), ""))
            },
        ),
        spawn(
            WatchedKind::crd(
                typed(StoredKind::Gateway),
                &client,
                (GATEWAY_GROUP, "Gateway", "gateways"),
                GATEWAY_VERSIONS,
            ),
            |gateway: DynamicObject| {
                StoredObject::Gateway(GatewayInfo::from_value(&spec_only(gateway), ""))
            },
        ),
    ]
}

/// An HTTPRoute from a watch event as the store keeps it, `status.parents` included (a parentRef
/// a controller rejected does not attach). The API server validated the route against its
/// schema, so it parses; should a newer API version ever carry a field this reading rejects,
/// the route is kept by name without attachments rather than dropped from the counts.
fn http_route_from_watch(mut route: DynamicObject) -> StoredObject {
    let parents = route
        .data
        .get_mut("status")
        .and_then(|status| status.get_mut("parents"))
        .map(Value::take);
    let generation = route.metadata.generation;
    let mut value = spec_only(route);
    value["metadata"]["generation"] = json!(generation);
    if let Some(parents) = parents {
        value["status"] = json!({ "parents": parents });
    }
    let typed = HttpRoute::deserialize(&value).unwrap_or_else(|_| HttpRoute {
        metadata: ObjectMeta::deserialize(&value["metadata"]).unwrap_or_default(),
        ..HttpRoute::default()
    });
    StoredObject::HttpRoute(HttpRouteInfo::from_route(&typed, ""))
}

/// A Rollout from a watch event as the store keeps it: its template labels, replicas and the
/// status counts (the rest of the status and the pod spec are dropped first).
fn rollout_from_watch(mut rollout: DynamicObject) -> StoredObject {
    let status = rollout
        .data
        .get_mut("status")
        .map(Value::take)
        .unwrap_or(Value::Null);
    let generation = rollout.metadata.generation;
    let mut value = spec_only(rollout);
    value["metadata"]["generation"] = json!(generation);
    value["status"] = json!({
        "availableReplicas": status["availableReplicas"],
        "updatedReplicas": status["updatedReplicas"],
        "observedGeneration": status["observedGeneration"],
    });
    StoredObject::Workload(WorkloadInfo::from_rollout(&value, ""))
}

/// Keeps the identity, creation time and spec of a CRD object and drops the rest (status, managedFields) before
/// the slice parser reads it.
fn spec_only(mut object: DynamicObject) -> Value {
    let spec = object
        .data
        .get_mut("spec")
        .map(Value::take)
        .unwrap_or(Value::Null);
    json!({
        "metadata": {
            "namespace": object.metadata.namespace.take(),
            "name": object.metadata.name.take(),
            "creationTimestamp": object.metadata.creation_timestamp.take(),
        },
        "spec": spec,
    })
}

/// One kind to watch: the store, its timing, and the API (or, for a CRD, the APIs of each
/// version to try, newest first).
struct WatchedKind<K> {
    kind: StoredKind,
    settings: WatchSettings,
    store: Arc<Store>,
    /// `(apiVersion, Api)` candidates; more than one only for CRDs.
    apis: Vec<(String, Api<K>)>,
    /// Whether the API server may legitimately not serve the kind (a CRD).
    optional: bool,
}

impl<K> WatchedKind<K> {
    fn new((kind, settings, store): (StoredKind, WatchSettings, Arc<Store>), api: Api<K>) -> Self {
        Self {
            kind,
            settings,
            store,
            apis: vec![(String::new(), api)],
            optional: false,
        }
    }
}

impl WatchedKind<DynamicObject> {
    /// A CRD kind: `(group, kind, plural)`, tried in `versions` (newest first).
    fn crd(
        (kind, settings, store): (StoredKind, WatchSettings, Arc<Store>),
        client: &Client,
        (group, kind_name, plural): (&str, &str, &str),
        versions: &[&str],
    ) -> Self {
        let apis = versions
            .iter()
            .map(|version| {
                let gvk = GroupVersionKind::gvk(group, version, kind_name);
                let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
                (
                    format!("{group}/{version}"),
                    Api::all_with(client.clone(), &resource),
                )
            })
            .collect();
        Self {
            kind,
            settings,
            store,
            apis,
            optional: true,
        }
    }
}

/// How one run of a watch ended.
enum Ended {
    /// Listing failed because the API server does not serve this version (HTTP 404).
    NotServed(String),
    /// Anything else; the text is the reason shown in the sync status.
    Failed(String),
}

/// How a watch event's object becomes what the store keeps: `None` when the store does not
/// keep this object (it is then removed, in case an earlier version of it was kept).
type Convert<K> = Box<dyn Fn(K) -> Option<StoredObject> + Send + Sync>;

fn spawn<K>(watched: WatchedKind<K>, convert: fn(K) -> StoredObject) -> JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    tokio::spawn(run(watched, Box::new(move |object| Some(convert(object)))))
}

/// [`spawn`] for a kind of which the store keeps only some objects (pods).
fn spawn_filtered<K>(
    watched: WatchedKind<K>,
    convert: fn(K) -> Option<StoredObject>,
) -> JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    tokio::spawn(run(watched, Box::new(convert)))
}

/// Exponential backoff between failed attempts, reset by a completed list.
struct Backoff {
    next: Duration,
    initial: Duration,
    max: Duration,
}

impl Backoff {
    fn new(settings: &WatchSettings) -> Self {
        Self {
            next: settings.backoff_initial,
            initial: settings.backoff_initial,
            max: settings.backoff_max,
        }
    }

    fn step(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}

async fn run<K>(watched: WatchedKind<K>, convert: Convert<K>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let kind = watched.kind;
    let mut backoff = Backoff::new(&watched.settings);
    let mut version = 0;
    loop {
        let Some((api_version, api)) = watched.apis.get(version) else {
            return;
        };
        match watch_until_failure(&watched, api, &convert, &mut backoff).await {
            Ended::NotServed(reason) if watched.optional => {
                if version + 1 < watched.apis.len() {
                    version += 1;
                    continue;
                }
                let tried: Vec<&str> = watched.apis.iter().map(|(v, _)| v.as_str()).collect();
                let reason = format!(
                    "not served by the API server (tried {}): {reason}",
                    tried.join(", ")
                );
                if !matches!(
                    watched.store.kind_sync().get(&kind),
                    Some(super::KindSync::Absent(_))
                ) {
                    tracing::info!(kind = kind.as_str(), %reason, "kind absent; held empty, retried periodically");
                }
                watched.store.replace_kind(kind, Vec::new());
                watched.store.mark_absent(kind, reason);
                version = 0;
                tokio::time::sleep(watched.settings.rediscover_every).await;
            }
            Ended::NotServed(reason) | Ended::Failed(reason) => {
                let wait = backoff.step();
                tracing::warn!(
                    kind = kind.as_str(),
                    api_version = %api_version,
                    %reason,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "watch failed; cross-object rules answer by their onError until it relists"
                );
                watched.store.mark_broken(kind, reason);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Objects per list page. kube-runtime asks for 500; each page is held as full typed objects
/// (pod templates, managedFields) until its objects are reduced to what the store keeps, so a
/// page of large Deployments is tens of megabytes on top of the store. 100 keeps that peak
/// small for a few more list calls at (re)list time only.
const LIST_PAGE_SIZE: u32 = 100;

fn list_config() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE_SIZE)
}

/// Lists and watches until the first error.
async fn watch_until_failure<K>(
    watched: &WatchedKind<K>,
    api: &Api<K>,
    convert: &Convert<K>,
    backoff: &mut Backoff,
) -> Ended
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let kind = watched.kind;
    let store = &watched.store;
    let mut events = std::pin::pin!(watcher::watcher(api.clone(), list_config()));
    // `Some` between Init and InitDone: the relist being collected.
    let mut listing: Option<Vec<StoredObject>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listing = Some(Vec::new()),
            Ok(Event::InitApply(object)) => {
                if let Some(stored) = convert(object) {
                    listing.get_or_insert_with(Vec::new).push(stored);
                }
            }
            Ok(Event::InitDone) => {
                let objects = listing.take().unwrap_or_default();
                let count = objects.len();
                store.replace_kind(kind, objects);
                // The relist's typed objects are gone; return their pages (once per relist).
                super::release_freed_heap();
                store.mark_synced(kind);
                backoff.reset();
                tracing::info!(
                    kind = kind.as_str(),
                    objects = count,
                    "kind listed; watching"
                );
            }
            Ok(Event::Apply(object)) => {
                let key = ObjectKey::new(object.namespace().unwrap_or_default(), object.name_any());
                match convert(object) {
                    Some(stored) => store.apply(stored),
                    None => store.forget(kind, &key),
                }
            }
            Ok(Event::Delete(object)) => {
                let key = ObjectKey::new(object.namespace().unwrap_or_default(), object.name_any());
                store.delete(kind, &key);
            }
            Err(watcher::Error::InitialListFailed(kube::Error::Api(status)))
                if status.code == 404 =>
            {
                return Ended::NotServed(status.message.clone());
            }
            Err(error) => return Ended::Failed(error.to_string()),
        }
    }
    // `watcher` streams do not end; if one ever does, treat it as a failure and start over.
    Ended::Failed("watch stream ended".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamic(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    /// A watched Rollout keeps its template labels, replicas, generation and the status counts,
    /// with Argo Rollouts' string observedGeneration read as a number.
    #[test]
    fn rollouts_from_watch_events() {
        let rollout = dynamic(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"namespace": "shop", "name": "web", "generation": 3, "managedFields": [{}]},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "web:2"}]}},
                "strategy": {"blueGreen": {"activeService": "web", "previewService": "web-preview"}}},
            "status": {"observedGeneration": "3", "availableReplicas": 4, "updatedReplicas": 4,
                "blueGreen": {"activeSelector": "6b7c9d"}, "conditions": []}
        }));
        let StoredObject::Workload(info) = rollout_from_watch(rollout) else {
            panic!("not a workload")
        };
        assert_eq!(info.kind, crate::policy::objects::WorkloadKind::Rollout);
        assert_eq!(info.key, ObjectKey::new("shop", "web"));
        assert_eq!((info.desired, info.available, info.updated), (4, 4, 4));
        assert!(info.observed());
        assert_eq!(
            info.template_labels,
            crate::policy::objects::Labels::from([("app", "web")])
        );
    }

    /// A watched route keeps what the shadowing check reads (creation time included, which
    /// `spec_only` must carry, and the controllers' verdicts per parentRef for the current
    /// generation); one this reading cannot parse is still kept by name.
    #[test]
    fn http_routes_from_watch_events() {
        let rejected = |observed: i64| {
            json!({"parentRef": {"name": "internal", "namespace": "gateways", "sectionName": "http"},
                "controllerName": "example.com/gateway",
                "conditions": [{"type": "Accepted", "status": "False", "reason": "NoMatchingParent",
                    "observedGeneration": observed}]})
        };
        let route = dynamic(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"namespace": "shop", "name": "web", "generation": 3,
                "creationTimestamp": "2024-01-01T00:00:00Z", "managedFields": [{}]},
            "spec": {"parentRefs": [{"name": "public", "namespace": "gateways"},
                    {"name": "internal", "namespace": "gateways", "sectionName": "http"}],
                "hostnames": ["shop.example.com"], "rules": [{"backendRefs": []}]},
            "status": {"parents": [
                {"parentRef": {"name": "public", "namespace": "gateways"},
                    "conditions": [{"type": "Accepted", "status": "True", "observedGeneration": 3}]},
                rejected(3)]}
        }));
        let StoredObject::HttpRoute(info) = http_route_from_watch(route) else {
            panic!("not an HTTPRoute")
        };
        assert_eq!(info.key, ObjectKey::new("shop", "web"));
        assert_eq!(info.created.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(
            &*info.parents[0].parent,
            "gateway.networking.k8s.io/Gateway/gateways/public"
        );
        assert!(!info.parents[0].rejected);
        assert!(info.parents[1].rejected, "Accepted: False for generation 3");
        assert_eq!(*info.hostnames, ["shop.example.com"]);
        assert_eq!(
            info.matches.iter().map(|m| m.requests).collect::<Vec<_>>(),
            [crate::policy::gateway::text_fingerprint(
                "path PathPrefix \"/\""
            )]
        );

        // A verdict about an older generation says nothing about the current spec.
        let stale = dynamic(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"namespace": "shop", "name": "web", "generation": 4},
            "spec": {"parentRefs": [{"name": "internal", "namespace": "gateways", "sectionName": "http"}]},
            "status": {"parents": [rejected(3)]}
        }));
        let StoredObject::HttpRoute(info) = http_route_from_watch(stale) else {
            panic!("not an HTTPRoute")
        };
        assert!(!info.parents[0].rejected);

        let unreadable = dynamic(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"namespace": "shop", "name": "odd"},
            "spec": {"hostnames": "not-a-list"}
        }));
        let StoredObject::HttpRoute(info) = http_route_from_watch(unreadable) else {
            panic!("not an HTTPRoute")
        };
        assert_eq!(info.key, ObjectKey::new("shop", "odd"));
        assert!(info.parents.is_empty() && info.matches.is_empty());
    }
}
