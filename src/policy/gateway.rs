//! Typed Gateway API HTTPRoute (`gateway.networking.k8s.io` v1, identical in v1beta1 for the
//! fields read here), the parts the `httpRoute` rule reads, and the Gateway API's hostname
//! intersection between a route and a listener.
//!
//! HTTPRoute is a CRD, so k8s-openapi has no type for it. Fields follow apis/v1/httproute_types.go
//! and shared_types.go of kubernetes-sigs/gateway-api. Unknown fields are ignored (the API keeps
//! growing), missing lists read as empty, and numbers are read as `i64` so a weight outside the
//! schema's range is reported instead of failing the parse.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An HTTPRoute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The route.
    #[serde(default)]
    pub spec: HttpRouteSpec,
    /// What the controllers reported. Empty on CREATE (the API server drops a status sent
    /// with the object) and in most manifests.
    #[serde(default)]
    pub status: HttpRouteStatus,
}

/// `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteStatus {
    /// `parents`: one entry per parentRef (and controller) that a controller looked at.
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

/// One `status.parents[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// `parentRef`: the spec's parentRef this entry is about.
    #[serde(default)]
    pub parent_ref: ParentReference,
    /// `conditions` (`Accepted`, `ResolvedRefs`, ...).
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A `metav1.Condition`, the parts read here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `type`.
    #[serde(default, rename = "type")]
    pub condition_type: String,
    /// `status`: `True`, `False` or `Unknown`.
    #[serde(default)]
    pub status: String,
    /// `reason` (`NoMatchingParent`, `NotAllowedByListeners`, ...).
    #[serde(default)]
    pub reason: String,
    /// `observedGeneration`: the route generation the controller judged.
    #[serde(default)]
    pub observed_generation: Option<i64>,
}

impl HttpRoute {
    /// Whether a controller reported `Accepted: False` for `parent` (a spec parentRef) about
    /// the route's current spec: a condition observed for an older generation says nothing
    /// about this one (the spec may have fixed what was rejected).
    pub fn rejected_by_status(&self, parent: &ParentReference, route_namespace: &str) -> bool {
        let generation = self.metadata.generation;
        self.status.parents.iter().any(|entry| {
            entry.parent_ref.same_parent(parent, route_namespace)
                && entry.conditions.iter().any(|c| {
                    c.condition_type == "Accepted"
                        && c.status == "False"
                        && match (c.observed_generation, generation) {
                            (Some(observed), Some(current)) => observed >= current,
                            _ => true,
                        }
                })
        })
    }
}

/// Implemented so kube's blanket `kube::Resource` applies and admission can read the object's
/// metadata like any built-in kind.
impl k8s_openapi::Resource for HttpRoute {
    const API_VERSION: &'static str = "gateway.networking.k8s.io/v1";
    const GROUP: &'static str = "gateway.networking.k8s.io";
    const KIND: &'static str = "HTTPRoute";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "httproutes";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for HttpRoute {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// `spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// `parentRefs`: the Gateways (listeners) the route attaches to.
    #[serde(default)]
    pub parent_refs: Vec<ParentReference>,
    /// `hostnames`.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// `rules`.
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
}

/// One `rules[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// `name` (optional section name).
    #[serde(default)]
    pub name: Option<String>,
    /// `matches`; empty means the default prefix match on `/`.
    #[serde(default)]
    pub matches: Vec<HttpRouteMatch>,
    /// `filters`.
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
    /// `backendRefs`.
    #[serde(default)]
    pub backend_refs: Vec<HttpBackendRef>,
    /// Every other field (`timeouts`, `retry`, `sessionPersistence`, ...), kept only so that
    /// [`HttpRouteRule::action_fingerprint`] sees everything the rule does with a request.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// One `matches[]` entry; its conditions are ANDed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// `path`.
    #[serde(default)]
    pub path: Option<HttpPathMatch>,
    /// `headers`.
    #[serde(default)]
    pub headers: Vec<HttpValueMatch>,
    /// `queryParams`.
    #[serde(default)]
    pub query_params: Vec<HttpValueMatch>,
    /// `method`.
    #[serde(default)]
    pub method: Option<String>,
}

