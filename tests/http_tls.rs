//! The real binary over TLS: certificates from `rollout-guard certs generate`, ports picked by
//! the OS (`127.0.0.1:0`, read back from the start-up banner), a client that trusts only the
//! generated CA and dials the Service name the API server uses.
//!
//! No timed assertions: every wait is a bounded poll for a state change, and failing ones print
//! the server's log.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rollout_guard::admission::{review, ReviewContext};
use rollout_guard::policy::finding::Endpoint;
use rollout_guard::policy::load::embedded_default;
use rollout_guard::policy::EmptyView;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

mod common;
use common::{ServeProcess, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_rollout-guard");
const SERVICE: &str = "rollout-guard";
const NAMESPACE: &str = "rg-system";
/// The name the API server dials for a webhook Service.
const HOST: &str = "rollout-guard.rg-system.svc";
/// Generous bounds for polls; a poll returns as soon as its condition holds.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
const POLL_LIMIT: Duration = Duration::from_secs(20);

/// Runs a command that must exit by itself, killing it if it does not within the poll limit.
fn run_to_exit(command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > POLL_LIMIT {
            let _ = child.kill();
            panic!("{command:?} did not exit");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    child.wait_with_output().unwrap()
}

/// `serve ARGS` on OS-chosen ports, which must refuse to start: exits unsuccessfully by itself
/// and listens nowhere (prints no banner).
fn serve_refused(args: &[&str]) -> Output {
    let output = run_to_exit(
        Command::new(BIN)
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args(args),
    );
    assert!(!output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty(), "nothing may listen: {output:?}");
    output
}

/// `certs generate` into `out`; checks the printed caBundle is base64 of the CA PEM.
fn generate_certs(out: &Path) {
    let output = run_to_exit(Command::new(BIN).args([
        "certs",
        "generate",
        "--out",
        out.to_str().unwrap(),
        "--service",
        SERVICE,
        "--namespace",
        NAMESPACE,
        "--days",
        "2",
    ]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "certs generate failed: {output:?}");
    let bundle = stdout
        .lines()
        .find_map(|line| line.strip_prefix("caBundle: "))
        .unwrap_or_else(|| panic!("no caBundle line in:\n{stdout}"));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(bundle)
        .unwrap();
    assert_eq!(decoded, std::fs::read(out.join("ca.pem")).unwrap());
    #[cfg(unix)]
    for key in ["tls.key", "ca-key.pem"] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(out.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key} must be private");
    }
}

struct Server {
    process: ServeProcess,
    admission: SocketAddr,
    admin: SocketAddr,
}

impl Server {
    /// Starts `serve` on OS-chosen ports with `args` and waits for `/readyz`.
    async fn start(dir: &TempDir, args: &[&str]) -> Self {
        Self::start_with_kubeconfig(dir, args, Path::new("/nonexistent")).await
    }

    /// [`Server::start`] with `KUBECONFIG` naming `kubeconfig`.
    async fn start_with_kubeconfig(dir: &TempDir, args: &[&str], kubeconfig: &Path) -> Self {
        let mut all: Vec<&OsStr> = vec!["--namespace".as_ref(), NAMESPACE.as_ref()];
        all.extend(args.iter().map(OsStr::new));
        let process = ServeProcess::spawn_with_kubeconfig(
            BIN,
            dir.path("server.log"),
            &all,
            kubeconfig,
            POLL_LIMIT,
        );
        let server = Self {
            admission: process.admission,
            admin: process.admin,
            process,
        };
        let ready = server
            .poll(|| async {
                let response = reqwest::get(server.admin_url("/readyz")).await.ok()?;
                (response.status() == 200).then_some(())
            })
            .await;
        assert!(ready.is_some(), "never ready:\n{}", server.logs());
        server
    }

    /// Starts with the certificate and key `generate_certs` wrote into `dir`.
    async fn start_with_certs_in(dir: &TempDir, args: &[&str]) -> Self {
        let (cert, key) = (dir.path("tls.crt"), dir.path("tls.key"));
        let mut all = vec![
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        Self::start(dir, &all).await
    }

    fn logs(&self) -> String {
        self.process.logs()
    }

    fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.admission.port())
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Polls `probe` until it yields a value or the limit passes.
    async fn poll<T, F, Fut>(&self, mut probe: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let started = Instant::now();
        while started.elapsed() < POLL_LIMIT {
            if let Some(value) = probe().await {
                return Some(value);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        None
    }

    async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.process.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit by itself.
    async fn exit_status(&mut self) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < POLL_LIMIT {
            if let Some(status) = self.process.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        None
    }
}

/// A fresh client (no pooled connections) trusting only `cas`, resolving the Service name to
/// the server, reporting the peer certificate.
fn client(server: &Server, cas: &[&Path]) -> reqwest::Client {
    client_builder(server, cas).build().unwrap()
}

/// What [`client`] builds, to add to.
fn client_builder(server: &Server, cas: &[&Path]) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .resolve(HOST, server.admission)
        .tls_info(true)
        .pool_max_idle_per_host(0);
    for ca in cas {
        let pem = std::fs::read(ca).unwrap();
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    builder
}

fn leaf_der(cert_pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(cert_pem).unwrap().to_vec()
}

/// A Deployment CREATE as the API server sends it to a mutating webhook: after defaulting.
fn deployment_create(uid: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "web",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "alice@example.com", "groups": ["system:authenticated"]},
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            "object": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}
                    },
                    "revisionHistoryLimit": 10,
                    "progressDeadlineSeconds": 600,
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "containers": [{
                                "name": "web",
                                "image": "registry.example.com/shop/web:1.4.2",
                                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                                "terminationMessagePath": "/dev/termination-log",
                                "terminationMessagePolicy": "File",
                                "imagePullPolicy": "IfNotPresent"
                            }],
                            "restartPolicy": "Always",
                            "terminationGracePeriodSeconds": 30,
                            "dnsPolicy": "ClusterFirst",
                            "schedulerName": "default-scheduler"
                        }
                    }
                }
            }
        }
    })
}

