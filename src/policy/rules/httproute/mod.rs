//! The `httpRoute` rule: Gateway API HTTPRoute traffic splits, backend references, attachment
//! and A/B matches.
//!
//! Semantics from kubernetes-sigs/gateway-api apis/v1/httproute_types.go and shared_types.go:
//! - `BackendRef.weight` is 0..=1000000, defaults to 1 (`+kubebuilder:default=1`, so the API
//!   server fills it in before webhooks run) and is proportional: share = weight / sum of the
//!   rule's weights, not a percentage.
//! - `HTTPRouteRule.backendRefs`: an invalid backendRef (missing object, unknown kind,
//!   cross-namespace reference without a ReferenceGrant) gets HTTP 500 for the share of
//!   requests it would have received; traffic is not moved to the valid backends. When all
//!   backendRefs are invalid and the rule has no filters, all matching traffic gets 500.
//!   Conformance test HTTPRouteAllBackendsWeightZero (conformance/tests/
//!   httproute-all-backends-weight-zero.go) expects 500 when every weight is 0.
//! - A rule without backendRefs is valid: the conformance test HTTPRouteNoBackendRefs
//!   (httproute-omitted-backendrefs.go) requires the route Accepted and expects 500 for the
//!   requests it matches, unless a filter (a redirect) answers them.
//! - `BackendObjectReference.port` is required for Services (CEL "Must have port for Service
//!   reference").
//! - Mesh routes (a Service parent, GEP-1294) may send traffic to backends in any namespace
//!   without a ReferenceGrant: they augment a Service rather than expose it.
//! - `HTTPHeaderMatch`/`HTTPQueryParamMatch`: type Exact (default) or RegularExpression (dialect
//!   implementation-specific: RE2 for Envoy-based gateways, PCRE for others); value has
//!   MinLength 1; of several entries with an equivalent (case-insensitive) header name only the
//!   first is considered. There is no cookie match type: A/B by cookie is a match on the
//!   `Cookie` header.
//! - Precedence between routes: see [`shadow`].
//!
//! Deny only what is certainly broken: what the route says by itself (weights, ports, matches,
//! and a split an older route of its own namespace shadows). What another object of the same
//! apply can fix (a Service, a ReferenceGrant, a Gateway listener created after the route, as
//! `kubectl apply -f dir/` does in file-name order) is a warning saying what is missing.

mod attach;
mod shadow;

use std::collections::BTreeMap;

use crate::policy::config::{RuleSettings, Rules};
use crate::policy::engine::{Context, RuleEntry};
use crate::policy::finding::{EvalError, Finding, RulePhase, Severity};
use crate::policy::gateway::{HttpBackendRef, HttpRoute, HttpRouteRule, HttpValueMatch};
use crate::policy::objects::{HttpRouteInfo, PortRef, RouteParent};
use crate::policy::view::{ClusterView, SyncStatus};

use attach::{attach, Listeners};

/// The rule's key under `rules`.
pub const RULE: &str = "httpRoute";

/// Every check this rule reports (keys of its `checks` in a policy).
pub const CHECKS: &[&str] = &[
    "weightRange",
    "noTraffic",
    "noBackends",
    "implicitWeight",
    "portRequired",
    "invalidBackend",
    "crossNamespace",
    "duplicateBackend",
    "neverMatches",
    "regexDialect",
    "cookieMatch",
    "ignoredMatch",
    "notAttached",
    "shadowedMatch",
];

/// Largest weight the API allows.
pub const MAX_WEIGHT: i64 = 1_000_000;

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// The kinds the cross-object checks read.
const READS: &[&str] = &[
    "Service",
    "HTTPRoute",
    "ReferenceGrant",
    "Gateway",
    "Namespace",
];

/// The HTTPRoute rules.
pub const RULES: &[RuleEntry<HttpRoute>] = &[RuleEntry {
    name: RULE,
    phase: RulePhase::Validating,
    settings: |rules: &Rules| -> &dyn RuleSettings { &rules.http_route },
    evaluate,
}];

