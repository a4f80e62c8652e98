//! The slices of Kubernetes objects that cross-object rules read, and the one parser for each.
//!
//! The store keeps these instead of whole objects (no managedFields, no pod specs), so tens of
//! thousands of objects stay small; admission parses the incoming object with the same functions,
//! so a rule never judges a request by different reading than it judges the cluster.

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::policy::gateway::{text_fingerprint, HttpRoute};

pub use crate::policy::labels::Labels;

mod replica_sets;
mod workloads;
pub use replica_sets::{ReplicaSetInfo, TemplateDigest, POD_TEMPLATE_HASH, REVISION_ANNOTATION};
pub use workloads::{
    PodInfo, WorkloadInfo, WorkloadKind, ROLLOUTS_MANAGED_BY, ROLLOUTS_POD_TEMPLATE_HASH,
    STATEFUL_SET_POD_NAME, TEMPLATED_POD_OWNERS,
};

/// `namespace/name` of a namespaced object. The strings are shared: the store's indexes refer
/// to an object by its key many times over, and a copy is a reference count, not two strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: Arc<str>,
    /// Name.
    pub name: Arc<str>,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One `matchExpressions` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Label value is one of these.
    In(String, Vec<String>),
    /// Label absent or value not one of these.
    NotIn(String, Vec<String>),
    /// Label present.
    Exists(String),
    /// Label absent.
    DoesNotExist(String),
}

/// A label selector as Deployments write it (`matchLabels` plus `matchExpressions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Exact key/value pairs.
    pub match_labels: Labels,
    /// Set-based requirements.
    pub match_expressions: Vec<Requirement>,
}

impl Selector {
    /// Reads a `LabelSelector`. An unknown operator makes the selector match nothing, as the API
    /// server would have rejected it anyway.
    pub fn from_label_selector(selector: &LabelSelector) -> Self {
        let match_expressions = selector
            .match_expressions
            .iter()
            .flatten()
            .map(|e| {
                let values = e.values.clone().unwrap_or_default();
                match e.operator.as_str() {
                    "In" => Requirement::In(e.key.clone(), values),
                    "NotIn" => Requirement::NotIn(e.key.clone(), values),
                    "Exists" => Requirement::Exists(e.key.clone()),
                    "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                    // Matches nothing: `In` with no values.
                    _ => Requirement::In(e.key.clone(), Vec::new()),
                }
            })
            .collect();
        Self {
            match_labels: selector
                .match_labels
                .as_ref()
                .map(Labels::from)
                .unwrap_or_default(),
            match_expressions,
        }
    }

    /// Whether a map-only selector (a Service's `spec.selector`) selects `labels`: the same
    /// answer as `Selector::from_labels(selector).matches(labels)`, without building (and
    /// copying the map into) a `Selector` for each candidate.
    pub fn map_selects(selector: &Labels, labels: &Labels) -> bool {
        !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    /// A map-only selector (Services).
    pub fn from_labels(labels: &Labels) -> Self {
        Self {
            match_labels: labels.clone(),
            match_expressions: Vec::new(),
        }
    }

    /// True when the selector selects nothing by construction (Kubernetes: an empty
    /// `LabelSelector` on a Deployment is invalid; an empty Service selector selects no pods).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether `labels` satisfy the selector. Empty selectors match nothing here: every caller
    /// asks "which pods does this select", and for Services an empty selector means "managed
    /// endpoints", not "everything".
    pub fn matches(&self, labels: &Labels) -> bool {
        if self.is_empty() {
            return false;
        }
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| match r {
                Requirement::In(k, values) => {
                    labels.get(k).is_some_and(|v| values.iter().any(|x| x == v))
                }
                Requirement::NotIn(k, values) => {
                    labels.get(k).is_none_or(|v| values.iter().all(|x| x != v))
                }
                Requirement::Exists(k) => labels.contains_key(k),
                Requirement::DoesNotExist(k) => !labels.contains_key(k),
            })
    }
}

