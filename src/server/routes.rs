//! HTTP routes: thin handlers around `admission::review`, health and readiness, metrics.
//!
//! Every error becomes HTTP in one place (`impl IntoResponse for ApiError`) and is logged and
//! counted in one place (`reject`). Anything readable as an AdmissionReview is answered 200 with
//! an AdmissionReview, whatever the decision.
//!
//! Deadline: `--request-timeout-ms` bounds the wait for the request body (a slow or stalled
//! client gets 408 and its connection is released). The review itself is synchronous and pure,
//! bounded by the body size limit, and a timer could not interrupt it anyway (it never yields), so
//! no other timeout is wrapped around it. Headers are bounded by hyper's header read timeout and
//! the TLS handshake by its own timeout (see `lifecycle`). Keep the deadline below the webhook's
//! `timeoutSeconds`, so the API server sees our answer and applies its `failurePolicy` to a
//! clear error rather than to its own timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde_json::json;

use crate::admission::{self, DecodeError, ReviewContext, Reviewed};
use crate::policy::finding::Endpoint;
use crate::policy::view::{ClusterView, SyncStatus};
use crate::reload::ActivePolicies;
use crate::server::lifecycle::Readiness;
use crate::server::metrics::{BadRequest, Metrics, ScrapeInputs};

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The active policies (swapped by the reloader).
    pub policies: ActivePolicies,
    /// Cluster state for cross-object rules.
    pub view: Arc<dyn ClusterView>,
    /// The namespace rollout-guard runs in (never governed).
    pub own_namespace: Option<String>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Whether to receive new requests.
    pub readiness: Arc<Readiness>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Deadline for receiving the request body.
    pub request_timeout: Duration,
    /// The evaluation API's authentication, rate limit and policy source (`/v1/...` only).
    pub api: Arc<crate::server::api::ApiState>,
    /// Admission reviews being answered now (the background audit gives way to them).
    pub reviews_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts a review in flight for as long as it lives.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Why a request gets no AdmissionReview.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not a readable AdmissionReview.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The body is larger than the limit.
    #[error("request body is larger than {limit} bytes")]
    TooLarge {
        /// `--max-body-bytes`.
        limit: usize,
    },
    /// The body did not arrive in time.
    #[error("request body not received within {0} ms")]
    Timeout(u128),
    /// The connection broke while reading the body.
    #[error("cannot read the request body: {0}")]
    BodyRead(String),
    /// Not JSON.
    #[error("content type {0:?} is not supported; send application/json")]
    ContentType(String),
    /// Wrong method.
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed {
        /// Methods the path takes.
        allow: &'static str,
    },
    /// Unknown path.
    #[error("no such path; the webhook serves POST /mutate and POST /validate, the API POST /v1/evaluate, GET /v1/policies and GET /v1/openapi.json")]
    NotFound,
    /// An API call without valid credentials.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// An API call over the rate limit.
    #[error("too many requests; retry in {retry_after_seconds} s")]
    RateLimited {
        /// When a request will be accepted again.
        retry_after_seconds: u64,
    },
    /// The credentials could not be checked.
    #[error("{0}")]
    AuthUnavailable(String),
    /// The posted manifests cannot be read.
    #[error("the manifests cannot be read: {0}")]
    Manifests(String),
    /// Manifests sent as something other than YAML or JSON.
    #[error("content type {0:?} is not supported; send application/yaml or application/json")]
    ManifestContentType(String),
    /// A query parameter the path does not take.
    #[error("{0}")]
    Query(String),
    /// A bug: the evaluation failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn reason(&self) -> BadRequest {
        match self {
            Self::Decode(DecodeError::Malformed(_)) => BadRequest::Malformed,
            Self::Decode(DecodeError::WrongType { .. }) => BadRequest::WrongType,
            Self::Decode(DecodeError::NoRequest) => BadRequest::NoRequest,
            Self::TooLarge { .. } => BadRequest::TooLarge,
            Self::Timeout(_) => BadRequest::Timeout,
            Self::BodyRead(_) => BadRequest::BodyRead,
            Self::ContentType(_) => BadRequest::ContentType,
            Self::MethodNotAllowed { .. } => BadRequest::Method,
            Self::NotFound => BadRequest::NotFound,
            Self::Unauthenticated(_) => BadRequest::Unauthenticated,
            Self::RateLimited { .. } => BadRequest::RateLimited,
            Self::AuthUnavailable(_) => BadRequest::AuthUnavailable,
            Self::Manifests(_) => BadRequest::Manifests,
            Self::ManifestContentType(_) => BadRequest::ContentType,
            Self::Query(_) => BadRequest::Query,
            // Counted with the malformed: it should never happen, and has no label of its own.
            Self::Internal(_) => BadRequest::Malformed,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Decode(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::AuthUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Manifests(_) | Self::Query(_) => StatusCode::BAD_REQUEST,
            Self::ManifestContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The one place an error becomes an HTTP response: the status and `{"error": "..."}`.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            axum::Json(json!({ "error": self.to_string() })),
        )
            .into_response();
        if let Self::MethodNotAllowed { allow } = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Self::RateLimited {
            retry_after_seconds,
        } = self
        {
            if let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if let Self::Unauthenticated(_) = self {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rollout-guard\""),
            );
        }
        if matches!(self, Self::TooLarge { .. } | Self::Timeout(_)) {
            // The rest of the body is not read: the connection cannot carry another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Logs and counts a rejected request, then answers it.
pub(crate) fn reject(state: &AppState, error: ApiError) -> Response {
    state.metrics.record_bad_request(error.reason());
    tracing::warn!(reason = error.reason().label(), %error, "request rejected");
    error.into_response()
}

/// `/mutate`, `/validate`, `/healthz`, `/readyz` and the evaluation API (`/v1/...`) for the
/// HTTPS port.
pub fn admission_router(state: AppState) -> Router {
    use crate::server::api;
    Router::new()
        .route("/mutate", post(mutate).fallback(post_only))
        .route("/validate", post(validate).fallback(post_only))
        .route(
            "/v1/evaluate",
            post(api::evaluate_manifests).fallback(post_only),
        )
        .route("/v1/policies", get(api::policies).fallback(get_only))
        .route("/v1/openapi.json", get(api::openapi).fallback(get_only))
        .route("/healthz", get(healthz).fallback(get_only))
        .route("/readyz", get(readyz).fallback(get_only))
        .fallback(not_found)
        .with_state(state)
}

/// `/metrics`, `/healthz`, `/readyz` for the plain admin port (what the chart's probes and
/// Prometheus hit).
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics).fallback(get_only))
        .route("/healthz", get(healthz).fallback(get_only))
        .route("/readyz", get(readyz).fallback(get_only))
        .fallback(not_found)
        .with_state(state)
}