/// `path` of a match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpPathMatch {
    /// `Exact`, `PathPrefix` (the default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub match_type: Option<String>,
    /// `value` (default `/`).
    #[serde(default)]
    pub value: Option<String>,
}

/// A header or query parameter match (same shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpValueMatch {
    /// `Exact` (the default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub match_type: Option<String>,
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `value`.
    #[serde(default)]
    pub value: String,
}

impl HttpValueMatch {
    /// The match type with the API default applied.
    pub fn kind(&self) -> &str {
        self.match_type.as_deref().unwrap_or("Exact")
    }
}

/// A filter: its type, and the rest as written (compared, never interpreted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRouteFilter {
    /// `type` (`RequestRedirect`, `URLRewrite`, ...).
    #[serde(default, rename = "type")]
    pub filter_type: String,
    /// The type's settings (`requestRedirect: {...}`, ...).
    #[serde(flatten)]
    pub settings: BTreeMap<String, Value>,
}

impl HttpRouteFilter {
    /// Whether the filter may answer a request itself, so that a rule without backendRefs does
    /// not end in the 500 the API prescribes for it: `RequestRedirect` answers with a redirect;
    /// `ExtensionRef` and types this reading does not know (implementation-specific direct
    /// responses, auth) may. Header modifiers, rewrites, mirrors and CORS only change a
    /// request that still needs a backend.
    pub fn may_answer(&self) -> bool {
        !matches!(
            self.filter_type.as_str(),
            "RequestHeaderModifier"
                | "ResponseHeaderModifier"
                | "URLRewrite"
                | "RequestMirror"
                | "CORS"
        )
    }
}

/// One `backendRefs[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// `group` (empty for core).
    #[serde(default)]
    pub group: Option<String>,
    /// `kind` (`Service` when unset).
    #[serde(default)]
    pub kind: Option<String>,
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `namespace` (the route's when unset).
    #[serde(default)]
    pub namespace: Option<String>,
    /// `port` (required for Services).
    #[serde(default)]
    pub port: Option<i64>,
    /// `weight`: 0..=1000000; the API server fills in 1 when omitted (`+kubebuilder:default=1`),
    /// so only manifests read offline still show it missing.
    #[serde(default)]
    pub weight: Option<i64>,
    /// `filters` on this backend.
    #[serde(default)]
    pub filters: Vec<HttpRouteFilter>,
}

impl HttpBackendRef {
    /// Whether this refers to a core Service (group empty, kind `Service` or unset).
    pub fn is_service(&self) -> bool {
        self.group.as_deref().unwrap_or("").is_empty()
            && self.kind.as_deref().unwrap_or("Service") == "Service"
    }

    /// The effective weight (`1` when unset).
    pub fn effective_weight(&self) -> i64 {
        self.weight.unwrap_or(1)
    }
}

/// One `parentRefs[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// `group` (`gateway.networking.k8s.io` when unset).
    #[serde(default)]
    pub group: Option<String>,
    /// `kind` (`Gateway` when unset).
    #[serde(default)]
    pub kind: Option<String>,
    /// `namespace` (the route's when unset).
    #[serde(default)]
    pub namespace: Option<String>,
    /// `name`.
    #[serde(default)]
    pub name: String,
    /// `sectionName`: one listener; every listener of the parent when unset.
    #[serde(default)]
    pub section_name: Option<String>,
    /// `port`: the listeners on that port; any when unset.
    #[serde(default)]
    pub port: Option<i64>,
}

impl ParentReference {
    /// Whether both name the same parent, section and port (defaults applied): a status entry's
    /// `parentRef` is a copy of the spec's.
    pub fn same_parent(&self, other: &ParentReference, route_namespace: &str) -> bool {
        self.parent_key(route_namespace) == other.parent_key(route_namespace)
            && self.section_name == other.section_name
            && self.port == other.port
    }

