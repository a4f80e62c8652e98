//! Manifests over another view: what `POST /v1/evaluate` and `rollout-guard test` judge against.
//!
//! The manifests of one request are stored in a small offline store (the overlay) that lies over
//! a base view (the live store, or the cluster state a policy test declares). An object in the
//! overlay replaces the base's object of the same kind and key, as applying the manifests would;
//! everything else comes from the base. Nothing is copied from the base: a lookup asks both and
//! merges, so a request with three manifests over 40k stored objects costs three objects.
//!
//! The view can also record which kinds the rules consulted, so a policy test can fail loudly
//! when a rule read a kind the test did not declare (instead of passing because the kind was
//! silently empty).
//!
//! Every `ClusterView` method must be implemented here, merging overlay and base: a method left
//! to the trait's default would answer "nothing" for both layers. `tests::every_kind_is_layered`
//! names every stored kind, so a new kind does not compile until it is handled here too.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use crate::manifest::Document;
use crate::policy::objects::{
    DeploymentInfo, GatewayInfo, HttpRouteInfo, IngressClassInfo, IngressInfo, Labels, ObjectKey,
    PodInfo, ReferenceGrantInfo, ReplicaSetInfo, Selector, ServiceInfo, Shared, WorkloadInfo,
    WorkloadKind,
};
use crate::policy::view::{ClusterView, ObjectCounts, SyncStatus};
use crate::store::{Store, StoredKind};

/// The manifests of one evaluation over an optional base view.
pub struct LayeredView<'a> {
    overlay: Store,
    /// Kind and key of every object in the overlay: base objects with these are hidden.
    replaced: HashSet<(StoredKind, ObjectKey)>,
    base: Option<&'a dyn ClusterView>,
    /// Kinds the rules asked about, when recording.
    consulted: Option<Mutex<BTreeSet<StoredKind>>>,
}

impl<'a> LayeredView<'a> {
    /// Stores `documents` over `base` (none: the documents are the whole cluster). Returns the
    /// view and the warnings of the offline load (objects that do not read as their kind,
    /// objects defined twice), each with `file:line`.
    pub fn new(documents: &[Document], base: Option<&'a dyn ClusterView>) -> (Self, Vec<String>) {
        let (overlay, replaced, warnings) = Store::from_documents_with_keys(documents);
        let view = Self {
            overlay,
            replaced,
            base,
            consulted: None,
        };
        (view, warnings)
    }

    /// Records the kinds lookups ask about from now on (see [`LayeredView::take_consulted`]).
    pub fn record_consulted(mut self) -> Self {
        self.consulted = Some(Mutex::new(BTreeSet::new()));
        self
    }

    /// The kinds consulted since the last call, and forgets them.
    pub fn take_consulted(&self) -> BTreeSet<StoredKind> {
        match &self.consulted {
            Some(kinds) => std::mem::take(&mut *kinds.lock().unwrap_or_else(|p| p.into_inner())),
            None => BTreeSet::new(),
        }
    }

    fn note(&self, kind: StoredKind) {
        if let Some(kinds) = &self.consulted {
            kinds.lock().unwrap_or_else(|p| p.into_inner()).insert(kind);
        }
    }

    fn hidden(&self, kind: StoredKind, key: &ObjectKey) -> bool {
        self.replaced.contains(&(kind, key.clone()))
    }

    /// One object: the overlay's, else the base's unless the overlay replaces it.
    fn one<T>(
        &self,
        kind: StoredKind,
        key: ObjectKey,
        lookup: impl Fn(&dyn ClusterView) -> Option<T>,
    ) -> Option<T> {
        self.note(kind);
        lookup(&self.overlay).or_else(|| {
            if self.hidden(kind, &key) {
                None
            } else {
                self.base.and_then(&lookup)
            }
        })
    }

