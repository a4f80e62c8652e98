//! The cluster store: the index behind a lock, with sync tracking, implementing `ClusterView`.
//!
//! Filled by the kube watchers in a cluster, or from manifests offline (`serve --objects`,
//! `check`); both go through `apply_object`/`delete_object`, so the rules see the same data
//! either way.

pub mod index;

use std::collections::BTreeMap;
use std::sync::RwLock;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde_json::Value;

use crate::policy::objects::{
    DeploymentInfo, HttpRouteInfo, IngressClassInfo, IngressInfo, Labels, ObjectKey,
    ReferenceGrantInfo, Selector, ServiceInfo, Shared,
};
use crate::policy::view::{ClusterView, ObjectCounts, SyncStatus};

pub use index::ClusterIndex;

/// The kinds the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoredKind {
    /// apps/v1 Deployment.
    Deployment,
    /// v1 Service.
    Service,
    /// networking.k8s.io/v1 Ingress.
    Ingress,
    /// networking.k8s.io/v1 IngressClass.
    IngressClass,
    /// gateway.networking.k8s.io HTTPRoute.
    HttpRoute,
    /// gateway.networking.k8s.io ReferenceGrant.
    ReferenceGrant,
    /// v1 Namespace.
    Namespace,
}

impl StoredKind {
    /// Every kind, in a stable order.
    pub const ALL: [StoredKind; 7] = [
        StoredKind::Deployment,
        StoredKind::Service,
        StoredKind::Ingress,
        StoredKind::IngressClass,
        StoredKind::HttpRoute,
        StoredKind::ReferenceGrant,
        StoredKind::Namespace,
    ];

    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            StoredKind::Deployment => "Deployment",
            StoredKind::Service => "Service",
            StoredKind::Ingress => "Ingress",
            StoredKind::IngressClass => "IngressClass",
            StoredKind::HttpRoute => "HTTPRoute",
            StoredKind::ReferenceGrant => "ReferenceGrant",
            StoredKind::Namespace => "Namespace",
        }
    }

    /// The stored kind of a manifest's `apiVersion` + `kind`, if the store keeps it.
    pub fn of(api_version: &str, kind: &str) -> Option<Self> {
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        match (group, kind) {
            ("apps", "Deployment") => Some(StoredKind::Deployment),
            ("", "Service") => Some(StoredKind::Service),
            ("networking.k8s.io", "Ingress") => Some(StoredKind::Ingress),
            ("networking.k8s.io", "IngressClass") => Some(StoredKind::IngressClass),
            ("gateway.networking.k8s.io", "HTTPRoute") => Some(StoredKind::HttpRoute),
            ("gateway.networking.k8s.io", "ReferenceGrant") => Some(StoredKind::ReferenceGrant),
            ("", "Namespace") => Some(StoredKind::Namespace),
            _ => None,
        }
    }
}

/// Why an object could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not a kind the store keeps.
    #[error("{0} is not a kind the store keeps")]
    UnknownKind(String),
    /// The object does not parse as its kind.
    #[error("{kind} {name}: {source}")]
    Invalid {
        /// Kind.
        kind: &'static str,
        /// Name, when readable.
        name: String,
        /// Parser error.
        source: serde_json::Error,
    },
}

/// Per-kind sync state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindSync {
    /// Initial list not finished yet.
    Pending,
    /// Listed and watching.
    Synced,
    /// The watch failed; the text says why. Data from before the failure is kept.
    Broken(String),
}

/// The store: index + sync state.
#[derive(Debug)]
pub struct Store {
    index: RwLock<ClusterIndex>,
    sync: RwLock<BTreeMap<StoredKind, KindSync>>,
}

impl Store {
    /// A store that waits for `kinds` to sync (watchers call `mark_synced`).
    pub fn expecting(kinds: &[StoredKind]) -> Self {
        Self {
            index: RwLock::new(ClusterIndex::default()),
            sync: RwLock::new(kinds.iter().map(|k| (*k, KindSync::Pending)).collect()),
        }
    }

    /// A store that is complete as filled (offline use: manifests are the whole cluster).
    pub fn offline() -> Self {
        Self::expecting(&[])
    }