/// What cross-object rules read of a Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentInfo {
    /// Namespace and name.
    pub key: ObjectKey,
    /// `spec.selector`.
    pub selector: Selector,
    /// `spec.template.metadata.labels`.
    pub template_labels: Labels,
    /// `spec.replicas` (the API server defaults it to 1).
    pub replicas: i32,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `status.observedGeneration`.
    pub observed_generation: Option<i64>,
    /// `status.replicas`.
    pub status_replicas: i32,
    /// `status.updatedReplicas`.
    pub updated_replicas: i32,
    /// `status.availableReplicas`.
    pub available_replicas: i32,
}

impl DeploymentInfo {
    /// Reads a Deployment. `namespace` is used when the object carries none (CREATE of an
    /// object without `metadata.namespace`).
    pub fn from_deployment(deployment: &Deployment, namespace: &str) -> Self {
        let spec = deployment.spec.as_ref();
        let status = deployment.status.as_ref();
        Self {
            key: key_of(&deployment.metadata, namespace),
            selector: spec
                .map(|s| Selector::from_label_selector(&s.selector))
                .unwrap_or_default(),
            template_labels: spec
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref())
                .map(Labels::from)
                .unwrap_or_default(),
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            generation: deployment.metadata.generation,
            observed_generation: status.and_then(|s| s.observed_generation),
            status_replicas: status.and_then(|s| s.replicas).unwrap_or(0),
            updated_replicas: status.and_then(|s| s.updated_replicas).unwrap_or(0),
            available_replicas: status.and_then(|s| s.available_replicas).unwrap_or(0),
        }
    }

    /// Fully rolled out and available: the controller has seen the latest spec, every desired
    /// replica runs the current template and is available, and no old replicas remain.
    pub fn is_fully_available(&self) -> bool {
        let observed = match (self.generation, self.observed_generation) {
            (Some(generation), Some(observed)) => observed >= generation,
            (None, _) => true,
            (Some(_), None) => false,
        };
        observed
            && self.updated_replicas == self.replicas
            && self.available_replicas == self.replicas
            && self.status_replicas == self.replicas
    }
}

/// A port as a backend refers to it: by number or by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortRef {
    /// `port.number`.
    Number(i32),
    /// `port.name`.
    Name(Box<str>),
}

/// One port of a Service: what a backend or parent reference can name it by. (`targetPort` is
/// not kept: no rule reads it, and it was a third of every stored port.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortInfo {
    /// `name` (required when a Service has several ports).
    pub name: Option<Box<str>>,
    /// `port`.
    pub port: i32,
}

/// What cross-object rules read of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Namespace and name.
    pub key: ObjectKey,
    /// `spec.selector` (empty when the Service has none).
    pub selector: Labels,
    /// `spec.ports` (a slice, not a `Vec`: collected from an iterator of unknown length, a
    /// `Vec` keeps room for four ports; a Service has one or two).
    pub ports: Box<[ServicePortInfo]>,
    /// `spec.type` (`ClusterIP` when unset); the four types Kubernetes defines are kept without
    /// an allocation of their own.
    pub service_type: Cow<'static, str>,
}

impl ServiceInfo {
    /// Reads a Service.
    pub fn from_service(service: &Service, namespace: &str) -> Self {
        let spec = service.spec.as_ref();
        Self {
            key: key_of(&service.metadata, namespace),
            selector: spec
                .and_then(|s| s.selector.as_ref())
                .map(Labels::from)
                .unwrap_or_default(),
            ports: spec
                .and_then(|s| s.ports.as_ref())
                .into_iter()
                .flatten()
                .map(|p| ServicePortInfo {
                    name: p.name.as_deref().map(Box::from),
                    port: p.port,
                })
                .collect(),
            service_type: match spec.and_then(|s| s.type_.as_deref()) {
                None | Some("ClusterIP") => Cow::Borrowed("ClusterIP"),
                Some("NodePort") => Cow::Borrowed("NodePort"),
                Some("LoadBalancer") => Cow::Borrowed("LoadBalancer"),
                Some("ExternalName") => Cow::Borrowed("ExternalName"),
                Some(other) => Cow::Owned(other.to_owned()),
            },
        }
    }