    /// Whether the parent is a Service: a mesh route (GEP-1294), not a Gateway route.
    pub fn is_service(&self) -> bool {
        self.group.as_deref() == Some("") && self.kind.as_deref() == Some("Service")
    }

    /// The parent object with defaults applied: `group/kind/namespace/name`.
    pub fn parent_key(&self, route_namespace: &str) -> String {
        format!(
            "{}/{}/{}/{}",
            self.group.as_deref().unwrap_or("gateway.networking.k8s.io"),
            self.kind.as_deref().unwrap_or("Gateway"),
            self.namespace.as_deref().unwrap_or(route_namespace),
            self.name
        )
    }
}

impl HttpRouteRule {
    /// Each match of the rule as one canonical text (defaults applied, headers and query
    /// parameters in a fixed order, header names lower-cased as HTTP compares them): two
    /// matches with the same text select exactly the same requests and have the same
    /// precedence. A rule without matches has the default one, a prefix match on `/`.
    pub fn match_keys(&self) -> Vec<String> {
        let default = [HttpRouteMatch::default()];
        let matches: &[HttpRouteMatch] = if self.matches.is_empty() {
            &default
        } else {
            &self.matches
        };
        matches.iter().map(HttpRouteMatch::canonical).collect()
    }

    /// A fingerprint of what the rule does with the requests it matches: its backendRefs
    /// (defaults applied, in a fixed order), their filters, the rule's filters and every other
    /// setting (timeouts, retries, session persistence), but not its name or matches. Two rules
    /// with the same fingerprint treat a request identically, so which of two routes with an
    /// identical match wins makes no difference (and splits nothing).
    pub fn action_fingerprint(&self, route_namespace: &str) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        let mut backends: Vec<u64> = self
            .backend_refs
            .iter()
            .map(|b| {
                let mut h = std::hash::DefaultHasher::new();
                b.group.as_deref().unwrap_or("").hash(&mut h);
                b.kind.as_deref().unwrap_or("Service").hash(&mut h);
                b.namespace
                    .as_deref()
                    .unwrap_or(route_namespace)
                    .hash(&mut h);
                b.name.hash(&mut h);
                b.port.hash(&mut h);
                b.effective_weight().hash(&mut h);
                hash_filters(&b.filters, &mut h);
                h.finish()
            })
            .collect();
        backends.sort_unstable();
        backends.hash(&mut hasher);
        hash_filters(&self.filters, &mut hasher);
        for (key, value) in &self.other {
            key.hash(&mut hasher);
            hash_value(value, &mut hasher);
        }
        hasher.finish()
    }
}

fn hash_filters(filters: &[HttpRouteFilter], hasher: &mut impl Hasher) {
    filters.len().hash(hasher);
    for filter in filters {
        filter.filter_type.hash(hasher);
        for (key, value) in &filter.settings {
            key.hash(hasher);
            hash_value(value, hasher);
        }
    }
}

/// Hashes a JSON value with object keys in sorted order, whatever order the map keeps them in.
fn hash_value(value: &Value, hasher: &mut impl Hasher) {
    match value {
        Value::Null => 0u8.hash(hasher),
        Value::Bool(b) => (1u8, b).hash(hasher),
        Value::Number(n) => (2u8, n.to_string()).hash(hasher),
        Value::String(s) => (3u8, s).hash(hasher),
        Value::Array(items) => {
            (4u8, items.len()).hash(hasher);
            for item in items {
                hash_value(item, hasher);
            }
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            (5u8, keys.len()).hash(hasher);
            for key in keys {
                key.hash(hasher);
                hash_value(&map[key], hasher);
            }
        }
    }
}