    /// Marks a kind's initial list as complete (or a broken watch as recovered).
    pub fn mark_synced(&self, kind: StoredKind) {
        self.sync
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind, KindSync::Synced);
    }

    /// Marks a kind's watch as broken.
    pub fn mark_broken(&self, kind: StoredKind, reason: String) {
        self.sync
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind, KindSync::Broken(reason));
    }

    /// Sync state per kind (only kinds this store waits for).
    pub fn kind_sync(&self) -> BTreeMap<StoredKind, KindSync> {
        self.sync.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `f` with the index locked for writing.
    pub fn write<R>(&self, f: impl FnOnce(&mut ClusterIndex) -> R) -> R {
        f(&mut self.index.write().unwrap_or_else(|p| p.into_inner()))
    }

    fn read<R>(&self, f: impl FnOnce(&ClusterIndex) -> R) -> R {
        f(&self.index.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Stores one object given as JSON (a manifest document or a watch event's object).
    pub fn apply_object(&self, object: &Value) -> Result<StoredKind, StoreError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind_name = object["kind"].as_str().unwrap_or_default();
        let kind = StoredKind::of(api_version, kind_name)
            .ok_or_else(|| StoreError::UnknownKind(format!("{api_version} {kind_name}")))?;
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let invalid = |source| StoreError::Invalid {
            kind: kind.as_str(),
            name: name.clone(),
            source,
        };
        match kind {
            StoredKind::Deployment => {
                let typed: Deployment = serde_json::from_value(object.clone()).map_err(invalid)?;
                self.write(|i| {
                    i.apply_deployment(DeploymentInfo::from_deployment(&typed, namespace))
                });
            }
            StoredKind::Service => {
                let typed: Service = serde_json::from_value(object.clone()).map_err(invalid)?;
                self.write(|i| i.apply_service(ServiceInfo::from_service(&typed, namespace)));
            }
            StoredKind::Ingress => {
                let typed: Ingress = serde_json::from_value(object.clone()).map_err(invalid)?;
                self.write(|i| i.apply_ingress(IngressInfo::from_ingress(&typed, namespace)));
            }
            StoredKind::IngressClass => {
                let typed: IngressClass =
                    serde_json::from_value(object.clone()).map_err(invalid)?;
                self.write(|i| i.apply_ingress_class(IngressClassInfo::from_ingress_class(&typed)));
            }
            StoredKind::HttpRoute => {
                self.write(|i| i.apply_http_route(HttpRouteInfo::from_value(object, namespace)));
            }
            StoredKind::ReferenceGrant => {
                self.write(|i| {
                    i.apply_reference_grant(ReferenceGrantInfo::from_value(object, namespace))
                });
            }
            StoredKind::Namespace => {
                let labels: Labels = object["metadata"]["labels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect();
                self.write(|i| i.apply_namespace(name.clone(), labels));
            }
        }
        Ok(kind)
    }

    /// Removes one object given as JSON.
    pub fn delete_object(&self, object: &Value) -> Result<StoredKind, StoreError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind_name = object["kind"].as_str().unwrap_or_default();
        let kind = StoredKind::of(api_version, kind_name)
            .ok_or_else(|| StoreError::UnknownKind(format!("{api_version} {kind_name}")))?;
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let key = ObjectKey::new(namespace, name);
        self.write(|i| match kind {
            StoredKind::Deployment => i.delete_deployment(&key),
            StoredKind::Service => i.delete_service(&key),
            StoredKind::Ingress => i.delete_ingress(&key),
            StoredKind::IngressClass => i.delete_ingress_class(name),
            StoredKind::HttpRoute => i.delete_http_route(&key),
            StoredKind::ReferenceGrant => i.delete_reference_grant(&key),
            StoredKind::Namespace => i.delete_namespace(name),
        });
        Ok(kind)
    }
}

impl ClusterView for Store {
    fn sync_status(&self) -> SyncStatus {
        let sync = self.sync.read().unwrap_or_else(|p| p.into_inner());
        let waiting: Vec<String> = sync
            .iter()
            .filter_map(|(kind, state)| match state {
                KindSync::Synced => None,
                KindSync::Pending => Some(format!("{} not listed yet", kind.as_str())),
                KindSync::Broken(reason) => {
                    Some(format!("{} watch broken: {reason}", kind.as_str()))
                }
            })
            .collect();
        if waiting.is_empty() {
            SyncStatus::Synced
        } else {
            SyncStatus::NotSynced(waiting.join(", "))
        }
    }

    fn counts(&self) -> ObjectCounts {
        self.read(ClusterIndex::counts)
    }

    fn deployment(&self, namespace: &str, name: &str) -> Option<Shared<DeploymentInfo>> {
        self.read(|i| i.deployment(namespace, name))
    }

    fn deployments_matching(
        &self,
        namespace: &str,
        selector: &Selector,
    ) -> Vec<Shared<DeploymentInfo>> {
        self.read(|i| i.deployments_matching(namespace, selector))
    }

    fn deployments_selecting(
        &self,
        namespace: &str,
        labels: &Labels,
    ) -> Vec<Shared<DeploymentInfo>> {
        self.read(|i| i.deployments_selecting(namespace, labels))
    }

    fn service(&self, namespace: &str, name: &str) -> Option<Shared<ServiceInfo>> {
        self.read(|i| i.service(namespace, name))
    }

    fn services_selecting(&self, namespace: &str, labels: &Labels) -> Vec<Shared<ServiceInfo>> {
        self.read(|i| i.services_selecting(namespace, labels))
    }

    fn ingresses_at(&self, host: &str, path: &str) -> Vec<Shared<IngressInfo>> {
        self.read(|i| i.ingresses_at(host, path))
    }

    fn ingresses_with_backend(&self, namespace: &str, service: &str) -> Vec<Shared<IngressInfo>> {
        self.read(|i| i.ingresses_with_backend(namespace, service))
    }

    fn ingress(&self, namespace: &str, name: &str) -> Option<Shared<IngressInfo>> {
        self.read(|i| i.ingress(namespace, name))
    }

    fn ingress_class(&self, name: &str) -> Option<Shared<IngressClassInfo>> {
        self.read(|i| i.ingress_class(name))
    }

    fn default_ingress_classes(&self) -> Vec<Shared<IngressClassInfo>> {
        self.read(ClusterIndex::default_ingress_classes)
    }

    fn reference_grants(&self, namespace: &str) -> Vec<Shared<ReferenceGrantInfo>> {
        self.read(|i| i.reference_grants(namespace))
    }

    fn namespace_labels(&self, namespace: &str) -> Option<Labels> {
        self.read(|i| i.namespace_labels(namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(ns: &str, name: &str, selector: Value, labels: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"namespace": ns, "name": name},
            "spec": {"selector": selector, "template": {"metadata": {"labels": labels}, "spec": {"containers": []}}}})
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn deployment_lookups_follow_apply_and_delete() {
        let store = Store::offline();
        let web_v1 = deployment(
            "shop",
            "web-v1",
            json!({"matchLabels": {"app": "web", "version": "v1"}}),
            json!({"app": "web", "version": "v1"}),
        );
        let web_v2 = deployment(
            "shop",
            "web-v2",
            json!({"matchLabels": {"app": "web", "version": "v2"}}),
            json!({"app": "web", "version": "v2"}),
        );
        let other_ns = deployment(
            "other",
            "web",
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        for d in [&web_v1, &web_v2, &other_ns] {
            store.apply_object(d).unwrap();
        }
        let app_web = Selector::from_labels(&labels(&[("app", "web")]));
        assert_eq!(store.deployments_matching("shop", &app_web).len(), 2);
        let v2 = Selector::from_labels(&labels(&[("app", "web"), ("version", "v2")]));
        let found = store.deployments_matching("shop", &v2);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key.name, "web-v2");
        // Which Deployments would adopt pods labelled app=web,version=v1?
        let adopters =
            store.deployments_selecting("shop", &labels(&[("app", "web"), ("version", "v1")]));
        assert_eq!(
            adopters
                .iter()
                .map(|d| d.key.name.as_str())
                .collect::<Vec<_>>(),
            vec!["web-v1"]
        );

        store.delete_object(&web_v2).unwrap();
        assert!(store.deployments_matching("shop", &v2).is_empty());
        assert_eq!(store.counts().deployments, 2);
        // Re-applying with new labels moves it between postings.
        let moved = deployment(
            "shop",
            "web-v1",
            json!({"matchLabels": {"app": "web", "version": "v1"}}),
            json!({"app": "web", "version": "v3"}),
        );
        store.apply_object(&moved).unwrap();
        assert!(store
            .deployments_matching(
                "shop",
                &Selector::from_labels(&labels(&[("version", "v1")]))
            )
            .is_empty());
    }

    #[test]
    fn ingress_and_service_lookups() {
        let store = Store::offline();
        store
            .apply_object(&json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"namespace": "shop", "name": "web"},
                "spec": {"rules": [{"host": "a.example.com", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}))
            .unwrap();
        store
            .apply_object(&json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": "shop", "name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
            .unwrap();
        assert_eq!(store.ingresses_at("a.example.com", "/").len(), 1);
        assert!(store.ingresses_at("a.example.com", "/api").is_empty());
        assert_eq!(store.ingresses_with_backend("shop", "web").len(), 1);
        assert_eq!(
            store
                .services_selecting("shop", &labels(&[("app", "web"), ("version", "v1")]))
                .len(),
            1
        );
        assert!(store
            .services_selecting("shop", &labels(&[("app", "api")]))
            .is_empty());
        assert!(store
            .apply_object(&json!({"apiVersion": "v1", "kind": "ConfigMap"}))
            .is_err());
    }

    #[test]
    fn sync_status_reports_pending_and_broken_kinds() {
        let store = Store::expecting(&[StoredKind::Deployment, StoredKind::Ingress]);
        assert!(matches!(store.sync_status(), SyncStatus::NotSynced(_)));
        store.mark_synced(StoredKind::Deployment);
        store.mark_synced(StoredKind::Ingress);
        assert_eq!(store.sync_status(), SyncStatus::Synced);
        store.mark_broken(StoredKind::Ingress, "410 Gone".into());
        match store.sync_status() {
            SyncStatus::NotSynced(reason) => {
                assert!(reason.contains("Ingress watch broken: 410 Gone"))
            }
            SyncStatus::Synced => panic!("expected not synced"),
        }
    }
}