    /// Whether a backend's port reference names one of this Service's ports.
    pub fn has_port(&self, port: &PortRef) -> bool {
        self.ports.iter().any(|p| match port {
            PortRef::Number(n) => p.port == *n,
            PortRef::Name(name) => p.name.as_deref() == Some(&**name),
        })
    }
}

/// A Service backend of an Ingress path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IngressBackendInfo {
    /// Service name (same namespace as the Ingress).
    pub service: Box<str>,
    /// Port by number or name; `None` when the backend is a resource, not a Service.
    pub port: Option<PortRef>,
}

/// One host + path of an Ingress. Boxed strings, and no allocation at all for the path `/` and
/// the three path types, which nearly every path has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressPathInfo {
    /// `rules[].host`; empty for the catch-all server.
    pub host: Box<str>,
    /// `paths[].path`; `/` when empty, as ingress-nginx treats it.
    pub path: Cow<'static, str>,
    /// `paths[].pathType` (`Prefix`, `Exact`, `ImplementationSpecific`).
    pub path_type: Cow<'static, str>,
    /// The Service backend, when it is one.
    pub backend: Option<IngressBackendInfo>,
}

/// Annotation prefix ingress-nginx reads.
pub const NGINX_ANNOTATION_PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// What cross-object rules read of an Ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressInfo {
    /// Namespace and name.
    pub key: ObjectKey,
    /// `metadata.creationTimestamp` as RFC 3339 (ingress-nginx lets the oldest canary win).
    pub created: Option<Box<str>>,
    /// `spec.ingressClassName`, else the legacy `kubernetes.io/ingress.class` annotation.
    pub class: Option<Box<str>>,
    /// The `nginx.ingress.kubernetes.io/*` annotations, keyed without the prefix.
    pub nginx_annotations: Labels,
    /// Every host + path (exactly sized: pushed one by one, a `Vec` keeps room for four).
    pub paths: Box<[IngressPathInfo]>,
    /// `spec.defaultBackend` (boxed: few Ingresses have one, and inline it took 48 bytes in
    /// every one).
    pub default_backend: Option<Box<IngressBackendInfo>>,
    /// The release that manages the Ingress, when it carries a release tool's marker
    /// ([`release_of`]): objects of one release are installed and uninstalled together.
    pub release: Option<Box<str>>,
}

impl IngressInfo {
    /// Reads an Ingress.
    pub fn from_ingress(ingress: &Ingress, namespace: &str) -> Self {
        let spec = ingress.spec.as_ref();
        let annotations = ingress.metadata.annotations.as_ref();
        let class = spec
            .and_then(|s| s.ingress_class_name.as_deref())
            .or_else(|| {
                annotations.and_then(|a| a.get("kubernetes.io/ingress.class").map(String::as_str))
            })
            .map(Box::from);
        let nginx_annotations = annotations
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                k.strip_prefix(NGINX_ANNOTATION_PREFIX)
                    .map(|short| (short, v))
            })
            .collect();
        let mut paths = Vec::new();
        for rule in spec.and_then(|s| s.rules.as_ref()).into_iter().flatten() {
            let host: Box<str> = rule.host.as_deref().unwrap_or_default().into();
            for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
                paths.push(IngressPathInfo {
                    host: host.clone(),
                    path: match path.path.as_deref() {
                        None | Some("") | Some("/") => Cow::Borrowed("/"),
                        Some(raw) => Cow::Owned(raw.to_owned()),
                    },
                    path_type: match path.path_type.as_str() {
                        "Prefix" => Cow::Borrowed("Prefix"),
                        "Exact" => Cow::Borrowed("Exact"),
                        "ImplementationSpecific" => Cow::Borrowed("ImplementationSpecific"),
                        other => Cow::Owned(other.to_owned()),
                    },
                    backend: backend_info(&path.backend),
                });
            }
        }
        Self {
            key: key_of(&ingress.metadata, namespace),
            created: created_of(&ingress.metadata),
            class,
            nginx_annotations,
            paths: paths.into_boxed_slice(),
            default_backend: spec
                .and_then(|s| s.default_backend.as_ref())
                .and_then(backend_info)
                .map(Box::new),
            release: release_of(&ingress.metadata).map(String::into_boxed_str),
        }
    }

    /// Value of an ingress-nginx annotation, by its name without the prefix.
    pub fn nginx(&self, name: &str) -> Option<&str> {
        self.nginx_annotations.get(name)
    }

    /// Every Service this Ingress routes to.
    pub fn backend_services(&self) -> impl Iterator<Item = &str> {
        self.paths
            .iter()
            .filter_map(|p| p.backend.as_ref())
            .chain(self.default_backend.as_deref())
            .map(|b| &*b.service)
    }
}

