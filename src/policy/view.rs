//! The read-only view of cluster state that cross-object rules consult.
//!
//! The live store (filled by watchers) and the offline store (filled from manifests) both
//! implement it, so the webhook, `check` and the tests run the same rules on the same interface.
//! Rules never call the API server: everything they need is in the view, behind indexed lookups
//! (a request must not scan every object of a kind).

use crate::policy::objects::{
    DeploymentInfo, GatewayInfo, HttpRouteInfo, IngressClassInfo, IngressInfo, Labels, PodInfo,
    ReferenceGrantInfo, ReplicaSetInfo, Selector, ServiceInfo, Shared, WorkloadInfo,
};

/// Whether the view reflects the cluster yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStatus {
    /// Every watched kind has completed its initial list.
    Synced,
    /// Not yet (or a watch broke); the text says which kinds.
    NotSynced(String),
}

/// Objects held per kind, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectCounts {
    /// Deployments.
    pub deployments: usize,
    /// Services.
    pub services: usize,
    /// Ingresses.
    pub ingresses: usize,
    /// IngressClasses.
    pub ingress_classes: usize,
    /// HTTPRoutes.
    pub http_routes: usize,
    /// ReferenceGrants.
    pub reference_grants: usize,
    /// Gateways.
    pub gateways: usize,
    /// Namespaces.
    pub namespaces: usize,
    /// StatefulSets.
    pub stateful_sets: usize,
    /// DaemonSets.
    pub daemon_sets: usize,
    /// Argo Rollouts.
    pub rollouts: usize,
    /// Pods no kind with a pod template runs (bare pods, Jobs', operators').
    pub pods: usize,
    /// ReplicaSets a Deployment controls.
    pub replica_sets: usize,
}

/// Read access to the objects cross-object rules need.
pub trait ClusterView: Send + Sync {
    /// Whether cross-object answers can be trusted.
    fn sync_status(&self) -> SyncStatus;

    /// Whether the kinds a rule reads (Kubernetes kind names: `Deployment`, `Service`, ...) can be
    /// trusted. A rule that reads only Deployments should not fail because the HTTPRoute watch
    /// is broken. Defaults to the whole view's status.
    fn sync_status_for(&self, _kinds: &[&str]) -> SyncStatus {
        self.sync_status()
    }

    /// How many objects of each kind the view holds.
    fn counts(&self) -> ObjectCounts {
        ObjectCounts::default()
    }

    /// One Deployment.
    fn deployment(&self, _namespace: &str, _name: &str) -> Option<Shared<DeploymentInfo>> {
        None
    }

    /// Deployments in `namespace` whose pod-template labels satisfy `selector`.
    fn deployments_matching(
        &self,
        _namespace: &str,
        _selector: &Selector,
    ) -> Vec<Shared<DeploymentInfo>> {
        Vec::new()
    }

    /// Deployments in `namespace` whose own selector selects pods labelled `labels`.
    fn deployments_selecting(
        &self,
        _namespace: &str,
        _labels: &Labels,
    ) -> Vec<Shared<DeploymentInfo>> {
        Vec::new()
    }

    /// One Service.
    fn service(&self, _namespace: &str, _name: &str) -> Option<Shared<ServiceInfo>> {
        None
    }

    /// Services in `namespace` whose selector selects pods labelled `labels`.
    fn services_selecting(&self, _namespace: &str, _labels: &Labels) -> Vec<Shared<ServiceInfo>> {
        Vec::new()
    }

    /// Ingresses (any namespace: ingress-nginx builds one server per host across namespaces)
    /// with a rule for exactly this host and path.
    fn ingresses_at(&self, _host: &str, _path: &str) -> Vec<Shared<IngressInfo>> {
        Vec::new()
    }

    /// Ingresses in `namespace` that route to Service `service`.
    fn ingresses_with_backend(&self, _namespace: &str, _service: &str) -> Vec<Shared<IngressInfo>> {
        Vec::new()
    }

    /// One Ingress.
    fn ingress(&self, _namespace: &str, _name: &str) -> Option<Shared<IngressInfo>> {
        None
    }

    /// One IngressClass.
    fn ingress_class(&self, _name: &str) -> Option<Shared<IngressClassInfo>> {
        None
    }

    /// IngressClasses marked as the cluster default.
    fn default_ingress_classes(&self) -> Vec<Shared<IngressClassInfo>> {
        Vec::new()
    }

    /// HTTPRoutes attached to `parent` (`group/kind/namespace/name`, any listener of it) for
    /// exactly `hostname` as written (`""`: routes without hostnames, and every mesh route of a
    /// Service parent, whose hostnames meshes ignore).
    fn http_routes_sharing(&self, _parent: &str, _hostname: &str) -> Vec<Shared<HttpRouteInfo>> {
        Vec::new()
    }

    /// One Gateway, when readable (the Gateway API CRDs installed, or the manifests given).
    fn gateway(&self, _namespace: &str, _name: &str) -> Option<Shared<GatewayInfo>> {
        None
    }

    /// ReferenceGrants in `namespace` (the namespace being referred to).
    fn reference_grants(&self, _namespace: &str) -> Vec<Shared<ReferenceGrantInfo>> {
        Vec::new()
    }

    /// Labels of a Namespace, when known.
    fn namespace_labels(&self, _namespace: &str) -> Option<Labels> {
        None
    }

    /// StatefulSets, DaemonSets and Argo Rollouts in `namespace` that can run pods a Service
    /// selector `selector` selects (see [`WorkloadInfo::can_run`]).
    fn workloads_running(&self, _namespace: &str, _selector: &Labels) -> Vec<Shared<WorkloadInfo>> {
        Vec::new()
    }

    /// Argo Rollouts in `namespace` whose pod template is Deployment `deployment`'s
    /// (`spec.workloadRef`): they, not the Deployment, run those pods.
    fn rollouts_with_template_of(
        &self,
        _namespace: &str,
        _deployment: &str,
    ) -> Vec<Shared<WorkloadInfo>> {
        Vec::new()
    }

    /// Pods in `namespace` (only those no kind with a pod template runs) whose labels a Service
    /// selector `selector` selects.
    fn pods_matching(&self, _namespace: &str, _selector: &Labels) -> Vec<Shared<PodInfo>> {
        Vec::new()
    }

    /// The selector Service `namespace/name` had before its current one, when the view saw it
    /// change (the live store remembers the last change since it started; a manifest set, the
    /// earlier of two definitions).
    fn previous_service_selector(&self, _namespace: &str, _name: &str) -> Option<Labels> {
        None
    }

    /// ReplicaSets in `namespace` whose controller is Deployment `deployment`, in name order
    /// (the templates the Deployment controller can roll back to without a new ReplicaSet).
    fn replica_sets_of(&self, _namespace: &str, _deployment: &str) -> Vec<Shared<ReplicaSetInfo>> {
        Vec::new()
    }

    /// Whether a Namespace is being deleted (`deletionTimestamp` set, phase `Terminating`).
    /// False when unknown.
    fn namespace_terminating(&self, _namespace: &str) -> bool {
        false
    }
}

/// A view with no objects that is always synced: for rules that need no other objects and for
/// tests of single-object rules.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmptyView;

impl ClusterView for EmptyView {
    fn sync_status(&self) -> SyncStatus {
        SyncStatus::Synced
    }
}
