//! The evaluation API (`/v1/...`): the router driven with `oneshot`, token authentication
//! against a small fake API server answering TokenReviews, and the responses recorded in
//! `target/format-cases/openapi/` for `tests/checks/validate_formats.py`, which validates the
//! served OpenAPI description (openapi-spec-validator) and every recorded response against its
//! schema.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt as _;
use rollout_guard::check::check_documents;
use rollout_guard::manifest::parse_text;
use rollout_guard::policy::load::embedded_default;
use rollout_guard::policy::view::ClusterView;
use rollout_guard::reload::ActivePolicies;
use rollout_guard::server::api::{ApiState, RateLimiter};
use rollout_guard::server::auth::{ApiAuth, ApiAuthMode, KubeTokenReviewer, TokenReviewer};
use rollout_guard::server::lifecycle::Readiness;
use rollout_guard::server::metrics::Metrics;
use rollout_guard::server::routes::{admission_router, AppState};
use rollout_guard::store::Store;
use serde_json::{json, Value};
use tower::ServiceExt as _;

mod common;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn openapi_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let dir = target.join("format-cases").join("openapi");
    std::fs::create_dir_all(dir.join("responses")).unwrap();
    dir
}

/// Saves a real response for the schema check.
fn record(name: &str, operation: &str, status: StatusCode, body: &Value) {
    let recorded = json!({"operation": operation, "status": status.as_u16(), "body": body});
    std::fs::write(
        openapi_dir().join("responses").join(format!("{name}.json")),
        serde_json::to_string_pretty(&recorded).unwrap(),
    )
    .unwrap();
}

fn state(view: Arc<dyn ClusterView>, auth: ApiAuth, rate: u32) -> AppState {
    AppState {
        policies: ActivePolicies::new(embedded_default()),
        view,
        own_namespace: Some("rollout-guard".into()),
        metrics: Arc::new(Metrics::new()),
        readiness: Arc::new(Readiness::default()),
        max_body_bytes: 64 * 1024,
        request_timeout: Duration::from_secs(2),
        api: Arc::new(ApiState {
            auth,
            limiter: RateLimiter::new(rate),
            policy_source: "embedded default".into(),
        }),
        reviews_in_flight: Arc::default(),
    }
}

fn open_state() -> AppState {
    state(Arc::new(Store::offline()), ApiAuth::none(), 0)
}