/// What the one review path answers for `body`, in process, with the server's configuration.
fn expected_review(endpoint: Endpoint, body: &[u8]) -> rollout_guard::admission::Reviewed {
    let policies = embedded_default();
    review(
        endpoint,
        body,
        &ReviewContext {
            policies: &policies,
            view: &EmptyView,
            own_namespace: Some(NAMESPACE),
            now: std::time::SystemTime::now(),
        },
    )
    .unwrap()
}

fn tls_connector(cas: &[&Path], alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots
            .add(CertificateDer::from_pem_file(ca).unwrap())
            .unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn raw_tls(server: &Server, ca: &Path, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(server.admission).await.unwrap();
    tls_connector(&[ca], alpn)
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads an HTTP/1.1 response to a `Connection: close` request: status and body.
async fn read_response(stream: &mut TlsStream<TcpStream>) -> (u16, String) {
    let mut buf = Vec::new();
    // A peer that closes without close_notify ends the read with an error; keep what arrived.
    let _ = stream.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn metric_value(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn answers_admission_reviews_over_tls() {
    let dir = TempDir::new("http-admission");
    generate_certs(&dir.0);
    let ca = dir.path("ca.pem");
    let server = Server::start_with_certs_in(&dir, &["--max-body-bytes", "65536"]).await;
    let client = client(&server, &[&ca]);

    // Mutate: the answer is exactly what the in-process review path gives.
    let body = serde_json::to_vec(&deployment_create("7f1e2d3c-0001")).unwrap();
    let expected = expected_review(Endpoint::Mutate, &body);
    let response = client
        .post(server.url("/mutate"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", server.logs());
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{response:?}"
    );
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], "7f1e2d3c-0001");
    assert_eq!(
        answer,
        serde_json::from_slice::<Value>(&expected.body).unwrap()
    );
    if let Some(patch) = answer["response"].get("patch") {
        // The documented contract (not kube-core's byte array): base64 of a JSON Patch array.
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(patch.as_str().expect("patch is a base64 string"))
            .unwrap();
        let operations: Value = serde_json::from_slice(&decoded).unwrap();
        assert!(operations.as_array().is_some_and(|ops| !ops.is_empty()));
    } else {
        assert!(expected.verdict.patch.is_empty());
        assert!(answer["response"].get("patchType").is_none());
    }

    // Validate: same path, other endpoint.
    let body = serde_json::to_vec(&deployment_create("7f1e2d3c-0002")).unwrap();
    let expected_validate = expected_review(Endpoint::Validate, &body);
    let response = client
        .post(server.url("/validate"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["response"]["uid"], "7f1e2d3c-0002");
    assert_eq!(
        answer,
        serde_json::from_slice::<Value>(&expected_validate.body).unwrap()
    );

    // Malformed JSON: 400 with a JSON error.
    let response = client
        .post(server.url("/mutate"))
        .header("content-type", "application/json")
        .body("{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"]
        .as_str()
        .unwrap()
        .contains("not a valid AdmissionReview"));

    // Wrong method: 405 naming the allowed one.
    let response = client.get(server.url("/mutate")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");

    // Over the limit by declaration: refused before any of the body is sent or read.
    let mut stream = raw_tls(&server, &ca, &[b"http/1.1"]).await;
    stream
        .write_all(
            format!(
                "POST /mutate HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n\
                 Content-Length: 10000000\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let (status, body) = read_response(&mut stream).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("larger than 65536 bytes"), "{body}");

    // HTTP/2 is offered by ALPN (the API server uses it when available).
    let stream = raw_tls(&server, &ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(stream);

    // Plain HTTP to the TLS port is refused without harming the server.
    let mut plain = TcpStream::connect(server.admission).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut ignored = Vec::new();
    let _ = plain.read_to_end(&mut ignored).await;

    // Health on both ports.
    let response = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let ready: Value = client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["policy"]["digest"], embedded_default().digest());
    assert_eq!(ready["store"]["synced"], true);
    let response = reqwest::get(server.admin_url("/healthz")).await.unwrap();
    assert_eq!(response.status(), 200);

    // Metrics on the plain port count what happened.
    let handshake_failed = server
        .poll(|| async {
            let metrics = server.metrics().await;
            (metric_value(
                &metrics,
                "rollout_guard_bad_requests_total{reason=\"tls_handshake\"}",
            ) >= Some(1))
            .then_some(metrics)
        })
        .await;
    let metrics =
        handshake_failed.unwrap_or_else(|| panic!("plain HTTP not counted:\n{}", server.logs()));
    let reviewed = |endpoint: &str, decision: &str| {
        format!(
            "rollout_guard_requests_total{{endpoint=\"{endpoint}\",kind=\"Deployment\",operation=\"CREATE\",decision=\"{decision}\"}}"
        )
    };
    assert_eq!(
        metric_value(&metrics, &reviewed("mutate", expected.verdict.decision())),
        Some(1),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            &reviewed("validate", expected_validate.verdict.decision())
        ),
        Some(1),
        "{metrics}"
    );
    for (reason, count) in [("malformed", 1), ("method", 1), ("too_large", 1)] {
        let series = format!("rollout_guard_bad_requests_total{{reason=\"{reason}\"}}");
        assert_eq!(
            metric_value(&metrics, &series),
            Some(count),
            "{series}\n{metrics}"
        );
    }
    assert_eq!(
        metric_value(&metrics, "rollout_guard_request_duration_seconds_count{endpoint=\"mutate\"}"),
        Some(3),
        "one review, one malformed and one oversized body on /mutate (405 never reaches it):\n{metrics}"
    );
    assert!(metrics.contains(&format!(
        "rollout_guard_policy_info{{digest=\"{}\"}} 1",
        embedded_default().digest()
    )));
    assert_eq!(
        metric_value(&metrics, "rollout_guard_store_synced"),
        Some(1)
    );

    // And the server still answers after all of that.
    assert_validates(&client, &server, "7f1e2d3c-0003").await;
}

/// Posts a Deployment CREATE review (uid `uid`) to `/validate` and expects it answered: the
/// server is still serving.
async fn assert_validates(client: &reqwest::Client, server: &Server, uid: &str) {
    let response = client
        .post(server.url("/validate"))
        .body(serde_json::to_vec(&deployment_create(uid)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "review {uid}");
}

/// Lays out `pair` the way the kubelet mounts a Secret and atomically re-points `..data`.
fn kubelet_publish(secret_dir: &Path, version: &str, cert_from: &Path, key_from: &Path) {
    let data_dir = secret_dir.join(format!("..{version}"));
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::copy(cert_from, data_dir.join("tls.crt")).unwrap();
    std::fs::copy(key_from, data_dir.join("tls.key")).unwrap();
    let staging = secret_dir.join("..data_tmp");
    let _ = std::fs::remove_file(&staging);
    std::os::unix::fs::symlink(format!("..{version}"), &staging).unwrap();
    std::fs::rename(&staging, secret_dir.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        let link = secret_dir.join(file);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{file}"), &link).unwrap();
        }
    }
}

async fn served_certificate(server: &Server, cas: &[&Path]) -> Option<Vec<u8>> {
    let response = client(server, cas)
        .get(server.url("/healthz"))
        .send()
        .await
        .ok()?;
    (response.status() == 200).then_some(())?;
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()?
        .peer_certificate()
        .map(<[u8]>::to_vec)
}

#[cfg(unix)]
#[tokio::test]
async fn picks_up_a_rotated_certificate_from_a_kubelet_symlink_swap() {
    let dir = TempDir::new("http-rotation");
    let (first, second) = (dir.path("first"), dir.path("second"));
    generate_certs(&first);
    generate_certs(&second);
    let secret = dir.path("secret");
    std::fs::create_dir_all(&secret).unwrap();
    kubelet_publish(
        &secret,
        "v1",
        &first.join("tls.crt"),
        &first.join("tls.key"),
    );

    let mut server = Server::start(
        &dir,
        &[
            "--tls-cert",
            secret.join("tls.crt").to_str().unwrap(),
            "--tls-key",
            secret.join("tls.key").to_str().unwrap(),
            "--reload-interval-ms",
            "50",
        ],
    )
    .await;
    let (first_ca, second_ca) = (first.join("ca.pem"), second.join("ca.pem"));
    let cas = [first_ca.as_path(), second_ca.as_path()];
    assert_eq!(
        served_certificate(&server, &cas).await,
        Some(leaf_der(&first.join("tls.crt")))
    );

    // Rotation: the new pair is served on new connections.
    kubelet_publish(
        &secret,
        "v2",
        &second.join("tls.crt"),
        &second.join("tls.key"),
    );
    std::fs::remove_dir_all(secret.join("..v1")).unwrap();
    let second_leaf = leaf_der(&second.join("tls.crt"));
    let rotated = server
        .poll(|| async {
            (served_certificate(&server, &cas).await.as_ref() == Some(&second_leaf)).then_some(())
        })
        .await;
    assert!(
        rotated.is_some(),
        "rotation not picked up:\n{}",
        server.logs()
    );
    let metrics = server.metrics().await;
    assert_eq!(
        metric_value(&metrics, "rollout_guard_tls_reloads_total{result=\"ok\"}"),
        Some(1),
        "{metrics}"
    );

    // A broken pair (key of the other certificate) is refused; the good pair stays.
    kubelet_publish(
        &secret,
        "v3",
        &first.join("tls.crt"),
        &second.join("tls.key"),
    );
    let refused = server
        .poll(|| async {
            let metrics = server.metrics().await;
            (metric_value(
                &metrics,
                "rollout_guard_tls_reloads_total{result=\"error\"}",
            ) == Some(1))
            .then_some(())
        })
        .await;
    assert!(
        refused.is_some(),
        "bad pair not reported:\n{}",
        server.logs()
    );
    assert_eq!(served_certificate(&server, &cas).await, Some(second_leaf));
    assert!(server.logs().contains("does not belong to the certificate"));

    // Fixing the files recovers without a restart, and requests keep working.
    kubelet_publish(
        &secret,
        "v4",
        &first.join("tls.crt"),
        &first.join("tls.key"),
    );
    let first_leaf = leaf_der(&first.join("tls.crt"));
    let recovered = server
        .poll(|| async {
            (served_certificate(&server, &cas).await.as_ref() == Some(&first_leaf)).then_some(())
        })
        .await;
    assert!(recovered.is_some(), "{}", server.logs());
    assert_validates(&client(&server, &cas), &server, "rotation").await;
    assert!(server.process.child.try_wait().unwrap().is_none());
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_turns_unready_keeps_serving_through_the_delay_and_drains_in_flight_requests() {
    let dir = TempDir::new("http-sigterm");
    generate_certs(&dir.0);
    let ca = dir.path("ca.pem");
    let mut server = Server::start_with_certs_in(
        &dir,
        &[
            // Long enough that only the SIGINT below ends it.
            "--shutdown-delay-seconds",
            "600",
            "--shutdown-grace-seconds",
            "600",
        ],
    )
    .await;
    let client = client(&server, &[&ca]);

    server.signal("TERM");
    let unready = server
        .poll(|| async {
            let response = reqwest::get(server.admin_url("/readyz")).await.ok()?;
            (response.status() == 503).then_some(())
        })
        .await;
    assert!(
        unready.is_some(),
        "readiness did not turn off:\n{}",
        server.logs()
    );

    // During the delay new connections are still served (endpoints may still route here).
    assert_validates(&client, &server, "during-delay").await;

    // A request in flight: headers sent, the handler waiting for the body (it asked for it
    // with 100 Continue), when the drain begins.
    let body = serde_json::to_vec(&deployment_create("in-flight")).unwrap();
    let mut stream = raw_tls(&server, &ca, &[b"http/1.1"]).await;
    stream
        .write_all(
            format!(
                "POST /validate HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).await.unwrap();
    assert!(interim.starts_with(b"HTTP/1.1 100 Continue"), "{interim:?}");

    // SIGINT cuts the delay short: the listener closes and the drain begins.
    server.signal("INT");
    let closed = server
        .poll(|| async { TcpStream::connect(server.admission).await.err().map(|_| ()) })
        .await;
    assert!(closed.is_some(), "listener still open:\n{}", server.logs());
    // The unfinished request holds the drain open (grace is 600 s): the process must still be
    // there a moment later. This can only fail when the drain does not wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.process.child.try_wait().unwrap().is_none(),
        "exited with a request in flight:\n{}",
        server.logs()
    );
    let response = reqwest::get(server.admin_url("/readyz")).await.unwrap();
    assert_eq!(
        response.status(),
        503,
        "admin port serves /readyz until the drain ends"
    );

    stream.write_all(&body).await.unwrap();
    let (status, answer) = read_response(&mut stream).await;
    assert_eq!(status, 200, "{answer}\n{}", server.logs());
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["response"]["uid"], "in-flight");

    let exit = server.exit_status().await;
    assert!(
        exit.is_some_and(|status| status.success()),
        "{exit:?}\n{}",
        server.logs()
    );
}

#[test]
fn refuses_to_start_with_a_key_of_another_certificate() {
    let dir = TempDir::new("http-mismatch");
    let (first, second) = (dir.path("first"), dir.path("second"));
    generate_certs(&first);
    generate_certs(&second);
    let output = serve_refused(&[
        "--tls-cert",
        first.join("tls.crt").to_str().unwrap(),
        "--tls-key",
        second.join("tls.key").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not belong to the certificate")
            && stderr.contains(&first.join("tls.crt").display().to_string())
            && stderr.contains(&second.join("tls.key").display().to_string()),
        "{stderr}"
    );
}

#[test]
fn refuses_to_start_with_invalid_policies_listing_every_error() {
    let dir = TempDir::new("http-policies");
    generate_certs(&dir.0);
    let policies = dir.path("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("a.yaml"),
        "apiVersion: rollout-guard.io/v1alpha1\nkind: RolloutPolicy\nmetadata: {name: a}\nspec: {bogus: 1}\n",
    )
    .unwrap();
    std::fs::write(policies.join("b.yml"), "- just\n- a list\n").unwrap();
    let output = serve_refused(&[
        "--tls-cert",
        dir.path("tls.crt").to_str().unwrap(),
        "--tls-key",
        dir.path("tls.key").to_str().unwrap(),
        "--policies",
        policies.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("a.yaml") && stderr.contains("b.yml"),
        "{stderr}"
    );
}

/// An Ingress review as the API server sends it to the validating webhook.
fn ingress_review(uid: &str, operation: &str, ingress: &Value) -> Value {
    let gvk = json!({"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"});
    let (object, old_object) = if operation == "DELETE" {
        (Value::Null, ingress.clone())
    } else {
        (ingress.clone(), Value::Null)
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": gvk,
            "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
            "name": ingress["metadata"]["name"],
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "alice@example.com"},
            "object": object,
            "oldObject": old_object,
        }
    })
}

fn canary_ingress(path: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web-canary", "namespace": "shop", "annotations": {
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-weight": "10"}},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com", "http": {
            "paths": [{"path": path, "pathType": "Prefix",
                "backend": {"service": {"name": "web-v2", "port": {"number": 80}}}}]}}]}
    })
}

