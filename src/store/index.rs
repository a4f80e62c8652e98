//! The in-memory cluster index: one map per kind plus the derived lookups rules make, kept in
//! step by one `apply`/`delete` per kind. Pure data structure: no IO, no locking (the `Store`
//! wraps it), so it is tested by feeding objects directly.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::policy::objects::{
    DeploymentInfo, GatewayInfo, HttpRouteInfo, IngressClassInfo, IngressInfo, Labels, ObjectKey,
    PodInfo, ReferenceGrantInfo, ReplicaSetInfo, Selector, ServiceInfo, Shared, WorkloadInfo,
    WorkloadKind,
};
use crate::store::replica_sets::ReplicaSetIndex;
use crate::store::{StoredKind, StoredObject};

/// Most objects a posting keeps in a sorted vector before it becomes a B-tree. Most postings
/// hold one object (a version label, an app name, a host and path), and a B-tree node costs
/// about half a kilobyte however few keys it holds: with one B-tree per posting the index was
/// most of the store's memory.
const FEW_POSTINGS: usize = 16;

/// The objects carrying one index key, in key order.
#[derive(Debug)]
enum PostingSet {
    /// The common case (one host + path, one app's version label): kept inline, no allocation.
    One(ObjectKey),
    /// Sorted, at most `FEW_POSTINGS`.
    Few(Vec<ObjectKey>),
    /// Large postings (every object of a namespace, a label on thousands of Deployments).
    Many(BTreeSet<ObjectKey>),
}

impl PostingSet {
    fn insert(&mut self, object: &ObjectKey) {
        match self {
            PostingSet::One(only) if only == object => {}
            PostingSet::One(only) => {
                let mut items = vec![only.clone(), object.clone()];
                items.sort();
                *self = PostingSet::Few(items);
            }
            PostingSet::Few(items) => match items.binary_search(object) {
                Ok(_) => {}
                Err(at) if items.len() < FEW_POSTINGS => items.insert(at, object.clone()),
                Err(_) => {
                    let mut set: BTreeSet<ObjectKey> = std::mem::take(items).into_iter().collect();
                    set.insert(object.clone());
                    *self = PostingSet::Many(set);
                }
            },
            PostingSet::Many(set) => {
                set.insert(object.clone());
            }
        }
    }