fn backend_info(backend: &IngressBackend) -> Option<IngressBackendInfo> {
    backend.service.as_ref().map(|s| IngressBackendInfo {
        service: s.name.as_str().into(),
        port: s.port.as_ref().and_then(|p| {
            p.number
                .map(PortRef::Number)
                .or_else(|| p.name.as_deref().map(|n| PortRef::Name(n.into())))
        }),
    })
}

/// What rules read of an IngressClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressClassInfo {
    /// Name of the class.
    pub name: String,
    /// `spec.controller` (`k8s.io/ingress-nginx` for ingress-nginx).
    pub controller: String,
    /// Annotated `ingressclass.kubernetes.io/is-default-class: "true"`.
    pub is_default: bool,
}

impl IngressClassInfo {
    /// Reads an IngressClass.
    pub fn from_ingress_class(class: &IngressClass) -> Self {
        Self {
            name: class.metadata.name.clone().unwrap_or_default(),
            controller: class
                .spec
                .as_ref()
                .and_then(|s| s.controller.clone())
                .unwrap_or_default(),
            is_default: class
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("ingressclass.kubernetes.io/is-default-class"))
                .is_some_and(|v| v == "true"),
        }
    }
}

/// Where an HTTPRoute attaches: one `parentRefs` entry with its defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteParent {
    /// The parent object: `group/kind/namespace/name` (usually a Gateway). Shared: the store
    /// keeps one copy per parent for all the routes attached to it.
    pub parent: Arc<str>,
    /// `sectionName`: one listener; `None` for every listener of the parent.
    pub section: Option<String>,
    /// `port`: the parent's listeners on that port; `None` for any.
    pub port: Option<i64>,
    /// A controller reported `Accepted: False` for this parentRef and the route's current
    /// generation (`status.parents`): the route does not attach there.
    pub rejected: bool,
}

impl RouteParent {
    /// Whether both refer to at least one listener in common (same parent, and section and port
    /// equal where both name one).
    pub fn overlaps(&self, other: &RouteParent) -> bool {
        fn compatible<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
        }
        self.parent == other.parent
            && compatible(&self.section, &other.section)
            && compatible(&self.port, &other.port)
    }

    /// `(group, kind, namespace, name)` of the parent.
    pub fn parts(&self) -> (&str, &str, &str, &str) {
        let mut parts = self.parent.splitn(4, '/');
        let mut next = || parts.next().unwrap_or("");
        (next(), next(), next(), next())
    }

    /// Whether the parent is a Service: a mesh route (GEP-1294).
    pub fn is_service(&self) -> bool {
        matches!(self.parts(), ("", "Service", _, _))
    }

    /// Whether the parent is a Gateway (`gateway.networking.k8s.io`).
    pub fn is_gateway(&self) -> bool {
        matches!(self.parts(), ("gateway.networking.k8s.io", "Gateway", _, _))
    }
}