/// POSTs a review to `/validate` and returns its `response`.
async fn validate(server: &Server, ca: &Path, body: Value) -> Value {
    let answer: Value = client(server, &[ca])
        .post(server.url("/validate"))
        .header("content-type", "application/json")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["response"].clone()
}

/// `serve --objects` gives cross-object rules their state without a cluster: a canary is judged
/// against the main Ingress and Services in the manifests, over the real HTTPS port.
#[tokio::test]
async fn serve_objects_feeds_cross_object_rules_over_https() {
    let dir = TempDir::new("http-objects");
    generate_certs(&dir.0);
    let ca = dir.path("ca.pem");
    let state = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check/canary-pair");
    let server = Server::start_with_certs_in(
        &dir,
        &["--objects", state.join("services.yaml").to_str().unwrap()],
    )
    .await;
    let post = |body: Value| validate(&server, &ca, body);

    // Only the Services and the class are loaded: the canary has no main Ingress yet, which the
    // next object may bring, so it is allowed with a warning that names the missing main.
    let orphan = post(ingress_review("c-1", "CREATE", &canary_ingress("/"))).await;
    assert_eq!(orphan["uid"], "c-1");
    assert_eq!(orphan["allowed"], true, "{orphan}");
    let warning = orphan["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("ingressCanary.missingMain"), "{orphan}");
    let metrics = server.metrics().await;
    assert_eq!(
        metric_value(&metrics, "rollout_guard_store_objects{kind=\"Service\"}"),
        Some(2),
        "{metrics}"
    );
    drop(server);

    // With the main Ingress in the state too, the same canary is allowed, and deleting the main
    // it leans on is denied.
    let server = Server::start_with_certs_in(&dir, &["--objects", state.to_str().unwrap()]).await;
    let post = |body: Value| validate(&server, &ca, body);
    let paired = post(ingress_review("c-2", "CREATE", &canary_ingress("/"))).await;
    assert_eq!(paired["allowed"], true, "{paired}");
    let main: Value = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com", "http": {
            "paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web-v1", "port": {"number": 80}}}}]}}]}
    });
    let delete = post(ingress_review("c-3", "DELETE", &main)).await;
    assert_eq!(delete["allowed"], false, "{delete}");
    let message = delete["status"]["message"].as_str().unwrap();
    assert!(message.contains("ingressCanary.mainRemoved"), "{message}");
}