    fn remove(&mut self, object: &ObjectKey) {
        match self {
            PostingSet::One(only) if only == object => *self = PostingSet::Few(Vec::new()),
            PostingSet::One(_) => {}
            PostingSet::Few(items) => {
                if let Ok(at) = items.binary_search(object) {
                    items.remove(at);
                }
            }
            PostingSet::Many(set) => {
                set.remove(object);
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            PostingSet::One(_) => 1,
            PostingSet::Few(items) => items.len(),
            PostingSet::Many(set) => set.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn iter(&self) -> Box<dyn Iterator<Item = &ObjectKey> + '_> {
        match self {
            PostingSet::One(only) => Box::new(std::iter::once(only)),
            PostingSet::Few(items) => Box::new(items.iter()),
            PostingSet::Many(set) => Box::new(set.iter()),
        }
    }
}

/// An index key reduced to 64 bits. Postings are keyed by fingerprint instead of by owned
/// copies of the key's strings (namespace, label key and value, host and path: several strings
/// per object per index, most of the store's memory when they were owned). Two keys can share a
/// fingerprint, so every lookup re-checks what it found against the object itself; a collision
/// costs one extra candidate, never a wrong answer.
type Fingerprint = u64;

/// Fingerprint of a key made of several strings. `str`'s `Hash` ends each string with a
/// terminator, so `("ab", "c")` and `("a", "bc")` differ. The hasher's keys are fixed, so the
/// fingerprint of a key is the same in every process (nothing depends on that, but it keeps
/// runs reproducible).
fn fingerprint(parts: &[&str]) -> Fingerprint {
    let mut hasher = std::hash::DefaultHasher::new();
    for part in parts {
        part.hash(&mut hasher);
    }
    hasher.finish()
}

/// The fingerprint of a `(namespace, label key, label value)` pair.
fn pair_fingerprint(namespace: &str, key: &str, value: &str) -> Fingerprint {
    fingerprint(&[namespace, key, value])
}

fn pairs<'a>(namespace: &'a str, labels: &'a Labels) -> impl Iterator<Item = Fingerprint> + 'a {
    labels
        .iter()
        .map(move |(k, v)| pair_fingerprint(namespace, k, v))
}

/// A posting list: index key (by fingerprint) → the objects carrying it.
#[derive(Debug, Default)]
struct Postings {
    map: HashMap<Fingerprint, PostingSet>,
}

impl<'a> IntoIterator for &'a PostingSet {
    type Item = &'a ObjectKey;
    type IntoIter = Box<dyn Iterator<Item = &'a ObjectKey> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Postings {
    fn add(&mut self, key: Fingerprint, object: &ObjectKey) {
        self.map
            .entry(key)
            .and_modify(|set| set.insert(object))
            .or_insert_with(|| PostingSet::One(object.clone()));
    }

    fn remove(&mut self, key: Fingerprint, object: &ObjectKey) {
        if let Some(set) = self.map.get_mut(&key) {
            set.remove(object);
            if set.is_empty() {
                self.map.remove(&key);
            }
        }
    }

    fn get(&self, key: Fingerprint) -> Option<&PostingSet> {
        self.map.get(&key)
    }

    /// Posts a label selector under one of its pairs only: the one fewest objects are posted
    /// under now. A selector selects labels only when it is a subset of them, so the labels
    /// carry every pair of it, its anchor included: looking up each pair of the labels still
    /// finds it. Posting it under all its pairs made a pair most selectors share
    /// (`version: v1`) a posting of every selector in the namespace, read in full by every
    /// lookup: quadratic over an audit of the namespace. Removal tries every pair (a no-op
    /// where the selector is not posted).
    fn add_anchored(&mut self, pairs: impl Iterator<Item = Fingerprint>, object: &ObjectKey) {
        let anchor = pairs.min_by_key(|pair| self.get(*pair).map_or(0, PostingSet::len));
        if let Some(anchor) = anchor {
            self.add(anchor, object);
        }
    }
}

/// One shared copy of each string many stored objects repeat (namespace names, an HTTPRoute's
/// parent), so a store of 10k objects in 50 namespaces holds 50 namespace strings, not 10k.
/// Entries no object refers to any more (a deleted namespace) are dropped once the set has
/// doubled since it was last pruned, so churn cannot grow it without bound.
#[derive(Debug, Default)]
struct SharedStrings {
    strings: HashSet<Arc<str>>,
    /// Size after the last pruning.
    pruned_to: usize,
}

/// Fewest strings before pruning is considered (pruning a handful is not worth a pass).
const PRUNE_FLOOR: usize = 64;

impl SharedStrings {
    /// Points `text` at the shared copy of its string, making it the shared copy if there is
    /// none yet.
    fn share(&mut self, text: &mut Arc<str>) {
        if let Some(shared) = self.strings.get(&**text) {
            if !Arc::ptr_eq(shared, text) {
                *text = shared.clone();
            }
            return;
        }
        if self.strings.len() >= PRUNE_FLOOR.max(2 * self.pruned_to) {
            // Only the set refers to it: nothing stored uses the string any more.
            self.strings.retain(|s| Arc::strong_count(s) > 1);
            self.pruned_to = self.strings.len();
        }
        self.strings.insert(text.clone());
    }

    /// Takes over `other`'s strings that this set does not have (objects built against `other`
    /// keep the copies they hold; later ones share).
    fn absorb(&mut self, other: SharedStrings) {
        for text in other.strings {
            if !self.strings.contains(&*text) {
                self.strings.insert(text);
            }
        }
    }
}

/// How a kind is looked up.
///
/// `WHOLE_NAMESPACE`: whether its lookups ask for every object of a namespace
/// (`containing_all` with nothing required: a selector with only `matchExpressions`, or only
/// labels the controller adds), and so keep a per-namespace posting of every object. Services
/// (looked up by `selecting`) and pods (looked up with a non-empty selector) never do, and that
/// posting was some 50 bytes of every such object.
///
/// `SELECTORS`: whether the indexed label map is a selector, looked up only by the labels it
/// selects (`selecting`), and so posted under one pair ([`Postings::add_anchored`]).
trait NamespaceLookups {
    const WHOLE_NAMESPACE: bool;
    const SELECTORS: bool = false;
}

impl NamespaceLookups for DeploymentInfo {
    const WHOLE_NAMESPACE: bool = true;
}

impl NamespaceLookups for WorkloadInfo {
    const WHOLE_NAMESPACE: bool = true;
}

impl NamespaceLookups for ServiceInfo {
    const WHOLE_NAMESPACE: bool = false;
    const SELECTORS: bool = true;
}

impl NamespaceLookups for PodInfo {
    const WHOLE_NAMESPACE: bool = false;
}

/// Objects of one kind with label-pair postings on a chosen label map of each.
#[derive(Debug)]
struct LabelIndexed<T> {
    objects: HashMap<ObjectKey, Shared<T>>,
    /// Per namespace, every object (fallback for selectors without `matchLabels`); empty for
    /// kinds without such lookups ([`NamespaceLookups`]).
    by_namespace: Postings,
    /// Pairs of the indexed label map.
    by_pair: Postings,
    /// Objects whose indexed label map is empty (they must always be checked by the caller).
    unindexed: Postings,
}

impl<T> Default for LabelIndexed<T> {
    fn default() -> Self {
        Self {
            objects: HashMap::new(),
            by_namespace: Postings::default(),
            by_pair: Postings::default(),
            unindexed: Postings::default(),
        }
    }
}

impl<T: NamespaceLookups> LabelIndexed<T> {
    fn apply(&mut self, key: ObjectKey, object: T, labels: fn(&T) -> &Labels) {
        self.delete(&key, labels);
        let indexed = labels(&object);
        if T::SELECTORS {
            self.by_pair
                .add_anchored(pairs(&key.namespace, indexed), &key);
        } else {
            for pair in pairs(&key.namespace, indexed) {
                self.by_pair.add(pair, &key);
            }
        }
        if indexed.is_empty() {
            self.unindexed.add(fingerprint(&[&key.namespace]), &key);
        }
        if T::WHOLE_NAMESPACE {
            self.by_namespace.add(fingerprint(&[&key.namespace]), &key);
        }
        self.objects.insert(key, Arc::new(object));
    }

    fn delete(&mut self, key: &ObjectKey, labels: fn(&T) -> &Labels) {
        if let Some(old) = self.objects.remove(key) {
            let indexed = labels(&old);
            for pair in pairs(&key.namespace, indexed) {
                self.by_pair.remove(pair, key);
            }
            if indexed.is_empty() {
                self.unindexed.remove(fingerprint(&[&key.namespace]), key);
            }
            if T::WHOLE_NAMESPACE {
                self.by_namespace
                    .remove(fingerprint(&[&key.namespace]), key);
            }
        }
    }

    /// The objects of `namespace` among `keys`: postings are keyed by fingerprint, so a key
    /// of another namespace that shares one is dropped here (and other label pairs by the
    /// callers' selector checks).
    fn resolve<'a>(
        &'a self,
        namespace: &str,
        keys: impl Iterator<Item = &'a ObjectKey>,
    ) -> Vec<&'a Shared<T>> {
        keys.filter(|k| &*k.namespace == namespace)
            .filter_map(|k| self.objects.get(k))
            .collect()
    }

