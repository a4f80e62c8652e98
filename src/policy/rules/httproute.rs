//! The `httpRoute` rule: Gateway API HTTPRoute traffic splits, backend references and A/B
//! matches.
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
//! - `BackendObjectReference.port` is required for Services (CEL "Must have port for Service
//!   reference").
//! - `HTTPHeaderMatch`/`HTTPQueryParamMatch`: type Exact (default) or RegularExpression (dialect
//!   implementation-specific: RE2 for Envoy-based gateways, PCRE for others); value has
//!   MinLength 1; of several entries with an equivalent (case-insensitive) header name only the
//!   first is considered. There is no cookie match type: A/B by cookie is a match on the
//!   `Cookie` header.
//! - Precedence between routes (`HTTPRouteRule.matches`, `HTTPRouteSpec.hostnames`): the most
//!   specific hostname, then the most specific match (Exact path, longest prefix, method, most
//!   header and query matches); ties across routes go to the oldest route by creation
//!   timestamp, then to the first by `namespace/name`. Two routes on a common listener with the
//!   same hostname and an identical match therefore never share those requests: the newer
//!   route's rule gets none of them, whatever its weights say.

use std::collections::{BTreeMap, BTreeSet};

use crate::policy::config::{RuleSettings, Rules};
use crate::policy::engine::{Context, RuleEntry};
use crate::policy::finding::{EvalError, Finding, RulePhase, Severity};
use crate::policy::gateway::{HttpBackendRef, HttpRoute, HttpRouteRule, HttpValueMatch};
use crate::policy::objects::{HttpRouteInfo, PortRef};
use crate::policy::view::{ClusterView, SyncStatus};

/// The rule's key under `rules`.
pub const RULE: &str = "httpRoute";

/// Every check this rule reports (keys of its `checks` in a policy).
pub const CHECKS: &[&str] = &[
    "weightRange",
    "noTraffic",
    "implicitWeight",
    "portRequired",
    "invalidBackend",
    "crossNamespace",
    "duplicateBackend",
    "neverMatches",
    "regexDialect",
    "cookieMatch",
    "ignoredMatch",
    "shadowedMatch",
];

/// Largest weight the API allows.
pub const MAX_WEIGHT: i64 = 1_000_000;

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

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
    // Matches need no other objects: judged even before the store has synced.
    let mut findings = Vec::new();
    for (label, rule) in labels.iter().zip(&route.spec.rules) {
        check_matches(label, rule, &mut findings);
    }
    if let SyncStatus::NotSynced(reason) = ctx.view.sync_status() {
        return Err(EvalError::not_synced(reason, findings));
    }
    for (label, rule) in labels.iter().zip(&route.spec.rules) {
        check_backends(ctx.view, namespace, label, rule, &mut findings);
    }
    check_shadowed(
        ctx.view,
        &HttpRouteInfo::from_route(route, namespace),
        &mut findings,
    );
    Ok(findings)
}

/// Most hostname + match pairs named in one message.
const MAX_LISTED: usize = 3;

/// The Gateway API's tie-break between routes with identical matches: whether `a` takes the
/// requests rather than `b`, and why. A route without a creation timestamp is being created
/// (newest); manifests read by `check` have none at all, so the name decides there.
fn precedence(a: &HttpRouteInfo, b: &HttpRouteInfo) -> (bool, &'static str) {
    match (&a.created, &b.created) {
        (Some(x), Some(y)) if x != y => (x < y, "by creation time"),
        (Some(_), None) => (true, "by creation time"),
        (None, Some(_)) => (false, "by creation time"),
        _ => (
            a.key.to_string() < b.key.to_string(),
            "created at the same time, by namespace/name",
        ),
    }
}