/// One match of a stored route, reduced to two fingerprints: which requests it selects (its
/// canonical text, `gateway::HttpRouteMatch::canonical`) and what the route does with them
/// (`gateway::HttpRouteRule::action_fingerprint` of its rule). Fingerprints instead of texts
/// keep stored routes small; two different texts sharing a 64-bit fingerprint is far less
/// likely than any other error in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteMatch {
    /// Fingerprint of the canonical match text.
    pub requests: u64,
    /// Fingerprint of what the matching rule does.
    pub action: u64,
}

/// What the store keeps of an HTTPRoute: what decides which route a request goes to when two
/// routes could take it (the Gateway API's precedence) and whether they would treat it alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRouteInfo {
    /// Namespace and name.
    pub key: ObjectKey,
    /// `metadata.creationTimestamp` as RFC 3339 (between identical matches the oldest route
    /// wins); `None` for a route being created.
    pub created: Option<Box<str>>,
    /// `spec.parentRefs`.
    pub parents: Box<[RouteParent]>,
    /// `spec.hostnames`; empty means every hostname of the listener.
    pub hostnames: Box<[String]>,
    /// Every match of every rule, by `requests`, without repeats: of two rules with an
    /// identical match the first one in list order takes the requests, so its action is kept.
    /// (Slices rather than `Vec`s here and in the other stored objects: exactly sized, where a
    /// `Vec` built by pushing keeps room for four.)
    pub matches: Box<[RouteMatch]>,
}

impl HttpRouteInfo {
    /// Reads what the store keeps of an HTTPRoute, `status.parents` included: a route a
    /// controller rejected does not attach, whatever its spec says.
    pub fn from_route(route: &HttpRoute, namespace: &str) -> Self {
        let own_namespace = route.metadata.namespace.as_deref().unwrap_or(namespace);
        let mut matches: Vec<RouteMatch> = Vec::new();
        for rule in &route.spec.rules {
            let action = rule.action_fingerprint(own_namespace);
            for text in rule.match_keys() {
                let requests = text_fingerprint(&text);
                if !matches.iter().any(|m| m.requests == requests) {
                    matches.push(RouteMatch { requests, action });
                }
            }
        }
        matches.sort_by_key(|m| m.requests);
        Self {
            key: key_of(&route.metadata, namespace),
            created: created_of(&route.metadata),
            parents: route
                .spec
                .parent_refs
                .iter()
                .map(|p| RouteParent {
                    parent: p.parent_key(own_namespace).into(),
                    section: p.section_name.clone(),
                    port: p.port,
                    rejected: route.rejected_by_status(p, own_namespace),
                })
                .collect(),
            hostnames: route.spec.hostnames.clone().into_boxed_slice(),
            matches: matches.into_boxed_slice(),
        }
    }

    /// The action for a match, when the route has it.
    pub fn action_for(&self, requests: u64) -> Option<u64> {
        self.matches
            .binary_search_by_key(&requests, |m| m.requests)
            .ok()
            .map(|at| self.matches[at].action)
    }

    /// The hostnames under which the store indexes this route on `parent`, each exactly as
    /// written; `""` stands for "no hostnames" (every hostname of the listener). Mesh routes
    /// are indexed under `""` alone: GEP-1294 says meshes infer nothing from `hostnames`, so
    /// every route of a Service competes whatever hostnames it names.
    pub fn hostname_keys_on(&self, parent: &RouteParent) -> Vec<&str> {
        if self.hostnames.is_empty() || parent.is_service() {
            vec![""]
        } else {
            self.hostnames.iter().map(String::as_str).collect()
        }
    }
}

/// Which namespaces a listener takes routes from (`allowedRoutes.namespaces`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteNamespaces {
    /// `from: Same` (the default): the Gateway's own namespace.
    Same,
    /// `from: All`.
    All,
    /// `from: Selector`: namespaces whose labels match.
    Selector(Selector),
    /// A value this reading does not know: treated as "may allow".
    Other,
}