    /// Objects whose indexed labels contain every pair of `required` (smallest posting first),
    /// or every object of the namespace when nothing is required.
    fn containing_all<'a>(&'a self, namespace: &str, required: &Labels) -> Vec<&'a Shared<T>> {
        let postings: Option<Vec<&PostingSet>> = pairs(namespace, required)
            .map(|pair| self.by_pair.get(pair))
            .collect();
        match postings {
            // Some required pair is carried by no object.
            None => Vec::new(),
            Some(lists) if lists.is_empty() && T::WHOLE_NAMESPACE => self
                .by_namespace
                .get(fingerprint(&[namespace]))
                .map(|set| self.resolve(namespace, set.iter()))
                .unwrap_or_default(),
            // A kind without the per-namespace posting: no caller gets here today, but the
            // answer stays right (every object of the namespace, in key order) if one does.
            Some(lists) if lists.is_empty() => {
                let mut found: Vec<(&ObjectKey, &Shared<T>)> = self
                    .objects
                    .iter()
                    .filter(|(k, _)| &*k.namespace == namespace)
                    .collect();
                found.sort_by(|a, b| a.0.cmp(b.0));
                found.into_iter().map(|(_, o)| o).collect()
            }
            Some(lists) => match lists.iter().min_by_key(|s| s.len()) {
                Some(smallest) => self.resolve(namespace, smallest.iter()),
                None => Vec::new(),
            },
        }
    }

    /// Candidates for the selectors (`SELECTORS` kinds) that select `labels`: every object whose
    /// indexed map is a subset of `labels` is among them (posted under one of its pairs, all of
    /// which `labels` carry), and those with an empty map; callers check each.
    fn selecting<'a>(&'a self, namespace: &str, labels: &Labels) -> Vec<&'a Shared<T>> {
        let mut keys: BTreeSet<&ObjectKey> = BTreeSet::new();
        for pair in pairs(namespace, labels) {
            if let Some(set) = self.by_pair.get(pair) {
                keys.extend(set.iter());
            }
        }
        if let Some(set) = self.unindexed.get(fingerprint(&[namespace])) {
            keys.extend(set.iter());
        }
        self.resolve(namespace, keys.into_iter())
    }
}

/// Everything the cross-object rules can look up.
#[derive(Debug, Default)]
pub struct ClusterIndex {
    /// Deployments, indexed on their pod-template labels.
    deployments: LabelIndexed<DeploymentInfo>,
    /// The same Deployments, indexed on their selector's matchLabels (each under one pair,
    /// [`Postings::add_anchored`]).
    deployment_selectors: Postings,
    deployment_selectors_unindexed: Postings,
    /// Services, indexed on their selector.
    services: LabelIndexed<ServiceInfo>,
    ingresses: HashMap<ObjectKey, Shared<IngressInfo>>,
    ingresses_by_host_path: Postings,
    ingresses_by_backend: Postings,
    ingress_classes: BTreeMap<String, Shared<IngressClassInfo>>,
    http_routes: HashMap<ObjectKey, Shared<HttpRouteInfo>>,
    /// HTTPRoutes by parent (`group/kind/namespace/name`) and hostname as written (`""`: no
    /// hostnames, and every route of a Service parent).
    http_routes_by_parent_host: Postings,
    gateways: HashMap<ObjectKey, Shared<GatewayInfo>>,
    reference_grants: HashMap<String, BTreeMap<String, Shared<ReferenceGrantInfo>>>,
    namespaces: HashMap<String, Labels>,
    /// StatefulSets, DaemonSets and Argo Rollouts (one index per kind, in `WorkloadKind::ALL`
    /// order), on their pod-template labels.
    workloads: [LabelIndexed<WorkloadInfo>; 3],
    /// Rollouts by the Deployment (`namespace`, name) their `workloadRef` names.
    rollouts_by_template_ref: Postings,
    /// Pods no kind with a pod template runs, on their labels.
    pods: LabelIndexed<PodInfo>,
    /// The selector each Service had before its current one, for the Services seen changing
    /// it: a switch back to it is the rollback of a blue/green switch.
    previous_service_selectors: HashMap<ObjectKey, Labels>,
    /// Namespaces being deleted (rare, so a set of names rather than a flag per namespace).
    terminating_namespaces: HashSet<String>,
    /// ReplicaSets a Deployment controls, by owner.
    replica_sets: ReplicaSetIndex,
    /// The namespace (and HTTPRoute parent) strings the stored objects share.
    shared: SharedStrings,
}

fn template_labels(d: &DeploymentInfo) -> &Labels {
    &d.template_labels
}

fn service_selector(s: &ServiceInfo) -> &Labels {
    &s.selector
}

fn workload_template_labels(w: &WorkloadInfo) -> &Labels {
    &w.template_labels
}

fn pod_labels(p: &PodInfo) -> &Labels {
    &p.labels
}

/// `selector` without the labels `kind`'s controller adds to pods (the template does not carry
/// them, so they cannot be looked up in its postings).
fn template_part(selector: &Labels, kind: WorkloadKind) -> Labels {
    let added = kind.controller_label_keys();
    selector
        .iter()
        .filter(|(k, _)| !added.contains(k))
        .collect()
}

impl ClusterIndex {
    /// Adds or replaces a Deployment.
    pub fn apply_deployment(&mut self, info: DeploymentInfo) {
        self.delete_deployment(&info.key);
        let key = info.key.clone();
        self.deployment_selectors
            .add_anchored(pairs(&key.namespace, &info.selector.match_labels), &key);
        if info.selector.match_labels.is_empty() {
            self.deployment_selectors_unindexed
                .add(fingerprint(&[&key.namespace]), &key);
        }
        self.deployments.apply(key, info, template_labels);
    }

    /// Removes a Deployment.
    pub fn delete_deployment(&mut self, key: &ObjectKey) {
        if let Some(old) = self.deployments.objects.get(key).cloned() {
            for pair in pairs(&key.namespace, &old.selector.match_labels) {
                self.deployment_selectors.remove(pair, key);
            }
            if old.selector.match_labels.is_empty() {
                self.deployment_selectors_unindexed
                    .remove(fingerprint(&[&key.namespace]), key);
            }
        }
        self.deployments.delete(key, template_labels);
    }

    /// Adds or replaces a Service, remembering its selector before a change.
    pub fn apply_service(&mut self, info: ServiceInfo) {
        let key = info.key.clone();
        if let Some(before) = self.services.objects.get(&key) {
            if before.selector != info.selector {
                self.previous_service_selectors
                    .insert(key.clone(), before.selector.clone());
            }
        }
        self.services.apply(key, info, service_selector);
    }

    /// Removes a Service.
    pub fn delete_service(&mut self, key: &ObjectKey) {
        self.services.delete(key, service_selector);
        self.previous_service_selectors.remove(key);
    }

    /// Adds or replaces a StatefulSet, DaemonSet or Rollout.
    pub fn apply_workload(&mut self, info: WorkloadInfo) {
        let kind = info.kind;
        self.delete_workload(kind, &info.key);
        let key = info.key.clone();
        if let Some(deployment) = &info.template_from {
            self.rollouts_by_template_ref
                .add(fingerprint(&[&key.namespace, deployment]), &key);
        }
        self.workloads[kind.index()].apply(key, info, workload_template_labels);
    }