/// Break-glass end to end: the served binary honours an override only for the user its policy
/// names, and records it in the response's audit annotations, `/metrics` and the log.
#[tokio::test]
async fn break_glass_overrides_are_honoured_for_named_users_and_recorded() {
    let dir = TempDir::new("http-break-glass");
    generate_certs(&dir.0);
    let ca = dir.path("ca.pem");
    let policies = dir.path("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("shop.yaml"),
        "apiVersion: rollout-guard.io/v1alpha1\nkind: RolloutPolicy\nmetadata: {name: shop}\nspec:\n  breakGlass:\n    - name: oncall\n      rules: [ingressCanary.mainRemoved]\n      users: [alice@example.com]\n",
    )
    .unwrap();
    let state = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check/canary-pair");
    let server = Server::start_with_certs_in(
        &dir,
        &[
            "--objects",
            state.to_str().unwrap(),
            "--policies",
            policies.to_str().unwrap(),
        ],
    )
    .await;
    // The main Ingress its canary needs, carrying the override (a DELETE sends it as oldObject).
    let main: Value = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "shop", "annotations": {
            "rollout-guard.io/override": "ingressCanary.mainRemoved: INC-4411 main is broken"}},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com", "http": {
            "paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web-v1", "port": {"number": 80}}}}]}}]}
    });
    let by = |user: &str| {
        let mut review = ingress_review("bg-1", "DELETE", &main);
        review["request"]["userInfo"] = json!({"username": user});
        review
    };

    let honoured = validate(&server, &ca, by("alice@example.com")).await;
    assert_eq!(honoured["allowed"], true, "{honoured}");
    let audit = &honoured["auditAnnotations"];
    assert_eq!(
        audit["break-glass"], "ingressCanary.mainRemoved",
        "{honoured}"
    );
    assert_eq!(audit["break-glass-user"], "alice@example.com", "{honoured}");
    assert_eq!(audit["break-glass-grant"], "oncall", "{honoured}");
    assert_eq!(
        audit["break-glass-reason"], "INC-4411 main is broken",
        "{honoured}"
    );
    assert!(
        honoured["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with("rollout-guard break-glass: ingressCanary.mainRemoved bypassed by alice@example.com (grant oncall)"),
        "{honoured}"
    );

    let refused = validate(&server, &ca, by("bob@example.com")).await;
    assert_eq!(refused["allowed"], false, "{refused}");
    assert_eq!(
        refused["auditAnnotations"]["break-glass-refused"], "ingressCanary.mainRemoved=not-named",
        "{refused}"
    );

    let metrics = server.metrics().await;
    for (result, count) in [("bypassed", 1), ("not-named", 1)] {
        let series = format!("rollout_guard_break_glass_total{{endpoint=\"validate\",rule=\"ingressCanary\",check=\"mainRemoved\",result=\"{result}\"}}");
        assert_eq!(
            metric_value(&metrics, &series),
            Some(count),
            "{series}\n{metrics}"
        );
    }
    assert!(!metrics.contains("alice"), "{metrics}");
    let logs = server
        .poll(|| async {
            let logs = server.logs();
            logs.contains("override not honoured").then_some(logs)
        })
        .await
        .unwrap_or_else(|| server.logs());
    let bypass_line = logs
        .lines()
        .find(|line| line.contains("break-glass: denial bypassed"))
        .unwrap_or_else(|| panic!("no bypass log line:\n{logs}"));
    for part in [
        "alice@example.com",
        "ingressCanary.mainRemoved",
        "oncall",
        "INC-4411 main is broken",
        "web",
    ] {
        assert!(bypass_line.contains(part), "{part} not in {bypass_line}");
    }
}