/// Whether a listener takes HTTPRoutes (`allowedRoutes.kinds`, else its protocol's kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRouteKind {
    /// It does.
    Allowed,
    /// Its protocol (`TLS`, `TCP`, `UDP`) carries other route kinds.
    WrongProtocol(&'static str),
    /// `allowedRoutes.kinds` lists kinds without HTTPRoute.
    NotListed,
    /// An implementation-specific protocol: unknown.
    Unknown,
}

/// One listener of a Gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    /// `name` (what a parentRef's `sectionName` names).
    pub name: Box<str>,
    /// `port`.
    pub port: i64,
    /// `hostname`; `None` for any.
    pub hostname: Option<Box<str>>,
    /// `allowedRoutes.namespaces`.
    pub namespaces: RouteNamespaces,
    /// Whether HTTPRoutes may attach.
    pub http_routes: HttpRouteKind,
}

/// What rules read of a Gateway: its listeners, which decide which routes attach where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayInfo {
    /// Namespace and name.
    pub key: ObjectKey,
    /// `spec.listeners` (exactly sized: a `Vec` collected from the JSON array's iterator keeps
    /// room for four).
    pub listeners: Box<[ListenerInfo]>,
}

impl GatewayInfo {
    /// Reads a Gateway (`gateway.networking.k8s.io` v1 or v1beta1).
    pub fn from_value(gateway: &serde_json::Value, namespace: &str) -> Self {
        let meta = &gateway["metadata"];
        let listeners = gateway["spec"]["listeners"]
            .as_array()
            .into_iter()
            .flatten()
            .map(ListenerInfo::from_value)
            .collect();
        Self {
            key: ObjectKey::new(
                meta["namespace"].as_str().unwrap_or(namespace),
                meta["name"].as_str().unwrap_or_default(),
            ),
            listeners,
        }
    }
}

impl ListenerInfo {
    fn from_value(listener: &serde_json::Value) -> Self {
        let protocol = listener["protocol"].as_str().unwrap_or_default();
        let allowed = &listener["allowedRoutes"];
        let namespaces = match allowed["namespaces"]["from"].as_str() {
            None | Some("Same") => RouteNamespaces::Same,
            Some("All") => RouteNamespaces::All,
            Some("Selector") => {
                let selector: LabelSelector =
                    serde_json::from_value(allowed["namespaces"]["selector"].clone())
                        .unwrap_or_default();
                let selector = Selector::from_label_selector(&selector);
                // An empty label selector selects every namespace (Kubernetes semantics).
                if selector.is_empty() {
                    RouteNamespaces::All
                } else {
                    RouteNamespaces::Selector(selector)
                }
            }
            Some(_) => RouteNamespaces::Other,
        };
        // HTTP and HTTPS listeners carry HTTPRoutes; TLS, TCP and UDP ones carry their own
        // route kinds; anything else is implementation-specific (`example.com/PROTOCOL`).
        let protocol_fits = match protocol {
            "HTTP" | "HTTPS" => Ok(()),
            "TLS" => Err(Some("TLS")),
            "TCP" => Err(Some("TCP")),
            "UDP" => Err(Some("UDP")),
            _ => Err(None),
        };
        let kinds = allowed["kinds"].as_array().filter(|k| !k.is_empty());
        let listed = kinds.map(|kinds| {
            kinds.iter().any(|k| {
                k["kind"] == "HTTPRoute"
                    && k["group"]
                        .as_str()
                        .is_none_or(|g| g == "gateway.networking.k8s.io")
            })
        });
        let http_routes = match (protocol_fits, listed) {
            (_, Some(false)) => HttpRouteKind::NotListed,
            (Err(Some(protocol)), _) => HttpRouteKind::WrongProtocol(protocol),
            (Ok(()), _) => HttpRouteKind::Allowed,
            (Err(None), _) => HttpRouteKind::Unknown,
        };
        Self {
            name: listener["name"].as_str().unwrap_or_default().into(),
            port: listener["port"].as_i64().unwrap_or_default(),
            hostname: listener["hostname"]
                .as_str()
                .filter(|h| !h.is_empty())
                .map(Into::into),
            namespaces,
            http_routes,
        }
    }
}