    /// Removes a StatefulSet, DaemonSet or Rollout.
    pub fn delete_workload(&mut self, kind: WorkloadKind, key: &ObjectKey) {
        let index = &mut self.workloads[kind.index()];
        if let Some(deployment) = index
            .objects
            .get(key)
            .and_then(|old| old.template_from.clone())
        {
            self.rollouts_by_template_ref
                .remove(fingerprint(&[&key.namespace, &deployment]), key);
        }
        index.delete(key, workload_template_labels);
    }

    /// Adds or replaces a pod.
    pub fn apply_pod(&mut self, info: PodInfo) {
        let key = info.key.clone();
        self.pods.apply(key, info, pod_labels);
    }

    /// Removes a pod.
    pub fn delete_pod(&mut self, key: &ObjectKey) {
        self.pods.delete(key, pod_labels);
    }

    /// Whether the pod is stored (most pod events are for pods the store does not keep; this
    /// lets the watcher skip taking the write lock for them).
    pub fn holds_pod(&self, key: &ObjectKey) -> bool {
        self.pods.objects.contains_key(key)
    }

    /// Adds or replaces an Ingress.
    pub fn apply_ingress(&mut self, info: IngressInfo) {
        self.delete_ingress(&info.key);
        let key = info.key.clone();
        for path in &info.paths {
            self.ingresses_by_host_path
                .add(fingerprint(&[&path.host, &path.path]), &key);
        }
        for service in info.backend_services() {
            self.ingresses_by_backend
                .add(fingerprint(&[&key.namespace, service]), &key);
        }
        self.ingresses.insert(key, Arc::new(info));
    }

    /// Removes an Ingress.
    pub fn delete_ingress(&mut self, key: &ObjectKey) {
        if let Some(old) = self.ingresses.remove(key) {
            for path in &old.paths {
                self.ingresses_by_host_path
                    .remove(fingerprint(&[&path.host, &path.path]), key);
            }
            for service in old.backend_services() {
                self.ingresses_by_backend
                    .remove(fingerprint(&[&key.namespace, service]), key);
            }
        }
    }

    /// Adds or replaces an IngressClass.
    pub fn apply_ingress_class(&mut self, info: IngressClassInfo) {
        self.ingress_classes
            .insert(info.name.clone(), Arc::new(info));
    }

    /// Removes an IngressClass.
    pub fn delete_ingress_class(&mut self, name: &str) {
        self.ingress_classes.remove(name);
    }

    /// Adds or replaces an HTTPRoute.
    pub fn apply_http_route(&mut self, info: HttpRouteInfo) {
        self.delete_http_route(&info.key);
        for parent in &info.parents {
            for hostname in info.hostname_keys_on(parent) {
                self.http_routes_by_parent_host
                    .add(fingerprint(&[&*parent.parent, hostname]), &info.key);
            }
        }
        self.http_routes.insert(info.key.clone(), Arc::new(info));
    }

    /// Removes an HTTPRoute.
    pub fn delete_http_route(&mut self, key: &ObjectKey) {
        if let Some(old) = self.http_routes.remove(key) {
            for parent in &old.parents {
                for hostname in old.hostname_keys_on(parent) {
                    self.http_routes_by_parent_host
                        .remove(fingerprint(&[&*parent.parent, hostname]), key);
                }
            }
        }
    }

    /// Adds or replaces a Gateway.
    pub fn apply_gateway(&mut self, info: GatewayInfo) {
        self.gateways.insert(info.key.clone(), Arc::new(info));
    }

    /// Removes a Gateway.
    pub fn delete_gateway(&mut self, key: &ObjectKey) {
        self.gateways.remove(key);
    }

    /// Adds or replaces a ReferenceGrant.
    pub fn apply_reference_grant(&mut self, info: ReferenceGrantInfo) {
        self.reference_grants
            .entry(info.key.namespace.to_string())
            .or_default()
            .insert(info.key.name.to_string(), Arc::new(info));
    }

    /// Removes a ReferenceGrant.
    pub fn delete_reference_grant(&mut self, key: &ObjectKey) {
        if let Some(grants) = self.reference_grants.get_mut(&*key.namespace) {
            grants.remove(&*key.name);
            if grants.is_empty() {
                self.reference_grants.remove(&*key.namespace);
            }
        }
    }

    /// Adds or replaces a Namespace's labels and whether it is terminating.
    pub fn apply_namespace(&mut self, name: String, labels: Labels, terminating: bool) {
        if terminating {
            self.terminating_namespaces.insert(name.clone());
        } else {
            self.terminating_namespaces.remove(&name);
        }
        self.namespaces.insert(name, labels);
    }