fn finding(check: &'static str, severity: Severity, message: String) -> Finding {
    Finding::new(RULE, check, severity, message)
}

/// Evaluates the rule. Only writes are judged: deleting a route breaks nothing it could check.
pub fn evaluate(ctx: &Context<'_, HttpRoute>) -> Result<Vec<Finding>, EvalError> {
    let Some(route) = ctx.object else {
        return Ok(Vec::new());
    };
    let namespace = route.metadata.namespace.as_deref().unwrap_or(ctx.namespace);
    let labels: Vec<String> = route
        .spec
        .rules
        .iter()
        .enumerate()
        .map(|(index, rule)| match &rule.name {
            Some(name) => format!("rule {name:?}"),
            None => format!("rule {}", index + 1),
        })
        .collect();
    // What the route says by itself needs no other objects: judged even before the store has
    // synced.
    let mut findings = Vec::new();
    for (label, rule) in labels.iter().zip(&route.spec.rules) {
        check_matches(label, rule, &mut findings);
        check_weights(namespace, label, rule, &mut findings);
    }
    if let SyncStatus::NotSynced(reason) = ctx.view.sync_status_for(READS) {
        return Err(EvalError::not_synced(reason, findings));
    }
    let mut me = HttpRouteInfo::from_route(route, namespace);
    // The route's own status is about its previous spec (UPDATE) or empty (CREATE): judged by
    // what the spec says now.
    for parent in &mut me.parents {
        parent.rejected = false;
    }
    let attachments = check_attachment(ctx.view, &me, &mut findings);
    // Mesh routes need no ReferenceGrant for backends in other namespaces (GEP-1294); a route
    // that also has a Gateway parent does, for that Gateway.
    let needs_grant = me.parents.is_empty() || me.parents.iter().any(|p| !p.is_service());
    for (label, rule) in labels.iter().zip(&route.spec.rules) {
        check_references(ctx.view, namespace, needs_grant, label, rule, &mut findings);
    }
    shadow::check_shadowed(ctx.view, route, &me, &attachments, &mut findings);
    Ok(findings)
}

/// `notAttached`: each parentRef known not to take the route (warn: the Gateway or Service may
/// be the next object of the same apply). Returns the parents that do take it, with where.
fn check_attachment<'a>(
    view: &dyn ClusterView,
    me: &'a HttpRouteInfo,
    findings: &mut Vec<Finding>,
) -> Vec<(&'a RouteParent, Listeners)> {
    if me.parents.is_empty() {
        findings.push(finding(
            "notAttached",
            Severity::Warn,
            "the route has no parentRefs, so no Gateway or mesh serves it; add a parentRef to \
             a Gateway (or to a Service, for a mesh route)"
                .to_owned(),
        ));
    }
    let mut attached = Vec::new();
    for parent in &me.parents {
        match attach(view, &me.key.namespace, &me.hostnames, parent) {
            Ok(listeners) => attached.push((parent, listeners)),
            Err(rejection) => findings.push(finding(
                "notAttached",
                Severity::Warn,
                format!(
                    "parentRef {}{} does not take the route ({}): {}; not served there until \
                     that is fixed",
                    shadow::display_parent(&parent.parent),
                    section_and_port(parent),
                    rejection.reason,
                    rejection.detail,
                ),
            )),
        }
    }
    attached
}

fn section_and_port(parent: &RouteParent) -> String {
    let mut text = String::new();
    if let Some(section) = &parent.section {
        text.push_str(&format!(" sectionName {section}"));
    }
    if let Some(port) = parent.port {
        text.push_str(&format!(" port {port}"));
    }
    text
}

/// Why a backendRef will not receive traffic, if it will not.
enum Resolution {
    /// Looks fine.
    Valid,
    /// The gateway answers 500 for its share; the text says what is missing.
    Invalid(String),
    /// A kind this checker cannot look up; the gateway may or may not support it.
    Unknown(String),
}

