//! Typed Gateway API HTTPRoute (`gateway.networking.k8s.io` v1, identical in v1beta1 for the
//! fields read here), the parts the `httpRoute` rule reads.
//!
//! HTTPRoute is a CRD, so k8s-openapi has no type for it. Fields follow apis/v1/httproute_types.go
//! and shared_types.go of kubernetes-sigs/gateway-api. Unknown fields are ignored (the API keeps
//! growing), missing lists read as empty, and numbers are read as `i64` so a weight outside the
//! schema's range is reported instead of failing the parse.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

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

/// A filter; only its type is read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRouteFilter {
    /// `type` (`RequestRedirect`, `URLRewrite`, ...).
    #[serde(default, rename = "type")]
    pub filter_type: String,
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
}