    /// Removes a Namespace.
    pub fn delete_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
        self.terminating_namespaces.remove(name);
    }

    /// Adds or replaces one object of any kind. Its namespace (and an HTTPRoute's parents) is
    /// pointed at the copy the store already holds.
    pub fn apply(&mut self, mut object: StoredObject) {
        let shared = &mut self.shared;
        match &mut object {
            StoredObject::Deployment(info) => shared.share(&mut info.key.namespace),
            StoredObject::Service(info) => shared.share(&mut info.key.namespace),
            StoredObject::Ingress(info) => shared.share(&mut info.key.namespace),
            StoredObject::HttpRoute(info) => {
                shared.share(&mut info.key.namespace);
                for parent in info.parents.iter_mut() {
                    shared.share(&mut parent.parent);
                }
            }
            StoredObject::ReferenceGrant(info) => shared.share(&mut info.key.namespace),
            StoredObject::Gateway(info) => shared.share(&mut info.key.namespace),
            StoredObject::Workload(info) => shared.share(&mut info.key.namespace),
            StoredObject::Pod(info) => shared.share(&mut info.key.namespace),
            // ReplicaSets share their namespaces in their own index; cluster-scoped kinds have
            // none.
            StoredObject::ReplicaSet(_)
            | StoredObject::IngressClass(_)
            | StoredObject::Namespace { .. } => {}
        }
        match object {
            StoredObject::Deployment(info) => self.apply_deployment(info),
            StoredObject::Service(info) => self.apply_service(info),
            StoredObject::Ingress(info) => self.apply_ingress(info),
            StoredObject::IngressClass(info) => self.apply_ingress_class(info),
            StoredObject::HttpRoute(info) => self.apply_http_route(info),
            StoredObject::ReferenceGrant(info) => self.apply_reference_grant(info),
            StoredObject::Gateway(info) => self.apply_gateway(info),
            StoredObject::Namespace {
                name,
                labels,
                terminating,
            } => self.apply_namespace(name, labels, terminating),
            StoredObject::Workload(info) => self.apply_workload(info),
            StoredObject::Pod(info) => self.apply_pod(info),
            StoredObject::ReplicaSet(info) => self.replica_sets.apply(info),
        }
    }

    /// Removes one object of `kind`. Cluster-scoped kinds (IngressClass, Namespace) are keyed by
    /// `key.name` alone.
    pub fn delete(&mut self, kind: StoredKind, key: &ObjectKey) {
        match kind {
            StoredKind::Deployment => self.delete_deployment(key),
            StoredKind::Service => self.delete_service(key),
            StoredKind::Ingress => self.delete_ingress(key),
            StoredKind::IngressClass => self.delete_ingress_class(&key.name),
            StoredKind::HttpRoute => self.delete_http_route(key),
            StoredKind::ReferenceGrant => self.delete_reference_grant(key),
            StoredKind::Gateway => self.delete_gateway(key),
            StoredKind::Namespace => self.delete_namespace(&key.name),
            StoredKind::StatefulSet | StoredKind::DaemonSet | StoredKind::Rollout => {
                if let Some(workload) = kind.workload() {
                    self.delete_workload(workload, key);
                }
            }
            StoredKind::Pod => self.delete_pod(key),
            StoredKind::ReplicaSet => self.replica_sets.delete(key),
        }
    }

    /// Replaces everything of `kind` with `objects` (objects of other kinds are ignored). Used
    /// after a watch (re)list: objects deleted while the watch was disconnected must disappear,
    /// which applying the new list on top of the old contents would not do.
    pub fn replace_kind(
        &mut self,
        kind: StoredKind,
        objects: impl IntoIterator<Item = StoredObject>,
    ) {
        let mut fresh = ClusterIndex::default();
        for object in objects.into_iter().filter(|o| o.kind() == kind) {
            fresh.apply(object);
        }
        self.adopt_kind(kind, fresh);
    }

    /// Moves `kind`'s objects and postings out of `other` into `self`, dropping what `self` held
    /// of that kind. The caller can build `other` without holding any lock, so the swap itself is
    /// a handful of pointer moves however many objects there are.
    pub fn adopt_kind(&mut self, kind: StoredKind, mut other: ClusterIndex) {
        use std::mem::take;
        self.shared.absorb(take(&mut other.shared));
        match kind {
            StoredKind::Deployment => {
                self.deployments = take(&mut other.deployments);
                self.deployment_selectors = take(&mut other.deployment_selectors);
                self.deployment_selectors_unindexed =
                    take(&mut other.deployment_selectors_unindexed);
            }
            StoredKind::Service => {
                let before = std::mem::replace(&mut self.services, take(&mut other.services));
                self.carry_service_history(&before, take(&mut other.previous_service_selectors));
            }
            StoredKind::Ingress => {
                self.ingresses = take(&mut other.ingresses);
                self.ingresses_by_host_path = take(&mut other.ingresses_by_host_path);
                self.ingresses_by_backend = take(&mut other.ingresses_by_backend);
            }
            StoredKind::IngressClass => self.ingress_classes = take(&mut other.ingress_classes),
            StoredKind::HttpRoute => {
                self.http_routes = take(&mut other.http_routes);
                self.http_routes_by_parent_host = take(&mut other.http_routes_by_parent_host);
            }
            StoredKind::ReferenceGrant => {
                self.reference_grants = take(&mut other.reference_grants);
            }
            StoredKind::Gateway => self.gateways = take(&mut other.gateways),
            StoredKind::Namespace => {
                self.namespaces = take(&mut other.namespaces);
                self.terminating_namespaces = take(&mut other.terminating_namespaces);
            }
            StoredKind::StatefulSet | StoredKind::DaemonSet | StoredKind::Rollout => {
                if let Some(workload) = kind.workload() {
                    let i = workload.index();
                    self.workloads[i] = take(&mut other.workloads[i]);
                }
                if kind == StoredKind::Rollout {
                    self.rollouts_by_template_ref = take(&mut other.rollouts_by_template_ref);
                }
            }
            StoredKind::Pod => self.pods = take(&mut other.pods),
            StoredKind::ReplicaSet => self.replica_sets = take(&mut other.replica_sets),
        }
    }

    /// After a relist replaced the Services: a Service whose selector differs from what was
    /// stored before remembers that one; an unchanged one keeps what it remembered (a relist
    /// after a broken watch must not forget the rollback target).
    fn carry_service_history(
        &mut self,
        before: &LabelIndexed<ServiceInfo>,
        mut listed: HashMap<ObjectKey, Labels>,
    ) {
        let mut remembered = std::mem::take(&mut self.previous_service_selectors);
        self.previous_service_selectors = self
            .services
            .objects
            .iter()
            .filter_map(|(key, now)| {
                let previous = match before.objects.get(key) {
                    Some(old) if old.selector != now.selector => Some(old.selector.clone()),
                    Some(_) => remembered.remove(key),
                    None => listed.remove(key),
                };
                previous.map(|p| (key.clone(), p))
            })
            .collect();
    }

    /// Object counts per kind.
    pub fn counts(&self) -> crate::policy::view::ObjectCounts {
        crate::policy::view::ObjectCounts {
            deployments: self.deployments.objects.len(),
            services: self.services.objects.len(),
            ingresses: self.ingresses.len(),
            ingress_classes: self.ingress_classes.len(),
            http_routes: self.http_routes.len(),
            reference_grants: self.reference_grants.values().map(BTreeMap::len).sum(),
            gateways: self.gateways.len(),
            namespaces: self.namespaces.len(),
            stateful_sets: self.workloads[WorkloadKind::StatefulSet.index()]
                .objects
                .len(),
            daemon_sets: self.workloads[WorkloadKind::DaemonSet.index()]
                .objects
                .len(),
            rollouts: self.workloads[WorkloadKind::Rollout.index()].objects.len(),
            pods: self.pods.objects.len(),
            replica_sets: self.replica_sets.len(),
        }
    }

    /// See [`crate::policy::view::ClusterView::deployment`].
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Shared<DeploymentInfo>> {
        self.deployments
            .objects
            .get(&ObjectKey::new(namespace, name))
            .cloned()
    }

    /// See [`crate::policy::view::ClusterView::deployments_matching`].
    pub fn deployments_matching(
        &self,
        namespace: &str,
        selector: &Selector,
    ) -> Vec<Shared<DeploymentInfo>> {
        if selector.is_empty() {
            return Vec::new();
        }
        self.deployments
            .containing_all(namespace, &selector.match_labels)
            .into_iter()
            .filter(|d| selector.matches(&d.template_labels))
            .cloned()
            .collect()
    }

    /// See [`crate::policy::view::ClusterView::deployments_selecting`].
    pub fn deployments_selecting(
        &self,
        namespace: &str,
        labels: &Labels,
    ) -> Vec<Shared<DeploymentInfo>> {
        let mut keys: BTreeSet<&ObjectKey> = BTreeSet::new();
        for pair in pairs(namespace, labels) {
            if let Some(set) = self.deployment_selectors.get(pair) {
                keys.extend(set.iter());
            }
        }
        if let Some(set) = self
            .deployment_selectors_unindexed
            .get(fingerprint(&[namespace]))
        {
            keys.extend(set.iter());
        }
        keys.into_iter()
            .filter(|k| &*k.namespace == namespace)
            .filter_map(|k| self.deployments.objects.get(k))
            .filter(|d| d.selector.matches(labels))
            .cloned()
            .collect()
    }

    /// See [`crate::policy::view::ClusterView::service`].
    pub fn service(&self, namespace: &str, name: &str) -> Option<Shared<ServiceInfo>> {
        self.services
            .objects
            .get(&ObjectKey::new(namespace, name))
            .cloned()
    }

    /// See [`crate::policy::view::ClusterView::services_selecting`].
    pub fn services_selecting(&self, namespace: &str, labels: &Labels) -> Vec<Shared<ServiceInfo>> {
        self.services
            .selecting(namespace, labels)
            .into_iter()
            .filter(|s| Selector::map_selects(&s.selector, labels))
            .cloned()
            .collect()
    }

    /// See [`crate::policy::view::ClusterView::ingresses_at`].
    pub fn ingresses_at(&self, host: &str, path: &str) -> Vec<Shared<IngressInfo>> {
        self.ingresses_by_host_path
            .get(fingerprint(&[host, path]))
            .into_iter()
            .flatten()
            .filter_map(|k| self.ingresses.get(k))
            // Postings are keyed by fingerprint: keep only what really is at host + path.
            .filter(|i| i.paths.iter().any(|p| &*p.host == host && p.path == path))
            .cloned()
            .collect()
    }

    /// See [`crate::policy::view::ClusterView::ingresses_with_backend`].
    pub fn ingresses_with_backend(
        &self,
        namespace: &str,
        service: &str,
    ) -> Vec<Shared<IngressInfo>> {
        self.ingresses_by_backend
            .get(fingerprint(&[namespace, service]))
            .into_iter()
            .flatten()
            .filter(|k| &*k.namespace == namespace)
            .filter_map(|k| self.ingresses.get(k))
            // Postings are keyed by fingerprint: keep only what really routes to `service`.
            .filter(|i| i.backend_services().any(|s| s == service))
            .cloned()
            .collect()
    }

    /// See [`crate::policy::view::ClusterView::http_routes_sharing`].
    pub fn http_routes_sharing(&self, parent: &str, hostname: &str) -> Vec<Shared<HttpRouteInfo>> {
        self.http_routes_by_parent_host
            .get(fingerprint(&[parent, hostname]))
            .into_iter()
            .flatten()
            .filter_map(|k| self.http_routes.get(k))
            // Postings are keyed by fingerprint: keep only what really attaches there.
            .filter(|r| {
                r.parents
                    .iter()
                    .any(|p| &*p.parent == parent && r.hostname_keys_on(p).contains(&hostname))
            })
            .cloned()
            .collect()
    }

    /// See [`crate::policy::view::ClusterView::gateway`].
    pub fn gateway(&self, namespace: &str, name: &str) -> Option<Shared<GatewayInfo>> {
        self.gateways.get(&ObjectKey::new(namespace, name)).cloned()
    }

    /// See [`crate::policy::view::ClusterView::ingress`].
    pub fn ingress(&self, namespace: &str, name: &str) -> Option<Shared<IngressInfo>> {
        self.ingresses
            .get(&ObjectKey::new(namespace, name))
            .cloned()
    }

    /// See [`crate::policy::view::ClusterView::ingress_class`].
    pub fn ingress_class(&self, name: &str) -> Option<Shared<IngressClassInfo>> {
        self.ingress_classes.get(name).cloned()
    }

    /// See [`crate::policy::view::ClusterView::default_ingress_classes`].
    pub fn default_ingress_classes(&self) -> Vec<Shared<IngressClassInfo>> {
        self.ingress_classes
            .values()
            .filter(|c| c.is_default)
            .cloned()
            .collect()
    }

    /// See [`crate::policy::view::ClusterView::reference_grants`].
    pub fn reference_grants(&self, namespace: &str) -> Vec<Shared<ReferenceGrantInfo>> {
        self.reference_grants
            .get(namespace)
            .map(|grants| grants.values().cloned().collect())
            .unwrap_or_default()
    }

    /// See [`crate::policy::view::ClusterView::namespace_labels`].
    pub fn namespace_labels(&self, namespace: &str) -> Option<Labels> {
        self.namespaces.get(namespace).cloned()
    }

    /// See [`crate::policy::view::ClusterView::workloads_running`].
    pub fn workloads_running(
        &self,
        namespace: &str,
        selector: &Labels,
    ) -> Vec<Shared<WorkloadInfo>> {
        if selector.is_empty() {
            return Vec::new();
        }
        WorkloadKind::ALL
            .iter()
            .flat_map(|kind| {
                self.workloads[kind.index()]
                    .containing_all(namespace, &template_part(selector, *kind))
                    .into_iter()
                    .filter(|w| w.can_run(selector))
                    .cloned()
            })
            .collect()
    }

    /// See [`crate::policy::view::ClusterView::rollouts_with_template_of`].
    pub fn rollouts_with_template_of(
        &self,
        namespace: &str,
        deployment: &str,
    ) -> Vec<Shared<WorkloadInfo>> {
        let rollouts = &self.workloads[WorkloadKind::Rollout.index()];
        self.rollouts_by_template_ref
            .get(fingerprint(&[namespace, deployment]))
            .map(|keys| rollouts.resolve(namespace, keys.iter()))
            .unwrap_or_default()
            .into_iter()
            // Postings are keyed by fingerprint: keep only what really names `deployment`.
            .filter(|r| r.template_from.as_deref() == Some(deployment))
            .cloned()
            .collect()
    }

    /// See [`crate::policy::view::ClusterView::pods_matching`].
    pub fn pods_matching(&self, namespace: &str, selector: &Labels) -> Vec<Shared<PodInfo>> {
        if selector.is_empty() {
            return Vec::new();
        }
        self.pods
            .containing_all(namespace, selector)
            .into_iter()
            .filter(|p| Selector::map_selects(selector, &p.labels))
            .cloned()
            .collect()
    }

    /// See [`crate::policy::view::ClusterView::previous_service_selector`].
    pub fn previous_service_selector(&self, namespace: &str, name: &str) -> Option<Labels> {
        self.previous_service_selectors
            .get(&ObjectKey::new(namespace, name))
            .cloned()
    }

    /// See [`crate::policy::view::ClusterView::replica_sets_of`].
    pub fn replica_sets_of(
        &self,
        namespace: &str,
        deployment: &str,
    ) -> Vec<Shared<ReplicaSetInfo>> {
        self.replica_sets.of(namespace, deployment)
    }

    /// See [`crate::policy::view::ClusterView::namespace_terminating`].
    pub fn namespace_terminating(&self, namespace: &str) -> bool {
        self.terminating_namespaces.contains(namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A posting keeps its objects in key order, without duplicates, across the switch from the
    /// small vector to the B-tree and back down to empty.
    #[test]
    fn posting_sets_stay_ordered_across_growth_and_removal() {
        let mut postings = Postings::default();
        let web = fingerprint(&["app=web"]);
        let few_key = fingerprint(&["few"]);
        let keys: Vec<ObjectKey> = (0..FEW_POSTINGS * 3)
            .rev()
            .map(|n| ObjectKey::new("shop", format!("web-{n:03}")))
            .collect();
        for key in &keys {
            postings.add(web, key);
            postings.add(web, key); // duplicates are ignored
        }
        let set = postings.get(web).unwrap();
        assert!(matches!(set, PostingSet::Many(_)));
        let listed: Vec<&ObjectKey> = set.iter().collect();
        let mut sorted: Vec<&ObjectKey> = keys.iter().collect();
        sorted.sort();
        assert_eq!(listed, sorted);

        for key in &keys[1..] {
            postings.remove(web, key);
        }
        assert_eq!(postings.get(web).map(PostingSet::len), Some(1));
        postings.remove(web, &keys[0]);
        assert!(postings.get(web).is_none(), "empty postings are dropped");

        postings.add(few_key, &keys[2]);
        assert!(matches!(postings.get(few_key), Some(PostingSet::One(_))));
        postings.add(few_key, &keys[2]);
        postings.add(few_key, &keys[1]);
        let few = postings.get(few_key).unwrap();
        assert!(matches!(few, PostingSet::Few(_)));
        assert_eq!(few.iter().collect::<Vec<_>>(), vec![&keys[2], &keys[1]]);
    }
}

#[cfg(test)]
mod shared_string_tests {
    use super::*;

    /// Equal strings end up as one allocation; strings nothing refers to any more are dropped
    /// once the set has doubled, and the ones still in use stay shared.
    #[test]
    fn equal_strings_share_one_copy_and_unused_ones_are_pruned() {
        let mut shared = SharedStrings::default();
        let mut first: Arc<str> = Arc::from("shop");
        let mut second: Arc<str> = Arc::from(String::from("shop"));
        shared.share(&mut first);
        shared.share(&mut second);
        assert!(Arc::ptr_eq(&first, &second));

        // Strings only the set holds (their objects are gone).
        for n in 0..PRUNE_FLOOR * 2 {
            shared.share(&mut Arc::from(format!("gone-{n}")));
        }
        assert!(
            shared.strings.len() <= PRUNE_FLOOR + 1,
            "pruned as it grows"
        );
        assert!(shared.strings.contains("shop"), "a string in use is kept");
        let mut third: Arc<str> = Arc::from("shop");
        shared.share(&mut third);
        assert!(Arc::ptr_eq(&first, &third));
    }

    /// A kind without per-namespace postings still answers a whole-namespace lookup (every
    /// object of the namespace, in key order), as a kind with them does.
    #[test]
    fn whole_namespace_lookups_answer_without_the_namespace_posting() {
        let mut index = ClusterIndex::default();
        for (namespace, name) in [("a", "p2"), ("b", "p1"), ("a", "p1")] {
            for kind in ["Pod", "Deployment"] {
                let object = match kind {
                    "Pod" => serde_json::json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "namespace": namespace,
                                     "labels": {"app": name}},
                        "spec": {"containers": []}
                    }),
                    _ => serde_json::json!({
                        "apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": name, "namespace": namespace},
                        "spec": {"selector": {"matchLabels": {"app": name}},
                                 "template": {"metadata": {"labels": {"app": name}}}}
                    }),
                };
                index.apply(StoredObject::from_value(&object).unwrap());
            }
        }
        assert!(index.pods.by_namespace.map.is_empty());
        let pods: Vec<String> = index
            .pods
            .containing_all("a", &Labels::new())
            .iter()
            .map(|p| p.key.to_string())
            .collect();
        let deployments: Vec<String> = index
            .deployments
            .containing_all("a", &Labels::new())
            .iter()
            .map(|d| d.key.to_string())
            .collect();
        assert_eq!(pods, ["a/p1", "a/p2"]);
        assert_eq!(pods, deployments);
    }

    /// Objects applied through `apply` carry the shared namespace string, and lookups answer as
    /// before.
    #[test]
    fn applied_objects_share_their_namespace() {
        let mut index = ClusterIndex::default();
        for name in ["a", "b"] {
            index.apply(
                StoredObject::from_value(&serde_json::json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "namespace": "shop"},
                    "spec": {"selector": {"app": name}}
                }))
                .unwrap(),
            );
        }
        let (a, b) = (
            index.service("shop", "a").unwrap(),
            index.service("shop", "b").unwrap(),
        );
        assert!(Arc::ptr_eq(&a.key.namespace, &b.key.namespace));
        assert_eq!(
            index
                .services_selecting("shop", &Labels::from([("app", "b")]))
                .len(),
            1
        );
    }
}

