//! The `ingressCanary` rule: ingress-nginx canary Ingresses and the main Ingresses they need.
//!
//! How ingress-nginx wires a canary (internal/ingress/controller/controller.go, verified in the
//! source):
//! - Ingresses are processed oldest first (`sortIngressSlice` in internal/ingress/controller/
//!   store/store.go: creationTimestamp ascending, ties by `namespace/name` descending), across
//!   all namespaces: one nginx server per host, whichever namespaces its Ingresses are in.
//! - Before anything reads an Ingress, `SetDefaultNGINXPathType` turns an absent or
//!   `ImplementationSpecific` pathType into `Prefix`, so those are one and the same here.
//! - Every Service+port becomes one upstream named `namespace-service-port`; the first Ingress
//!   to mention it creates it, and a canary Ingress marks it `NoServer` with its traffic policy
//!   (`createUpstreams`). A main path whose upstream is `NoServer` is skipped
//!   (`getBackendServers`), and canary Ingresses get no servers or locations (`createServers`).
//!   Two main Ingresses with the same host, path and pathType: the oldest keeps the location
//!   ("Location already configured"), the other's path serves nothing.
//! - `mergeAlternativeBackends` attaches each canary path to the main location with the same
//!   host, path *and* pathType. If a path finds none, the canary upstream is deleted ("unable to
//!   find real backend for alternative backend ... Deleting."), which disables it for every
//!   path using that Service+port; a canary whose host has no main at all gets nothing either
//!   (requests for the host get the default backend's 404, as the e2e test "should return 404
//!   status for requests to the canary if no matching ingress is found" asserts). If the
//!   canary's upstream is the primary of a location on the host, nothing is merged ("is
//!   primary upstream in Other Ingress"). A canary's `spec.defaultBackend` is merged into the
//!   locations of the catch-all server `_` only, and only into those a main Ingress gave a
//!   backend (`canMergeBackend` refuses the controller's default upstream).
//! - The merge runs again on every change, so a canary created before its main attaches as
//!   soon as the main exists (e2e "mainline ingress is created after the canary ingress").
//! - The alternative is appended to the main *upstream*, so every location routed to the main's
//!   Service+port is split, and the Lua balancer only uses `alternative_backends[1]`
//!   (`route_to_alternative_balancer` in rootfs/etc/nginx/lua/balancer.lua): the first canary
//!   merged (the oldest) is the only one that receives traffic.
//! - The balancer keeps a request on the main when it is affinitized to the main (cookie session
//!   affinity), then evaluates header, cookie and weight in that order.
//!
//! What denies: an object is denied only when, as written, it cannot work whatever the other
//! objects do. The Ingress's own annotations are judged that way (`annotations`). Everything
//! that depends on other objects (a main not there yet, a Service not created yet, another
//! canary on the location, a Service shared with a main) warns on CREATE and on UPDATE: the next
//! object of the same apply can settle it, and `kubectl apply -f dir/`, Helm and Argo CD send
//! the objects of one change in file, kind or name order, never "main first". Two things deny
//! although they involve another object: a canary attaching to a main in another namespace the
//! policy does not pair it with (tenancy: ingress-nginx would let it take that namespace's
//! traffic), and a DELETE of a main that leaves a canary of the same namespace, not of the same
//! release, without one. An object in one namespace never blocks a write or a DELETE in
//! another: those findings warn.

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
    "duplicateMain",
    "unknownAnnotation",
    "weight",
    "weightTotal",
    "header",
    "cookie",
    "noRouting",
    "defaultBackend",
    "missingMain",
    "crossNamespace",
    "duplicateCanary",
    "sameService",
    "mainBackendElsewhere",
    "sharedMainService",
    "sessionAffinity",
    "ignoredAnnotations",
    "backendService",
    "mainRemoved",
];

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
                    .is_some_and(|class| settings.class_names.iter().any(|n| **n == **class))
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
            checker.check_foreign_canaries(new, &class, &mut findings);
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

