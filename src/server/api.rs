//! The evaluation API on the HTTPS port: `POST /v1/evaluate`, `GET /v1/policies`,
//! `GET /v1/openapi.json`.
//!
//! A pipeline asks what the webhook would do before it applies: the manifests are judged by
//! [`crate::evaluate::evaluate`] (the same function `check`, `test` and the audit use), over the
//! live store as cluster state, or alone when asked. Thin handlers: authenticate, rate-limit,
//! read the body within the size limit and deadline, evaluate off the async workers, answer.
//! Errors become HTTP through `ApiError`, like the admission endpoints'. The admission routes do
//! not pass through any of this.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::evaluate::{evaluate, Cluster, Decision, Options};
use crate::manifest::parse_text;
use crate::server::auth::{ApiAuth, AuthError, ClientCertificate};
use crate::server::routes::{check_declared_length, reject, ApiError, AppState};

/// The OpenAPI 3.1 description of this API, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The file name manifests posted to the API are located in (`request:12`).
const REQUEST_FILE: &str = "request";

/// What the API needs besides the admission state.
pub struct ApiState {
    /// Who may call.
    pub auth: ApiAuth,
    /// Requests per second allowed across all callers.
    pub limiter: RateLimiter,
    /// Where the policies come from (`embedded default` or the directory).
    pub policy_source: String,
}

/// A token bucket shared by all API callers: `rate` requests per second, bursts of `rate`.
pub struct RateLimiter {
    rate: f64,
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `per_second` requests a second (0: unlimited).
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second);
        Self {
            rate,
            bucket: Mutex::new((rate, Instant::now())),
        }
    }

    /// Takes one request's token, or says how long until one is free.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, last) = *bucket;
        let refilled = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.rate);
        if refilled >= 1.0 {
            *bucket = (refilled - 1.0, now);
            Ok(())
        } else {
            *bucket = (refilled, now);
            Err(Duration::from_secs_f64((1.0 - refilled) / self.rate))
        }
    }
}

/// Authenticates and rate-limits an API call. Rate limiting comes first: a flood of bad tokens
/// must not turn into a flood of TokenReviews.
fn admit_caller(
    state: &AppState,
    request: &Request,
) -> impl std::future::Future<Output = Result<crate::evaluate::Requester, ApiError>> + Send + 'static
{
    let api = Arc::clone(&state.api);
    let limited = api.limiter.try_acquire().err();
    // Owned before awaiting: the request (its body) is not shared across threads.
    let authorization: Option<String> = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let certificate: Option<ClientCertificate> =
        request.extensions().get::<ClientCertificate>().cloned();
    async move {
        if let Some(wait) = limited {
            return Err(ApiError::RateLimited {
                retry_after_seconds: wait.as_secs().max(1),
            });
        }
        authenticate(&api, authorization, certificate).await
    }
}

async fn authenticate(
    api: &ApiState,
    authorization: Option<String>,
    certificate: Option<ClientCertificate>,
) -> Result<crate::evaluate::Requester, ApiError> {
    api.auth
        .authenticate(authorization.as_deref(), certificate.as_ref())
        .await
        .map_err(|error| match error {
            AuthError::Unauthenticated(message) => ApiError::Unauthenticated(message),
            AuthError::Unavailable(message) => ApiError::AuthUnavailable(message),
        })
}

/// `GET /v1/policies`: the active set, its digest, where and when it was loaded, and the last
/// reload error.
pub async fn policies(State(state): State<AppState>, request: Request) -> Response {
    if let Err(error) = admit_caller(&state, &request).await {
        return reject(&state, error);
    }
    let set = state.policies.current();
    let status = state.policies.status();
    let policies: Vec<Value> = set
        .policies()
        .iter()
        .map(|policy| serde_json::to_value(policy).unwrap_or(Value::Null))
        .collect();
    let body = json!({
        "digest": set.digest(),
        "source": state.api.policy_source,
        "loadedAt": rfc3339(state.policies.loaded_at()),
        "lastReloadError": status.last_error,
        "reloadsOk": status.reloads_ok,
        "reloadsFailed": status.reloads_failed,
        "policies": policies,
    });
    axum::Json(body).into_response()
}

/// `GET /v1/openapi.json`: the description of this API (no authentication: it holds nothing
/// about the cluster).
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI.to_owned(),
    )
        .into_response()
}

/// `POST /v1/evaluate[?cluster=live|manifests]`: every object of the posted manifests (YAML
/// documents, a JSON object, a `List`) judged as `check` judges it.
pub async fn evaluate_manifests(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    match answer(&state, request, started).await {
        Ok(body) => axum::Json(body).into_response(),
        Err(error) => reject(&state, error),
    }
}

/// Which cluster state the manifests are judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClusterChoice {
    /// The manifests over the live store (as `kubectl apply` of them would meet the cluster).
    Live,
    /// The manifests alone (as `check` judges them).
    Manifests,
}

