//! The cluster store: the index behind a lock, with sync tracking, implementing `ClusterView`.
//!
//! Filled by the kube watchers in a cluster, or from manifests offline (`serve --objects`,
//! `check`); both go through `apply_object`/`delete_object`, so the rules see the same data
//! either way.

pub mod index;
pub mod layered;
pub mod replica_sets;
pub mod watch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::Deserialize;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::manifest::{Document, ManifestError};
use crate::policy::gateway::HttpRoute;

use crate::policy::objects::{
    DeploymentInfo, GatewayInfo, HttpRouteInfo, IngressClassInfo, IngressInfo, Labels, ObjectKey,
    PodInfo, ReferenceGrantInfo, ReplicaSetInfo, Selector, ServiceInfo, Shared, WorkloadInfo,
    WorkloadKind,
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
    /// gateway.networking.k8s.io Gateway (its listeners).
    Gateway,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// argoproj.io Rollout (Argo Rollouts).
    Rollout,
    /// v1 Pod, only those no kind with a pod template runs (see [`PodInfo::from_pod`]).
    Pod,
    /// apps/v1 ReplicaSet, only those a Deployment controls (see
    /// [`ReplicaSetInfo::from_replica_set`]).
    ReplicaSet,
}

impl StoredKind {
    /// Every kind, in a stable order.
    pub const ALL: [StoredKind; 13] = [
        StoredKind::Deployment,
        StoredKind::Service,
        StoredKind::Ingress,
        StoredKind::IngressClass,
        StoredKind::HttpRoute,
        StoredKind::ReferenceGrant,
        StoredKind::Namespace,
        StoredKind::Gateway,
        StoredKind::StatefulSet,
        StoredKind::DaemonSet,
        StoredKind::Rollout,
        StoredKind::Pod,
        StoredKind::ReplicaSet,
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
            StoredKind::Gateway => "Gateway",
            StoredKind::StatefulSet => "StatefulSet",
            StoredKind::DaemonSet => "DaemonSet",
            StoredKind::Rollout => "Rollout",
            StoredKind::Pod => "Pod",
            StoredKind::ReplicaSet => "ReplicaSet",
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
            ("gateway.networking.k8s.io", "Gateway") => Some(StoredKind::Gateway),
            ("apps", "StatefulSet") => Some(StoredKind::StatefulSet),
            ("apps", "DaemonSet") => Some(StoredKind::DaemonSet),
            ("argoproj.io", "Rollout") => Some(StoredKind::Rollout),
            ("", "Pod") => Some(StoredKind::Pod),
            ("apps", "ReplicaSet") => Some(StoredKind::ReplicaSet),
            _ => None,
        }
    }

    /// The workload kind kept as a `WorkloadInfo`, for StatefulSet, DaemonSet and Rollout.
    pub fn workload(self) -> Option<WorkloadKind> {
        match self {
            StoredKind::StatefulSet => Some(WorkloadKind::StatefulSet),
            StoredKind::DaemonSet => Some(WorkloadKind::DaemonSet),
            StoredKind::Rollout => Some(WorkloadKind::Rollout),
            _ => None,
        }
    }

    /// Whether objects of the kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        !matches!(self, StoredKind::IngressClass | StoredKind::Namespace)
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
    /// The kind is kept, but not this object (a pod whose workload is counted instead).
    #[error("{kind} {name} is not kept: {reason}")]
    NotKept {
        /// Kind.
        kind: &'static str,
        /// Name.
        name: String,
        /// Why.
        reason: &'static str,
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
    /// The API server does not serve the kind (its CRD is not installed): held empty and
    /// counted as synced, so a cluster without Gateway API is not "never ready". The text says
    /// what was tried.
    Absent(String),
}

/// The store: index + sync state.
#[derive(Debug)]
pub struct Store {
    index: RwLock<ClusterIndex>,
    sync: RwLock<BTreeMap<StoredKind, KindSync>>,
    /// Per kind (indexed by its discriminant), how many writes it has seen: the audit keeps a
    /// verdict while every kind its rules read is at the generation it was judged at.
    generations: [AtomicU64; StoredKind::ALL.len()],
}

impl Store {
    /// A store that waits for `kinds` to sync (watchers call `mark_synced`).
    pub fn expecting(kinds: &[StoredKind]) -> Self {
        Self {
            index: RwLock::new(ClusterIndex::default()),
            sync: RwLock::new(kinds.iter().map(|k| (*k, KindSync::Pending)).collect()),
            generations: Default::default(),
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

    /// Starts tracking `kind` as pending, unless it is tracked already.
    pub fn expect(&self, kind: StoredKind) {
        self.sync
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind)
            .or_insert(KindSync::Pending);
    }

    /// Marks a kind as not served by the API server (CRD absent): empty and synced.
    pub fn mark_absent(&self, kind: StoredKind, reason: String) {
        self.sync
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind, KindSync::Absent(reason));
    }