async fn post_only(State(state): State<AppState>) -> Response {
    reject(&state, ApiError::MethodNotAllowed { allow: "POST" })
}

async fn get_only(State(state): State<AppState>) -> Response {
    reject(&state, ApiError::MethodNotAllowed { allow: "GET" })
}

async fn not_found(State(state): State<AppState>) -> Response {
    reject(&state, ApiError::NotFound)
}

async fn mutate(State(state): State<AppState>, request: Request) -> Response {
    admit(state, Endpoint::Mutate, request).await
}

async fn validate(State(state): State<AppState>, request: Request) -> Response {
    admit(state, Endpoint::Validate, request).await
}

/// decode → review → respond, timed and counted.
async fn admit(state: AppState, endpoint: Endpoint, request: Request) -> Response {
    let _in_flight = InFlight::enter(&state.reviews_in_flight);
    let started = Instant::now();
    let response = match answer(&state, endpoint, request, started).await {
        Ok(reviewed) => {
            state.metrics.record_review(endpoint, &reviewed);
            log_review(endpoint, &reviewed, started.elapsed());
            ([(header::CONTENT_TYPE, "application/json")], reviewed.body).into_response()
        }
        Err(error) => reject(&state, error),
    };
    state.metrics.observe_duration(endpoint, started.elapsed());
    response
}

async fn answer(
    state: &AppState,
    endpoint: Endpoint,
    request: Request,
    started: Instant,
) -> Result<Reviewed, ApiError> {
    check_content_type(request.headers())?;
    check_declared_length(request.headers(), state.max_body_bytes)?;
    let body = read_body(state, request.into_body(), started).await?;
    tracing::trace!(body = %String::from_utf8_lossy(&body), "admission request body");
    let policies = state.policies.current();
    let context = ReviewContext {
        policies: &policies,
        view: &*state.view,
        own_namespace: state.own_namespace.as_deref(),
        now: std::time::SystemTime::now(),
    };
    Ok(admission::review(endpoint, &body, &context)?)
}