fn display(reference: &HttpBackendRef, route_namespace: &str) -> String {
    let namespace = reference.namespace.as_deref().unwrap_or(route_namespace);
    let port = reference.port.map(|p| format!(":{p}")).unwrap_or_default();
    if reference.is_service() {
        format!("{namespace}/{}{port}", reference.name)
    } else {
        let kind = reference.kind.as_deref().unwrap_or("Service");
        format!("{kind} {namespace}/{}{port}", reference.name)
    }
}

fn resolve(
    view: &dyn ClusterView,
    route_namespace: &str,
    needs_grant: bool,
    reference: &HttpBackendRef,
) -> Resolution {
    if !reference.is_service() {
        let group = reference.group.as_deref().unwrap_or("");
        let group = if group.is_empty() { "core" } else { group };
        return Resolution::Unknown(format!("group {group}"));
    }
    let namespace = reference.namespace.as_deref().unwrap_or(route_namespace);
    if needs_grant && namespace != route_namespace {
        let permitted = view.reference_grants(namespace).iter().any(|grant| {
            grant.permits(
                GATEWAY_GROUP,
                "HTTPRoute",
                route_namespace,
                "",
                "Service",
                &reference.name,
            )
        });
        if !permitted {
            return Resolution::Invalid(format!(
                "no ReferenceGrant in namespace {namespace} lets HTTPRoutes from \
                 {route_namespace} refer to Service {} (RefNotPermitted)",
                reference.name
            ));
        }
    }
    let Some(port) = reference.port else {
        return Resolution::Invalid("it has no port, which Service backendRefs require".into());
    };
    match view.service(namespace, &reference.name) {
        None => Resolution::Invalid(format!(
            "Service {namespace}/{} does not exist (BackendNotFound)",
            reference.name
        )),
        Some(service) => {
            let port_ref = i32::try_from(port).map(PortRef::Number);
            if port_ref.is_ok_and(|p| service.has_port(&p)) {
                Resolution::Valid
            } else {
                Resolution::Invalid(format!(
                    "Service {namespace}/{} has no port {port}",
                    reference.name
                ))
            }
        }
    }
}

fn percent(weight: i64, total: i64) -> f64 {
    if total <= 0 {
        return 0.0;
    }
    // Weights are at most 1e6 and at most 16 per rule: exact in f64.
    weight as f64 * 100.0 / total as f64
}