    /// Sync state per kind (only kinds this store waits for).
    pub fn kind_sync(&self) -> BTreeMap<StoredKind, KindSync> {
        self.sync.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many writes objects of `kind` have seen (stores, deletions, relists). Moves forward
    /// with every write, changed or not; equal generations mean nothing of the kind changed.
    pub fn generation(&self, kind: StoredKind) -> u64 {
        self.generations[kind as usize].load(Ordering::Acquire)
    }

    /// Runs `f` with the index locked for writing a `kind`. The generation moves while the lock
    /// is held, so a reader that sees the new contents also sees the new generation.
    fn write<R>(&self, kind: StoredKind, f: impl FnOnce(&mut ClusterIndex) -> R) -> R {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        let result = f(&mut index);
        self.generations[kind as usize].fetch_add(1, Ordering::AcqRel);
        result
    }

    fn read<R>(&self, f: impl FnOnce(&ClusterIndex) -> R) -> R {
        f(&self.index.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Stores one object given as JSON (a manifest document or a watch event's object).
    pub fn apply_object(&self, object: &Value) -> Result<StoredKind, StoreError> {
        let stored = StoredObject::from_value(object)?;
        let kind = stored.kind();
        self.apply(stored);
        Ok(kind)
    }

    /// Removes one object given as JSON (only its apiVersion, kind and metadata are read).
    pub fn delete_object(&self, object: &Value) -> Result<StoredKind, StoreError> {
        let kind = kind_of(object)?;
        let (namespace, name) = namespace_and_name(object, kind);
        self.delete(kind, &ObjectKey::new(namespace, name));
        Ok(kind)
    }

    /// Stores one parsed object.
    pub fn apply(&self, object: StoredObject) {
        self.write(object.kind(), |i| i.apply(object));
    }

    /// Removes one object of `kind` (cluster-scoped kinds by `key.name`).
    pub fn delete(&self, kind: StoredKind, key: &ObjectKey) {
        self.write(kind, |i| i.delete(kind, key));
    }

    /// Removes an object the store does not keep (any more): a watch event for a pod a
    /// ReplicaSet now controls. Most such events are for pods never stored, so the write lock
    /// is only taken when there is something to remove.
    pub fn forget(&self, kind: StoredKind, key: &ObjectKey) {
        if kind == StoredKind::Pod && !self.read(|i| i.holds_pod(key)) {
            return;
        }
        self.delete(kind, key);
    }

    /// Replaces everything of `kind` with `objects`, atomically for readers: the new contents
    /// are indexed before the lock is taken, so a relist of 10k objects does not stall reviews.
    pub fn replace_kind(&self, kind: StoredKind, objects: Vec<StoredObject>) {
        let mut fresh = ClusterIndex::default();
        fresh.replace_kind(kind, objects);
        self.write(kind, |i| i.adopt_kind(kind, fresh));
    }

    /// An offline store filled from manifest documents (the manifests are the whole cluster, so
    /// it is synced as soon as it is built). Kinds the store does not keep are skipped silently;
    /// objects of a kept kind that do not parse, and objects defined twice, come back as
    /// warnings with `file:line`.
    pub fn from_documents(documents: &[Document]) -> (Store, Vec<String>) {
        let mut loading = OfflineLoad::default();
        loading.apply(documents);
        (loading.store, loading.warnings)
    }

    /// [`Store::from_documents`], also returning the kind and key of every object stored: what a
    /// [`layered::LayeredView`] needs to hide the objects of the view underneath that these
    /// documents replace.
    pub fn from_documents_with_keys(
        documents: &[Document],
    ) -> (Store, HashSet<(StoredKind, ObjectKey)>, Vec<String>) {
        let mut loading = OfflineLoad::default();
        loading.apply(documents);
        let keys = loading.seen.into_keys().collect();
        (loading.store, keys, loading.warnings)
    }
}

/// An offline store being filled, batch by batch, remembering where each object was defined so
/// duplicates across batches are reported too.
#[derive(Debug)]
struct OfflineLoad {
    store: Store,
    warnings: Vec<String>,
    /// Where each object was first defined: an index into `files` and a line. Not a
    /// `file:line` string per object: with 100k objects those strings were megabytes, freed
    /// after the load in between the store's own allocations, so they stayed in the RSS.
    seen: HashMap<(StoredKind, ObjectKey), (usize, usize)>,
    files: Vec<PathBuf>,
}

impl Default for OfflineLoad {
    fn default() -> Self {
        Self {
            store: Store::offline(),
            warnings: Vec::new(),
            seen: HashMap::new(),
            files: Vec::new(),
        }
    }
}

impl OfflineLoad {
    fn apply(&mut self, documents: &[Document]) {
        let parsed = self.parse(documents);
        self.insert(parsed);
    }

    /// Each document as the slim object the store keeps, with where it was defined.
    fn parse(&mut self, documents: &[Document]) -> Vec<(StoredObject, (usize, usize))> {
        let mut parsed = Vec::new();
        for document in documents {
            if self.files.last() != Some(&document.file) {
                self.files.push(document.file.clone());
            }
            let at = (self.files.len() - 1, document.line);
            match StoredObject::from_value(&document.value) {
                Ok(stored) => parsed.push((stored, at)),
                Err(StoreError::UnknownKind(_) | StoreError::NotKept { .. }) => {}
                Err(error) => self
                    .warnings
                    .push(format!("{}: {error}", document.location())),
            }
        }
        parsed
    }

    fn location(&self, (file, line): (usize, usize)) -> String {
        match self.files.get(file) {
            Some(path) => format!("{}:{line}", path.display()),
            None => format!("line {line}"),
        }
    }

    fn insert(&mut self, parsed: Vec<(StoredObject, (usize, usize))>) {
        for (stored, at) in parsed {
            let id = (stored.kind(), stored.key());
            if let Some(first) = self.seen.insert(id.clone(), at) {
                self.warnings.push(format!(
                    "{}: {} {} is also defined at {}; the later definition is used",
                    self.location(at),
                    id.0.as_str(),
                    display_key(id.0, &id.1),
                    self.location(first),
                ));
            }
            self.store.apply(stored);
        }
    }
}

/// Reads manifests (files or directories) into an offline store: `serve --objects` and `check`.
/// `Err` when a path cannot be read or a document is not YAML/JSON; objects that parse as YAML
/// but not as their kind are returned as warnings (see [`Store::from_documents`]).
pub fn offline_from_paths(paths: &[PathBuf]) -> Result<(Store, Vec<String>), ManifestError> {
    // File by file: only one file's parsed documents are alive at a time, so loading 100k
    // objects does not first hold all of them as JSON values (gigabytes, kept by the allocator
    // long after), only the slim entries the store keeps.
    let mut loading = OfflineLoad::default();
    for file in crate::manifest::files(paths)? {
        let documents = crate::manifest::read_paths(std::slice::from_ref(&file))?;
        let parsed = loading.parse(&documents);
        drop(documents);
        loading.insert(parsed);
    }
    release_freed_heap();
    Ok((loading.store, loading.warnings))
}

/// Gives the pages a bulk load freed back to the kernel. Loading (manifests, or a relist of
/// thousands of objects) parses each batch into large JSON values that are freed in between the
/// store's small allocations. The allocators keep those pages mapped and counted in the RSS until
/// told otherwise: mimalloc (the binary's allocator) purges freed pages only when later
/// allocations come by, which an idle webhook never makes (about 10 MiB for the bench's 40k
/// store); glibc's malloc (tests, tools) keeps them until trimmed. Called after a load, never
/// per request.
pub(crate) fn release_freed_heap() {
    // SAFETY: mi_collect takes a plain flag and only walks mimalloc's own heap and arenas; it is
    // thread-safe. Where mimalloc is not the global allocator it has nothing to collect.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a plain integer, touches only the allocator's own free lists and
    // is thread-safe (it locks each arena it trims).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Where `serve`'s cluster state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreSource {
    /// Manifests given with `--objects` (no cluster contacted).
    Objects,
    /// Watchers on the cluster's API server.
    Cluster,
    /// No `--objects` and no Kubernetes API configuration found: an empty, synced store, so
    /// `serve --dev` starts on a laptop without a cluster.
    NoCluster,
}

/// The store `serve` runs with.
#[derive(Debug)]
pub struct ServeStore {
    /// The store (hand it to the server as `Arc<dyn ClusterView>`; `/metrics` reads
    /// [`Store::kind_sync`] and [`ClusterView::counts`]).
    pub store: Arc<Store>,
    /// Watch tasks (empty unless `source` is `Cluster`); abort them on shutdown.
    pub watchers: Vec<JoinHandle<()>>,
    /// Where the state comes from.
    pub source: StoreSource,
    /// Things to log at start-up (unreadable objects, running without a cluster).
    pub warnings: Vec<String>,
}

/// The store for `serve`: from `objects` when any are given, else from the cluster, else empty.
/// `Err` only when `--objects` manifests cannot be read. Must run inside a tokio runtime.
pub async fn for_serve(objects: &[PathBuf]) -> Result<ServeStore, ManifestError> {
    if objects.is_empty() {
        return Ok(live().await);
    }
    let (store, warnings) = offline_from_paths(objects)?;
    Ok(ServeStore {
        store: Arc::new(store),
        watchers: Vec::new(),
        source: StoreSource::Objects,
        warnings,
    })
}

/// Watches the cluster found by `kube::Client::try_default()` (in-cluster service account, else
/// kubeconfig). Without one the store is empty and synced, with a warning: cross-object rules
/// then see no other objects. Must run inside a tokio runtime.
pub async fn live() -> ServeStore {
    live_with(kube::Client::try_default().await.map_err(|e| e.to_string()))
}

/// [`live`] with the client (or why there is none) given.
pub fn live_with(client: Result<kube::Client, String>) -> ServeStore {
    match client {
        Ok(client) => {
            let store = Arc::new(Store::expecting(&StoredKind::ALL));
            let watchers = watch::spawn_watchers(client, store.clone());
            ServeStore {
                store,
                watchers,
                source: StoreSource::Cluster,
                warnings: Vec::new(),
            }
        }
        Err(reason) => ServeStore {
            store: Arc::new(Store::offline()),
            watchers: Vec::new(),
            source: StoreSource::NoCluster,
            warnings: vec![format!(
                "no Kubernetes API configuration found ({reason}); cross-object rules see an \
                 empty cluster. Pass --objects PATH to give them state"
            )],
        },
    }
}

fn display_key(kind: StoredKind, key: &ObjectKey) -> String {
    if kind.is_namespaced() {
        key.to_string()
    } else {
        key.name.to_string()
    }
}

fn kind_of(object: &Value) -> Result<StoredKind, StoreError> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind_name = object["kind"].as_str().unwrap_or_default();
    StoredKind::of(api_version, kind_name)
        .ok_or_else(|| StoreError::UnknownKind(format!("{api_version} {kind_name}")))
}

/// Namespace (empty for cluster-scoped kinds; `default` when a namespaced manifest names none,
/// as `kubectl apply` would place it) and name of an object.
fn namespace_and_name(object: &Value, kind: StoredKind) -> (&str, &str) {
    let metadata = &object["metadata"];
    let namespace = if kind.is_namespaced() {
        metadata["namespace"].as_str().unwrap_or("default")
    } else {
        ""
    };
    (namespace, metadata["name"].as_str().unwrap_or_default())
}

/// One object as the store keeps it: the slice its kind's rules read, nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredObject {
    /// A Deployment.
    Deployment(DeploymentInfo),
    /// A Service.
    Service(ServiceInfo),
    /// An Ingress.
    Ingress(IngressInfo),
    /// An IngressClass.
    IngressClass(IngressClassInfo),
    /// An HTTPRoute.
    HttpRoute(HttpRouteInfo),
    /// A ReferenceGrant.
    ReferenceGrant(ReferenceGrantInfo),
    /// A Gateway.
    Gateway(GatewayInfo),
    /// A Namespace: only its labels and whether it is being deleted are read.
    Namespace {
        /// Name.
        name: String,
        /// `metadata.labels`.
        labels: Labels,
        /// `metadata.deletionTimestamp` is set or `status.phase` is `Terminating`: the namespace
        /// controller is deleting everything in it, so no DELETE there may be blocked.
        terminating: bool,
    },
    /// A StatefulSet, DaemonSet or Argo Rollout.
    Workload(WorkloadInfo),
    /// A pod no kind with a pod template runs.
    Pod(PodInfo),
    /// A ReplicaSet a Deployment controls.
    ReplicaSet(ReplicaSetInfo),
}

impl StoredObject {
    /// Parses an object given as JSON with the kind's one parser (see `policy::objects`).
    pub fn from_value(object: &Value) -> Result<Self, StoreError> {
        let kind = kind_of(object)?;
        let (namespace, name) = namespace_and_name(object, kind);
        let invalid = |source| StoreError::Invalid {
            kind: kind.as_str(),
            name: name.to_owned(),
            source,
        };
        // Typed parsing borrows nothing from `object`, so the k8s-openapi structs are built from
        // a deserializer over the value without cloning the whole document first.
        Ok(match kind {
            StoredKind::Deployment => {
                let typed = Deployment::deserialize(object).map_err(invalid)?;
                StoredObject::Deployment(DeploymentInfo::from_deployment(&typed, namespace))
            }
            StoredKind::Service => {
                let typed = Service::deserialize(object).map_err(invalid)?;
                StoredObject::Service(ServiceInfo::from_service(&typed, namespace))
            }
            StoredKind::Ingress => {
                let typed = Ingress::deserialize(object).map_err(invalid)?;
                StoredObject::Ingress(IngressInfo::from_ingress(&typed, namespace))
            }
            StoredKind::IngressClass => {
                let typed = IngressClass::deserialize(object).map_err(invalid)?;
                StoredObject::IngressClass(IngressClassInfo::from_ingress_class(&typed))
            }
            StoredKind::HttpRoute => {
                let typed = HttpRoute::deserialize(object).map_err(invalid)?;
                StoredObject::HttpRoute(HttpRouteInfo::from_route(&typed, namespace))
            }
            StoredKind::ReferenceGrant => {
                StoredObject::ReferenceGrant(ReferenceGrantInfo::from_value(object, namespace))
            }
            StoredKind::Gateway => {
                StoredObject::Gateway(GatewayInfo::from_value(object, namespace))
            }
            StoredKind::Namespace => StoredObject::Namespace {
                name: name.to_owned(),
                labels: object["metadata"]["labels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect(),
                terminating: !object["metadata"]["deletionTimestamp"].is_null()
                    || object["status"]["phase"] == "Terminating",
            },
            StoredKind::StatefulSet => {
                let typed = StatefulSet::deserialize(object).map_err(invalid)?;
                StoredObject::Workload(WorkloadInfo::from_stateful_set(&typed, namespace))
            }
            StoredKind::DaemonSet => {
                let typed = DaemonSet::deserialize(object).map_err(invalid)?;
                StoredObject::Workload(WorkloadInfo::from_daemon_set(&typed, namespace))
            }
            StoredKind::Rollout => {
                StoredObject::Workload(WorkloadInfo::from_rollout(object, namespace))
            }
            StoredKind::Pod => {
                let typed = Pod::deserialize(object).map_err(invalid)?;
                match PodInfo::from_pod(&typed, namespace) {
                    Some(info) => StoredObject::Pod(info),
                    None => {
                        return Err(StoreError::NotKept {
                            kind: kind.as_str(),
                            name: name.to_owned(),
                            reason: "its controller's pod template is counted instead",
                        })
                    }
                }
            }
            StoredKind::ReplicaSet => {
                let typed = ReplicaSet::deserialize(object).map_err(invalid)?;
                match ReplicaSetInfo::from_replica_set(&typed, namespace) {
                    Some(info) => StoredObject::ReplicaSet(info),
                    None => {
                        return Err(StoreError::NotKept {
                            kind: kind.as_str(),
                            name: name.to_owned(),
                            reason: "no Deployment controls it",
                        })
                    }
                }
            }
        })
    }

    /// The kind.
    pub fn kind(&self) -> StoredKind {
        match self {
            StoredObject::Deployment(_) => StoredKind::Deployment,
            StoredObject::Service(_) => StoredKind::Service,
            StoredObject::Ingress(_) => StoredKind::Ingress,
            StoredObject::IngressClass(_) => StoredKind::IngressClass,
            StoredObject::HttpRoute(_) => StoredKind::HttpRoute,
            StoredObject::ReferenceGrant(_) => StoredKind::ReferenceGrant,
            StoredObject::Gateway(_) => StoredKind::Gateway,
            StoredObject::Namespace { .. } => StoredKind::Namespace,
            StoredObject::Workload(info) => match info.kind {
                WorkloadKind::StatefulSet => StoredKind::StatefulSet,
                WorkloadKind::DaemonSet => StoredKind::DaemonSet,
                WorkloadKind::Rollout => StoredKind::Rollout,
            },
            StoredObject::Pod(_) => StoredKind::Pod,
            StoredObject::ReplicaSet(_) => StoredKind::ReplicaSet,
        }
    }

    /// Namespace and name; the namespace is empty for cluster-scoped kinds.
    pub fn key(&self) -> ObjectKey {
        match self {
            StoredObject::Deployment(info) => info.key.clone(),
            StoredObject::Service(info) => info.key.clone(),
            StoredObject::Ingress(info) => info.key.clone(),
            StoredObject::IngressClass(info) => ObjectKey::new("", info.name.clone()),
            StoredObject::HttpRoute(info) => info.key.clone(),
            StoredObject::ReferenceGrant(info) => info.key.clone(),
            StoredObject::Gateway(info) => info.key.clone(),
            StoredObject::Namespace { name, .. } => ObjectKey::new("", name.clone()),
            StoredObject::Workload(info) => info.key.clone(),
            StoredObject::Pod(info) => info.key.clone(),
            StoredObject::ReplicaSet(info) => info.key.clone(),
        }
    }
}

impl Store {
    /// The sync status of the tracked kinds for which `include` is true.
    fn sync_status_where(&self, include: impl Fn(StoredKind) -> bool) -> SyncStatus {
        let sync = self.sync.read().unwrap_or_else(|p| p.into_inner());
        let waiting: Vec<String> = sync
            .iter()
            .filter(|(kind, _)| include(**kind))
            .filter_map(|(kind, state)| match state {
                KindSync::Synced | KindSync::Absent(_) => None,
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
}

impl ClusterView for Store {
    fn sync_status(&self) -> SyncStatus {
        self.sync_status_where(|_| true)
    }

    fn sync_status_for(&self, kinds: &[&str]) -> SyncStatus {
        self.sync_status_where(|kind| kinds.contains(&kind.as_str()))
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

    fn http_routes_sharing(&self, parent: &str, hostname: &str) -> Vec<Shared<HttpRouteInfo>> {
        self.read(|i| i.http_routes_sharing(parent, hostname))
    }

    fn reference_grants(&self, namespace: &str) -> Vec<Shared<ReferenceGrantInfo>> {
        self.read(|i| i.reference_grants(namespace))
    }

    fn gateway(&self, namespace: &str, name: &str) -> Option<Shared<GatewayInfo>> {
        self.read(|i| i.gateway(namespace, name))
    }

    fn namespace_labels(&self, namespace: &str) -> Option<Labels> {
        self.read(|i| i.namespace_labels(namespace))
    }

    fn workloads_running(&self, namespace: &str, selector: &Labels) -> Vec<Shared<WorkloadInfo>> {
        self.read(|i| i.workloads_running(namespace, selector))
    }

    fn rollouts_with_template_of(
        &self,
        namespace: &str,
        deployment: &str,
    ) -> Vec<Shared<WorkloadInfo>> {
        self.read(|i| i.rollouts_with_template_of(namespace, deployment))
    }

    fn pods_matching(&self, namespace: &str, selector: &Labels) -> Vec<Shared<PodInfo>> {
        self.read(|i| i.pods_matching(namespace, selector))
    }

    fn previous_service_selector(&self, namespace: &str, name: &str) -> Option<Labels> {
        self.read(|i| i.previous_service_selector(namespace, name))
    }

    fn namespace_terminating(&self, namespace: &str) -> bool {
        self.read(|i| i.namespace_terminating(namespace))
    }

    fn replica_sets_of(&self, namespace: &str, deployment: &str) -> Vec<Shared<ReplicaSetInfo>> {
        self.read(|i| i.replica_sets_of(namespace, deployment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::objects::RouteParent;
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
        assert_eq!(&*found[0].key.name, "web-v2");
        // Which Deployments would adopt pods labelled app=web,version=v1?
        let adopters =
            store.deployments_selecting("shop", &labels(&[("app", "web"), ("version", "v1")]));
        assert_eq!(
            adopters.iter().map(|d| &*d.key.name).collect::<Vec<_>>(),
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

    #[test]
    fn from_documents_skips_unknown_kinds_and_reports_invalid_objects_with_location() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n---\n\
apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n\
spec: {replicas: many, selector: {matchLabels: {app: web}}, template: {spec: {containers: []}}}\n---\n\
apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {selector: {app: web}}\n---\n\
apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {selector: {app: web2}}\n";
        let documents = crate::manifest::parse_text(std::path::Path::new("m.yaml"), text).unwrap();
        let (store, warnings) = Store::from_documents(&documents);
        assert_eq!(store.sync_status(), SyncStatus::Synced);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("m.yaml:5: Deployment web:"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[1].contains("m.yaml:15: Service shop/web is also defined at m.yaml:10"),
            "{}",
            warnings[1]
        );
        assert!(store.deployment("shop", "web").is_none());
        assert_eq!(
            store.service("shop", "web").unwrap().selector,
            labels(&[("app", "web2")])
        );
    }

    /// Files are loaded one at a time (bench/: holding every parsed document of 40k objects
    /// first took 1.3 GiB); duplicates across files are still reported with both locations.
    #[test]
    fn offline_from_paths_reads_file_by_file_and_reports_duplicates_across_files() {
        let dir = std::env::temp_dir().join(format!("rg-offline-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let service = |name: &str| {
            format!("apiVersion: v1\nkind: Service\nmetadata: {{namespace: shop, name: {name}}}\nspec: {{selector: {{app: {name}}}}}\n")
        };
        std::fs::write(
            dir.join("a.yaml"),
            service("web") + "---\n" + &service("api"),
        )
        .unwrap();
        std::fs::write(dir.join("b.yaml"), service("web")).unwrap();
        let (store, warnings) = offline_from_paths(std::slice::from_ref(&dir)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(store.counts().services, 2);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("b.yaml:1") && warnings[0].contains("a.yaml:1"),
            "{warnings:?}"
        );
    }

    #[test]
    fn offline_from_paths_reports_unreadable_paths() {
        let missing = std::path::PathBuf::from("/nonexistent/rollout-guard/objects.yaml");
        assert!(offline_from_paths(&[missing]).is_err());
    }

    #[test]
    fn replace_kind_drops_objects_missing_from_the_relist_and_leaves_other_kinds() {
        let store = Store::offline();
        for name in ["a", "b"] {
            store
                .apply_object(&deployment(
                    "shop",
                    name,
                    json!({"matchLabels": {"app": name}}),
                    json!({"app": name}),
                ))
                .unwrap();
        }
        store
            .apply_object(&json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": "shop", "name": "a"}, "spec": {"selector": {"app": "a"}}}))
            .unwrap();
        let relisted = StoredObject::from_value(&deployment(
            "shop",
            "b",
            json!({"matchLabels": {"app": "b"}}),
            json!({"app": "b", "track": "new"}),
        ))
        .unwrap();
        store.replace_kind(StoredKind::Deployment, vec![relisted]);
        assert!(store.deployment("shop", "a").is_none());
        assert_eq!(
            store
                .deployments_selecting("shop", &labels(&[("app", "a")]))
                .len(),
            0,
            "selector postings of dropped objects must go too"
        );
        let track = Selector::from_labels(&labels(&[("track", "new")]));
        assert_eq!(store.deployments_matching("shop", &track).len(), 1);
        assert!(store.service("shop", "a").is_some());
        store.replace_kind(StoredKind::Service, Vec::new());
        assert_eq!(store.counts().services, 0);
        assert_eq!(store.counts().deployments, 1);
    }

    #[test]
    fn cluster_scoped_kinds_are_deleted_by_name() {
        let store = Store::offline();
        let class = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}});
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop", "labels": {"team": "a"}}});
        store.apply_object(&class).unwrap();
        store.apply_object(&namespace).unwrap();
        assert!(store.ingress_class("nginx").is_some());
        store.delete_object(&class).unwrap();
        store.delete_object(&namespace).unwrap();
        assert!(store.ingress_class("nginx").is_none());
        assert!(store.namespace_labels("shop").is_none());
    }

    #[test]
    fn absent_kinds_count_as_synced() {
        let store = Store::expecting(&[StoredKind::HttpRoute, StoredKind::Service]);
        store.mark_absent(StoredKind::HttpRoute, "404".into());
        assert!(
            matches!(store.sync_status(), SyncStatus::NotSynced(r) if r.contains("Service not listed yet"))
        );
        store.mark_synced(StoredKind::Service);
        assert_eq!(store.sync_status(), SyncStatus::Synced);
    }

    #[test]
    fn without_a_cluster_serve_gets_an_empty_synced_store_and_a_warning() {
        let started = live_with(Err("no kubeconfig".into()));
        assert_eq!(started.source, StoreSource::NoCluster);
        assert!(started.watchers.is_empty());
        assert_eq!(started.store.sync_status(), SyncStatus::Synced);
        assert!(started.warnings[0].contains("no kubeconfig"));
    }

    /// 10k objects of each kind: every lookup still answers exactly (no timing asserted; this
    /// guards the postings at scale, e.g. a label pair shared by every object).
    #[test]
    fn ten_thousand_objects_per_kind_answer_lookups_correctly() {
        const N: usize = 10_000;
        let mut index = ClusterIndex::default();
        for i in 0..N {
            let namespace = format!("ns-{}", i % 100);
            let app = format!("app-{i}");
            index.apply(StoredObject::Deployment(DeploymentInfo {
                key: ObjectKey::new(namespace.clone(), app.clone()),
                selector: Selector::from_labels(&labels(&[("app", &app)])),
                template_labels: labels(&[("app", &app), ("tier", "web")]),
                replicas: 1,
                generation: Some(1),
                observed_generation: Some(1),
                status_replicas: 1,
                updated_replicas: 1,
                available_replicas: 1,
            }));
            index.apply(StoredObject::Service(ServiceInfo {
                key: ObjectKey::new(namespace.clone(), app.clone()),
                selector: labels(&[("app", &app)]),
                ports: Box::default(),
                service_type: "ClusterIP".into(),
            }));
            index.apply(StoredObject::Ingress(IngressInfo {
                key: ObjectKey::new(namespace.clone(), app.clone()),
                created: None,
                class: Some("nginx".into()),
                nginx_annotations: Labels::new(),
                paths: vec![crate::policy::objects::IngressPathInfo {
                    host: format!("{app}.example.com").into(),
                    path: "/".into(),
                    path_type: "Prefix".into(),
                    backend: Some(crate::policy::objects::IngressBackendInfo {
                        service: app.as_str().into(),
                        port: None,
                    }),
                }]
                .into(),
                default_backend: None,
                release: None,
            }));
            index.apply(StoredObject::HttpRoute(HttpRouteInfo {
                key: ObjectKey::new(namespace.clone(), app.clone()),
                created: None,
                parents: vec![RouteParent {
                    parent: "gateway.networking.k8s.io/Gateway/gateways/public".into(),
                    section: None,
                    port: None,
                    rejected: false,
                }]
                .into(),
                hostnames: vec![format!("{app}.example.com")].into(),
                matches: vec![crate::policy::objects::RouteMatch {
                    requests: 1,
                    action: i as u64,
                }]
                .into(),
            }));
            index.apply(StoredObject::Gateway(GatewayInfo {
                key: ObjectKey::new(namespace.clone(), app.clone()),
                listeners: Box::default(),
            }));
            index.apply(StoredObject::ReferenceGrant(ReferenceGrantInfo {
                key: ObjectKey::new(namespace.clone(), app.clone()),
                from: Vec::new(),
                to: Vec::new(),
            }));
            index.apply(StoredObject::IngressClass(IngressClassInfo {
                name: format!("class-{i}"),
                controller: "k8s.io/ingress-nginx".into(),
                is_default: i == 7,
            }));
            index.apply(StoredObject::Namespace {
                name: format!("namespace-{i}"),
                labels: labels(&[("n", &i.to_string())]),
                terminating: false,
            });
        }
        let counts = index.counts();
        assert_eq!(
            counts,
            ObjectCounts {
                deployments: N,
                services: N,
                ingresses: N,
                ingress_classes: N,
                http_routes: N,
                reference_grants: N,
                namespaces: N,
                gateways: N,
                ..ObjectCounts::default()
            }
        );
        let one = Selector::from_labels(&labels(&[("app", "app-4242")]));
        let found = index.deployments_matching("ns-42", &one);
        assert_eq!(found.len(), 1);
        assert_eq!(&*found[0].key.name, "app-4242");
        assert!(index.deployments_matching("ns-43", &one).is_empty());
        // A pair every Deployment of the namespace carries.
        let tier = Selector::from_labels(&labels(&[("tier", "web")]));
        assert_eq!(index.deployments_matching("ns-42", &tier).len(), N / 100);
        let pod = labels(&[("app", "app-4242"), ("tier", "web")]);
        assert_eq!(index.deployments_selecting("ns-42", &pod).len(), 1);
        assert_eq!(index.services_selecting("ns-42", &pod).len(), 1);
        assert_eq!(index.ingresses_at("app-9999.example.com", "/").len(), 1);
        assert_eq!(index.ingresses_with_backend("ns-99", "app-9999").len(), 1);
        assert_eq!(index.reference_grants("ns-0").len(), N / 100);
        assert!(index.gateway("ns-42", "app-4242").is_some());
        assert!(index.gateway("ns-43", "app-4242").is_none());
        assert_eq!(
            index
                .http_routes_sharing(
                    "gateway.networking.k8s.io/Gateway/gateways/public",
                    "app-4242.example.com"
                )
                .len(),
            1
        );
        assert_eq!(index.default_ingress_classes().len(), 1);
        assert_eq!(
            index.namespace_labels("namespace-9999"),
            Some(labels(&[("n", "9999")]))
        );
        // Deleting half of a kind keeps the postings exact.
        for i in (0..N).step_by(2) {
            index.delete(
                StoredKind::Deployment,
                &ObjectKey::new(format!("ns-{}", i % 100), format!("app-{i}")),
            );
        }
        assert_eq!(index.counts().deployments, N / 2);
        assert_eq!(index.deployments_matching("ns-42", &tier).len(), 0);
        assert_eq!(index.deployments_matching("ns-43", &tier).len(), N / 100);
    }

    /// StatefulSets, DaemonSets and Rollouts are found by the labels their pods get (controller
    /// labels included), bare pods by their own labels; pods a templated kind runs are not kept.
    #[test]
    fn workloads_and_pods_are_found_by_the_labels_their_pods_carry() {
        let store = Store::offline();
        store
            .apply_object(&json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"namespace": "shop", "name": "db"},
                "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db", "version": "v1"}}, "spec": {"containers": []}}},
                "status": {"replicas": 3, "availableReplicas": 3}}))
            .unwrap();
        store
            .apply_object(&json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"namespace": "shop", "name": "agent"},
                "spec": {"selector": {"matchLabels": {"app": "agent"}},
                    "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": []}}}}))
            .unwrap();
        store
            .apply_object(&json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"namespace": "shop", "name": "web"},
                "spec": {"replicas": 2, "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}}))
            .unwrap();
        store
            .apply_object(&json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"namespace": "shop", "name": "debug", "labels": {"app": "debug"}},
                "spec": {"containers": []}}))
            .unwrap();
        let adopted = store.apply_object(&json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "shop", "name": "web-1", "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
                    "uid": "u", "controller": true}]},
            "spec": {"containers": []}}));
        assert!(
            matches!(adopted, Err(StoreError::NotKept { .. })),
            "{adopted:?}"
        );

        let counts = store.counts();
        assert_eq!(
            (
                counts.stateful_sets,
                counts.daemon_sets,
                counts.rollouts,
                counts.pods
            ),
            (1, 1, 1, 1)
        );
        let names = |found: Vec<Shared<WorkloadInfo>>| -> Vec<String> {
            found
                .iter()
                .map(|w| format!("{}/{}", w.kind.as_str(), w.key.name))
                .collect()
        };
        assert_eq!(
            names(store.workloads_running("shop", &labels(&[("app", "db")]))),
            ["StatefulSet/db"]
        );
        assert_eq!(
            names(store.workloads_running(
                "shop",
                &labels(&[("statefulset.kubernetes.io/pod-name", "db-1")])
            )),
            ["StatefulSet/db"],
            "a per-pod Service"
        );
        assert!(store
            .workloads_running("shop", &labels(&[("app", "db"), ("version", "v2")]))
            .is_empty());
        assert!(store
            .workloads_running("other", &labels(&[("app", "db")]))
            .is_empty());
        assert_eq!(
            names(store.workloads_running("shop", &labels(&[("app", "agent")]))),
            ["DaemonSet/agent"]
        );
        assert_eq!(
            names(store.rollouts_with_template_of("shop", "web")),
            ["Rollout/web"]
        );
        assert!(store.rollouts_with_template_of("shop", "api").is_empty());
        assert_eq!(
            store
                .pods_matching("shop", &labels(&[("app", "debug")]))
                .len(),
            1
        );
        assert!(store
            .pods_matching("shop", &labels(&[("app", "web")]))
            .is_empty());

        store
            .delete_object(
                &json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"namespace": "shop", "name": "web"}}),
            )
            .unwrap();
        assert!(store.rollouts_with_template_of("shop", "web").is_empty());
        store.forget(StoredKind::Pod, &ObjectKey::new("shop", "debug"));
        assert_eq!(store.counts().pods, 0);
    }

    /// A Service's selector before its last change is remembered, also across a relist that
    /// does not change it (a broken watch must not lose the rollback target).
    #[test]
    fn the_previous_selector_of_a_service_survives_a_relist() {
        let store = Store::offline();
        let service = |version: &str| {
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": "shop", "name": "web"},
                "spec": {"selector": {"app": "web", "version": version}}})
        };
        store.apply_object(&service("v1")).unwrap();
        assert_eq!(store.previous_service_selector("shop", "web"), None);
        store.apply_object(&service("v1")).unwrap();
        assert_eq!(
            store.previous_service_selector("shop", "web"),
            None,
            "unchanged"
        );
        store.apply_object(&service("v2")).unwrap();
        let v1 = labels(&[("app", "web"), ("version", "v1")]);
        assert_eq!(
            store.previous_service_selector("shop", "web"),
            Some(v1.clone())
        );
        let relisted = || vec![StoredObject::from_value(&service("v2")).unwrap()];
        store.replace_kind(StoredKind::Service, relisted());
        assert_eq!(store.previous_service_selector("shop", "web"), Some(v1));
        // A relist that shows a change made while disconnected remembers what was stored.
        store.replace_kind(
            StoredKind::Service,
            vec![StoredObject::from_value(&service("v3")).unwrap()],
        );
        assert_eq!(
            store.previous_service_selector("shop", "web"),
            Some(labels(&[("app", "web"), ("version", "v2")]))
        );
        store.delete_object(&service("v3")).unwrap();
        assert_eq!(store.previous_service_selector("shop", "web"), None);
    }

    #[test]
    fn sync_status_for_looks_only_at_the_kinds_asked_about() {
        let store = Store::expecting(&[StoredKind::Deployment, StoredKind::HttpRoute]);
        store.mark_synced(StoredKind::Deployment);
        store.mark_broken(StoredKind::HttpRoute, "403 Forbidden".into());
        assert_eq!(
            store.sync_status_for(&["Deployment", "Service"]),
            SyncStatus::Synced
        );
        assert!(matches!(
            store.sync_status_for(&["HTTPRoute"]),
            SyncStatus::NotSynced(reason) if reason.contains("HTTPRoute watch broken: 403")
        ));
        assert!(matches!(store.sync_status(), SyncStatus::NotSynced(_)));
    }
}