// ---------------------------------------------------------------------------------------------
// The evaluation API's client certificates, end to end.
// ---------------------------------------------------------------------------------------------

/// A CA that signs API client certificates (what an operator's cert-manager Issuer would be),
/// its PEM written to `ca_file` for `--api-client-ca`.
struct ClientCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_file: std::path::PathBuf,
}

impl ClientCa {
    fn new(name: &str, ca_file: std::path::PathBuf) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        std::fs::write(&ca_file, params.self_signed(&key).unwrap().pem()).unwrap();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            ca_file,
        }
    }

    /// A client certificate (and its key, as reqwest takes them) for `subject`.
    fn issue(&self, subject: &ClientSubject) -> reqwest::Identity {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        // Not rcgen's default subject (CN=rcgen self signed cert).
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(user) = subject.common_name {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, user);
        }
        // One O attribute per group, as `openssl req -subj "/CN=u/O=a/O=b"` writes them. rcgen
        // keeps one value per type, so the second is the same OID (2.5.4.10) spelled as a
        // custom type (and a third cannot be made).
        assert!(subject.organizations.len() <= 2);
        let types = [
            rcgen::DnType::OrganizationName,
            rcgen::DnType::CustomDnType(vec![2, 5, 4, 10]),
        ];
        for (organization, group) in types.into_iter().zip(subject.organizations) {
            params.distinguished_name.push(organization, *group);
        }
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![subject.usage.clone()];
        if subject.expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        reqwest::Identity::from_pem(format!("{}{}", cert.pem(), key.serialize_pem()).as_bytes())
            .unwrap()
    }
}