async fn call(
    state: &AppState,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = admission_router(state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn evaluate_request(query: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(format!("/v1/evaluate{query}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap()
}

/// What the API answers per object is what `check` answers for the same manifests alone:
/// decision, warnings, denials, findings and patch.
#[tokio::test]
async fn evaluate_gives_checks_verdicts() {
    let text = read("examples/manifests/web-app.yaml");
    let (status, _, body) = call(
        &open_state(),
        evaluate_request("?cluster=manifests", "application/yaml", text.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    record("evaluate-web-app", "POST /v1/evaluate", status, &body);
    let documents = parse_text(Path::new("request"), &text).unwrap();
    let expected = check_documents(&documents, &embedded_default());
    let objects = body["objects"].as_array().unwrap();
    assert_eq!(objects.len(), expected.len());
    for (got, want) in objects.iter().zip(&expected) {
        let want = serde_json::to_value(want).unwrap();
        for field in [
            "location",
            "decision",
            "allowed",
            "warnings",
            "denials",
            "findings",
            "patch",
            "patchedObject",
        ] {
            assert_eq!(
                got.get(field),
                want.get(field),
                "{field} of {}",
                want["name"]
            );
        }
    }
    assert_eq!(body["cluster"], "manifests");
    assert_eq!(body["user"]["username"], "rollout-guard-check");
    assert_eq!(body["summary"]["objects"], expected.len());
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(deployment["decision"], "patched");
    assert!(
        deployment["patchedObject"]["metadata"]["labels"]["app.kubernetes.io/version"].is_string()
    );

    // JSON works too (a List, and an array).
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}]});
    let (status, _, body) = call(
        &open_state(),
        evaluate_request("", "application/json", list.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["objects"][0]["decision"], "not-checked");
    assert_eq!(body["cluster"], "live");
}

/// `cluster=live` (the default) judges the manifests over the store; `cluster=manifests`
/// alone. A canary whose main Ingress only the store holds shows the difference.
#[tokio::test]
async fn live_cluster_state_is_under_the_manifests() {
    let pair = "tests/fixtures/check/canary-pair";
    let mut stored = parse_text(
        Path::new("services.yaml"),
        &read(&format!("{pair}/services.yaml")),
    )
    .unwrap();
    let ingresses = parse_text(
        Path::new("ingresses.yaml"),
        &read(&format!("{pair}/ingresses.yaml")),
    )
    .unwrap();
    assert_eq!(ingresses[1].value["metadata"]["name"], "web-canary");
    stored.push(ingresses[0].clone());
    let canary = ingresses[1].value.to_string();
    let (store, warnings) = Store::from_documents(&stored);
    assert!(warnings.is_empty());
    let live = state(Arc::new(store), ApiAuth::none(), 0);
    let ask = |query: &'static str| evaluate_request(query, "application/json", canary.clone());
    let (_, _, over_live) = call(&live, ask("")).await;
    let (_, _, alone) = call(&live, ask("?cluster=manifests")).await;
    record(
        "evaluate-canary-live",
        "POST /v1/evaluate",
        StatusCode::OK,
        &over_live,
    );
    let rules = |body: &Value| -> Vec<String> {
        body["objects"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        rules(&alone)
            .iter()
            .any(|r| r == "ingressCanary.missingMain"),
        "{alone}"
    );
    assert!(
        !rules(&over_live)
            .iter()
            .any(|r| r == "ingressCanary.missingMain"),
        "{over_live}"
    );
    // The same as check over both files together.
    let mut documents = stored.clone();
    documents.push(ingresses[1].clone());
    let together = check_documents(&documents, &embedded_default());
    let canary_verdict = together.last().unwrap();
    assert_eq!(
        over_live["objects"][0]["decision"],
        serde_json::to_value(canary_verdict.decision).unwrap()
    );
    assert_eq!(
        over_live["objects"][0]["findings"],
        serde_json::to_value(&canary_verdict.findings).unwrap()
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_a_reason() {
    let state = open_state();
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "unreadable",
            evaluate_request(
                "",
                "application/yaml",
                "kind: Service\n---\nkind: [unclosed\n",
            ),
            StatusCode::BAD_REQUEST,
            "request:3",
        ),
        (
            "empty",
            evaluate_request("", "application/yaml", "# nothing\n"),
            StatusCode::BAD_REQUEST,
            "no objects",
        ),
        (
            "content-type",
            evaluate_request("", "application/xml", "<x/>"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/yaml",
        ),
        (
            "query",
            evaluate_request("?cluster=everything", "application/yaml", "kind: A\n"),
            StatusCode::BAD_REQUEST,
            "live, manifests",
        ),
        (
            "too-large",
            evaluate_request("", "application/yaml", "#".repeat(64 * 1024 + 1)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
        (
            "method",
            Request::get("/v1/evaluate").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "POST",
        ),
        (
            "not-utf8",
            evaluate_request("", "application/yaml", vec![0xff, 0xfe, 0x00]),
            StatusCode::BAD_REQUEST,
            "UTF-8",
        ),
    ];
    for (name, request, expected, says) in cases {
        let (status, _, body) = call(&state, request).await;
        assert_eq!(status, expected, "{name}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{name}: {error}");
        if name != "method" {
            record(&format!("error-{name}"), "POST /v1/evaluate", status, &body);
        }
    }
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let state = state(Arc::new(Store::offline()), ApiAuth::none(), 2);
    let get = || Request::get("/v1/policies").body(Body::empty()).unwrap();
    for _ in 0..2 {
        let (status, _, _) = call(&state, get()).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, headers, body) = call(&state, get()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "1");
    record("error-rate-limited", "GET /v1/policies", status, &body);
}

#[tokio::test]
async fn policies_and_the_description_are_served() {
    let state = open_state();
    let (status, _, body) = call(
        &state,
        Request::get("/v1/policies").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["digest"], embedded_default().digest());
    assert_eq!(body["source"], "embedded default");
    assert!(body["lastReloadError"].is_null());
    assert!(body["loadedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["policies"][0]["kind"], "RolloutPolicy");
    record("policies", "GET /v1/policies", status, &body);

    let (status, _, description) = call(
        &state,
        Request::get("/v1/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(description["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/v1/evaluate", "/v1/policies", "/v1/openapi.json"] {
        assert!(
            description["paths"].get(path).is_some(),
            "{path} not described"
        );
    }
    std::fs::write(
        openapi_dir().join("openapi.json"),
        serde_json::to_string_pretty(&description).unwrap(),
    )
    .unwrap();
}

fn token_auth(url: &str) -> ApiAuth {
    let config = kube::Config::new(url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let reviewer: Arc<dyn TokenReviewer> = Arc::new(KubeTokenReviewer::new(client, vec![]));
    ApiAuth::new(ApiAuthMode::Token, Some(reviewer), Duration::from_secs(30))
}

#[tokio::test]
async fn bearer_tokens_are_checked_with_a_token_review() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let reviews = Arc::new(AtomicUsize::new(0));
    let url = common::fake_token_review_server(Arc::clone(&reviews)).await;
    let state = state(Arc::new(Store::offline()), token_auth(&url), 0);
    let request = |token: Option<&str>| {
        let mut builder = Request::post("/v1/evaluate?cluster=manifests")
            .header(header::CONTENT_TYPE, "application/yaml");
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder
            .body(Body::from(read("examples/manifests/nginx.yaml")))
            .unwrap()
    };

    let (status, headers, body) = call(&state, request(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    record("error-no-token", "POST /v1/evaluate", status, &body);

    let (status, _, body) = call(&state, request(Some("stolen"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("invalid bearer token"),
        "{body}"
    );

    for _ in 0..3 {
        let (status, _, body) = call(&state, request(Some(common::GOOD_TOKEN))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // The evaluation runs as the caller, as the webhook would see its apply.
        assert_eq!(
            body["user"]["username"],
            "system:serviceaccount:ci:deployer"
        );
        record(
            "evaluate-as-service-account",
            "POST /v1/evaluate",
            status,
            &body,
        );
    }
    assert_eq!(
        reviews.load(Ordering::SeqCst),
        2,
        "one review per token, then cached"
    );

    // The policies need a token too.
    let (status, _, _) = call(
        &state,
        Request::get("/v1/policies").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The description does not.
    let (status, _, _) = call(
        &state,
        Request::get("/v1/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_unreachable_api_server_is_a_503_not_a_pass() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let state = state(Arc::new(Store::offline()), token_auth(&url), 0);
    let request = Request::get("/v1/policies")
        .header(header::AUTHORIZATION, "Bearer good-token")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = call(&state, request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    record("error-auth-unavailable", "GET /v1/policies", status, &body);
}

/// The admission endpoints are not behind the API's authentication.
#[tokio::test]
async fn admission_needs_no_api_credentials() {
    let reviews = Arc::new(AtomicUsize::new(0));
    let url = common::fake_token_review_server(Arc::clone(&reviews)).await;
    let state = state(Arc::new(Store::offline()), token_auth(&url), 1);
    let review = read("examples/reviews/deployment-create.json");
    for _ in 0..3 {
        let (status, _, body) = call(
            &state,
            Request::post("/mutate")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(review.clone()))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "not rate-limited either: {body}");
        assert_eq!(body["kind"], "AdmissionReview");
    }
    assert_eq!(reviews.load(Ordering::SeqCst), 0);
}