/// A ReferenceGrant `from` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantFrom {
    /// `group`.
    pub group: String,
    /// `kind`.
    pub kind: String,
    /// `namespace`.
    pub namespace: String,
}

/// A ReferenceGrant `to` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantTo {
    /// `group` (empty for core).
    pub group: String,
    /// `kind`.
    pub kind: String,
    /// `name`, when the grant is for one object only.
    pub name: Option<String>,
}

/// What rules read of a ReferenceGrant (it lives in the namespace it grants access to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceGrantInfo {
    /// Namespace and name.
    pub key: ObjectKey,
    /// Who may refer.
    pub from: Vec<GrantFrom>,
    /// To what.
    pub to: Vec<GrantTo>,
}

impl ReferenceGrantInfo {
    /// Whether a `from_kind` in `from_namespace` may refer to `to_kind` `to_name` here.
    pub fn permits(
        &self,
        from_group: &str,
        from_kind: &str,
        from_namespace: &str,
        to_group: &str,
        to_kind: &str,
        to_name: &str,
    ) -> bool {
        self.from
            .iter()
            .any(|f| f.group == from_group && f.kind == from_kind && f.namespace == from_namespace)
            && self.to.iter().any(|t| {
                t.group == to_group
                    && t.kind == to_kind
                    && t.name.as_deref().is_none_or(|n| n == to_name)
            })
    }
}

impl ReferenceGrantInfo {
    /// Reads a ReferenceGrant (`gateway.networking.k8s.io`, v1beta1 or v1).
    pub fn from_value(grant: &serde_json::Value, namespace: &str) -> Self {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let meta = &grant["metadata"];
        let list = |field: &str| grant["spec"][field].as_array().cloned().unwrap_or_default();
        Self {
            key: ObjectKey::new(
                meta["namespace"].as_str().unwrap_or(namespace),
                text(&meta["name"]),
            ),
            from: list("from")
                .iter()
                .map(|f| GrantFrom {
                    group: text(&f["group"]),
                    kind: text(&f["kind"]),
                    namespace: text(&f["namespace"]),
                })
                .collect(),
            to: list("to")
                .iter()
                .map(|t| GrantTo {
                    group: text(&t["group"]),
                    kind: text(&t["kind"]),
                    name: t["name"].as_str().map(str::to_owned),
                })
                .collect(),
        }
    }
}

/// The release an object belongs to, read from the markers release tools write, as one string
/// that is equal for objects of the same release (first marker found, in this order):
/// - Helm 3/4 (and Flux's helm-controller): annotations `meta.helm.sh/release-namespace` and
///   `meta.helm.sh/release-name`;
/// - Argo CD annotation tracking: `argocd.argoproj.io/tracking-id` (`app:group/kind:ns/name`),
///   the application part;
/// - Flux kustomize-controller: labels `kustomize.toolkit.fluxcd.io/namespace` and `/name`;
/// - kubectl ApplySets: label `applyset.kubernetes.io/part-of`;
/// - Argo CD label tracking and Helm charts' convention: label `app.kubernetes.io/instance`.
pub fn release_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<String> {
    let annotation = |key: &str| {
        meta.annotations
            .as_ref()?
            .get(key)
            .filter(|v| !v.is_empty())
    };
    let label = |key: &str| meta.labels.as_ref()?.get(key).filter(|v| !v.is_empty());
    if let Some(name) = annotation("meta.helm.sh/release-name") {
        let namespace = annotation("meta.helm.sh/release-namespace").map_or("", String::as_str);
        return Some(format!("Helm release {namespace}/{name}"));
    }
    if let Some(id) = annotation("argocd.argoproj.io/tracking-id") {
        let app = id.split_once(':').map_or(id.as_str(), |(app, _)| app);
        return Some(format!("Argo CD application {app}"));
    }
    if let Some(name) = label("kustomize.toolkit.fluxcd.io/name") {
        let namespace = label("kustomize.toolkit.fluxcd.io/namespace").map_or("", String::as_str);
        return Some(format!("Flux Kustomization {namespace}/{name}"));
    }
    if let Some(set) = label("applyset.kubernetes.io/part-of") {
        return Some(format!("ApplySet {set}"));
    }
    label("app.kubernetes.io/instance").map(|instance| format!("instance {instance}"))
}