/// `group/kind/namespace/name` as a message names it (`Gateway gateways/public`).
fn display_parent(parent: &str) -> String {
    let mut parts = parent.splitn(4, '/');
    let (group, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (namespace, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if group == GATEWAY_GROUP || group.is_empty() {
        format!("{kind} {namespace}/{name}")
    } else {
        format!("{kind}.{group} {namespace}/{name}")
    }
}

/// Other routes on a listener this route also attaches to, with the same hostname and an
/// identical match: per the precedence rules above only the older of the two gets those
/// requests. Deny when this route is the one left without them (its split never runs); warn
/// when this write takes them from the other route.
fn check_shadowed(view: &dyn ClusterView, me: &HttpRouteInfo, findings: &mut Vec<Finding>) {
    // (Other route, why) → (where, match) pairs, split by who wins.
    let mut lost: BTreeMap<(String, &str), BTreeSet<String>> = BTreeMap::new();
    let mut taken: BTreeMap<(String, &str), BTreeSet<String>> = BTreeMap::new();
    for parent in &me.parents {
        for hostname in me.hostname_keys() {
            for other in view.http_routes_sharing(&parent.parent, hostname) {
                if other.key == me.key || !other.parents.iter().any(|p| p.overlaps(parent)) {
                    continue;
                }
                let host = if hostname.is_empty() {
                    "any hostname".to_owned()
                } else {
                    format!("hostname {hostname}")
                };
                for shared in me.matches.iter().filter(|m| other.matches.contains(m)) {
                    let place = format!("{} {host}: {shared}", display_parent(&parent.parent));
                    let (other_wins, why) = precedence(&other, me);
                    let side = if other_wins { &mut lost } else { &mut taken };
                    side.entry((other.key.to_string(), why))
                        .or_default()
                        .insert(place);
                }
            }
        }
    }
    let listed = |places: &BTreeSet<String>| {
        let shown: Vec<&str> = places.iter().take(MAX_LISTED).map(String::as_str).collect();
        match places.len().saturating_sub(MAX_LISTED) {
            0 => shown.join("; "),
            more => format!("{} and {more} more", shown.join("; ")),
        }
    };
    for ((other, why), places) in &lost {
        findings.push(finding(
            "shadowedMatch",
            Severity::Deny,
            format!(
                "HTTPRoute {other} has the identical match and comes first ({why}): {}; the \
                 Gateway gives identical matches to the oldest route, so this route's rules \
                 never receive those requests and their weights split nothing; put the split \
                 into {other}, or make this route's matches differ (a header match for the \
                 canary, a hostname)",
                listed(places)
            ),
        ));
    }
    for ((other, why), places) in &taken {
        findings.push(finding(
            "shadowedMatch",
            Severity::Warn,
            format!(
                "HTTPRoute {other} has the identical match and comes after this route ({why}): \
                 {}; the Gateway sends those requests here, not to {other}'s backends",
                listed(places)
            ),
        ));
    }
}

/// Why a backendRef will not receive traffic, if it will not.
enum Resolution {
    /// Looks fine.
    Valid,
    /// The gateway answers 500 for its share; the text says why.
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
    reference: &HttpBackendRef,
) -> Resolution {
    if !reference.is_service() {
        let group = reference.group.as_deref().unwrap_or("");
        let kind = reference.kind.as_deref().unwrap_or("Service");
        return Resolution::Unknown(format!("group {group:?} kind {kind}"));
    }
    let namespace = reference.namespace.as_deref().unwrap_or(route_namespace);
    if namespace != route_namespace {
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

fn check_backends(
    view: &dyn ClusterView,
    namespace: &str,
    label: &str,
    rule: &HttpRouteRule,
    findings: &mut Vec<Finding>,
) {
    let refs = &rule.backend_refs;
    if refs.is_empty() {
        if rule.filters.is_empty() {
            findings.push(finding(
                "noTraffic",
                Severity::Deny,
                format!(
                    "{label} has neither backendRefs nor filters: the gateway answers every \
                     matching request with 500; add a backendRef"
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
    let shares = |refs: &[&HttpBackendRef]| -> String {
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
    };

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
                shares(&all)
            ),
        ));
    }

    let mut receiving_valid = false;
    let mut invalid_weighted = Vec::new();
    for reference in refs {
        let weight = reference.effective_weight();
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
        match resolve(view, namespace, reference) {
            Resolution::Valid => receiving_valid |= weight > 0,
            Resolution::Unknown(what) => {
                receiving_valid |= weight > 0;
                if weight > 0 {
                    findings.push(finding(
                        "invalidBackend",
                        Severity::Warn,
                        format!(
                            "{label}: backendRef {} ({what}) cannot be checked; if the gateway \
                             does not support it, {:.1}% of requests get 500",
                            display(reference, namespace),
                            percent(weight, total)
                        ),
                    ));
                }
            }
            Resolution::Invalid(why) => {
                if weight > 0 {
                    invalid_weighted.push(reference);
                    let check = if why.contains("RefNotPermitted") {
                        "crossNamespace"
                    } else {
                        "invalidBackend"
                    };
                    // Port-less Services are already reported (deny) above.
                    if reference.port.is_some() || !reference.is_service() {
                        findings.push(finding(
                            check,
                            Severity::Warn,
                            format!(
                                "{label}: {why}: the gateway answers 500 for its {:.1}% share; \
                                 traffic is not moved to the other backends",
                                percent(weight, total)
                            ),
                        ));
                    }
                }
            }
        }
    }
    if !receiving_valid {
        findings.push(finding(
            "noTraffic",
            Severity::Deny,
            format!(
                "{label}: no backend with weight above 0 is valid ({}): the gateway answers every \
                 matching request with 500",
                shares(&invalid_weighted)
            ),
        ));
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
        use super::{display_parent, precedence};
        use crate::policy::objects::{HttpRouteInfo, ObjectKey};
        let route = |name: &str, created: Option<&str>| HttpRouteInfo {
            key: ObjectKey::new("shop", name),
            created: created.map(str::to_owned),
            parents: Vec::new(),
            hostnames: Vec::new(),
            matches: Vec::new(),
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
                "500 for its 10.0% share",
            ),
            (
                "only backend missing",
                vec![],
                json!([{"backendRefs": [backend("web-v9", Some(1))]}]),
                false,
                "httpRoute.noTraffic",
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
                false,
                "neither backendRefs nor filters",
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