fn cluster_choice(query: Option<&str>) -> Result<ClusterChoice, ApiError> {
    let mut choice = ClusterChoice::Live;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("cluster", "live") => choice = ClusterChoice::Live,
            ("cluster", "manifests") => choice = ClusterChoice::Manifests,
            ("cluster", other) => {
                return Err(ApiError::Query(format!(
                    "cluster={other:?} is not one of live, manifests"
                )))
            }
            (name, _) => {
                return Err(ApiError::Query(format!(
                    "unknown query parameter {name:?}; the only one is cluster=live|manifests"
                )))
            }
        }
    }
    Ok(choice)
}

/// YAML or JSON (JSON is YAML); a missing type is taken as YAML, as `curl --data-binary` sends.
fn check_manifest_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json"
        | "application/yaml"
        | "application/x-yaml"
        | "text/yaml"
        | "text/x-yaml"
        | "application/octet-stream"
        | "text/plain" => Ok(()),
        _ => Err(ApiError::ManifestContentType(text.to_owned())),
    }
}

async fn answer(state: &AppState, request: Request, started: Instant) -> Result<Value, ApiError> {
    let requester = admit_caller(state, &request).await?;
    let choice = cluster_choice(request.uri().query())?;
    check_manifest_content_type(request.headers())?;
    check_declared_length(request.headers(), state.max_body_bytes)?;
    let body = crate::server::routes::read_body(state, request.into_body(), started).await?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::Manifests("the body is not UTF-8 text".to_owned()))?;
    let policies = state.policies.current();
    let view = Arc::clone(&state.view);
    let own_namespace = state.own_namespace.clone();
    let policy_source = state.api.policy_source.clone();
    // Evaluation is CPU work proportional to the manifests: off the async workers, so admission
    // requests on the same runtime are not queued behind it.
    let evaluated = tokio::task::spawn_blocking(move || {
        let documents = parse_text(Path::new(REQUEST_FILE), &text)
            .map_err(|error| ApiError::Manifests(error.to_string()))?;
        if documents.is_empty() {
            return Err(ApiError::Manifests(
                "no objects in the body: send YAML documents, a JSON object or a List".to_owned(),
            ));
        }
        let cluster = match choice {
            ClusterChoice::Live => Cluster::ManifestsOver(view.as_ref()),
            ClusterChoice::Manifests => Cluster::Manifests,
        };
        let evaluated = evaluate(
            &documents,
            &policies,
            &Options {
                cluster,
                own_namespace: own_namespace.as_deref(),
                requester: &requester,
                record_consulted: false,
                now: std::time::SystemTime::now(),
            },
        );
        Ok(response_body(
            &evaluated,
            &policies,
            &policy_source,
            choice,
            &requester,
        ))
    })
    .await
    .map_err(|error| ApiError::Internal(format!("evaluation task failed: {error}")))??;
    Ok(evaluated)
}

fn response_body(
    evaluated: &crate::evaluate::Evaluated,
    policies: &crate::policy::set::PolicySet,
    policy_source: &str,
    choice: ClusterChoice,
    requester: &crate::evaluate::Requester,
) -> Value {
    let objects = &evaluated.objects;
    let count = |decision: Decision| objects.iter().filter(|o| o.decision == decision).count();
    json!({
        "policies": {"digest": policies.digest(), "source": policy_source},
        "cluster": match choice {
            ClusterChoice::Live => "live",
            ClusterChoice::Manifests => "manifests",
        },
        "user": {"username": requester.username, "groups": requester.groups},
        "allowed": objects.iter().all(|o| o.allowed),
        "objects": objects,
        "clusterWarnings": evaluated.cluster_warnings,
        "summary": {
            "objects": objects.len(),
            "denied": count(Decision::Denied),
            "patched": count(Decision::Patched),
            "allowed": count(Decision::Allowed),
            "notChecked": count(Decision::NotChecked),
            "invalid": count(Decision::Invalid),
        },
    })
}

/// RFC 3339 UTC with seconds (`2026-01-02T03:04:05Z`), without a date crate.
fn rfc3339(time: SystemTime) -> String {
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        let at = |s: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_767_323_045), "2026-01-02T03:04:05Z");
    }

    #[test]
    fn rate_limiter_refuses_past_the_burst() {
        let limiter = RateLimiter::new(2);
        assert!(limiter.try_acquire().is_ok());
        assert!(limiter.try_acquire().is_ok());
        let wait = limiter.try_acquire().unwrap_err();
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        assert!(RateLimiter::new(0).try_acquire().is_ok());
    }

    #[test]
    fn cluster_query() {
        assert_eq!(cluster_choice(None).unwrap(), ClusterChoice::Live);
        assert_eq!(
            cluster_choice(Some("cluster=manifests")).unwrap(),
            ClusterChoice::Manifests
        );
        assert!(cluster_choice(Some("cluster=all")).is_err());
        assert!(cluster_choice(Some("dryRun=true")).is_err());
    }
}