/// The pathType ingress-nginx uses: `SetDefaultNGINXPathType` rewrites an absent or
/// `ImplementationSpecific` pathType to `Prefix` before building or merging anything.
fn nginx_path_type(written: &str) -> &str {
    match written {
        "" | "ImplementationSpecific" => "Prefix",
        other => other,
    }
}

/// One nginx location: host (empty for the catch-all server), path and pathType (as
/// ingress-nginx reads it, see [`nginx_path_type`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Location {
    host: String,
    path: String,
    path_type: String,
}

impl Location {
    fn of(path: &crate::policy::objects::IngressPathInfo) -> Self {
        Location {
            host: path.host.to_string(),
            path: path.path.to_string(),
            path_type: nginx_path_type(&path.path_type).to_owned(),
        }
    }

    fn is(&self, path: &crate::policy::objects::IngressPathInfo) -> bool {
        *path.host == *self.host
            && path.path == self.path
            && nginx_path_type(&path.path_type) == self.path_type
    }
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
        .filter_map(|p| p.backend.as_ref().map(|backend| (Location::of(p), backend)))
        .collect()
}

fn port_text(port: Option<&PortRef>) -> String {
    match port {
        Some(PortRef::Number(n)) => n.to_string(),
        Some(PortRef::Name(name)) => name.to_string(),
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

/// Whether two Ingresses carry the same release marker (Helm release, Argo CD application,
/// Flux Kustomization, ApplySet, instance label): they are installed and removed together.
fn same_release(a: &IngressInfo, b: &IngressInfo) -> bool {
    a.release.is_some() && a.release == b.release
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
    /// The ingress class an ingress-nginx compatible controller serves this Ingress under, or
    /// `None` when another controller serves it (such Ingresses are not judged).
    fn class_of(&self, info: &IngressInfo) -> Option<String> {
        let ours = |controller: &str| self.settings.controllers.iter().any(|c| c == controller);
        let by_name = |name: &str| match self.view.ingress_class(name) {
            Some(class) => ours(&class.controller),
            None => self.settings.class_names.iter().any(|n| n == name),
        };
        match &info.class {
            Some(name) => by_name(name).then(|| name.to_string()),
            // The DefaultIngressClass admission plugin fills the class in on CREATE; an Ingress
            // without one belongs to the default class, if that is ingress-nginx.
            None => self
                .view
                .default_ingress_classes()
                .into_iter()
                .find(|c| ours(&c.controller) || self.settings.class_names.contains(&c.name))
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
                other
                    .paths
                    .iter()
                    .any(|p| location.is(p) && p.backend.is_some())
            })
            .filter(|other| self.class_of(other).as_deref() == Some(class))
            .map(|info| Neighbour {
                canary: annotations::parse(&info.nginx_annotations).config.enabled,
                info,
            })
            .collect()
    }

    /// The main Ingress ingress-nginx builds a location from: the oldest non-canary there.
    fn main_at(neighbours: &[Neighbour]) -> Option<&Shared<IngressInfo>> {
        neighbours
            .iter()
            .filter(|n| !n.canary)
            .map(|n| &n.info)
            .reduce(|a, b| if processed_before(b, a) { b } else { a })
    }

    fn check_written(&self, new: &IngressInfo, class: &str, findings: &mut Vec<Finding>) {
        findings.extend(annotation_findings(new));
        let parsed = annotations::parse(&new.nginx_annotations);
        if parsed.config.enabled {
            self.check_canary(new, class, &parsed, findings);
        } else if parsed.has_canary_settings {
            self.check_not_enabled(new, class, &parsed, findings);
        } else if new
            .nginx(annotations::CANARY)
            .is_some_and(|v| annotations::go_parse_bool(v).is_some())
        {
            self.check_duplicate_main(new, class, findings);
        }
    }

    /// Main Ingresses (other than `new`) serving `new`'s locations, as "location is also served
    /// by main X (ingress-nginx keeps the oldest, Y)" lines.
    fn other_mains(&self, new: &IngressInfo, class: &str) -> Vec<String> {
        let mut conflicts = Vec::new();
        for (location, _) in service_locations(new) {
            for other in self.at_location(&location, class, &new.key) {
                if !other.canary {
                    // The oldest main keeps a location ("Location already configured").
                    conflicts.push(if processed_before(&other.info, new) {
                        format!("{location}: older main {} keeps it", other.info.key)
                    } else {
                        format!(
                            "{location}: this one is older and takes it from {}",
                            other.info.key
                        )
                    });
                }
            }
        }
        conflicts
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
        let conflicts = self.other_mains(new, class);
        if !conflicts.is_empty() {
            // The duplicate main is the other Ingress's state: deleting it (or this one) settles
            // it, so it warns, however certain it is that these canary-* annotations do nothing.
            findings.push(finding(
                "notEnabled",
                Severity::Warn,
                format!(
                    "canary {value}: ingress-nginx drops the canary-* annotations and serves this \
                     as a second main, splitting nothing; set canary \"true\". {}",
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

    /// `canary: "false"` (or another Go false) and nothing else: a main Ingress. Next to another
    /// main on the same location it is a duplicate that ingress-nginx's own admission webhook
    /// does not catch: its overlap check (`checkOverlap`) rejects two main Ingresses only when
    /// both lack the canary annotation, and this one carries it (ingress-nginx#6825).
    fn check_duplicate_main(&self, new: &IngressInfo, class: &str, findings: &mut Vec<Finding>) {
        let conflicts = self.other_mains(new, class);
        if conflicts.is_empty() {
            return;
        }
        findings.push(finding(
            "duplicateMain",
            Severity::Warn,
            format!(
                "canary {:?} makes this a second main Ingress, which ingress-nginx's overlap \
                 check misses (#6825); the newer path serves nothing; delete one: {}",
                new.nginx(annotations::CANARY).unwrap_or_default(),
                list(conflicts)
            ),
        ));
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
        if let (Some(backend), true) = (&new.default_backend, new.paths.is_empty()) {
            findings.push(finding(
                "defaultBackend",
                Severity::Warn,
                format!(
                    "only spec.defaultBackend ({}): ingress-nginx merges it into the catch-all \
                     server only (requests matching no host, where a main of class {class} sets a \
                     backend); give it the main's host and path",
                    backend.service
                ),
            ));
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
        let mut foreign_mains: BTreeMap<String, Vec<String>> = BTreeMap::new();

        for (location, backend) in &locations {
            let canary_upstream = upstream(&new.key.namespace, backend);
            let neighbours = self.at_location(location, class, &new.key);
            let Some(main) = Self::main_at(&neighbours) else {
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
                            .filter(|p| *p.host == *location.host && p.path == location.path)
                            .map(|p| format!("{} has pathType {}", o.key, p.path_type))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let hint = if other_types.is_empty() {
                    String::new()
                } else {
                    format!(" (main {})", list(other_types))
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
            if !self
                .settings
                .allows_cross_namespace(&new.key.namespace, &main.key.namespace)
            {
                foreign_mains
                    .entry(main.key.to_string())
                    .or_default()
                    .push(location.to_string());
            }
            let Some(main_backend) = main
                .paths
                .iter()
                .find_map(|p| location.is(p).then_some(p.backend.as_ref()).flatten())
            else {
                continue;
            };
            let main_upstream = upstream(&main.key.namespace, main_backend);
            if main_upstream == canary_upstream {
                findings.push(finding(
                    "sameService",
                    Severity::Warn,
                    format!(
                        "at {location} the canary routes to {}:{}, the main backend of {}: \
                         ingress-nginx merges nothing, no traffic is split; give the canary the \
                         new version's own Service",
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
                if !duplicate_reported.insert(first.key.clone()) {
                    continue;
                }
                // Either way the other canary's state decides (deleting the older one, as a
                // Helm upgrade that renames a canary does after creating the new one, lets
                // this one attach), so it warns.
                let message = if processed_before(first, new) {
                    format!(
                        "canary {} already serves {location}: ingress-nginx routes only to the \
                         oldest canary, so this one gets no traffic while that one exists; \
                         remove one",
                        first.key
                    )
                } else {
                    format!(
                        "newer canary Ingress {} also serves {location}: ingress-nginx routes \
                         only to this one (the oldest) and gives it no traffic",
                        first.key
                    )
                };
                findings.push(finding("duplicateCanary", Severity::Warn, message));
            }
        }

        for (main, locations) in &foreign_mains {
            let share = if parsed.config.weight > 0 {
                format!(
                    " (canary-weight {} of {})",
                    parsed.config.weight,
                    parsed.config.effective_total()
                )
            } else {
                String::new()
            };
            findings.push(finding(
                "crossNamespace",
                Severity::Deny,
                format!(
                    "{} is served by main Ingress {main} of another namespace: ingress-nginx \
                     merges canaries across namespaces, so this canary would take that \
                     namespace's traffic{share}; put the canary in the main's namespace, or have \
                     the policy allow the pair (ingressCanary.crossNamespace: canaryNamespaces \
                     [{}], mainNamespaces [{}])",
                    list(locations),
                    new.key.namespace,
                    main.split_once('/').map_or(main.as_str(), |(ns, _)| ns),
                ),
            ));
        }

        for (canary_upstream, locations) in &unmatched {
            let disabled = matched
                .get(canary_upstream)
                .map(|m| format!(", and with it the canary on {}", list(m)))
                .unwrap_or_default();
            findings.push(finding(
                "missingMain",
                Severity::Warn,
                format!(
                    "no main (class {class}) for {} yet: canary backend \
                     {canary_upstream}{disabled} gets no traffic until a main Ingress with that \
                     host, path and pathType exists",
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
                        .map(|(l, _)| format!("{} at {l}", o.key))
                        .collect::<Vec<_>>()
                })
                .collect();
            if !elsewhere.is_empty() {
                findings.push(finding(
                    "mainBackendElsewhere",
                    Severity::Warn,
                    format!(
                        "the canary's Service {}:{} also backs main {}: one upstream per Service \
                         and port, so those paths get skipped or the canary loses its split; give \
                         the canary its own Service",
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
    /// existing conflict does not repeat on unrelated edits.
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
                    Severity::Warn,
                    format!(
                        "Service {}:{} already backs canary {}: one upstream per Service and \
                         port, so these paths get skipped or the canary loses its split; route \
                         this main to the stable Service",
                        backend.service,
                        port_text(backend.port.as_ref()),
                        list(canaries)
                    ),
                ));
            }
        }
    }

    /// A main Ingress that becomes the main of a location where a canary of another namespace
    /// waits: ingress-nginx merges it, so that canary splits this Ingress's traffic. The canary
    /// is another namespace's object, so this warns (it cannot block this write); the canary's
    /// own writes are denied by `crossNamespace`.
    fn check_foreign_canaries(&self, new: &IngressInfo, class: &str, findings: &mut Vec<Finding>) {
        if annotations::parse(&new.nginx_annotations).config.enabled {
            return;
        }
        let mut foreign = BTreeSet::new();
        for (location, _) in service_locations(new) {
            let neighbours = self.at_location(&location, class, &new.key);
            if Self::main_at(&neighbours).is_some_and(|main| processed_before(main, new)) {
                // An older main keeps the location; its canaries are judged against it.
                continue;
            }
            for canary in neighbours.iter().filter(|n| n.canary) {
                let namespace = &canary.info.key.namespace;
                if !self
                    .settings
                    .allows_cross_namespace(namespace, &new.key.namespace)
                {
                    foreign.insert(format!("{} on {location}", canary.info.key));
                }
            }
        }
        if !foreign.is_empty() {
            findings.push(finding(
                "crossNamespace",
                Severity::Warn,
                format!(
                    "canary {} (another namespace) attaches to this main: ingress-nginx merges \
                     across namespaces, so it splits this Ingress's traffic; ask its owners to \
                     remove it",
                    list(foreign)
                ),
            ));
        }
    }

    /// DELETE of a main Ingress, or an UPDATE that takes away a location (host, path, pathType,
    /// class, or turning it into a canary), while a canary depends on it.
    ///
    /// Only a DELETE that orphans a canary of the same namespace that is not part of the same
    /// release denies. A canary of another namespace never blocks this namespace's DELETE; a
    /// canary of the same release (Helm, Argo CD, Flux, ApplySet, instance label) is removed by
    /// the same uninstall, in whatever order the tool sends the DELETEs; and an UPDATE can be
    /// followed by the canary's own update in the same apply (moving both to a new path).
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
        let mut blocking = Vec::new();
        let mut released_together = Vec::new();
        let mut elsewhere = Vec::new();
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
                let entry = format!("{} on {location}", canary.info.key);
                if canary.info.key.namespace != old.key.namespace {
                    elsewhere.push(entry);
                } else if same_release(&canary.info, old) {
                    released_together.push(entry);
                } else {
                    blocking.push(entry);
                }
            }
        }
        let deleting = *operation == Operation::Delete;
        let what = if deleting {
            "deleting this main"
        } else {
            "this update removes the main of"
        };
        if !blocking.is_empty() {
            let finding = if deleting {
                finding(
                    "mainRemoved",
                    Severity::Deny,
                    format!(
                        "deleting this main orphans canary {}: ingress-nginx drops their backends \
                         (no traffic); delete or re-point the canary first (kubectl delete -f: \
                         list its file before the main's)",
                        list(blocking)
                    ),
                )
            } else {
                finding(
                    "mainRemoved",
                    Severity::Warn,
                    format!(
                        "{what} canary {}: ingress-nginx drops their backends (no traffic); move \
                         the canary along in the same apply, or delete it",
                        list(blocking)
                    ),
                )
            };
            findings.push(finding);
        }
        if !released_together.is_empty() {
            let release = old.release.as_deref().unwrap_or_default();
            findings.push(finding(
                "mainRemoved",
                Severity::Warn,
                format!(
                    "{what} canary {} of the same {release}: an uninstall removes it next; \
                     otherwise it gets no traffic",
                    list(released_together)
                ),
            ));
        }
        if !elsewhere.is_empty() {
            findings.push(finding(
                "mainRemoved",
                Severity::Warn,
                format!(
                    "{what} canary {} of another namespace: it gets no traffic; objects there do \
                     not block this namespace's changes, tell its owners",
                    list(elsewhere)
                ),
            ));
        }
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
                "missing main: the main may be the next object applied",
                vec![],
                json!({"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-weight": "10"}),
                true,
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
                true,
                "ingressCanary.duplicateCanary",
            ),
            (
                "false with weight next to a main",
                vec![main_web()],
                json!({"nginx.ingress.kubernetes.io/canary": "false",
                    "nginx.ingress.kubernetes.io/canary-weight": "20"}),
                true,
                "ingressCanary.notEnabled",
            ),
            (
                "only canary false next to a main: a duplicate main",
                vec![main_web()],
                json!({"nginx.ingress.kubernetes.io/canary": "false"}),
                true,
                "ingressCanary.duplicateMain",
            ),
            (
                "a header line pasted as the header name",
                vec![main_web()],
                json!({"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary: always"}),
                false,
                "is not a header name",
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

    /// The main could be re-pointed by the next object of the same apply: a warning.
    #[test]
    fn canary_on_the_main_service_warns() {
        let state = store(&[main_web(), service("web-v1")]);
        let out = run(&state, "CREATE", Some(weighted_canary("web-v1")), None);
        assert!(out.allowed, "{:?}", out.denials);
        assert!(
            has(&out.warnings, "ingressCanary.sameService"),
            "{:?}",
            out.warnings
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
        assert!(out.allowed, "{:?}", out.denials);
        assert!(
            has(&out.warnings, "(main shop/web has pathType Exact)"),
            "{:?}",
            out.warnings
        );
    }

    /// `SetDefaultNGINXPathType`: ImplementationSpecific (and an absent pathType) is Prefix.
    #[test]
    fn implementation_specific_is_prefix() {
        let mut the_canary = weighted_canary("web-v2");
        the_canary["spec"]["rules"][0]["http"]["paths"][0]["pathType"] =
            json!("ImplementationSpecific");
        let state = store(&[main_web(), service("web-v1"), service("web-v2")]);
        let out = run(&state, "CREATE", Some(the_canary), None);
        assert!(out.allowed && out.warnings.is_empty(), "{:?}", out.warnings);
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
        // An UPDATE only warns: the canary's own update can follow in the same apply.
        let out = run(&with_canary, "UPDATE", Some(moved), Some(main_web()));
        assert!(out.allowed, "{:?}", out.denials);
        assert!(
            has(&out.warnings, "this update removes the main of"),
            "{:?}",
            out.warnings
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

    /// A canary whose main is in another namespace takes that namespace's traffic: denied
    /// (the policy can allow the pair; see the fixtures). The other namespace's main, created
    /// after such a canary, is never blocked by it, only warned.
    #[test]
    fn a_canary_attaching_to_another_namespace_is_denied() {
        let mut other_team = weighted_canary("web-v2");
        other_team["metadata"]["namespace"] = json!("other-team");
        let state = store(&[main_web(), service("web-v1")]);
        let out = run(&state, "CREATE", Some(other_team.clone()), None);
        assert!(
            has(&out.denials, "ingressCanary.crossNamespace"),
            "{:?}",
            out.denials
        );
        assert!(has(
            &out.denials,
            "main Ingress shop/web of another namespace"
        ));

        let waiting = store(&[other_team, service("web-v1")]);
        let out = run(&waiting, "CREATE", Some(main_web()), None);
        assert!(out.allowed, "{:?}", out.denials);
        assert!(
            has(&out.warnings, "ingressCanary.crossNamespace")
                && has(&out.warnings, "other-team/web-canary"),
            "{:?}",
            out.warnings
        );
    }

    /// Deleting a main only denies for a canary of its own namespace that is not part of the
    /// same release; a canary in another namespace or of the same Helm release only warns.
    #[test]
    fn deleting_a_main_warns_for_other_namespaces_and_the_same_release() {
        let mut elsewhere = weighted_canary("web-v2");
        elsewhere["metadata"]["namespace"] = json!("other-team");
        let state = store(&[main_web(), elsewhere]);
        let out = run(&state, "DELETE", None, Some(main_web()));
        assert!(out.allowed, "{:?}", out.denials);
        assert!(
            has(&out.warnings, "of another namespace"),
            "{:?}",
            out.warnings
        );

        let released = |mut object: Value| {
            object["metadata"]["annotations"]["meta.helm.sh/release-name"] = json!("web");
            object["metadata"]["annotations"]["meta.helm.sh/release-namespace"] = json!("shop");
            object
        };
        let state = store(&[released(main_web()), released(weighted_canary("web-v2"))]);
        let out = run(&state, "DELETE", None, Some(released(main_web())));
        assert!(out.allowed, "{:?}", out.denials);
        assert!(
            has(&out.warnings, "of the same Helm release shop/web"),
            "{:?}",
            out.warnings
        );

        // A canary of another release (or none) in the same namespace still protects its main.
        let state = store(&[released(main_web()), weighted_canary("web-v2")]);
        let out = run(&state, "DELETE", None, Some(released(main_web())));
        assert!(
            has(&out.denials, "ingressCanary.mainRemoved"),
            "{:?}",
            out.denials
        );
    }

    /// A canary with only spec.defaultBackend splits the catch-all server only: a warning.
    #[test]
    fn default_backend_only_canary_warns() {
        let the_canary = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"namespace": "shop", "name": "web-canary",
                "annotations": {"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-weight": "10"}},
            "spec": {"ingressClassName": "nginx",
                "defaultBackend": {"service": {"name": "web-v2", "port": {"number": 80}}}}});
        let state = store(&[main_web(), service("web-v2")]);
        let out = run(&state, "CREATE", Some(the_canary), None);
        assert!(out.allowed, "{:?}", out.denials);
        assert!(
            has(&out.warnings, "ingressCanary.defaultBackend"),
            "{:?}",
            out.warnings
        );
    }
}