/// JSON or nothing: the API server always sends `application/json`; a missing header is
/// tolerated for hand-made requests. Anything else is refused with a message saying what to send
/// (note `curl -d` defaults to a form type: add `-H 'content-type: application/json'`).
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::ContentType(text.to_owned()))
    }
}

/// Refuses a declared Content-Length over the limit before a byte of the body is read.
pub(crate) fn check_declared_length(headers: &HeaderMap, limit: usize) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(ApiError::TooLarge { limit });
    }
    Ok(())
}

/// Reads at most `--max-body-bytes` before the deadline (chunked bodies have no declared length;
/// `Limited` stops them at the limit).
pub(crate) async fn read_body(
    state: &AppState,
    body: Body,
    started: Instant,
) -> Result<Bytes, ApiError> {
    use axum::body::HttpBody as _;
    let limit = state.max_body_bytes;
    // Bodies that know their size (hyper takes it from the framing) are refused here too.
    if body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(ApiError::TooLarge { limit });
    }
    let deadline = started + state.request_timeout;
    let collected = tokio::time::timeout_at(deadline.into(), Limited::new(body, limit).collect())
        .await
        .map_err(|_| ApiError::Timeout(state.request_timeout.as_millis()))?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::TooLarge { limit })
        }
        Err(error) => Err(ApiError::BodyRead(error.to_string())),
    }
}

/// One line per review; denials at info, unreadable objects at warn, the rest at debug (a
/// GitOps sync sends hundreds per second).
fn log_review(endpoint: Endpoint, reviewed: &Reviewed, elapsed: Duration) {
    let summary = &reviewed.summary;
    let verdict = &reviewed.verdict;
    log_break_glass(endpoint, reviewed);
    let quiet = reviewed.invalid.is_none() && verdict.allowed();
    if quiet && !tracing::enabled!(tracing::Level::DEBUG) {
        // The common case in production: no line, so no formatting work on the request path.
        return;
    }
    let fired = verdict.fired.iter().cloned().collect::<Vec<_>>().join(",");
    let endpoint = match endpoint {
        Endpoint::Mutate => "mutate",
        Endpoint::Validate => "validate",
    };
    let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    macro_rules! review_event {
        ($level:ident, $decision:expr, $message:literal) => {
            tracing::$level!(
                endpoint,
                uid = %summary.uid,
                kind = %summary.kind,
                namespace = %summary.namespace,
                name = %summary.name,
                operation = summary.operation,
                dry_run = summary.dry_run,
                decision = $decision,
                policy = verdict.policy.as_deref().unwrap_or(""),
                exempt = verdict.exempt.as_deref().unwrap_or(""),
                rules = %fired,
                latency_us,
                $message
            )
        };
    }
    if let Some(problem) = &reviewed.invalid {
        review_event!(warn, "invalid", "review: object unreadable");
        tracing::debug!(uid = %summary.uid, %problem, "unreadable object");
    } else if !verdict.allowed() {
        review_event!(info, verdict.decision(), "review");
    } else {
        review_event!(debug, verdict.decision(), "review");
    }
}

