//! The `ingressCanary` rule: ingress-nginx canary Ingresses and the main Ingresses they need.
//!
//! How ingress-nginx wires a canary (internal/ingress/controller/controller.go, verified in the
//! source):
//! - Ingresses are processed oldest first (`sortIngressSlice` in internal/ingress/controller/
//!   store/store.go: creationTimestamp ascending, ties by `namespace/name` descending).
//! - Every Service+port becomes one upstream named `namespace-service-port`; the first Ingress
//!   to mention it creates it, and a canary Ingress marks it `NoServer` with its traffic policy
//!   (`createUpstreams`). A main path whose upstream is `NoServer` is skipped
//!   (`getBackendServers`), and canary Ingresses get no servers or locations (`createServers`).
//! - `mergeAlternativeBackends` attaches each canary path to the main location with the same
//!   host, path *and* pathType. If a path finds none, the canary upstream is deleted ("unable to
//!   find real backend for alternative backend ... Deleting."), which disables it for every
//!   path using that Service+port. If the canary's upstream is the primary of a location on the
//!   host, nothing is merged ("is primary upstream in Other Ingress").
//! - The alternative is appended to the main *upstream*, so every location routed to the main's
//!   Service+port is split, and the Lua balancer only uses `alternative_backends[1]`
//!   (`route_to_alternative_balancer` in rootfs/etc/nginx/lua/balancer.lua): the first canary
//!   merged (the oldest) is the only one that receives traffic.
//! - The balancer keeps a request on the main when it is affinitized to the main (cookie session
//!   affinity), then evaluates header, cookie and weight in that order.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::Ingress;
use kube::core::admission::Operation;

use crate::policy::config::IngressCanaryRule;
use crate::policy::engine::Context;
use crate::policy::finding::{EvalError, Finding, Severity};
use crate::policy::objects::{IngressBackendInfo, IngressInfo, ObjectKey, PortRef, Shared};
use crate::policy::rules::ingress::annotations::{self, ParsedCanary, HONOURED_ON_CANARY};
use crate::policy::view::{ClusterView, SyncStatus};

/// The rule's key under `rules`.
pub const RULE: &str = "ingressCanary";

/// Every check this rule reports (keys of its `checks` in a policy).
pub const CHECKS: &[&str] = &[
    "canaryValue",
    "notEnabled",
    "unknownAnnotation",
    "weight",
    "weightTotal",
    "header",
    "cookie",
    "noRouting",
    "missingMain",
    "duplicateCanary",
    "sameService",
    "mainBackendElsewhere",
    "sharedMainService",
    "sessionAffinity",
    "ignoredAnnotations",
    "backendService",
    "mainRemoved",
];

/// `spec.controller` of IngressClasses served by ingress-nginx.
pub const NGINX_CONTROLLER: &str = "k8s.io/ingress-nginx";

/// Most host/paths named in one message.
const MAX_LISTED: usize = 4;

/// Evaluates the rule.
pub fn evaluate(ctx: &Context<'_, Ingress>) -> Result<Vec<Finding>, EvalError> {
    let new = ctx
        .object
        .map(|ingress| IngressInfo::from_ingress(ingress, ctx.namespace));
    let old = ctx
        .old_object
        .map(|ingress| IngressInfo::from_ingress(ingress, ctx.namespace));
    let plain_create =
        ctx.operation == Operation::Create && !new.as_ref().is_some_and(mentions_canary);
    let settings = &ctx.rules().ingress_canary;
    if let SyncStatus::NotSynced(reason) = ctx.view.sync_status() {
        if plain_create {
            // A plain Ingress can only break a canary by taking over its Service, which needs
            // the cluster to see; warning on every plain Ingress of a sync until then would
            // be noise.
            return Ok(Vec::new());
        }
        // Which Ingresses count as ingress-nginx's is itself cluster state (IngressClasses),
        // but one naming a class the policy lists as nginx's can have its own annotations read
        // now: a canary value ingress-nginx rejects is wrong whatever else is in the cluster.
        let local = new
            .as_ref()
            .filter(|n| {
                n.class
                    .as_ref()
                    .is_some_and(|class| settings.class_names.contains(class))
            })
            .map(annotation_findings)
            .unwrap_or_default();
        return Err(EvalError::not_synced(reason, local));
    }
    let checker = Checker {
        view: ctx.view,
        settings,
    };
    let mut findings = Vec::new();
    if let Some(new) = &new {
        if let Some(class) = checker.class_of(new) {
            checker.check_written(new, &class, &mut findings);
            checker.check_main_on_canary_service(new, old.as_ref(), &class, &mut findings);
        }
    }
    if let Some(old) = &old {
        if let Some(class) = checker.class_of(old) {
            checker.check_main_removed(&ctx.operation, old, new.as_ref(), &class, &mut findings);
        }
    }
    Ok(findings)
}

