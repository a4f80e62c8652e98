//! A small fake Kubernetes API server for the live audit's tests (Lease election, report
//! writing, listing the audited kinds): objects kept by group/version, resource, namespace and
//! name, with the semantics the code under test relies on:
//!
//! - every write bumps a global resourceVersion and stamps it on the object;
//! - `POST` of an existing name is 409 AlreadyExists; `PUT` carrying a resourceVersion other
//!   than the stored one is 409 Conflict (optimistic concurrency), of a missing name 404;
//! - `PATCH` with `application/apply-patch+yaml` (server-side apply) creates or replaces the
//!   object (the fake does not merge field ownership: the writer forces and owns its reports);
//! - `DELETE` removes (404 when missing); lists filter by `labelSelector` (`k=v`, comma-separated)
//!   and page by `limit`/`continue`;
//! - `GET /apis/GROUP/VERSION` answers discovery for the group/versions declared with
//!   [`FakeApi::serve_api`], 404 for the others;
//! - every request is recorded (method, path, query, content type), and a one-shot hook can
//!   change the state right after a GET, to stage a write that lands between a client's read
//!   and its update.
//!
//! Used with `#[path = "common/fake_api.rs"] mod fake_api;` by the tests that need it.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Where an object lives: `group/version` (`v1` for the core group), plural, namespace (empty
/// for cluster-scoped), name.
type Location = (String, String, String, String);

/// One request the fake served.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Query string.
    pub query: String,
    /// Content-Type header.
    pub content_type: String,
}

/// A change staged to happen right after the next GET of `path`.
type Hook = Box<dyn FnOnce(&mut Objects) + Send>;

/// The stored objects.
#[derive(Default)]
pub struct Objects {
    resource_version: u64,
    objects: BTreeMap<Location, Value>,
}

impl Objects {
    /// Stores `object` at its location (from its apiVersion, `plural`, namespace and name)
    /// with a new resourceVersion.
    pub fn put(&mut self, plural: &str, mut object: Value) -> Value {
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{}", self.resource_version));
        }
        let location = (
            object["apiVersion"].as_str().unwrap_or_default().to_owned(),
            plural.to_owned(),
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        self.objects.insert(location, object.clone());
        object
    }
}

#[derive(Default)]
struct Inner {
    store: Objects,
    /// `group/version` → (plural, kind, namespaced) for discovery.
    discovery: BTreeMap<String, Vec<(String, String, bool)>>,
    requests: Vec<Request>,
    hooks: HashMap<String, Hook>,
    /// Answer every request whose path starts with the key with this status code.
    failing: BTreeMap<String, u16>,
}

/// The fake API server's state; cheap to share.
#[derive(Default)]
pub struct FakeApi {
    inner: Mutex<Inner>,
    /// Added before answering each write, so concurrent writes overlap.
    write_delay: Mutex<Duration>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl FakeApi {
    /// An empty fake.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Declares `group_version` served, with its resources as (plural, kind, namespaced).
    pub fn serve_api(&self, group_version: &str, resources: &[(&str, &str, bool)]) {
        self.inner.lock().unwrap().discovery.insert(
            group_version.to_owned(),
            resources
                .iter()
                .map(|(p, k, n)| (p.to_string(), k.to_string(), *n))
                .collect(),
        );
    }

    /// Both report APIs' group/versions as their CRDs serve them.
    pub fn serve_openreports(&self) {
        self.serve_api(
            "openreports.io/v1alpha1",
            &[
                ("reports", "Report", true),
                ("clusterreports", "ClusterReport", false),
            ],
        );
    }

    /// `wgpolicyk8s.io/v1alpha2`, as Kyverno's CRDs serve it.
    pub fn serve_wgpolicyk8s(&self) {
        self.serve_api(
            "wgpolicyk8s.io/v1alpha2",
            &[
                ("policyreports", "PolicyReport", true),
                ("clusterpolicyreports", "ClusterPolicyReport", false),
            ],
        );
    }

    /// Stores an object as if someone had created it.
    pub fn insert(&self, plural: &str, object: Value) -> Value {
        self.inner.lock().unwrap().store.put(plural, object)
    }

    /// Removes an object as if someone had deleted it.
    pub fn remove(&self, group_version: &str, plural: &str, namespace: &str, name: &str) {
        let location = (
            group_version.to_owned(),
            plural.to_owned(),
            namespace.to_owned(),
            name.to_owned(),
        );
        self.inner.lock().unwrap().store.objects.remove(&location);
    }

    /// Changes the state with `f` right after the next GET of `path` (an object, or a list page)
    /// has been answered.
    pub fn after_next_get(&self, path: &str, f: impl FnOnce(&mut Objects) + Send + 'static) {
        self.inner
            .lock()
            .unwrap()
            .hooks
            .insert(path.to_owned(), Box::new(f));
    }

    /// Answers requests under `path_prefix` with `code` until [`FakeApi::heal`].
    pub fn fail(&self, path_prefix: &str, code: u16) {
        self.inner
            .lock()
            .unwrap()
            .failing
            .insert(path_prefix.to_owned(), code);
    }

    /// Stops the failures of [`FakeApi::fail`].
    pub fn heal(&self) {
        self.inner.lock().unwrap().failing.clear();
    }

    /// Delays every write by `delay` (to make concurrent writes overlap).
    pub fn set_write_delay(&self, delay: Duration) {
        *self.write_delay.lock().unwrap() = delay;
    }

    /// The most writes that were in progress at once.
    pub fn max_writes_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// The object at `group_version`, `plural`, `namespace` (empty: cluster-scoped), `name`.
    pub fn get(
        &self,
        group_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let location = (
            group_version.to_owned(),
            plural.to_owned(),
            namespace.to_owned(),
            name.to_owned(),
        );
        self.inner
            .lock()
            .unwrap()
            .store
            .objects
            .get(&location)
            .cloned()
    }

    /// Every object of `group_version` and `plural`, by (namespace, name).
    pub fn all(&self, group_version: &str, plural: &str) -> BTreeMap<(String, String), Value> {
        self.inner
            .lock()
            .unwrap()
            .store
            .objects
            .iter()
            .filter(|((gv, p, _, _), _)| gv == group_version && p == plural)
            .map(|((_, _, ns, name), v)| ((ns.clone(), name.clone()), v.clone()))
            .collect()
    }

    /// The requests served so far.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.inner.lock().unwrap().requests.clear();
    }