/// Who a client certificate names and how it is made.
struct ClientSubject {
    common_name: Option<&'static str>,
    organizations: &'static [&'static str],
    usage: rcgen::ExtendedKeyUsagePurpose,
    expired: bool,
}

/// The pipeline's certificate: user `ci-pipeline`, groups `release-team` and `deployers`.
const PIPELINE: ClientSubject = ClientSubject {
    common_name: Some("ci-pipeline"),
    organizations: &["release-team", "deployers"],
    usage: rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    expired: false,
};

/// A client of the admission port trusting the serving CA, presenting `identity` if any.
fn api_client(server: &Server, ca: &Path, identity: Option<reqwest::Identity>) -> reqwest::Client {
    let builder = client_builder(server, &[ca]);
    match identity {
        Some(identity) => builder.identity(identity),
        None => builder,
    }
    .build()
    .unwrap()
}

/// `POST /v1/evaluate?cluster=manifests` of one Deployment, with `token` as bearer if any:
/// the status and the JSON answer.
async fn evaluate_over_tls(
    client: &reqwest::Client,
    server: &Server,
    token: Option<&str>,
) -> (u16, Value) {
    let manifest =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n\
                    spec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    \
                    metadata: {labels: {app: web}}\n    spec:\n      containers:\n        \
                    - {name: web, image: 'nginx:1.27'}\n";
    let mut request = client
        .post(server.url("/v1/evaluate?cluster=manifests"))
        .header("content-type", "application/yaml")
        .body(manifest);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", server.logs()));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Both admission endpoints answer `client`'s review: the API's authentication is not theirs.
async fn assert_admission_answers(client: &reqwest::Client, server: &Server, caller: &str) {
    for endpoint in ["/mutate", "/validate"] {
        let uid = format!("{caller}{endpoint}");
        let response = client
            .post(server.url(endpoint))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&deployment_create(&uid)).unwrap())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{caller}: {endpoint}: {e:?}\n{}", server.logs()));
        assert_eq!(response.status(), 200, "{caller}: {endpoint}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["response"]["uid"],
            uid.as_str(),
            "{caller}: {endpoint}"
        );
    }
}