/// One info line per break-glass override, honoured or not, whatever the log level of reviews:
/// who bypassed (or tried to bypass) which rule on which object, and why.
fn log_break_glass(endpoint: Endpoint, reviewed: &Reviewed) {
    use crate::policy::break_glass::Outcome;
    let summary = &reviewed.summary;
    for record in &reviewed.verdict.break_glass {
        match &record.outcome {
            Outcome::Bypassed { grant } => tracing::info!(
                endpoint = endpoint.as_str(),
                uid = %summary.uid,
                user = %record.user,
                rule = %record.source,
                grant = %grant,
                kind = %summary.kind,
                namespace = %summary.namespace,
                name = %summary.name,
                operation = summary.operation,
                dry_run = summary.dry_run,
                reason = %record.reason,
                "break-glass: denial bypassed"
            ),
            Outcome::Refused(refusal) => tracing::info!(
                endpoint = endpoint.as_str(),
                uid = %summary.uid,
                user = %record.user,
                rule = %record.source,
                refused = refusal.code(),
                kind = %summary.kind,
                namespace = %summary.namespace,
                name = %summary.name,
                operation = summary.operation,
                dry_run = summary.dry_run,
                reason = %record.reason,
                "break-glass: override not honoured, denial stands"
            ),
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let status = state.policies.status();
    let store = state.view.sync_status();
    let ready = state.readiness.ready();
    let (synced, store_detail) = match &store {
        SyncStatus::Synced => (true, None),
        SyncStatus::NotSynced(detail) => (false, Some(detail.clone())),
    };
    let body = json!({
        "ready": ready,
        "shuttingDown": state.readiness.shutting_down(),
        "policy": {
            "digest": status.active_digest,
            "lastReloadError": status.last_error,
            "reloadsOk": status.reloads_ok,
            "reloadsFailed": status.reloads_failed,
        },
        "store": { "synced": synced, "detail": store_detail },
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(&ScrapeInputs {
        policy: &state.policies.status(),
        store: &state.view.sync_status(),
        objects: &state.view.counts(),
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::load::embedded_default;
    use crate::policy::view::{EmptyView, ObjectCounts};
    use tower::ServiceExt as _;

    fn state(max_body_bytes: usize) -> AppState {
        AppState {
            policies: ActivePolicies::new(embedded_default()),
            view: Arc::new(EmptyView),
            own_namespace: Some("rollout-guard".into()),
            metrics: Arc::new(Metrics::new()),
            readiness: Arc::new(Readiness::default()),
            max_body_bytes,
            request_timeout: Duration::from_secs(2),
            api: Arc::new(crate::server::api::ApiState {
                auth: crate::server::auth::ApiAuth::none(),
                limiter: crate::server::api::RateLimiter::new(0),
                policy_source: "embedded default".into(),
            }),
            reviews_in_flight: Arc::default(),
        }
    }

    fn review_body(namespace: &str) -> String {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "0d9c6f5e-1111-2222-3333-444455556666",
                "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                "name": "web", "namespace": namespace, "operation": "CREATE",
                "userInfo": {"username": "alice"},
                "object": {
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "namespace": namespace},
                    "spec": {
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {
                            "metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}
                        }
                    }
                }
            }
        })
        .to_string()
    }

    async fn call(
        router: Router,
        request: axum::http::Request<Body>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, value)
    }

    fn post(path: &str, body: impl Into<Body>) -> axum::http::Request<Body> {
        axum::http::Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap()
    }

    #[test]
    fn a_review_counts_as_in_flight_while_it_lives() {
        let count = std::sync::atomic::AtomicUsize::new(0);
        let read = || count.load(std::sync::atomic::Ordering::Relaxed);
        let first = InFlight::enter(&count);
        {
            let _second = InFlight::enter(&count);
            assert_eq!(read(), 2);
        }
        assert_eq!(read(), 1);
        drop(first);
        assert_eq!(read(), 0);
    }

    #[tokio::test]
    async fn answers_a_review_with_the_uid_echoed() {
        let state = state(1 << 20);
        let (status, headers, body) = call(
            admission_router(state.clone()),
            post("/mutate", review_body("default")),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["kind"], "AdmissionReview");
        assert_eq!(
            body["response"]["uid"],
            "0d9c6f5e-1111-2222-3333-444455556666"
        );
        let (status, _, body) = call(
            admission_router(state.clone()),
            post("/validate", review_body("rollout-guard")),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["response"]["allowed"], true);
        assert_eq!(body["response"]["auditAnnotations"]["exempt"], "namespace");
        assert_eq!(
            state
                .reviews_in_flight
                .load(std::sync::atomic::Ordering::Relaxed),
            0,
            "every review answered is counted out"
        );
    }

    #[tokio::test]
    async fn errors_are_json_with_the_right_status() {
        let state = state(64);
        let cases: Vec<(axum::http::Request<Body>, StatusCode, &str)> = vec![
            (
                post("/mutate", "{not json"),
                StatusCode::BAD_REQUEST,
                "malformed",
            ),
            (
                post("/mutate", r#"{"apiVersion":"v1","kind":"Pod"}"#),
                StatusCode::BAD_REQUEST,
                "wrong_type",
            ),
            (
                post("/validate", "x".repeat(65)),
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
            ),
            (
                axum::http::Request::post("/mutate")
                    .header(header::CONTENT_TYPE, "text/yaml")
                    .body(Body::from("{}"))
                    .unwrap(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content_type",
            ),
            (
                axum::http::Request::get("/mutate")
                    .body(Body::empty())
                    .unwrap(),
                StatusCode::METHOD_NOT_ALLOWED,
                "method",
            ),
            (
                axum::http::Request::get("/nope")
                    .body(Body::empty())
                    .unwrap(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
        ];
        for (request, expected, reason) in cases {
            let (status, _, body) = call(admission_router(state.clone()), request).await;
            assert_eq!(status, expected, "{reason}: {body}");
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{reason}: {body}"
            );
            let metrics = state.metrics.render(&ScrapeInputs {
                policy: &state.policies.status(),
                store: &SyncStatus::Synced,
                objects: &ObjectCounts::default(),
            });
            assert!(
                metrics.contains(&format!(
                    "rollout_guard_bad_requests_total{{reason=\"{reason}\"}} 1"
                )),
                "{reason} not counted:\n{metrics}"
            );
        }
    }

    #[tokio::test]
    async fn declared_oversized_body_is_refused_without_reading_it() {
        // A body that would fail if polled: the Content-Length alone must decide.
        let stream = futures::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::other("body must not be read"))
        });
        let request = axum::http::Request::post("/mutate")
            .header(header::CONTENT_LENGTH, "1000")
            .body(Body::new(http_body_util::StreamBody::new(
                futures::StreamExt::map(stream, |chunk| chunk.map(hyper::body::Frame::data)),
            )))
            .unwrap();
        let (status, headers, _) = call(admission_router(state(10)), request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(headers[header::CONNECTION], "close");
    }

    fn streamed(chunks: Vec<Result<&'static [u8], std::io::Error>>, pending: bool) -> Body {
        use futures::StreamExt as _;
        let stream = futures::stream::iter(chunks)
            .chain(futures::stream::pending().take(usize::from(pending)))
            .map(|chunk| chunk.map(|bytes| hyper::body::Frame::data(Bytes::from_static(bytes))));
        Body::new(http_body_util::StreamBody::new(stream))
    }

    #[tokio::test]
    async fn body_without_length_is_cut_at_the_limit() {
        let request = axum::http::Request::post("/validate")
            .body(streamed(vec![Ok(&[b'{'; 40]), Ok(&[b' '; 40])], false))
            .unwrap();
        let (status, _, body) = call(admission_router(state(64)), request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    }

    #[tokio::test]
    async fn stalled_body_gets_408_at_the_deadline() {
        let mut state = state(1024);
        state.request_timeout = Duration::from_millis(50);
        let request = axum::http::Request::post("/mutate")
            .body(streamed(vec![Ok(b"{\"apiVersion\"")], true))
            .unwrap();
        let (status, headers, body) = call(admission_router(state.clone()), request).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
        assert_eq!(headers[header::CONNECTION], "close");
        assert!(body["error"].as_str().unwrap().contains("50 ms"));
    }

    #[tokio::test]
    async fn broken_body_stream_is_a_400() {
        let request = axum::http::Request::post("/mutate")
            .body(streamed(vec![Err(std::io::Error::other("reset"))], false))
            .unwrap();
        let (status, _, body) = call(admission_router(state(1024)), request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    #[tokio::test]
    async fn readiness_turns_off_on_shutdown_but_not_for_an_unsynced_store() {
        struct Unsynced;
        impl ClusterView for Unsynced {
            fn sync_status(&self) -> SyncStatus {
                SyncStatus::NotSynced("ingresses".into())
            }
        }
        let mut state = state(1024);
        state.view = Arc::new(Unsynced);
        let get = |path: &str| axum::http::Request::get(path).body(Body::empty()).unwrap();

        let (status, _, body) = call(admin_router(state.clone()), get("/readyz")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["store"]["synced"], false);
        assert_eq!(body["store"]["detail"], "ingresses");

        state.readiness.begin_shutdown();
        let (status, _, body) = call(admin_router(state.clone()), get("/readyz")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["shuttingDown"], true);
        let response = admin_router(state).oneshot(get("/healthz")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