    /// Every match of the overlay, then the base's matches the overlay does not replace, in key
    /// order as one index would return them.
    fn many<T>(
        &self,
        kind: StoredKind,
        lookup: impl Fn(&dyn ClusterView) -> Vec<T>,
        key_of: impl Fn(&T) -> ObjectKey,
    ) -> Vec<T> {
        self.note(kind);
        let mut found = lookup(&self.overlay);
        let Some(base) = self.base else {
            return found;
        };
        let from_base: Vec<T> = lookup(base)
            .into_iter()
            .filter(|item| !self.hidden(kind, &key_of(item)))
            .collect();
        if from_base.is_empty() {
            return found;
        }
        found.extend(from_base);
        found.sort_by_key(|item| key_of(item));
        found
    }
}

fn cluster_key(name: &str) -> ObjectKey {
    ObjectKey::new("", name)
}

impl ClusterView for LayeredView<'_> {
    fn sync_status(&self) -> SyncStatus {
        self.base.map_or(SyncStatus::Synced, |b| b.sync_status())
    }

    fn sync_status_for(&self, kinds: &[&str]) -> SyncStatus {
        self.base
            .map_or(SyncStatus::Synced, |b| b.sync_status_for(kinds))
    }

    fn counts(&self) -> ObjectCounts {
        // Approximate (an object in both layers counts twice): for metrics only.
        let mut counts = self.overlay.counts();
        if let Some(base) = self.base {
            let more = base.counts();
            counts.deployments += more.deployments;
            counts.services += more.services;
            counts.ingresses += more.ingresses;
            counts.ingress_classes += more.ingress_classes;
            counts.http_routes += more.http_routes;
            counts.reference_grants += more.reference_grants;
            counts.namespaces += more.namespaces;
            counts.gateways += more.gateways;
            counts.stateful_sets += more.stateful_sets;
            counts.daemon_sets += more.daemon_sets;
            counts.rollouts += more.rollouts;
            counts.pods += more.pods;
            counts.replica_sets += more.replica_sets;
        }
        counts
    }

    fn deployment(&self, namespace: &str, name: &str) -> Option<Shared<DeploymentInfo>> {
        self.one(
            StoredKind::Deployment,
            ObjectKey::new(namespace, name),
            |v| v.deployment(namespace, name),
        )
    }

    fn deployments_matching(
        &self,
        namespace: &str,
        selector: &Selector,
    ) -> Vec<Shared<DeploymentInfo>> {
        self.many(
            StoredKind::Deployment,
            |v| v.deployments_matching(namespace, selector),
            |d| d.key.clone(),
        )
    }

    fn deployments_selecting(
        &self,
        namespace: &str,
        labels: &Labels,
    ) -> Vec<Shared<DeploymentInfo>> {
        self.many(
            StoredKind::Deployment,
            |v| v.deployments_selecting(namespace, labels),
            |d| d.key.clone(),
        )
    }

    fn service(&self, namespace: &str, name: &str) -> Option<Shared<ServiceInfo>> {
        self.one(StoredKind::Service, ObjectKey::new(namespace, name), |v| {
            v.service(namespace, name)
        })
    }

    fn services_selecting(&self, namespace: &str, labels: &Labels) -> Vec<Shared<ServiceInfo>> {
        self.many(
            StoredKind::Service,
            |v| v.services_selecting(namespace, labels),
            |s| s.key.clone(),
        )
    }

    fn ingresses_at(&self, host: &str, path: &str) -> Vec<Shared<IngressInfo>> {
        self.many(
            StoredKind::Ingress,
            |v| v.ingresses_at(host, path),
            |i| i.key.clone(),
        )
    }

    fn ingresses_with_backend(&self, namespace: &str, service: &str) -> Vec<Shared<IngressInfo>> {
        self.many(
            StoredKind::Ingress,
            |v| v.ingresses_with_backend(namespace, service),
            |i| i.key.clone(),
        )
    }

    fn ingress(&self, namespace: &str, name: &str) -> Option<Shared<IngressInfo>> {
        self.one(StoredKind::Ingress, ObjectKey::new(namespace, name), |v| {
            v.ingress(namespace, name)
        })
    }

    fn ingress_class(&self, name: &str) -> Option<Shared<IngressClassInfo>> {
        self.one(StoredKind::IngressClass, cluster_key(name), |v| {
            v.ingress_class(name)
        })
    }

    fn default_ingress_classes(&self) -> Vec<Shared<IngressClassInfo>> {
        self.many(
            StoredKind::IngressClass,
            |v| v.default_ingress_classes(),
            |c| cluster_key(&c.name),
        )
    }

    fn http_routes_sharing(&self, parent: &str, hostname: &str) -> Vec<Shared<HttpRouteInfo>> {
        self.many(
            StoredKind::HttpRoute,
            |v| v.http_routes_sharing(parent, hostname),
            |r| r.key.clone(),
        )
    }

    fn gateway(&self, namespace: &str, name: &str) -> Option<Shared<GatewayInfo>> {
        self.one(StoredKind::Gateway, ObjectKey::new(namespace, name), |v| {
            v.gateway(namespace, name)
        })
    }

    fn reference_grants(&self, namespace: &str) -> Vec<Shared<ReferenceGrantInfo>> {
        self.many(
            StoredKind::ReferenceGrant,
            |v| v.reference_grants(namespace),
            |g| g.key.clone(),
        )
    }

    fn namespace_labels(&self, namespace: &str) -> Option<Labels> {
        self.one(StoredKind::Namespace, cluster_key(namespace), |v| {
            v.namespace_labels(namespace)
        })
    }

    fn namespace_terminating(&self, namespace: &str) -> bool {
        // The layer that holds the Namespace decides: a manifest's Namespace replaces the
        // stored one, terminating or not.
        self.one(StoredKind::Namespace, cluster_key(namespace), |v| {
            v.namespace_labels(namespace)
                .map(|_| v.namespace_terminating(namespace))
        })
        .unwrap_or(false)
    }

    fn workloads_running(&self, namespace: &str, selector: &Labels) -> Vec<Shared<WorkloadInfo>> {
        // Three kinds behind one lookup: each found workload is hidden by its own kind.
        for kind in [
            StoredKind::StatefulSet,
            StoredKind::DaemonSet,
            StoredKind::Rollout,
        ] {
            self.note(kind);
        }
        let mut found = self.overlay.workloads_running(namespace, selector);
        if let Some(base) = self.base {
            found.extend(
                base.workloads_running(namespace, selector)
                    .into_iter()
                    .filter(|w| !self.hidden(stored_kind(w.kind), &w.key)),
            );
        }
        found.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
        found
    }

    fn rollouts_with_template_of(
        &self,
        namespace: &str,
        deployment: &str,
    ) -> Vec<Shared<WorkloadInfo>> {
        self.many(
            StoredKind::Rollout,
            |v| v.rollouts_with_template_of(namespace, deployment),
            |r| r.key.clone(),
        )
    }

    fn pods_matching(&self, namespace: &str, selector: &Labels) -> Vec<Shared<PodInfo>> {
        self.many(
            StoredKind::Pod,
            |v| v.pods_matching(namespace, selector),
            |p| p.key.clone(),
        )
    }

    fn previous_service_selector(&self, namespace: &str, name: &str) -> Option<Labels> {
        self.one(StoredKind::Service, ObjectKey::new(namespace, name), |v| {
            v.previous_service_selector(namespace, name)
        })
    }

    fn replica_sets_of(&self, namespace: &str, deployment: &str) -> Vec<Shared<ReplicaSetInfo>> {
        self.many(
            StoredKind::ReplicaSet,
            |v| v.replica_sets_of(namespace, deployment),
            |r| r.key.clone(),
        )
    }
}