#[cfg(test)]
mod fingerprint_tests {
    use serde_json::json;

    use super::*;

    trait Keyed {
        fn key(&self) -> &ObjectKey;
    }
    impl Keyed for DeploymentInfo {
        fn key(&self) -> &ObjectKey {
            &self.key
        }
    }
    impl Keyed for ServiceInfo {
        fn key(&self) -> &ObjectKey {
            &self.key
        }
    }
    impl Keyed for IngressInfo {
        fn key(&self) -> &ObjectKey {
            &self.key
        }
    }

    fn keys<T: Keyed>(found: Vec<Shared<T>>) -> Vec<String> {
        found.iter().map(|o| o.key().to_string()).collect()
    }

    fn stored(object: serde_json::Value) -> StoredObject {
        StoredObject::from_value(&object).unwrap()
    }

    /// Each selector is posted under one of its pairs (the least shared): a pair every
    /// selector carries (`version: v1`) holds none of them, and every selecting lookup still
    /// finds exactly the selectors that are subsets of the labels, after deletions too.
    #[test]
    fn selectors_are_posted_once_and_still_found() {
        let mut index = ClusterIndex::default();
        let deployment = |name: &str, selector: serde_json::Value| {
            stored(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {"selector": {"matchLabels": selector.clone()},
                         "template": {"metadata": {"labels": selector}}}
            }))
        };
        let service = |name: &str, selector: serde_json::Value| {
            stored(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {"selector": selector}}))
        };
        for i in 0..20 {
            let app = format!("web-{i}");
            index.apply(deployment(&app, json!({"app": app, "version": "v1"})));
            index.apply(service(&app, json!({"app": app, "version": "v1"})));
        }
        index.apply(deployment("all-v1", json!({"version": "v1"})));
        index.apply(service("all-v1", json!({"version": "v1"})));

        let version_pair = pair_fingerprint("shop", "version", "v1");
        let posted = |postings: &Postings| postings.get(version_pair).map_or(0, PostingSet::len);
        assert_eq!(
            posted(&index.deployment_selectors),
            1,
            "only the version-only selector"
        );
        assert_eq!(
            posted(&index.services.by_pair),
            1,
            "only the version-only selector"
        );

        let labels = Labels::from([("app", "web-3"), ("version", "v1"), ("team", "shop")]);
        assert_eq!(
            keys(index.deployments_selecting("shop", &labels)),
            ["shop/all-v1", "shop/web-3"]
        );
        assert_eq!(
            keys(index.services_selecting("shop", &labels)),
            ["shop/all-v1", "shop/web-3"]
        );
        index.delete(StoredKind::Deployment, &ObjectKey::new("shop", "web-3"));
        index.delete(StoredKind::Service, &ObjectKey::new("shop", "all-v1"));
        assert_eq!(
            keys(index.deployments_selecting("shop", &labels)),
            ["shop/all-v1"]
        );
        assert_eq!(
            keys(index.services_selecting("shop", &labels)),
            ["shop/web-3"]
        );
        assert_eq!(posted(&index.services.by_pair), 0);
    }

    /// Postings are keyed by fingerprint, so two index keys may share one. Every lookup must
    /// re-check what it finds: here every posting of the `blue` namespace's objects is also
    /// filed under the fingerprints `red`'s lookups use, as a collision would, and no lookup
    /// about `red` may return them.
    #[test]
    fn lookups_drop_objects_filed_under_a_colliding_fingerprint() {
        let mut index = ClusterIndex::default();
        for namespace in ["red", "blue"] {
            let host = format!("{namespace}.example");
            index.apply(stored(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": format!("web-{namespace}"), "namespace": namespace},
                "spec": {"selector": {"matchLabels": {"app": namespace}},
                         "template": {"metadata": {"labels": {"app": namespace}}}}
            })));
            index.apply(stored(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{namespace}"), "namespace": namespace},
                "spec": {"selector": {"app": namespace}}
            })));
            index.apply(stored(json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": format!("ing-{namespace}"), "namespace": namespace},
                "spec": {"rules": [{"host": host, "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": format!("svc-{namespace}"),
                                            "port": {"number": 80}}}}]}}]}
            })));
        }
        let blue_deployment = ObjectKey::new("blue", "web-blue");
        let blue_service = ObjectKey::new("blue", "svc-blue");
        let blue_ingress = ObjectKey::new("blue", "ing-blue");
        let red_app = pair_fingerprint("red", "app", "red");
        // File blue's objects under red's keys, as colliding fingerprints would.
        index.deployments.by_pair.add(red_app, &blue_deployment);
        index
            .deployments
            .by_namespace
            .add(fingerprint(&["red"]), &blue_deployment);
        index.deployment_selectors.add(red_app, &blue_deployment);
        index.services.by_pair.add(red_app, &blue_service);
        index
            .ingresses_by_host_path
            .add(fingerprint(&["red.example", "/"]), &blue_ingress);
        index
            .ingresses_by_backend
            .add(fingerprint(&["red", "svc-red"]), &blue_ingress);
        // A same-namespace collision: a pair blue's Service does not carry.
        index
            .services
            .by_pair
            .add(pair_fingerprint("blue", "app", "green"), &blue_service);

        let red_labels = Labels::from([("app", "red")]);
        assert_eq!(
            keys(index.deployments_matching("red", &Selector::from_labels(&red_labels))),
            ["red/web-red"]
        );
        assert_eq!(
            keys(index.deployments_selecting("red", &red_labels)),
            ["red/web-red"]
        );
        assert_eq!(
            keys(index.services_selecting("red", &red_labels)),
            ["red/svc-red"]
        );
        assert!(index
            .services_selecting("blue", &Labels::from([("app", "green")]))
            .is_empty());
        assert_eq!(
            keys(index.ingresses_at("red.example", "/")),
            ["red/ing-red"]
        );
        assert_eq!(
            keys(index.ingresses_with_backend("red", "svc-red")),
            ["red/ing-red"]
        );
    }
}