/// A 64-bit fingerprint of a text (a canonical match): the store keeps these instead of the
/// texts. The hasher's keys are fixed, so a text has the same fingerprint in every process.
pub fn text_fingerprint(text: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// Whether the wildcard `*.suffix` covers `hostname` (a name or a narrower wildcard). Per the
/// Gateway API a wildcard stands for one or more leading labels: `*.example.com` covers
/// `foo.example.com` and `foo.bar.example.com`, not `example.com`.
fn covers(wildcard: &str, hostname: &str) -> bool {
    let Some(suffix) = wildcard.strip_prefix('*').filter(|s| s.starts_with('.')) else {
        return false;
    };
    let name = hostname.strip_prefix('*').unwrap_or(hostname);
    name.len() > suffix.len() && name.ends_with(suffix)
}

/// The hostnames a route serves on a listener: the Gateway API's intersection of
/// `HTTPRoute.spec.hostnames` with `Listener.hostname` (each intersecting pair gives the more
/// specific of the two). An empty list means none intersect, so the route does not attach to
/// that listener (`NoMatchingListenerHostname`). `""` stands for "any hostname": a route
/// without hostnames on a listener without one.
pub fn served_hostnames(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let listener = listener.filter(|l| !l.is_empty());
    let mut served: Vec<String> = match (listener, route.is_empty()) {
        (None, true) => vec![String::new()],
        (None, false) => route.to_vec(),
        (Some(l), true) => vec![l.to_owned()],
        (Some(l), false) => route
            .iter()
            .filter_map(|h| {
                // Equal, or the listener's wildcard covers the route's hostname: the route's
                // is the more specific; the route's wildcard covering the listener's: the
                // listener's.
                if h == l || covers(l, h) {
                    Some(h.clone())
                } else if covers(h, l) {
                    Some(l.to_owned())
                } else {
                    None
                }
            })
            .collect(),
    };
    served.sort();
    served.dedup();
    served
}

/// The hostnames (as a route may write them) whose routes can serve `hostname` on some
/// listener: itself, every wildcard covering it, and `""` (no hostnames). The store indexes
/// routes by the hostnames as written; these are the postings to look in.
pub fn hostnames_that_may_serve(hostname: &str) -> Vec<String> {
    let mut candidates = vec![hostname.to_owned(), String::new()];
    let name = hostname.strip_prefix("*.").unwrap_or(hostname);
    let mut rest = name;
    while let Some((_, parent)) = rest.split_once('.') {
        candidates.push(format!("*.{parent}"));
        rest = parent;
    }
    candidates.sort();
    candidates.dedup();
    candidates
}

impl HttpRouteMatch {
    /// See [`HttpRouteRule::match_keys`].
    pub fn canonical(&self) -> String {
        let (path_type, path) = match &self.path {
            Some(path) => (
                path.match_type.as_deref().unwrap_or("PathPrefix"),
                path.value.as_deref().unwrap_or("/"),
            ),
            None => ("PathPrefix", "/"),
        };
        let values = |list: &[HttpValueMatch], fold_case: bool| {
            let mut all: Vec<String> = list
                .iter()
                .map(|m| {
                    let name = if fold_case {
                        m.name.to_ascii_lowercase()
                    } else {
                        m.name.clone()
                    };
                    format!("{} {name}={:?}", m.kind(), m.value)
                })
                .collect();
            all.sort();
            all.join(", ")
        };
        let mut text = format!("path {path_type} {path:?}");
        if let Some(method) = &self.method {
            text.push_str(&format!(", method {method}"));
        }
        if !self.headers.is_empty() {
            text.push_str(&format!(", headers [{}]", values(&self.headers, true)));
        }
        if !self.query_params.is_empty() {
            text.push_str(&format!(", query [{}]", values(&self.query_params, false)));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(matches: serde_json::Value) -> HttpRouteRule {
        serde_json::from_value(serde_json::json!({ "matches": matches })).unwrap()
    }

    /// Identical requests, identical text: defaults applied, header order and header-name case
    /// do not matter; anything that changes which requests match changes the text.
    #[test]
    fn match_keys_are_equal_exactly_for_identical_matches() {
        let same = [
            rule(serde_json::json!([])),
            rule(serde_json::json!([{}])),
            rule(serde_json::json!([{"path": {"value": "/"}}])),
            rule(serde_json::json!([{"path": {"type": "PathPrefix", "value": "/"}}])),
        ];
        for other in &same[1..] {
            assert_eq!(same[0].match_keys(), other.match_keys());
        }
        let headers = rule(serde_json::json!([{"headers": [
            {"name": "X-Canary", "value": "true"}, {"name": "x-team", "value": "a"}]}]));
        let reordered = rule(serde_json::json!([{"headers": [
            {"name": "x-team", "value": "a", "type": "Exact"}, {"name": "x-canary", "value": "true"}]}]));
        assert_eq!(headers.match_keys(), reordered.match_keys());

        let different = [
            rule(serde_json::json!([{"path": {"type": "Exact", "value": "/"}}])),
            rule(serde_json::json!([{"path": {"value": "/api"}}])),
            rule(serde_json::json!([{"method": "GET"}])),
            rule(serde_json::json!([{"headers": [{"name": "x-canary", "value": "false"}]}])),
            rule(serde_json::json!([{"queryParams": [{"name": "Canary", "value": "true"}]}])),
            rule(serde_json::json!([{"queryParams": [{"name": "canary", "value": "true"}]}])),
        ];
        let mut keys: Vec<Vec<String>> = different.iter().map(HttpRouteRule::match_keys).collect();
        keys.push(same[0].match_keys());
        keys.push(headers.match_keys());
        let count = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(
            keys.len(),
            count,
            "every variant has its own text: {keys:#?}"
        );
    }
    /// The Gateway API's hostname intersection (httproute_types.go `HTTPRouteSpec.Hostnames`,
    /// the conformance suite's httproute-hostname-intersection): each intersecting pair gives
    /// the more specific hostname; a wildcard stands for one or more labels, never none.
    #[test]
    fn served_hostnames_follow_the_gateway_api_intersection() {
        let hosts = |list: &[&str]| list.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        let cases: &[(Option<&str>, &[&str], &[&str])] = &[
            (None, &[], &[""]),
            (None, &["a.example.com"], &["a.example.com"]),
            (Some("very.specific.com"), &[], &["very.specific.com"]),
            (
                Some("very.specific.com"),
                &[
                    "non.matching.com",
                    "*.nonmatchingwildcard.io",
                    "very.specific.com",
                ],
                &["very.specific.com"],
            ),
            (
                Some("*.wildcard.io"),
                &[
                    "non.matching.com",
                    "wildcard.io",
                    "foo.wildcard.io",
                    "foo.bar.wildcard.io",
                ],
                &["foo.bar.wildcard.io", "foo.wildcard.io"],
            ),
            (
                Some("very.specific.com"),
                &["*.specific.com"],
                &["very.specific.com"],
            ),
            (
                Some("*.anotherwildcard.io"),
                &["*.anotherwildcard.io"],
                &["*.anotherwildcard.io"],
            ),
            (
                Some("*.example.com"),
                &["*.a.example.com"],
                &["*.a.example.com"],
            ),
            (
                Some("*.a.example.com"),
                &["*.example.com"],
                &["*.a.example.com"],
            ),
            (Some("foo.example.com"), &["not-accepted.test.com"], &[]),
            (
                Some("*.wildcard.io"),
                &["wildcard.io", "specific.but.wrong.com"],
                &[],
            ),
        ];
        for (listener, route, served) in cases {
            assert_eq!(
                served_hostnames(*listener, &hosts(route)),
                hosts(served),
                "listener {listener:?}, route {route:?}"
            );
        }
        // Every hostname a route can write to end up serving `foo.a.example.com` is looked in.
        assert_eq!(
            hostnames_that_may_serve("foo.a.example.com"),
            [
                "",
                "*.a.example.com",
                "*.com",
                "*.example.com",
                "foo.a.example.com"
            ]
        );
        assert_eq!(
            hostnames_that_may_serve("*.a.example.com"),
            ["", "*.a.example.com", "*.com", "*.example.com"]
        );
    }

    /// Same backends (in any order, weights defaulted), filters and settings: the same action;
    /// any change to what happens to a request: another.
    #[test]
    fn action_fingerprints_are_equal_exactly_for_identical_treatment() {
        let rule =
            |value: serde_json::Value| -> HttpRouteRule { serde_json::from_value(value).unwrap() };
        let base = rule(serde_json::json!({"backendRefs": [
            {"name": "web-v1", "port": 8080, "weight": 1}, {"name": "web-v2", "port": 8080}]}));
        let same = [rule(
            serde_json::json!({"name": "other-name", "matches": [{"path": {"value": "/x"}}],
                "backendRefs": [{"name": "web-v2", "port": 8080, "weight": 1},
                    {"name": "web-v1", "port": 8080, "namespace": "shop", "kind": "Service"}]}),
        )];
        for other in &same {
            assert_eq!(
                base.action_fingerprint("shop"),
                other.action_fingerprint("shop")
            );
        }
        let different = [
            rule(serde_json::json!({"backendRefs": [
                {"name": "web-v1", "port": 8080, "weight": 9}, {"name": "web-v2", "port": 8080}]})),
            rule(serde_json::json!({"backendRefs": [{"name": "web-v1", "port": 8080}]})),
            rule(serde_json::json!({"backendRefs": [
                {"name": "web-v1", "port": 8080}, {"name": "web-v2", "port": 8080}],
                "filters": [{"type": "RequestHeaderModifier",
                    "requestHeaderModifier": {"add": [{"name": "x", "value": "1"}]}}]})),
            rule(serde_json::json!({"backendRefs": [
                {"name": "web-v1", "port": 8080}, {"name": "web-v2", "port": 8080}],
                "timeouts": {"request": "10s"}})),
        ];
        let mut fingerprints: Vec<u64> = different
            .iter()
            .map(|r| r.action_fingerprint("shop"))
            .collect();
        fingerprints.push(base.action_fingerprint("shop"));
        fingerprints.push(base.action_fingerprint("other-namespace"));
        let count = fingerprints.len();
        fingerprints.sort_unstable();
        fingerprints.dedup();
        assert_eq!(fingerprints.len(), count);
    }

    /// `Accepted: False` counts for the parentRef it names, and only for the current generation.
    #[test]
    fn rejection_by_status_is_per_parent_and_generation() {
        let route: HttpRoute = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "shop", "name": "web", "generation": 2},
            "spec": {"parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "http"},
                {"name": "internal", "namespace": "gateways"},
                {"name": "old", "namespace": "gateways"}]},
            "status": {"parents": [
                {"parentRef": {"name": "public", "namespace": "gateways", "sectionName": "http"},
                    "conditions": [{"type": "Accepted", "status": "False", "reason": "NoMatchingParent",
                        "observedGeneration": 2}]},
                {"parentRef": {"name": "internal", "namespace": "gateways"},
                    "conditions": [{"type": "Accepted", "status": "True"},
                        {"type": "ResolvedRefs", "status": "False"}]},
                {"parentRef": {"name": "old", "namespace": "gateways"},
                    "conditions": [{"type": "Accepted", "status": "False", "observedGeneration": 1}]}]}
        }))
        .unwrap();
        let parents = &route.spec.parent_refs;
        assert!(route.rejected_by_status(&parents[0], "shop"));
        assert!(!route.rejected_by_status(&parents[1], "shop"));
        assert!(!route.rejected_by_status(&parents[2], "shop"), "stale");
        let mut other_section = parents[0].clone();
        other_section.section_name = Some("https".into());
        assert!(!route.rejected_by_status(&other_section, "shop"));
    }
}