fn stored_kind(kind: WorkloadKind) -> StoredKind {
    match kind {
        WorkloadKind::StatefulSet => StoredKind::StatefulSet,
        WorkloadKind::DaemonSet => StoredKind::DaemonSet,
        WorkloadKind::Rollout => StoredKind::Rollout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn documents(values: Vec<Value>) -> Vec<Document> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, value)| Document {
                file: "m.yaml".into(),
                line: i + 1,
                value,
            })
            .collect()
    }

    fn deployment(ns: &str, name: &str, app: &str, version: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"namespace": ns, "name": name},
            "spec": {"selector": {"matchLabels": {"app": app}},
                "template": {"metadata": {"labels": {"app": app, "version": version}},
                    "spec": {"containers": []}}}})
    }

    /// One object of `kind` named `shop/x` (or `x` when cluster-scoped), and whether the layered
    /// view finds it through the kind's lookups. The match has no wildcard: a new stored kind
    /// does not compile until it has a case here and its lookups are layered above.
    fn sample(kind: StoredKind) -> (Value, fn(&dyn ClusterView) -> bool) {
        match kind {
            StoredKind::Deployment => (deployment("shop", "x", "x", "v1"), |v| {
                v.deployment("shop", "x").is_some()
            }),
            StoredKind::Service => (
                json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"namespace": "shop", "name": "x"},
                    "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}),
                |v| v.service("shop", "x").is_some(),
            ),
            StoredKind::Ingress => (
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": {"namespace": "shop", "name": "x"},
                    "spec": {"rules": [{"host": "x.example.com", "http": {"paths": [{"path": "/",
                        "pathType": "Prefix", "backend": {"service": {"name": "x", "port": {"number": 80}}}}]}}]}}),
                |v| {
                    v.ingress("shop", "x").is_some()
                        && !v.ingresses_with_backend("shop", "x").is_empty()
                },
            ),
            StoredKind::IngressClass => (
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                    "metadata": {"name": "x", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                    "spec": {"controller": "k8s.io/ingress-nginx"}}),
                |v| v.ingress_class("x").is_some() && v.default_ingress_classes().len() == 1,
            ),
            StoredKind::HttpRoute => (
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                    "metadata": {"namespace": "shop", "name": "x"},
                    "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["x.example.com"],
                        "rules": [{"backendRefs": [{"name": "x", "port": 80}]}]}}),
                |v| {
                    !v.http_routes_sharing(
                        "gateway.networking.k8s.io/Gateway/shop/gw",
                        "x.example.com",
                    )
                    .is_empty()
                },
            ),
            StoredKind::ReferenceGrant => (
                json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
                    "metadata": {"namespace": "shop", "name": "x"},
                    "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "web"}],
                        "to": [{"group": "", "kind": "Service"}]}}),
                |v| v.reference_grants("shop").len() == 1,
            ),
            StoredKind::Namespace => (
                json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "x", "labels": {"team": "a"}}}),
                |v| v.namespace_labels("x").is_some(),
            ),
            StoredKind::Gateway => (
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                    "metadata": {"namespace": "shop", "name": "x"},
                    "spec": {"gatewayClassName": "example",
                        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}),
                |v| {
                    v.gateway("shop", "x")
                        .is_some_and(|g| g.listeners.len() == 1)
                },
            ),
            StoredKind::StatefulSet | StoredKind::DaemonSet => (
                json!({"apiVersion": "apps/v1", "kind": kind.as_str(),
                    "metadata": {"namespace": "shop", "name": "x"},
                    "spec": {"serviceName": "x", "selector": {"matchLabels": {"app": "x"}},
                        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}}}),
                |v| {
                    v.workloads_running("shop", &Labels::from([("app", "x")]))
                        .len()
                        == 1
                },
            ),
            StoredKind::Rollout => (
                json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                    "metadata": {"namespace": "shop", "name": "x"},
                    "spec": {"workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}}}),
                |v| v.rollouts_with_template_of("shop", "x").len() == 1,
            ),
            StoredKind::ReplicaSet => (
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"namespace": "shop", "name": "x-5d8f7c9b6",
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                            "name": "x", "uid": "u", "controller": true}]},
                    "spec": {"selector": {"matchLabels": {"app": "x"}},
                        "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}}}),
                |v| v.replica_sets_of("shop", "x").len() == 1,
            ),
            StoredKind::Pod => (
                json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"namespace": "shop", "name": "x", "labels": {"app": "x"}},
                    "spec": {"containers": []}}),
                |v| v.pods_matching("shop", &Labels::from([("app", "x")])).len() == 1,
            ),
        }
    }

    #[test]
    fn every_kind_is_layered() {
        for kind in StoredKind::ALL {
            let (object, found) = sample(kind);
            let (base, warnings) = Store::from_documents(&documents(vec![object.clone()]));
            assert!(warnings.is_empty(), "{kind:?}: {warnings:?}");
            assert!(
                found(&base),
                "{kind:?}: the sample is not found in a plain store"
            );
            // In the base only, in the overlay only, in both (once).
            let (over_base, _) = LayeredView::new(&[], Some(&base));
            assert!(
                found(&over_base),
                "{kind:?} in the base is not seen through the layer"
            );
            let (alone, _) = LayeredView::new(&documents(vec![object]), None);
            assert!(found(&alone), "{kind:?} in the overlay is not seen");
            let alone = alone.record_consulted();
            found(&alone);
            // One lookup (workloads_running) answers for StatefulSets, DaemonSets and Rollouts
            // together, so it records all three.
            let expected = match kind {
                StoredKind::StatefulSet | StoredKind::DaemonSet => BTreeSet::from([
                    StoredKind::StatefulSet,
                    StoredKind::DaemonSet,
                    StoredKind::Rollout,
                ]),
                _ => BTreeSet::from([kind]),
            };
            assert_eq!(
                alone.take_consulted(),
                expected,
                "{kind:?}: lookups record their kind"
            );
            assert!(alone.take_consulted().is_empty(), "taking forgets");
        }
    }

    #[test]
    fn the_overlay_replaces_base_objects_of_the_same_key() {
        let (base, _) = Store::from_documents(&documents(vec![
            deployment("shop", "web", "web", "v1"),
            deployment("shop", "api", "api", "v1"),
        ]));
        // The manifest moves `web` to other labels: the base's `web` must not match any more.
        let (view, _) = LayeredView::new(
            &documents(vec![deployment("shop", "web", "web", "v2")]),
            Some(&base),
        );
        let v1 = Selector::from_labels(&Labels::from([("app", "web"), ("version", "v1")]));
        assert!(view.deployments_matching("shop", &v1).is_empty());
        let v2 = Selector::from_labels(&Labels::from([("app", "web"), ("version", "v2")]));
        assert_eq!(view.deployments_matching("shop", &v2).len(), 1);
        assert!(
            view.deployment("shop", "api").is_some(),
            "others still seen"
        );
        let web_labels = view.deployment("shop", "web").unwrap();
        assert_eq!(web_labels.key, ObjectKey::new("shop", "web"));
        assert_eq!(view.sync_status(), SyncStatus::Synced);
    }

    #[test]
    fn a_terminating_namespace_is_seen_through_the_layer_and_replaced_by_the_overlay() {
        let namespace = |terminating: bool| {
            let mut object = json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "shop"}});
            if terminating {
                object["metadata"]["deletionTimestamp"] = json!("2026-03-01T00:00:00Z");
            }
            object
        };
        let (base, _) = Store::from_documents(&documents(vec![namespace(true)]));
        let (through, _) = LayeredView::new(&[], Some(&base));
        assert!(through.namespace_terminating("shop"));
        assert!(!through.namespace_terminating("other"));
        let (replaced, _) = LayeredView::new(&documents(vec![namespace(false)]), Some(&base));
        assert!(!replaced.namespace_terminating("shop"));
    }
}