/// What the Ingress's own canary annotations say, read as ingress-nginx reads them: values it
/// rejects or changes, and annotation names it does not know. Needs no other object.
fn annotation_findings(new: &IngressInfo) -> Vec<Finding> {
    let parsed = annotations::parse(&new.nginx_annotations);
    let mut findings: Vec<Finding> = parsed
        .issues
        .iter()
        .map(|issue| finding(issue.check, issue.severity, issue.message.clone()))
        .collect();
    for (key, nearest) in annotations::misspelled_keys(&new.nginx_annotations) {
        findings.push(finding(
            "unknownAnnotation",
            Severity::Deny,
            format!(
                "ingress-nginx has no annotation nginx.ingress.kubernetes.io/{key} (did you mean \
                 {nearest}?): it is ignored, so the setting you wrote has no effect; rename it"
            ),
        ));
    }
    findings
}

/// Whether an Ingress carries anything that looks like a canary annotation.
fn mentions_canary(info: &IngressInfo) -> bool {
    info.nginx_annotations
        .keys()
        .any(|key| key.starts_with("canary"))
        || !annotations::misspelled_keys(&info.nginx_annotations).is_empty()
}

fn finding(check: &'static str, severity: Severity, message: String) -> Finding {
    Finding::new(RULE, check, severity, message)
}

/// One nginx location: host (empty for the catch-all server), path and pathType.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Location {
    host: String,
    path: String,
    path_type: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.is_empty() {
            "*"
        } else {
            &self.host
        };
        write!(f, "{host}{} ({})", self.path, self.path_type)
    }
}

/// The locations of an Ingress that have a Service backend, with that backend.
fn service_locations(info: &IngressInfo) -> Vec<(Location, &IngressBackendInfo)> {
    info.paths
        .iter()
        .filter_map(|p| {
            p.backend.as_ref().map(|backend| {
                (
                    Location {
                        host: p.host.clone(),
                        path: p.path.clone(),
                        path_type: p.path_type.clone(),
                    },
                    backend,
                )
            })
        })
        .collect()
}

fn port_text(port: Option<&PortRef>) -> String {
    match port {
        Some(PortRef::Number(n)) => n.to_string(),
        Some(PortRef::Name(name)) => name.clone(),
        None => "?".to_owned(),
    }
}

/// The upstream ingress-nginx builds for a backend (`upstreamName`: namespace-service-port).
fn upstream(namespace: &str, backend: &IngressBackendInfo) -> String {
    format!(
        "{namespace}-{}-{}",
        backend.service,
        port_text(backend.port.as_ref())
    )
}

/// ingress-nginx's processing order: true when `a` is handled before `b` (`sortIngressSlice`).
/// An object without a creation timestamp is being created, so it comes last.
fn processed_before(a: &IngressInfo, b: &IngressInfo) -> bool {
    match (&a.created, &b.created) {
        (Some(x), Some(y)) if x != y => x < y,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        _ => a.key.to_string() > b.key.to_string(),
    }
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let all: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if all.len() > MAX_LISTED {
        format!(
            "{} and {} more",
            all[..MAX_LISTED].join(", "),
            all.len() - MAX_LISTED
        )
    } else {
        all.join(", ")
    }
}

struct Checker<'a> {
    view: &'a dyn ClusterView,
    settings: &'a IngressCanaryRule,
}

/// Another Ingress at a location, read once.
struct Neighbour {
    info: Shared<IngressInfo>,
    canary: bool,
}