/// How an API call should end: 200 as `user` with `groups`, or 401 saying `says`.
enum Expect {
    As(&'static str, &'static [&'static str]),
    Refused(&'static str),
}

/// One caller of the API: a certificate from `ca` (if any) and a bearer token (if any).
struct Caller {
    name: &'static str,
    certificate: Option<(&'static str, ClientSubject)>,
    token: Option<&'static str>,
    expect: Expect,
}

/// Runs every caller against `server`: the API answers as expected, and the admission
/// endpoints answer them all. Returns how many were refused.
async fn run_callers(
    server: &Server,
    serving_ca: &Path,
    cas: &[(&str, &ClientCa)],
    callers: Vec<Caller>,
) -> u64 {
    let mut refused = 0;
    for caller in callers {
        let identity = caller.certificate.as_ref().map(|(ca, subject)| {
            let (_, ca) = cas.iter().find(|(name, _)| name == ca).unwrap();
            ca.issue(subject)
        });
        let client = api_client(server, serving_ca, identity);
        let (status, body) = evaluate_over_tls(&client, server, caller.token).await;
        match caller.expect {
            Expect::As(user, groups) => {
                assert_eq!(status, 200, "{}: {body}\n{}", caller.name, server.logs());
                assert_eq!(body["user"]["username"], user, "{}: {body}", caller.name);
                assert_eq!(body["user"]["groups"], json!(groups), "{}", caller.name);
                assert_eq!(body["objects"][0]["kind"], "Deployment", "{}", caller.name);
            }
            Expect::Refused(says) => {
                refused += 1;
                assert_eq!(status, 401, "{}: {body}", caller.name);
                let error = body["error"].as_str().unwrap_or_default();
                assert!(error.contains(says), "{}: {error}", caller.name);
            }
        }
        assert_admission_answers(&client, server, caller.name).await;
    }
    refused
}

/// `--api-auth client-cert`: a certificate the configured CA signed names the caller (CN the
/// user, O the groups, as Kubernetes reads them); anything else is a 401 that says why, not a
/// TLS alert, so the admission endpoints on the same port keep answering every client.
#[tokio::test]
async fn api_client_certificates_name_the_caller_and_never_block_admission() {
    let dir = TempDir::new("http-client-cert");
    generate_certs(&dir.0);
    let serving_ca = dir.path("ca.pem");
    let client_ca = ClientCa::new("pipelines CA", dir.path("client-ca.pem"));
    let other_ca = ClientCa::new("someone else's CA", dir.path("other-ca.pem"));
    let server = Server::start_with_certs_in(
        &dir,
        &[
            "--api-auth",
            "client-cert",
            "--api-client-ca",
            client_ca.ca_file.to_str().unwrap(),
        ],
    )
    .await;
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let callers = vec![
        Caller {
            name: "pipeline",
            certificate: Some(("client", PIPELINE)),
            token: None,
            expect: Expect::As("ci-pipeline", &["release-team", "deployers"]),
        },
        Caller {
            name: "other-ca",
            certificate: Some(("other", PIPELINE)),
            token: None,
            expect: Expect::Refused("not signed by the API's client CA"),
        },
        Caller {
            name: "expired",
            certificate: Some((
                "client",
                ClientSubject {
                    expired: true,
                    ..PIPELINE
                },
            )),
            token: None,
            expect: Expect::Refused("expired"),
        },
        Caller {
            name: "server-usage",
            certificate: Some((
                "client",
                ClientSubject {
                    usage: ServerAuth,
                    ..PIPELINE
                },
            )),
            token: None,
            expect: Expect::Refused("not issued for client authentication"),
        },
        Caller {
            name: "no-common-name",
            certificate: Some((
                "client",
                ClientSubject {
                    common_name: None,
                    organizations: &["release-team"],
                    usage: ClientAuth,
                    expired: false,
                },
            )),
            token: None,
            expect: Expect::Refused("no subject common name"),
        },
        Caller {
            name: "no-certificate",
            certificate: None,
            token: None,
            expect: Expect::Refused("present a client certificate"),
        },
        Caller {
            name: "token-only",
            certificate: None,
            token: Some(common::GOOD_TOKEN),
            expect: Expect::Refused("present a client certificate"),
        },
    ];
    let refused = run_callers(
        &server,
        &serving_ca,
        &[("client", &client_ca), ("other", &other_ca)],
        callers,
    )
    .await;

    // The policies need the certificate too; the description does not.
    let pipeline = api_client(&server, &serving_ca, Some(client_ca.issue(&PIPELINE)));
    let anonymous = api_client(&server, &serving_ca, None);
    for (client, path, status) in [
        (&pipeline, "/v1/policies", 200),
        (&anonymous, "/v1/policies", 401),
        (&anonymous, "/v1/openapi.json", 200),
    ] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
    }
    let metrics = server.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "rollout_guard_bad_requests_total{reason=\"unauthenticated\"}"
        ),
        Some(refused + 1),
        "{metrics}"
    );
    // No handshake failed: every refusal was an answer.
    assert_eq!(
        metric_value(
            &metrics,
            "rollout_guard_bad_requests_total{reason=\"tls_handshake\"}"
        ),
        Some(0),
        "{metrics}"
    );
}

/// `--api-auth any`: a certificate from the CA or a bearer token (checked with a TokenReview
/// against the API server the kubeconfig names) is enough; a valid token wins over a refused
/// certificate, as in the API server's own union of authenticators.
#[tokio::test]
async fn api_any_mode_takes_a_certificate_or_a_token() {
    let dir = TempDir::new("http-client-any");
    generate_certs(&dir.0);
    let serving_ca = dir.path("ca.pem");
    let client_ca = ClientCa::new("pipelines CA", dir.path("client-ca.pem"));
    let other_ca = ClientCa::new("someone else's CA", dir.path("other-ca.pem"));
    let reviews = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let api_server = common::fake_token_review_server(Arc::clone(&reviews)).await;
    let kubeconfig = dir.path("kubeconfig");
    common::kubeconfig_for(&api_server, &kubeconfig);
    let objects = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/check/canary-pair/services.yaml");
    let server = Server::start_with_kubeconfig(
        &dir,
        &[
            "--tls-cert",
            dir.path("tls.crt").to_str().unwrap(),
            "--tls-key",
            dir.path("tls.key").to_str().unwrap(),
            "--api-auth",
            "any",
            "--api-client-ca",
            client_ca.ca_file.to_str().unwrap(),
            // The cluster state from a file: the fake API server only answers TokenReviews.
            "--objects",
            objects.to_str().unwrap(),
        ],
        &kubeconfig,
    )
    .await;
    const SERVICE_ACCOUNT: Expect = Expect::As(
        "system:serviceaccount:ci:deployer",
        &["system:serviceaccounts", "system:serviceaccounts:ci"],
    );
    let callers = vec![
        Caller {
            name: "certificate",
            certificate: Some(("client", PIPELINE)),
            token: None,
            expect: Expect::As("ci-pipeline", &["release-team", "deployers"]),
        },
        Caller {
            name: "token",
            certificate: None,
            token: Some(common::GOOD_TOKEN),
            expect: SERVICE_ACCOUNT,
        },
        Caller {
            name: "bad-token",
            certificate: None,
            token: Some("stolen"),
            expect: Expect::Refused("invalid bearer token"),
        },
        Caller {
            name: "refused-certificate-and-token",
            certificate: Some(("other", PIPELINE)),
            token: Some(common::GOOD_TOKEN),
            expect: SERVICE_ACCOUNT,
        },
        Caller {
            name: "refused-certificate-and-bad-token",
            certificate: Some(("other", PIPELINE)),
            token: Some("stolen"),
            expect: Expect::Refused("not signed by the API's client CA"),
        },
        Caller {
            name: "refused-certificate",
            certificate: Some(("other", PIPELINE)),
            token: None,
            expect: Expect::Refused("not signed by the API's client CA"),
        },
        Caller {
            name: "nothing",
            certificate: None,
            token: None,
            expect: Expect::Refused("or Authorization: Bearer"),
        },
    ];
    run_callers(
        &server,
        &serving_ca,
        &[("client", &client_ca), ("other", &other_ca)],
        callers,
    )
    .await;
    assert!(
        reviews.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "tokens were checked with TokenReviews"
    );
}
