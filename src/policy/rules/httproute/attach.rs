//! Where an HTTPRoute attaches: which listeners of each parent take it, and the hostnames it
//! serves on each. Follows the Gateway API's attachment rules (apis/v1/shared_types.go
//! `ParentReference`, gateway_types.go `Listener`, `AllowedRoutes`, httproute_types.go
//! `HTTPRouteSpec.Hostnames`):
//! - `sectionName` selects the listener of that name, `port` the listeners on that port; both
//!   must hold when both are set. No such listener: `Accepted: False`, `NoMatchingParent`.
//! - A listener takes the route only if `allowedRoutes.namespaces` admits the route's namespace
//!   (`Same`, the default: the Gateway's own; `All`; `Selector`: the namespace's labels, which
//!   always include `kubernetes.io/metadata.name`) and its kinds include HTTPRoute (by default
//!   HTTP and HTTPS listeners take HTTPRoutes; TLS, TCP and UDP ones do not). Otherwise
//!   `NotAllowedByListeners`.
//! - The route's hostnames must intersect the listener's hostname, else
//!   `NoMatchingListenerHostname`; the intersection is what the route serves there.
//!
//! A parent this checker cannot read (no Gateway in the view, a ListenerSet or other kind) is
//! taken to attach as its parentRef says: only what is known not to attach is set aside. Mesh
//! routes (a Service parent, GEP-1294) attach to the Service's ports; meshes infer nothing from
//! `hostnames`.

use crate::policy::objects::{
    GatewayInfo, HttpRouteKind, Labels, ListenerInfo, RouteNamespaces, RouteParent,
};
use crate::policy::view::ClusterView;

use crate::policy::gateway::served_hostnames;

/// The label the API server puts on every Namespace (since Kubernetes 1.22), so selectors on it
/// hold even for a namespace this view has not seen.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The listeners of one parent that take a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listeners {
    /// The parent cannot be read here: the route is taken to attach as its parentRef says,
    /// with the hostnames as written.
    Unknown,
    /// A mesh route's Service: it attaches to the Service's ports, whatever its hostnames.
    Service,
    /// Listeners of a readable Gateway that take the route, each with the hostnames the route
    /// serves there (`""`: any).
    Known(Vec<AttachedListener>),
}

/// One listener a route attaches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedListener {
    /// The listener's `name`.
    pub name: String,
    /// The hostnames the route serves on it.
    pub hostnames: Vec<String>,
}

/// Why a parentRef is known not to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The reason a controller reports in `Accepted: False`.
    pub reason: &'static str,
    /// What is missing or wrong, for a message.
    pub detail: String,
}

/// Whether a route in `namespace` with `hostnames` attaches through `parent`.
pub fn attach(
    view: &dyn ClusterView,
    namespace: &str,
    hostnames: &[String],
    parent: &RouteParent,
) -> Result<Listeners, Rejection> {
    let (_, _, parent_namespace, name) = parent.parts();
    if parent.is_service() {
        return attach_to_service(view, parent_namespace, name, parent);
    }
    if !parent.is_gateway() {
        return Ok(Listeners::Unknown);
    }
    match view.gateway(parent_namespace, name) {
        None => Ok(Listeners::Unknown),
        Some(gateway) => attach_to_gateway(view, namespace, hostnames, parent, &gateway),
    }
}

fn attach_to_service(
    view: &dyn ClusterView,
    namespace: &str,
    name: &str,
    parent: &RouteParent,
) -> Result<Listeners, Rejection> {
    let Some(service) = view.service(namespace, name) else {
        return Err(Rejection {
            reason: "NoMatchingParent",
            detail: format!("Service {namespace}/{name} does not exist"),
        });
    };
    // `port` names a Service port; `sectionName` a port name (shared_types.go ParentReference).
    let port_ok = parent
        .port
        .is_none_or(|p| service.ports.iter().any(|sp| i64::from(sp.port) == p));
    let section_ok = parent
        .section
        .as_deref()
        .is_none_or(|s| service.ports.iter().any(|sp| sp.name.as_deref() == Some(s)));
    if port_ok && section_ok {
        return Ok(Listeners::Service);
    }
    let ports: Vec<String> = service
        .ports
        .iter()
        .map(|p| match &p.name {
            Some(n) => format!("{n} {}", p.port),
            None => p.port.to_string(),
        })
        .collect();
    Err(Rejection {
        reason: "NoMatchingParent",
        detail: format!(
            "the Service has no port {} (ports: {})",
            wanted(parent),
            ports.join(", ")
        ),
    })
}