impl Checker<'_> {
    /// The ingress class ingress-nginx serves this Ingress under, or `None` when another
    /// controller serves it (such Ingresses are not judged).
    fn class_of(&self, info: &IngressInfo) -> Option<String> {
        let by_name = |name: &str| match self.view.ingress_class(name) {
            Some(class) => class.controller == NGINX_CONTROLLER,
            None => self.settings.class_names.iter().any(|n| n == name),
        };
        match &info.class {
            Some(name) => by_name(name).then(|| name.clone()),
            // The DefaultIngressClass admission plugin fills the class in on CREATE; an Ingress
            // without one belongs to the default class, if that is ingress-nginx.
            None => self
                .view
                .default_ingress_classes()
                .into_iter()
                .find(|c| {
                    c.controller == NGINX_CONTROLLER || self.settings.class_names.contains(&c.name)
                })
                .map(|c| c.name.clone()),
        }
    }

    /// Other Ingresses of `class` with exactly this location (`exclude` is the object under
    /// review, whose stored version the view may still hold).
    fn at_location(&self, location: &Location, class: &str, exclude: &ObjectKey) -> Vec<Neighbour> {
        self.view
            .ingresses_at(&location.host, &location.path)
            .into_iter()
            .filter(|other| other.key != *exclude)
            .filter(|other| {
                other.paths.iter().any(|p| {
                    p.host == location.host
                        && p.path == location.path
                        && p.path_type == location.path_type
                        && p.backend.is_some()
                })
            })
            .filter(|other| self.class_of(other).as_deref() == Some(class))
            .map(|info| Neighbour {
                canary: annotations::parse(&info.nginx_annotations).config.enabled,
                info,
            })
            .collect()
    }

    fn check_written(&self, new: &IngressInfo, class: &str, findings: &mut Vec<Finding>) {
        findings.extend(annotation_findings(new));
        let parsed = annotations::parse(&new.nginx_annotations);
        if parsed.config.enabled {
            self.check_canary(new, class, &parsed, findings);
        } else if parsed.has_canary_settings {
            self.check_not_enabled(new, class, &parsed, findings);
        }
    }

    /// canary-* annotations on an Ingress that is not a canary: `canary.Parse` returns
    /// "configured but not enabled", which the annotation extractor drops without logging, and
    /// the Ingress is served as a main Ingress.
    fn check_not_enabled(
        &self,
        new: &IngressInfo,
        class: &str,
        parsed: &ParsedCanary,
        findings: &mut Vec<Finding>,
    ) {
        let value = new
            .nginx("canary")
            .map_or_else(|| "is not set".to_owned(), |v| format!("is {v:?}"));
        let mut conflicts = Vec::new();
        for (location, _) in service_locations(new) {
            for other in self.at_location(&location, class, &new.key) {
                if !other.canary {
                    let winner = if processed_before(&other.info, new) {
                        other.info.key.to_string()
                    } else {
                        new.key.to_string()
                    };
                    conflicts.push(format!(
                        "{location} is also served by main Ingress {} (ingress-nginx keeps the \
                         oldest, {winner})",
                        other.info.key
                    ));
                }
            }
        }
        if !conflicts.is_empty() {
            findings.push(finding(
                "notEnabled",
                Severity::Deny,
                format!(
                    "annotation canary {value}, so ingress-nginx drops this Ingress's canary-* \
                     annotations and serves it as a second main Ingress; no traffic is split: {}; \
                     set nginx.ingress.kubernetes.io/canary: \"true\"",
                    list(conflicts)
                ),
            ));
        } else if !parsed.issues.iter().any(|i| i.check == "canaryValue") {
            findings.push(finding(
                "notEnabled",
                Severity::Warn,
                format!(
                    "annotation canary {value}: ingress-nginx drops the canary-* annotations \
                     without a log line and serves this Ingress as a main Ingress"
                ),
            ));
        }
    }

    fn check_canary(
        &self,
        new: &IngressInfo,
        class: &str,
        parsed: &ParsedCanary,
        findings: &mut Vec<Finding>,
    ) {
        let ignored: Vec<&str> = new
            .nginx_annotations
            .keys()
            .filter(|k| !k.starts_with("canary") && !HONOURED_ON_CANARY.contains(k))
            .filter(|k| !annotations::CANARY_KEYS.contains(k))
            .collect();
        if !ignored.is_empty() {
            findings.push(finding(
                "ignoredAnnotations",
                Severity::Warn,
                format!(
                    "ingress-nginx ignores these annotations on a canary (it uses the main \
                     Ingress's locations): {}",
                    list(ignored)
                ),
            ));
        }
        if !parsed.config.routes_anything() {
            findings.push(finding(
                "noRouting",
                Severity::Warn,
                "this canary has no canary-weight, canary-by-header or canary-by-cookie: \
                 ingress-nginx sends it no requests"
                    .to_owned(),
            ));
        }
        if new.default_backend.is_some() && new.paths.is_empty() {
            // A catch-all canary merges into the default server; nothing below applies.
            return;
        }

        let locations = service_locations(new);
        let own_locations: BTreeSet<&Location> = locations.iter().map(|(l, _)| l).collect();
        // Canary upstream → its locations without a main.
        let mut unmatched: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut matched: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // Main upstreams the canary attaches to: (namespace, backend).
        let mut mains: BTreeMap<String, (String, IngressBackendInfo)> = BTreeMap::new();
        let mut affinity_reported = BTreeSet::new();
        let mut duplicate_reported = BTreeSet::new();

        for (location, backend) in &locations {
            let canary_upstream = upstream(&new.key.namespace, backend);
            let neighbours = self.at_location(location, class, &new.key);
            let main = neighbours
                .iter()
                .filter(|n| !n.canary)
                .map(|n| &n.info)
                .reduce(|a, b| if processed_before(b, a) { b } else { a });
            let Some(main) = main else {
                let other_types: Vec<String> = self
                    .view
                    .ingresses_at(&location.host, &location.path)
                    .iter()
                    .filter(|o| o.key != new.key)
                    .filter(|o| self.class_of(o).as_deref() == Some(class))
                    .filter(|o| !annotations::parse(&o.nginx_annotations).config.enabled)
                    .flat_map(|o| {
                        o.paths
                            .iter()
                            .filter(|p| p.host == location.host && p.path == location.path)
                            .map(|p| format!("{} has pathType {}", o.key, p.path_type))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let hint = if other_types.is_empty() {
                    String::new()
                } else {
                    format!(" [main {}; pathType must match too]", list(other_types))
                };
                unmatched
                    .entry(canary_upstream)
                    .or_default()
                    .push(format!("{location}{hint}"));
                continue;
            };
            matched
                .entry(canary_upstream.clone())
                .or_default()
                .push(location.to_string());
            let Some(main_backend) = main.paths.iter().find_map(|p| {
                (p.host == location.host
                    && p.path == location.path
                    && p.path_type == location.path_type)
                    .then_some(p.backend.as_ref())
                    .flatten()
            }) else {
                continue;
            };
            let main_upstream = upstream(&main.key.namespace, main_backend);
            if main_upstream == canary_upstream {
                findings.push(finding(
                    "sameService",
                    Severity::Deny,
                    format!(
                        "at {location} the canary routes to Service {} port {}, which is already \
                         the main backend of Ingress {}: ingress-nginx logs \"alternative upstream \
                         is primary upstream\" and merges nothing, so no traffic is split; point \
                         the canary at the new version's own Service",
                        backend.service,
                        port_text(backend.port.as_ref()),
                        main.key
                    ),
                ));
            } else {
                mains.insert(
                    main_upstream,
                    (main.key.namespace.to_string(), main_backend.clone()),
                );
            }
            if main.nginx("affinity") == Some("cookie")
                && affinity_reported.insert(main.key.clone())
            {
                findings.push(finding(
                    "sessionAffinity",
                    Severity::Warn,
                    format!(
                        "main Ingress {} uses cookie affinity: clients holding its cookie stay \
                         on the main whatever the canary header, cookie or weight says",
                        main.key
                    ),
                ));
            }
            let mut canaries: Vec<&Shared<IngressInfo>> = neighbours
                .iter()
                .filter(|n| n.canary)
                .map(|n| &n.info)
                .collect();
            canaries.sort_by(|a, b| {
                if processed_before(a, b) {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                }
            });
            if let Some(first) = canaries.first() {
                if processed_before(first, new) {
                    if duplicate_reported.insert(first.key.clone()) {
                        findings.push(finding(
                            "duplicateCanary",
                            Severity::Deny,
                            format!(
                                "canary Ingress {} already serves {location}: ingress-nginx only \
                                 routes to the first canary attached (the oldest), so this one \
                                 receives no traffic; remove one of them",
                                first.key
                            ),
                        ));
                    }
                } else if duplicate_reported.insert(first.key.clone()) {
                    findings.push(finding(
                        "duplicateCanary",
                        Severity::Warn,
                        format!(
                            "newer canary Ingress {} also serves {location}: ingress-nginx routes \
                             only to this one (the oldest) and gives it no traffic",
                            first.key
                        ),
                    ));
                }
            }
        }

        for (canary_upstream, locations) in &unmatched {
            let disabled = matched
                .get(canary_upstream)
                .map(|m| format!(", and with it the canary on {}", list(m)))
                .unwrap_or_default();
            findings.push(finding(
                "missingMain",
                Severity::Deny,
                format!(
                    "no main (non-canary) Ingress of class {class} serves {}: ingress-nginx logs \
                     \"unable to find real backend\" and deletes the canary backend \
                     {canary_upstream}{disabled}, so this canary receives no traffic; create the \
                     main Ingress first, with the same host, path and pathType",
                    list(locations)
                ),
            ));
        }

        self.check_backends(new, class, &own_locations, &mains, findings);
    }

    fn check_backends(
        &self,
        new: &IngressInfo,
        class: &str,
        own_locations: &BTreeSet<&Location>,
        mains: &BTreeMap<String, (String, IngressBackendInfo)>,
        findings: &mut Vec<Finding>,
    ) {
        let namespace = &new.key.namespace;
        let mut seen = BTreeSet::new();
        for backend in new.paths.iter().filter_map(|p| p.backend.as_ref()) {
            let canary_upstream = upstream(namespace, backend);
            if !seen.insert(canary_upstream.clone()) {
                continue;
            }
            // A main elsewhere on the same Service+port shares the upstream: depending on which
            // Ingress is older, that main path is skipped as NoServer or the canary gets no
            // traffic policy.
            let elsewhere: Vec<String> = self
                .view
                .ingresses_with_backend(namespace, &backend.service)
                .iter()
                .filter(|o| o.key != new.key)
                .filter(|o| self.class_of(o).as_deref() == Some(class))
                .filter(|o| !annotations::parse(&o.nginx_annotations).config.enabled)
                .flat_map(|o| {
                    service_locations(o)
                        .into_iter()
                        .filter(|(_, b)| upstream(&o.key.namespace, b) == canary_upstream)
                        .map(|(l, _)| format!("{l} in {}", o.key))
                        .collect::<Vec<_>>()
                })
                .collect();
            if !elsewhere.is_empty() {
                findings.push(finding(
                    "mainBackendElsewhere",
                    Severity::Deny,
                    format!(
                        "the canary's Service {} port {} is also a main backend ({}): \
                         ingress-nginx builds one upstream per Service and port, so either those \
                         paths are skipped as canary-only (when the canary is older) or the \
                         canary gets no traffic policy; give the canary its own Service",
                        backend.service,
                        port_text(backend.port.as_ref()),
                        list(elsewhere)
                    ),
                ));
            }
            match self.view.service(namespace, &backend.service) {
                None => findings.push(finding(
                    "backendService",
                    Severity::Warn,
                    format!(
                        "Service {namespace}/{} does not exist (yet): until it has endpoints, \
                         ingress-nginx keeps every request on the main backend",
                        backend.service
                    ),
                )),
                Some(service) => {
                    if let Some(port) = backend.port.as_ref().filter(|p| !service.has_port(p)) {
                        findings.push(finding(
                            "backendService",
                            Severity::Warn,
                            format!(
                                "Service {namespace}/{} has no port {}: the canary backend gets \
                                 no endpoints, so ingress-nginx keeps every request on the main",
                                backend.service,
                                port_text(Some(port))
                            ),
                        ));
                    }
                }
            }
        }

        // The alternative backend hangs off the main's upstream, so every location routed to
        // that Service+port is split too.
        for (main_upstream, (main_namespace, main_backend)) in mains {
            let others: Vec<String> = self
                .view
                .ingresses_with_backend(main_namespace, &main_backend.service)
                .iter()
                .filter(|o| self.class_of(o).as_deref() == Some(class))
                .filter(|o| !annotations::parse(&o.nginx_annotations).config.enabled)
                .flat_map(|o| {
                    service_locations(o)
                        .into_iter()
                        .filter(|(l, b)| {
                            upstream(&o.key.namespace, b) == *main_upstream
                                && !own_locations.contains(l)
                        })
                        .map(|(l, _)| l.to_string())
                        .collect::<Vec<_>>()
                })
                .collect();
            if !others.is_empty() {
                findings.push(finding(
                    "sharedMainService",
                    Severity::Warn,
                    format!(
                        "the canary attaches to upstream {main_upstream}, so ingress-nginx also \
                         splits traffic on {}",
                        list(others)
                    ),
                ));
            }
        }
    }

    /// A main Ingress written onto the Service+port an existing canary routes to. They share
    /// one upstream, which the canary marks canary-only: the main's paths on it are skipped
    /// (or, when the main is older, the canary loses its traffic policy). The canary side of
    /// the same conflict is `mainBackendElsewhere` when the canary is written; this catches the
    /// main arriving second. On UPDATE only upstreams the update adds are judged, so an
    /// existing conflict does not block unrelated edits.
    fn check_main_on_canary_service(
        &self,
        new: &IngressInfo,
        old: Option<&IngressInfo>,
        class: &str,
        findings: &mut Vec<Finding>,
    ) {
        if annotations::parse(&new.nginx_annotations).config.enabled {
            return;
        }
        let upstreams_of = |info: &IngressInfo| -> BTreeSet<String> {
            service_locations(info)
                .into_iter()
                .map(|(_, backend)| upstream(&info.key.namespace, backend))
                .collect()
        };
        let before: BTreeSet<String> = old
            .filter(|o| self.class_of(o).as_deref() == Some(class))
            .filter(|o| !annotations::parse(&o.nginx_annotations).config.enabled)
            .map(upstreams_of)
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        for (_, backend) in service_locations(new) {
            let main_upstream = upstream(&new.key.namespace, backend);
            if before.contains(&main_upstream) || !seen.insert(main_upstream.clone()) {
                continue;
            }
            let canaries: Vec<String> = self
                .view
                .ingresses_with_backend(&new.key.namespace, &backend.service)
                .iter()
                .filter(|o| o.key != new.key)
                .filter(|o| self.class_of(o).as_deref() == Some(class))
                .filter(|o| annotations::parse(&o.nginx_annotations).config.enabled)
                .filter(|o| upstreams_of(o).contains(&main_upstream))
                .map(|o| o.key.to_string())
                .collect();
            if !canaries.is_empty() {
                findings.push(finding(
                    "mainBackendElsewhere",
                    Severity::Deny,
                    format!(
                        "Service {} port {} is the backend of canary Ingress {}: ingress-nginx \
                         builds one upstream per Service and port and marks it canary-only, so \
                         either this Ingress's paths on it are skipped or the canary loses its \
                         traffic policy; route this main Ingress to the stable version's own \
                         Service",
                        backend.service,
                        port_text(backend.port.as_ref()),
                        list(canaries)
                    ),
                ));
            }
        }
    }

    /// DELETE of a main Ingress, or an UPDATE that takes away a location (host, path, pathType,
    /// class, or turning it into a canary), while a canary depends on it.
    fn check_main_removed(
        &self,
        operation: &Operation,
        old: &IngressInfo,
        new: Option<&IngressInfo>,
        class: &str,
        findings: &mut Vec<Finding>,
    ) {
        if annotations::parse(&old.nginx_annotations).config.enabled {
            return;
        }
        let kept: BTreeSet<Location> = new
            .filter(|n| self.class_of(n).as_deref() == Some(class))
            .filter(|n| !annotations::parse(&n.nginx_annotations).config.enabled)
            .map(|n| service_locations(n).into_iter().map(|(l, _)| l).collect())
            .unwrap_or_default();
        let mut orphaned = Vec::new();
        for (location, _) in service_locations(old) {
            if kept.contains(&location) {
                continue;
            }
            let neighbours = self.at_location(&location, class, &old.key);
            if neighbours.iter().any(|n| !n.canary) {
                // Another main keeps the location alive.
                continue;
            }
            for canary in neighbours.iter().filter(|n| n.canary) {
                orphaned.push(format!("{} on {location}", canary.info.key));
            }
        }
        if orphaned.is_empty() {
            return;
        }
        let what = match operation {
            Operation::Delete => "deleting this main Ingress".to_owned(),
            _ => "this update removes paths that".to_owned(),
        };
        findings.push(finding(
            "mainRemoved",
            Severity::Deny,
            format!(
                "{what} leaves canary Ingress(es) without a main: {}; ingress-nginx then deletes \
                 their backends and they stop receiving traffic; remove or re-point the canary \
                 first",
                list(orphaned)
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Store, StoredKind};
    use crate::testing::{has, store_of as store, validate as run};
    use serde_json::{json, Value};

    fn ingress(name: &str, created: &str, annotations: Value, paths: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"namespace": "shop", "name": name, "creationTimestamp": created,
                "annotations": annotations},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com",
                "http": {"paths": paths}}]}})
    }

    fn path(path: &str, service: &str) -> Value {
        json!({"path": path, "pathType": "Prefix",
            "backend": {"service": {"name": service, "port": {"number": 80}}}})
    }

    fn service(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "shop", "name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}})
    }

    fn main_web() -> Value {
        ingress(
            "web",
            "2024-01-01T00:00:00Z",
            json!({}),
            json!([path("/", "web-v1")]),
        )
    }

    /// The usual canary under test: `web-canary`, created after the main, 10 % by weight.
    fn weighted_canary(service: &str) -> Value {
        canary(
            "web-canary",
            "2024-02-01T00:00:00Z",
            json!({"nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "10"}),
            service,
        )
    }

    fn canary(name: &str, created: &str, annotations: Value, service: &str) -> Value {
        ingress(name, created, annotations, json!([path("/", service)]))
    }

    #[test]
    fn valid_weighted_canary_is_allowed_quietly() {
        let state = store(&[main_web(), service("web-v1"), service("web-v2")]);
        let out = run(&state, "CREATE", Some(weighted_canary("web-v2")), None);
        assert!(out.allowed, "{:?}", out.denials);
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }

    #[test]
    fn canary_checks_allow_warn_and_deny() {
        let cases: Vec<(&str, Vec<Value>, Value, bool, &str)> = vec![
            (
                "yes is not a canary",
                vec![main_web()],
                json!({"nginx.ingress.kubernetes.io/canary": "yes",
                    "nginx.ingress.kubernetes.io/canary-weight": "10"}),
                false,
                "ingressCanary.canaryValue",
            ),
            (
                "percent weight",
                vec![main_web()],
                json!({"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-weight": "10%"}),
                false,
                "reads canary-weight \"10%\" as 0",
            ),
            (
                "missing main",
                vec![],
                json!({"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-weight": "10"}),
                false,
                "ingressCanary.missingMain",
            ),
            (
                "misspelled weight",
                vec![main_web()],
                json!({"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-weigth": "10"}),
                false,
                "did you mean canary-weight?",
            ),
            (
                "older canary wins",
                vec![
                    main_web(),
                    canary(
                        "web-canary-a",
                        "2024-01-15T00:00:00Z",
                        json!({"nginx.ingress.kubernetes.io/canary": "true",
                            "nginx.ingress.kubernetes.io/canary-weight": "5"}),
                        "web-v3",
                    ),
                ],
                json!({"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-weight": "10"}),
                false,
                "ingressCanary.duplicateCanary",
            ),
            (
                "false with weight next to a main",
                vec![main_web()],
                json!({"nginx.ingress.kubernetes.io/canary": "false",
                    "nginx.ingress.kubernetes.io/canary-weight": "20"}),
                false,
                "ingressCanary.notEnabled",
            ),
            (
                "affinity on main warns",
                vec![ingress(
                    "web",
                    "2024-01-01T00:00:00Z",
                    json!({"nginx.ingress.kubernetes.io/affinity": "cookie"}),
                    json!([path("/", "web-v1")]),
                )],
                json!({"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-weight": "10"}),
                true,
                "ingressCanary.sessionAffinity",
            ),
            (
                "other annotations are ignored",
                vec![main_web()],
                json!({"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-weight": "10",
                    "nginx.ingress.kubernetes.io/rewrite-target": "/v2"}),
                true,
                "ignores these annotations on a canary",
            ),
            (
                "header value without header",
                vec![main_web()],
                json!({"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-by-header-value": "beta"}),
                false,
                "ingressCanary.header",
            ),
            (
                "shared main service warns",
                vec![
                    main_web(),
                    ingress(
                        "web-admin",
                        "2024-01-02T00:00:00Z",
                        json!({}),
                        json!([path("/admin", "web-v1")]),
                    ),
                ],
                json!({"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-by-cookie": "canary"}),
                true,
                "also splits traffic on shop.example.com/admin (Prefix)",
            ),
        ];
        for (name, objects, annotations, allowed, needle) in cases {
            let mut objects = objects;
            objects.extend([service("web-v1"), service("web-v2"), service("web-v3")]);
            let state = store(&objects);
            let out = run(
                &state,
                "CREATE",
                Some(canary(
                    "web-canary",
                    "2024-02-01T00:00:00Z",
                    annotations,
                    "web-v2",
                )),
                None,
            );
            assert_eq!(out.allowed, allowed, "{name}: {:?}", out.denials);
            let texts = if allowed { &out.warnings } else { &out.denials };
            assert!(has(texts, needle), "{name}: {texts:?}");
        }
    }

    #[test]
    fn canary_on_the_main_service_is_denied() {
        let state = store(&[main_web(), service("web-v1")]);
        let out = run(&state, "CREATE", Some(weighted_canary("web-v1")), None);
        assert!(
            has(&out.denials, "ingressCanary.sameService"),
            "{:?}",
            out.denials
        );
    }

    #[test]
    fn pathtype_mismatch_is_a_missing_main() {
        let main = ingress(
            "web",
            "2024-01-01T00:00:00Z",
            json!({}),
            json!([{"path": "/", "pathType": "Exact",
                "backend": {"service": {"name": "web-v1", "port": {"number": 80}}}}]),
        );
        let state = store(&[main, service("web-v2")]);
        let out = run(&state, "CREATE", Some(weighted_canary("web-v2")), None);
        assert!(
            has(&out.denials, "pathType must match too"),
            "{:?}",
            out.denials
        );
    }

    #[test]
    fn missing_backend_service_warns() {
        let state = store(&[main_web(), service("web-v1")]);
        let out = run(&state, "CREATE", Some(weighted_canary("web-v2")), None);
        assert!(out.allowed, "{:?}", out.denials);
        assert!(
            has(&out.warnings, "shop/web-v2 does not exist"),
            "{:?}",
            out.warnings
        );
    }

    #[test]
    fn deleting_a_main_with_a_canary_is_denied_and_without_allowed() {
        let the_canary = weighted_canary("web-v2");
        let with_canary = store(&[main_web(), the_canary.clone()]);
        let out = run(&with_canary, "DELETE", None, Some(main_web()));
        assert!(
            has(&out.denials, "ingressCanary.mainRemoved"),
            "{:?}",
            out.denials
        );
        assert!(has(&out.denials, "shop/web-canary"), "{:?}", out.denials);

        let alone = store(&[main_web()]);
        let out = run(&alone, "DELETE", None, Some(main_web()));
        assert!(out.allowed && out.warnings.is_empty());

        // Moving the path away is the same as deleting it; keeping it is fine.
        let moved = ingress(
            "web",
            "2024-01-01T00:00:00Z",
            json!({}),
            json!([path("/shop", "web-v1")]),
        );
        let out = run(&with_canary, "UPDATE", Some(moved), Some(main_web()));
        assert!(
            has(&out.denials, "this update removes paths"),
            "{:?}",
            out.denials
        );
        let out = run(&with_canary, "UPDATE", Some(main_web()), Some(main_web()));
        assert!(out.allowed, "{:?}", out.denials);

        // Deleting the canary itself is always fine.
        let out = run(&with_canary, "DELETE", None, Some(the_canary));
        assert!(out.allowed);
    }

    #[test]
    fn other_controllers_are_not_judged() {
        let state = store(&[
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "traefik"}, "spec": {"controller": "traefik.io/ingress-controller"}}),
        ]);
        let mut object = canary(
            "web-canary",
            "2024-02-01T00:00:00Z",
            json!({"nginx.ingress.kubernetes.io/canary": "yes"}),
            "web-v2",
        );
        object["spec"]["ingressClassName"] = json!("traefik");
        let out = run(&state, "CREATE", Some(object), None);
        assert!(out.allowed && out.warnings.is_empty());
    }

    #[test]
    fn not_synced_warns_by_default() {
        let state = Store::expecting(&[StoredKind::Ingress]);
        let out = run(
            &state,
            "CREATE",
            Some(canary(
                "web-canary",
                "2024-02-01T00:00:00Z",
                json!({"nginx.ingress.kubernetes.io/canary": "true"}),
                "web-v2",
            )),
            None,
        );
        assert!(out.allowed);
        assert!(has(&out.warnings, "not synced"), "{:?}", out.warnings);
    }
}