    /// Starts serving on a free port; returns a client for it. Runs on the caller's runtime.
    pub async fn start(self: &Arc<Self>) -> kube::Client {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(self));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }
}

/// A `Status` response.
pub fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

/// `(group/version, namespace, plural, name)` of a resource path; `None` for other paths.
fn parse_path(path: &str) -> Option<(String, String, String, Option<String>)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group_version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => (version.to_string(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (namespace.to_string(), rest),
        rest => (String::new(), rest),
    };
    match rest {
        [plural] => Some((group_version, namespace, plural.to_string(), None)),
        [plural, name] => Some((
            group_version,
            namespace,
            plural.to_string(),
            Some(name.to_string()),
        )),
        _ => None,
    }
}

fn selector_matches(selector: &str, object: &Value) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (key, value) = term.split_once('=').unwrap_or((term, ""));
        object["metadata"]["labels"][key].as_str() == Some(value)
    })
}

fn decode(value: &str) -> String {
    // Enough percent-decoding for label selectors and tokens.
    let mut out = String::new();
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&value[i + 1..i + 3], 16) {
                out.push(b as char);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' {
            ' '
        } else {
            bytes[i] as char
        });
        i += 1;
    }
    out
}

async fn handle(
    State(api): State<Arc<FakeApi>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    {
        let mut inner = api.inner.lock().unwrap();
        inner.requests.push(Request {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
        });
        if let Some((_, code)) = inner
            .failing
            .iter()
            .find(|(p, _)| path.starts_with(p.as_str()))
        {
            return status(*code, "InternalError", "the fake was told to fail");
        }
    }
    let is_write = method != Method::GET;
    if is_write {
        let now = api.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        api.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let delay = *api.write_delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    let response = answer(&api, &method, &path, &query, &content_type, &body);
    if is_write {
        api.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    response
}

fn answer(
    api: &FakeApi,
    method: &Method,
    path: &str,
    query: &str,
    content_type: &str,
    body: &[u8],
) -> Response {
    let params: HashMap<String, String> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), decode(v)))
        .collect();
    let mut inner = api.inner.lock().unwrap();

    // Discovery: /apis/GROUP/VERSION.
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let ["apis", group, version] = parts.as_slice() {
        let group_version = format!("{group}/{version}");
        return match inner.discovery.get(&group_version) {
            Some(resources) => axum::Json(json!({
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                "resources": resources.iter().map(|(plural, kind, namespaced)| json!({
                    "name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
                    "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]}))
                    .collect::<Vec<_>>()}))
            .into_response(),
            None => status(404, "NotFound", "the server could not find the requested resource"),
        };
    }
    let Some((group_version, namespace, plural, name)) = parse_path(path) else {
        return status(404, "NotFound", "no such path");
    };
    let body: Option<Value> = serde_json::from_slice(body).ok();

    match (method.clone(), name) {
        (Method::GET, Some(name)) => {
            let location = (group_version, plural, namespace, name);
            let found = inner.store.objects.get(&location).cloned();
            if let Some(hook) = inner.hooks.remove(path) {
                hook(&mut inner.store);
            }
            match found {
                Some(object) => axum::Json(object).into_response(),
                None => status(
                    404,
                    "NotFound",
                    &format!("{} \"{}\" not found", location.1, location.3),
                ),
            }
        }
        (Method::GET, None) => {
            let selector = params.get("labelSelector").cloned().unwrap_or_default();
            let matching: Vec<Value> = inner
                .store
                .objects
                .iter()
                .filter(|((gv, p, ns, _), _)| {
                    *gv == group_version
                        && *p == plural
                        && (namespace.is_empty() || *ns == namespace)
                })
                .map(|(_, v)| v.clone())
                .filter(|v| selector_matches(&selector, v))
                .collect();
            let from: usize = params
                .get("continue")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let limit: usize = params
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| *l > 0)
                .unwrap_or(usize::MAX);
            let items: Vec<Value> = matching.iter().skip(from).take(limit).cloned().collect();
            let next = from + items.len();
            // The page is what was there before the hook's change.
            if let Some(hook) = inner.hooks.remove(path) {
                hook(&mut inner.store);
            }
            let mut metadata = json!({"resourceVersion": inner.store.resource_version.to_string()});
            if next < matching.len() {
                metadata["continue"] = json!(next.to_string());
            }
            axum::Json(
                json!({"kind": "List", "apiVersion": "v1", "metadata": metadata, "items": items}),
            )
            .into_response()
        }
        (Method::POST, None) => {
            let Some(mut object) = body else {
                return status(400, "BadRequest", "not JSON");
            };
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if !namespace.is_empty() {
                object["metadata"]["namespace"] = json!(namespace);
            }
            let location = (group_version, plural.clone(), namespace, name.clone());
            if inner.store.objects.contains_key(&location) {
                return status(
                    409,
                    "AlreadyExists",
                    &format!("{plural} \"{name}\" already exists"),
                );
            }
            let stored = inner.store.put(&plural, object);
            (StatusCode::CREATED, axum::Json(stored)).into_response()
        }
        (Method::PUT, Some(name)) => {
            let Some(mut object) = body else {
                return status(400, "BadRequest", "not JSON");
            };
            let location = (
                group_version,
                plural.clone(),
                namespace.clone(),
                name.clone(),
            );
            let Some(current) = inner.store.objects.get(&location) else {
                return status(404, "NotFound", &format!("{plural} \"{name}\" not found"));
            };
            let sent = object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            if sent
                != current["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
            {
                return status(
                    409,
                    "Conflict",
                    &format!("Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
                );
            }
            object["metadata"]["uid"] = current["metadata"]["uid"].clone();
            if !namespace.is_empty() {
                object["metadata"]["namespace"] = json!(namespace);
            }
            axum::Json(inner.store.put(&plural, object)).into_response()
        }
        (Method::PATCH, Some(name)) => {
            if content_type != "application/apply-patch+yaml" {
                return status(
                    415,
                    "UnsupportedMediaType",
                    "the fake only takes server-side apply",
                );
            }
            let Some(mut object) = body else {
                return status(400, "BadRequest", "not JSON");
            };
            if object["metadata"]["name"].as_str() != Some(name.as_str()) {
                return status(
                    400,
                    "BadRequest",
                    "the name in the body differs from the URL",
                );
            }
            let location = (group_version, plural.clone(), namespace.clone(), name);
            let created = !inner.store.objects.contains_key(&location);
            if let Some(current) = inner.store.objects.get(&location) {
                object["metadata"]["uid"] = current["metadata"]["uid"].clone();
            }
            if !namespace.is_empty() {
                object["metadata"]["namespace"] = json!(namespace);
            }
            let stored = inner.store.put(&plural, object);
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (code, axum::Json(stored)).into_response()
        }
        (Method::DELETE, Some(name)) => {
            let location = (group_version, plural.clone(), namespace, name.clone());
            match inner.store.objects.remove(&location) {
                Some(_) => axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Success", "details": {"name": name, "kind": plural}}))
                .into_response(),
                None => status(404, "NotFound", &format!("{plural} \"{name}\" not found")),
            }
        }
        _ => status(405, "MethodNotAllowed", "not supported by the fake"),
    }
}