/// `metadata.creationTimestamp` as RFC 3339 text (the controllers' "oldest wins" orderings
/// compare it), `None` for an object being created. Boxed: the formatted `String` keeps the
/// spare room formatting grew it by.
fn created_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<Box<str>> {
    meta.creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string().into_boxed_str())
}

fn key_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    namespace: &str,
) -> ObjectKey {
    ObjectKey {
        namespace: meta.namespace.as_deref().unwrap_or(namespace).into(),
        name: meta.name.as_deref().unwrap_or_default().into(),
    }
}

/// Shared, immutable object slices as the store hands them out.
pub type Shared<T> = Arc<T>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selector_semantics() {
        let selector: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "track", "operator": "In", "values": ["stable", "canary"]},
                {"key": "legacy", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        let selector = Selector::from_label_selector(&selector);
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(selector.matches(&labels(&[("app", "web"), ("track", "canary")])));
        assert!(!selector.matches(&labels(&[("app", "web")])));
        assert!(!selector.matches(&labels(&[
            ("app", "web"),
            ("track", "canary"),
            ("legacy", "1")
        ])));
        assert!(!Selector::default().matches(&labels(&[("app", "web")])));
    }

    /// `map_selects` answers exactly as building a `Selector` from the map would.
    #[test]
    fn map_selects_agrees_with_a_built_selector() {
        let maps = [
            Labels::new(),
            Labels::from([("app", "web")]),
            Labels::from([("app", "web"), ("version", "v2")]),
            Labels::from([("app", "api")]),
        ];
        for selector in &maps {
            for labels in &maps {
                assert_eq!(
                    Selector::map_selects(selector, labels),
                    Selector::from_labels(selector).matches(labels),
                    "{selector:?} selecting {labels:?}"
                );
            }
        }
    }

    #[test]
    fn ingress_reading() {
        let ingress: Ingress = serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web-canary", "namespace": "shop",
                "annotations": {"nginx.ingress.kubernetes.io/canary": "true", "kubernetes.io/ingress.class": "nginx"}},
            "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [
                {"path": "", "pathType": "Prefix", "backend": {"service": {"name": "web-v2", "port": {"number": 80}}}}
            ]}}]}
        }))
        .unwrap();
        let info = IngressInfo::from_ingress(&ingress, "ignored");
        assert_eq!(info.key, ObjectKey::new("shop", "web-canary"));
        assert_eq!(info.class.as_deref(), Some("nginx"));
        assert_eq!(info.nginx("canary"), Some("true"));
        assert_eq!(info.paths[0].path, "/");
        assert_eq!(info.backend_services().collect::<Vec<_>>(), vec!["web-v2"]);
    }

    #[test]
    fn deployment_availability() {
        let deployment: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": 3},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "version": "v2"}}, "spec": {"containers": []}}},
            "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
        }))
        .unwrap();
        let info = DeploymentInfo::from_deployment(&deployment, "shop");
        assert!(info.is_fully_available());
        let mut rolling = info.clone();
        rolling.observed_generation = Some(2);
        assert!(!rolling.is_fully_available());
    }
}