/// The rule's split as `backend share%, ...`.
fn shares(refs: &[&HttpBackendRef], namespace: &str, total: i64) -> String {
    refs.iter()
        .map(|r| {
            format!(
                "{} {:.1}%",
                display(r, namespace),
                percent(r.effective_weight(), total)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a rule's backendRefs say by themselves: no backends (`noBackends`), weights out of
/// range (`weightRange`) or all zero (`noTraffic`), omitted weights (`implicitWeight`),
/// Service references without a port (`portRequired`) and one backend twice
/// (`duplicateBackend`). Nothing another object could change, so the denials are certain.
fn check_weights(namespace: &str, label: &str, rule: &HttpRouteRule, findings: &mut Vec<Finding>) {
    let refs = &rule.backend_refs;
    if refs.is_empty() {
        if !rule.filters.iter().any(|f| f.may_answer()) {
            findings.push(finding(
                "noBackends",
                Severity::Warn,
                format!(
                    "{label} has no backendRefs and no filter that answers (such as \
                     RequestRedirect): the gateway answers its matching requests with 500; add a \
                     backendRef, unless the 500 is meant"
                ),
            ));
        }
        return;
    }
    let out_of_range: Vec<String> = refs
        .iter()
        .filter(|r| !(0..=MAX_WEIGHT).contains(&r.effective_weight()))
        .map(|r| format!("{} weight {}", display(r, namespace), r.effective_weight()))
        .collect();
    if !out_of_range.is_empty() {
        findings.push(finding(
            "weightRange",
            Severity::Deny,
            format!(
                "{label}: weights must be 0 to {MAX_WEIGHT} ({}); the route is invalid",
                out_of_range.join(", ")
            ),
        ));
        return;
    }
    let total: i64 = refs.iter().map(HttpBackendRef::effective_weight).sum();
    if total == 0 {
        findings.push(finding(
            "noTraffic",
            Severity::Deny,
            format!(
                "{label}: every backendRef has weight 0, so no backend receives traffic and the \
                 gateway answers every matching request with 500; give the stable backend a \
                 weight"
            ),
        ));
        return;
    }

    // A weight of 1 next to larger weights is what an omitted weight becomes; "canary 10,
    // stable unset" sends ~91% to the canary. Sums of 100 look like deliberate percentages.
    let omitted = refs.iter().any(|r| r.weight.is_none());
    let ones_next_to_larger = refs.iter().any(|r| r.effective_weight() == 1)
        && refs.iter().any(|r| r.effective_weight() > 1)
        && total != 100;
    if refs.len() > 1 && (omitted || ones_next_to_larger) {
        let all: Vec<&HttpBackendRef> = refs.iter().collect();
        findings.push(finding(
            "implicitWeight",
            Severity::Warn,
            format!(
                "{label}: weights are proportions and an omitted weight is 1, so the split is {}",
                shares(&all, namespace, total)
            ),
        ));
    }

    for reference in refs {
        if reference.is_service() && reference.port.is_none() {
            findings.push(finding(
                "portRequired",
                Severity::Deny,
                format!(
                    "{label}: backendRef {} has no port; the API requires one for Services and \
                     the gateway marks the reference unresolved (500 for its share); add the \
                     Service port",
                    display(reference, namespace)
                ),
            ));
        }
    }

    // The same Service and port twice: the shares add up, which is rarely what a split meant.
    let mut by_target: BTreeMap<String, (usize, i64)> = BTreeMap::new();
    for reference in refs {
        let entry = by_target
            .entry(display(reference, namespace))
            .or_insert((0, 0));
        entry.0 += 1;
        entry.1 += reference.effective_weight();
    }
    for (target, (count, weight)) in by_target {
        if count > 1 {
            findings.push(finding(
                "duplicateBackend",
                Severity::Warn,
                format!(
                    "{label}: {target} appears {count} times in one split; its weights add up to \
                     {weight} ({:.1}% of requests)",
                    percent(weight, total)
                ),
            ));
        }
    }
}

/// What a rule's backendRefs refer to: Services that do not exist or lack the port
/// (`invalidBackend`), backends in another namespace without a ReferenceGrant
/// (`crossNamespace`), and a rule none of whose weighted backends resolves (`noTraffic`). All
/// warnings: the Service or the grant may be the next object of the same apply.
fn check_references(
    view: &dyn ClusterView,
    namespace: &str,
    needs_grant: bool,
    label: &str,
    rule: &HttpRouteRule,
    findings: &mut Vec<Finding>,
) {
    let refs = &rule.backend_refs;
    let total: i64 = refs.iter().map(HttpBackendRef::effective_weight).sum();
    // Judged by check_weights: nothing to resolve, or nothing receives traffic anyway.
    if refs.is_empty()
        || total == 0
        || refs
            .iter()
            .any(|r| !(0..=MAX_WEIGHT).contains(&r.effective_weight()))
    {
        return;
    }
    let mut receiving_valid = false;
    let mut unresolved = Vec::new();
    for reference in refs {
        let weight = reference.effective_weight();
        match resolve(view, namespace, needs_grant, reference) {
            Resolution::Valid => receiving_valid |= weight > 0,
            Resolution::Unknown(what) => {
                receiving_valid |= weight > 0;
                if weight > 0 {
                    findings.push(finding(
                        "invalidBackend",
                        Severity::Warn,
                        format!(
                            "{label}: backendRef {} ({what}) is a kind only some gateways \
                             support; elsewhere (InvalidKind) its {:.1}% share gets 500",
                            display(reference, namespace),
                            percent(weight, total)
                        ),
                    ));
                }
            }
            Resolution::Invalid(why) => {
                // Port-less Services are reported (deny) by check_weights.
                if weight == 0 || (reference.port.is_none() && reference.is_service()) {
                    continue;
                }
                let check = if why.contains("RefNotPermitted") {
                    "crossNamespace"
                } else {
                    "invalidBackend"
                };
                unresolved.push(display(reference, namespace));
                findings.push(finding(
                    check,
                    Severity::Warn,
                    format!(
                        "{label}: {why}; its {:.1}% share gets 500 until that is fixed (the \
                         gateway does not move it to the other backends)",
                        percent(weight, total)
                    ),
                ));
            }
        }
    }
    if !receiving_valid && !unresolved.is_empty() {
        findings.push(finding(
            "noTraffic",
            Severity::Warn,
            format!(
                "{label}: no weighted backend resolves yet ({}), so every matching request gets \
                 500; create what the other warnings name, before the route or in the same apply",
                unresolved.join(", ")
            ),
        ));
    }
}

/// What a regular expression does to a match.
fn regex_problem(pattern: &str) -> Option<(Severity, &'static str, String)> {
    match regex::Regex::new(pattern) {
        Ok(_) => None,
        Err(error) => {
            let text = error.to_string();
            if text.contains("look-around") || text.contains("backreferences") {
                Some((
                    Severity::Warn,
                    "regexDialect",
                    "uses look-around or backreferences, which RE2-based gateways (Envoy \
                     Gateway, Istio, Contour) reject"
                        .to_owned(),
                ))
            } else {
                let first_line = text.lines().last().unwrap_or_default().trim().to_owned();
                Some((
                    Severity::Deny,
                    "neverMatches",
                    format!("is not a valid regular expression ({first_line})"),
                ))
            }
        }
    }
}

fn check_value_matches(
    label: &str,
    what: &str,
    matches: &[HttpValueMatch],
    case_insensitive: bool,
    findings: &mut Vec<Finding>,
) {
    let mut seen: Vec<String> = Vec::new();
    for m in matches {
        let key = if case_insensitive {
            m.name.to_ascii_lowercase()
        } else {
            m.name.clone()
        };
        if seen.contains(&key) {
            findings.push(finding(
                "ignoredMatch",
                Severity::Warn,
                format!(
                    "{label}: {what} {:?} is listed twice in one match; only the first entry \
                     counts, the second is ignored",
                    m.name
                ),
            ));
            continue;
        }
        seen.push(key);
        match m.kind() {
            "RegularExpression" => {
                if let Some((severity, check, problem)) = regex_problem(&m.value) {
                    let effect = if severity == Severity::Deny {
                        "; the gateway rejects the rule or it never matches, so this A/B \
                         variant gets no requests"
                    } else {
                        ""
                    };
                    findings.push(finding(
                        check,
                        severity,
                        format!(
                            "{label}: {what} {:?} pattern {:?} {problem}{effect}",
                            m.name, m.value
                        ),
                    ));
                }
            }
            _ => {
                if m.value.is_empty() {
                    findings.push(finding(
                        "neverMatches",
                        Severity::Deny,
                        format!(
                            "{label}: {what} {:?} has an empty Exact value; the API requires at \
                             least one character and no request matches it",
                            m.name
                        ),
                    ));
                } else if what == "header" && m.value.trim() != m.value {
                    findings.push(finding(
                        "neverMatches",
                        Severity::Deny,
                        format!(
                            "{label}: header {:?} Exact value {:?} starts or ends with \
                             whitespace, which HTTP strips from header values, so no request \
                             matches it",
                            m.name, m.value
                        ),
                    ));
                } else if what == "header" && m.name.eq_ignore_ascii_case("cookie") {
                    findings.push(finding(
                        "cookieMatch",
                        Severity::Warn,
                        format!(
                            "{label}: Exact match on the whole Cookie header {:?} fails as soon \
                             as the client sends any other cookie; use RegularExpression, e.g. \
                             (^|;\\s*)name=value(;|$)",
                            m.value
                        ),
                    ));
                }
            }
        }
    }
}

fn check_matches(label: &str, rule: &HttpRouteRule, findings: &mut Vec<Finding>) {
    for m in &rule.matches {
        // HTTP header names are case-insensitive; query parameter names are not.
        check_value_matches(label, "header", &m.headers, true, findings);
        check_value_matches(label, "query parameter", &m.query_params, false, findings);
        if let Some(path) = &m.path {
            if path.match_type.as_deref() == Some("RegularExpression") {
                let value = path.value.as_deref().unwrap_or("/");
                if let Some((severity, check, problem)) = regex_problem(value) {
                    findings.push(finding(
                        check,
                        severity,
                        format!("{label}: path pattern {value:?} {problem}"),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Store, StoredKind};
    use crate::testing::{has, store_of as store, validate, Outcome};

    fn run(store: &Store, object: Value) -> Outcome {
        validate(store, "CREATE", Some(object), None)
    }

    use serde_json::{json, Value};

    /// The Gateway API's tie-break: older first, a route being created last, and by
    /// `namespace/name` when the creation times are equal or unknown (manifests).
    #[test]
    fn precedence_between_identical_matches() {
        use super::shadow::{display_parent, precedence};
        use crate::policy::objects::{HttpRouteInfo, ObjectKey};
        let route = |name: &str, created: Option<&str>| HttpRouteInfo {
            key: ObjectKey::new("shop", name),
            created: created.map(Box::from),
            parents: Box::default(),
            hostnames: Box::default(),
            matches: Box::default(),
        };
        let (old, new) = (
            route("b", Some("2024-01-01T00:00:00Z")),
            route("a", Some("2024-02-01T00:00:00Z")),
        );
        assert!(precedence(&old, &new).0 && !precedence(&new, &old).0);
        let creating = route("0-first-by-name", None);
        assert!(precedence(&new, &creating).0 && !precedence(&creating, &new).0);
        let (a, b) = (route("a", None), route("b", None));
        assert_eq!(
            precedence(&a, &b),
            (true, "created at the same time, by namespace/name")
        );
        assert!(!precedence(&b, &a).0);

        assert_eq!(
            display_parent("gateway.networking.k8s.io/Gateway/gateways/public"),
            "Gateway gateways/public"
        );
        assert_eq!(display_parent("/Service/shop/web"), "Service shop/web");
        assert_eq!(
            display_parent("example.io/Listener/shop/edge"),
            "Listener.example.io shop/edge"
        );
    }

    fn service(namespace: &str, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 8080}]}})
    }

    fn route(rules: Value) -> Value {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"namespace": "shop", "name": "web"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": rules}})
    }

    fn backend(name: &str, weight: Option<i64>) -> Value {
        let mut b = json!({"name": name, "port": 8080});
        if let Some(w) = weight {
            b["weight"] = json!(w);
        }
        b
    }

    #[test]
    fn route_checks_allow_warn_and_deny() {
        let grant = json!({"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
            "metadata": {"namespace": "payments", "name": "from-shop"},
            "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "shop"}],
                "to": [{"group": "", "kind": "Service"}]}});
        let cases: Vec<(&str, Vec<Value>, Value, bool, &str)> = vec![
            (
                "90/10 split",
                vec![],
                json!([{"backendRefs": [backend("web-v1", Some(90)), backend("web-v2", Some(10))]}]),
                true,
                "",
            ),
            (
                "omitted stable weight",
                vec![],
                json!([{"backendRefs": [backend("web-v1", None), backend("web-v2", Some(10))]}]),
                true,
                "shop/web-v2:8080 90.9%",
            ),
            (
                "all zero",
                vec![],
                json!([{"backendRefs": [backend("web-v1", Some(0)), backend("web-v2", Some(0))]}]),
                false,
                "httpRoute.noTraffic",
            ),
            (
                "weight out of range",
                vec![],
                json!([{"backendRefs": [backend("web-v1", Some(2_000_000))]}]),
                false,
                "httpRoute.weightRange",
            ),
            (
                "missing canary service",
                vec![],
                json!([{"backendRefs": [backend("web-v1", Some(90)), backend("web-v9", Some(10))]}]),
                true,
                "its 10.0% share gets 500",
            ),
            (
                "only backend missing",
                vec![],
                json!([{"backendRefs": [backend("web-v9", Some(1))]}]),
                true,
                "no weighted backend resolves yet (shop/web-v9:8080)",
            ),
            (
                "no port",
                vec![],
                json!([{"backendRefs": [{"name": "web-v1"}]}]),
                false,
                "httpRoute.portRequired",
            ),
            (
                "cross namespace without grant",
                vec![service("payments", "pay")],
                json!([{"backendRefs": [backend("web-v1", Some(90)),
                    {"name": "pay", "namespace": "payments", "port": 8080, "weight": 10}]}]),
                true,
                "httpRoute.crossNamespace",
            ),
            (
                "cross namespace with grant",
                vec![service("payments", "pay"), grant],
                json!([{"backendRefs": [backend("web-v1", Some(90)),
                    {"name": "pay", "namespace": "payments", "port": 8080, "weight": 10}]}]),
                true,
                "",
            ),
            (
                "same service twice",
                vec![],
                json!([{"backendRefs": [backend("web-v1", Some(50)), backend("web-v1", Some(30)), backend("web-v2", Some(20))]}]),
                true,
                "appears 2 times",
            ),
            (
                "invalid regex",
                vec![],
                json!([{"matches": [{"headers": [{"type": "RegularExpression", "name": "x-user", "value": "^(beta"}]}],
                    "backendRefs": [backend("web-v2", Some(1))]}]),
                false,
                "httpRoute.neverMatches",
            ),
            (
                "look-around regex",
                vec![],
                json!([{"matches": [{"headers": [{"type": "RegularExpression", "name": "x-user", "value": "^(?!bot)"}]}],
                    "backendRefs": [backend("web-v2", Some(1))]}]),
                true,
                "httpRoute.regexDialect",
            ),
            (
                "empty exact header",
                vec![],
                json!([{"matches": [{"headers": [{"name": "x-canary", "value": ""}]}],
                    "backendRefs": [backend("web-v2", Some(1))]}]),
                false,
                "httpRoute.neverMatches",
            ),
            (
                "exact cookie header",
                vec![],
                json!([{"matches": [{"headers": [{"name": "Cookie", "value": "canary=always"}]}],
                    "backendRefs": [backend("web-v2", Some(1))]}]),
                true,
                "httpRoute.cookieMatch",
            ),
            (
                "no backends no filters",
                vec![],
                json!([{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]),
                true,
                "httpRoute.noBackends",
            ),
            (
                "redirect only",
                vec![],
                json!([{"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}]}]),
                true,
                "",
            ),
        ];
        for (name, extra, rules, allowed, needle) in cases {
            let mut objects = vec![service("shop", "web-v1"), service("shop", "web-v2")];
            objects.extend(extra);
            let state = store(&objects);
            let out = run(&state, route(rules));
            assert_eq!(out.allowed, allowed, "{name}: {:?}", out.denials);
            if needle.is_empty() {
                assert!(out.warnings.is_empty(), "{name}: {:?}", out.warnings);
            } else {
                let texts = if allowed { &out.warnings } else { &out.denials };
                assert!(has(texts, needle), "{name}: {texts:?}");
            }
        }
    }

    #[test]
    fn not_synced_warns_by_default() {
        let state = Store::expecting(&[StoredKind::Service]);
        let out = run(
            &state,
            route(json!([{"backendRefs": [{"name": "web-v1", "port": 8080}]}])),
        );
        assert!(out.allowed);
        assert!(has(&out.warnings, "not synced"), "{:?}", out.warnings);
    }
}