/// The section and port a parentRef asks for, as a message names them.
fn wanted(parent: &RouteParent) -> String {
    match (&parent.section, parent.port) {
        (Some(s), Some(p)) => format!("{s:?} on port {p}"),
        (Some(s), None) => format!("{s:?}"),
        (None, Some(p)) => p.to_string(),
        (None, None) => String::new(),
    }
}

fn attach_to_gateway(
    view: &dyn ClusterView,
    namespace: &str,
    hostnames: &[String],
    parent: &RouteParent,
    gateway: &GatewayInfo,
) -> Result<Listeners, Rejection> {
    let selected: Vec<&ListenerInfo> = gateway
        .listeners
        .iter()
        .filter(|l| parent.section.as_deref().is_none_or(|s| s == &*l.name))
        .filter(|l| parent.port.is_none_or(|p| p == l.port))
        .collect();
    if selected.is_empty() {
        return Err(Rejection {
            reason: "NoMatchingParent",
            detail: no_matching_listener(parent, gateway),
        });
    }
    let mut attached = Vec::new();
    let mut refusals = Vec::new();
    let mut hostname_only = true;
    for listener in selected {
        if let Some(why) = refuses(view, namespace, gateway, listener) {
            hostname_only = false;
            refusals.push(why);
            continue;
        }
        let served = served_hostnames(listener.hostname.as_deref(), hostnames);
        if served.is_empty() {
            refusals.push(format!(
                "listener {} serves {} only, none of the route's hostnames ({})",
                listener.name,
                listener.hostname.as_deref().unwrap_or("*"),
                hostnames.join(", ")
            ));
            continue;
        }
        attached.push(AttachedListener {
            name: listener.name.to_string(),
            hostnames: served,
        });
    }
    if attached.is_empty() {
        return Err(Rejection {
            reason: if hostname_only {
                "NoMatchingListenerHostname"
            } else {
                "NotAllowedByListeners"
            },
            detail: refusals.join("; "),
        });
    }
    Ok(Listeners::Known(attached))
}

fn no_matching_listener(parent: &RouteParent, gateway: &GatewayInfo) -> String {
    let listeners: Vec<String> = gateway
        .listeners
        .iter()
        .map(|l| format!("{} port {}", l.name, l.port))
        .collect();
    let has = if listeners.is_empty() {
        "no listeners".to_owned()
    } else {
        format!("listeners: {}", listeners.join(", "))
    };
    match (&parent.section, parent.port) {
        (Some(section), Some(port)) if gateway.listeners.iter().any(|l| *l.name == **section) => {
            format!("its listener {section} is not on port {port} ({has})")
        }
        (Some(section), _) => format!("it has no listener named {section} ({has})"),
        (None, Some(port)) => format!("it has no listener on port {port} ({has})"),
        (None, None) => "it has no listeners".to_owned(),
    }
}

/// Why `listener` does not take HTTPRoutes from `namespace`, if it does not (as far as known).
fn refuses(
    view: &dyn ClusterView,
    namespace: &str,
    gateway: &GatewayInfo,
    listener: &ListenerInfo,
) -> Option<String> {
    match listener.http_routes {
        HttpRouteKind::WrongProtocol(protocol) => {
            return Some(format!(
                "listener {} is {protocol}, which takes no HTTPRoutes",
                listener.name
            ))
        }
        HttpRouteKind::NotListed => {
            return Some(format!(
                "listener {}'s allowedRoutes.kinds do not include HTTPRoute",
                listener.name
            ))
        }
        HttpRouteKind::Allowed | HttpRouteKind::Unknown => {}
    }
    match &listener.namespaces {
        RouteNamespaces::Same if *gateway.key.namespace != *namespace => Some(format!(
            "listener {} takes routes from namespace {} only (allowedRoutes.namespaces.from: \
             Same)",
            listener.name, gateway.key.namespace
        )),
        RouteNamespaces::Selector(selector) => {
            let known = view.namespace_labels(namespace);
            let labels = with_name_label(known.as_ref(), namespace);
            // Without the Namespace only its name label is known: a selector it does not
            // satisfy may still hold on the labels this view has not seen.
            (known.is_some() && !selector.matches(&labels)).then(|| {
                format!(
                    "listener {}'s allowedRoutes.namespaces.selector does not select namespace \
                     {namespace}",
                    listener.name
                )
            })
        }
        RouteNamespaces::Same | RouteNamespaces::All | RouteNamespaces::Other => None,
    }
}

/// A namespace's labels with the name label the API server adds to every Namespace.
fn with_name_label(labels: Option<&Labels>, namespace: &str) -> Labels {
    let labels = labels.into_iter().flat_map(Labels::iter);
    labels
        .filter(|(k, _)| *k != NAMESPACE_NAME_LABEL)
        .chain([(NAMESPACE_NAME_LABEL, namespace)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use serde_json::json;

    fn parent(kind: &str, name: &str, section: Option<&str>, port: Option<i64>) -> RouteParent {
        let group = if kind == "Service" {
            ""
        } else {
            "gateway.networking.k8s.io"
        };
        RouteParent {
            parent: format!("{group}/{kind}/infra/{name}").into(),
            section: section.map(str::to_owned),
            port,
            rejected: false,
        }
    }

    fn store() -> Store {
        let store = Store::offline();
        for object in [
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                "metadata": {"namespace": "infra", "name": "gw"},
                "spec": {"listeners": [
                    {"name": "http", "port": 80, "protocol": "HTTP",
                     "allowedRoutes": {"namespaces": {"from": "Selector",
                        "selector": {"matchLabels": {"team": "shop"}}}}},
                    {"name": "web", "port": 8080, "protocol": "example.com/QUIC",
                     "hostname": "*.example.com", "allowedRoutes": {"namespaces": {"from": "All"}}}]}}),
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": "infra", "name": "echo"},
                "spec": {"ports": [{"name": "http", "port": 80}, {"name": "grpc", "port": 7070}]}}),
            json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "payments", "labels": {"team": "payments"}}}),
        ] {
            store.apply_object(&object).unwrap();
        }
        store
    }

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|h| h.to_string()).collect()
    }

    #[test]
    fn gateway_listeners_decide_what_attaches() {
        let store = store();
        // Both listeners; the selector cannot be judged for a namespace the view has not seen,
        // so it may attach (only what is known not to attach is set aside).
        let any = attach(&store, "shop", &[], &parent("Gateway", "gw", None, None)).unwrap();
        assert_eq!(
            any,
            Listeners::Known(vec![
                AttachedListener {
                    name: "http".into(),
                    hostnames: hosts(&[""])
                },
                AttachedListener {
                    name: "web".into(),
                    hostnames: hosts(&["*.example.com"])
                },
            ])
        );
        // A known namespace whose labels the selector does not match: only the other listener.
        let payments = attach(
            &store,
            "payments",
            &hosts(&["pay.example.com"]),
            &parent("Gateway", "gw", None, None),
        )
        .unwrap();
        assert_eq!(
            payments,
            Listeners::Known(vec![AttachedListener {
                name: "web".into(),
                hostnames: hosts(&["pay.example.com"])
            }])
        );
        let rejected = attach(
            &store,
            "payments",
            &[],
            &parent("Gateway", "gw", Some("http"), None),
        )
        .unwrap_err();
        assert_eq!(rejected.reason, "NotAllowedByListeners");
        let wrong_port = attach(
            &store,
            "shop",
            &[],
            &parent("Gateway", "gw", Some("http"), Some(8080)),
        )
        .unwrap_err();
        assert_eq!(wrong_port.reason, "NoMatchingParent");
        assert!(
            wrong_port
                .detail
                .contains("its listener http is not on port 8080"),
            "{wrong_port:?}"
        );
        let no_host = attach(
            &store,
            "shop",
            &hosts(&["example.org"]),
            &parent("Gateway", "gw", Some("web"), None),
        )
        .unwrap_err();
        assert_eq!(no_host.reason, "NoMatchingListenerHostname");
        // Not in the view, or a kind the store does not keep: taken to attach as written.
        for unknown in [
            parent("Gateway", "elsewhere", Some("nope"), None),
            parent("ListenerSet", "gw", Some("nope"), None),
        ] {
            assert_eq!(
                attach(&store, "shop", &[], &unknown).unwrap(),
                Listeners::Unknown
            );
        }
    }

    #[test]
    fn a_mesh_parent_attaches_to_the_service_ports() {
        let store = store();
        for ok in [
            parent("Service", "echo", None, None),
            parent("Service", "echo", None, Some(7070)),
            parent("Service", "echo", Some("grpc"), None),
        ] {
            assert_eq!(
                attach(&store, "shop", &hosts(&["ignored"]), &ok).unwrap(),
                Listeners::Service
            );
        }
        let no_port = attach(
            &store,
            "shop",
            &[],
            &parent("Service", "echo", None, Some(9090)),
        )
        .unwrap_err();
        assert!(
            no_port
                .detail
                .contains("no port 9090 (ports: http 80, grpc 7070)"),
            "{no_port:?}"
        );
        let missing =
            attach(&store, "shop", &[], &parent("Service", "nope", None, None)).unwrap_err();
        assert_eq!(missing.detail, "Service infra/nope does not exist");
    }
}
