//! Bad input over the real HTTPS port: the debug binary with certificates from
//! `rollout-guard certs generate`, attacked with malformed, truncated, mistyped, deeply nested
//! and oversized bodies, slow clients, plain HTTP and TLS 1.0/1.1. Every answer must be a clear
//! error (a 4xx with a JSON `error`, or an AdmissionReview denial with a message), and after each
//! one the server must still answer the next valid review.
//!
//! No timed assertions: waits are bounded polls, and "the server cut the slow client off" is
//! checked as "the connection ended before the client finished", not as a duration.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

mod common;
use common::{ServeProcess, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_rollout-guard");
const HOST: &str = "rollout-guard.bad-input.svc";
const POLL_LIMIT: Duration = Duration::from_secs(20);
/// Header and body deadline given to the server (`--request-timeout-ms`).
const REQUEST_TIMEOUT_MS: u64 = 1000;
const MAX_BODY_BYTES: usize = 256 * 1024;

struct Server {
    process: ServeProcess,
    addr: SocketAddr,
    ca: PathBuf,
    client: reqwest::Client,
    _dir: TempDir,
}

impl Server {
    async fn start(name: &str) -> Self {
        let dir = TempDir::new(name);
        let certs = dir.0.join("certs");
        let status = Command::new(BIN)
            .args(["certs", "generate", "--out"])
            .arg(&certs)
            .args(["--service", "rollout-guard", "--namespace", "bad-input"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "certs generate failed");
        let (cert, key) = (certs.join("tls.crt"), certs.join("tls.key"));
        let (max_body, timeout) = (MAX_BODY_BYTES.to_string(), REQUEST_TIMEOUT_MS.to_string());
        let args: Vec<&OsStr> = vec![
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
            "--namespace".as_ref(),
            "rollout-guard".as_ref(),
            "--max-body-bytes".as_ref(),
            max_body.as_ref(),
            "--request-timeout-ms".as_ref(),
            timeout.as_ref(),
        ];
        let process = ServeProcess::spawn(BIN, dir.0.join("server.log"), &args, POLL_LIMIT);
        let addr = process.admission;
        let ca = certs.join("ca.pem");
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap(),
            )
            .resolve(HOST, addr)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let server = Self {
            process,
            addr,
            ca,
            client,
            _dir: dir,
        };
        server.assert_still_serving("start-up").await;
        server
    }

    fn logs(&self) -> String {
        self.process.logs()
    }

    fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.addr.port())
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("no answer: {e}\n{}", self.logs()));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {text:?}"));
        (status, value)
    }

    /// The next valid review is answered correctly (the server survived whatever came before).
    async fn assert_still_serving(&self, after: &str) {
        let uid = format!("valid-after-{after}");
        let (status, answer) = self
            .post(
                "/mutate",
                serde_json::to_vec(&deployment_review(&uid)).unwrap(),
            )
            .await;
        assert_eq!(status, 200, "after {after}: {answer}\n{}", self.logs());
        assert_eq!(answer["response"]["uid"], uid.as_str(), "after {after}");
        assert_eq!(answer["response"]["allowed"], true, "after {after}");
        assert!(
            self.child_running(),
            "server died after {after}:\n{}",
            self.logs()
        );
    }

    fn child_running(&self) -> bool {
        // `try_wait` needs `&mut`; /proc tells without reaping.
        Path::new(&format!("/proc/{}", self.process.child.id())).exists()
    }

    fn tls_connector(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&self.ca).unwrap())
            .unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    async fn raw_tls(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        self.tls_connector()
            .connect(ServerName::try_from(HOST).unwrap(), tcp)
            .await
            .unwrap()
    }
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": name}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "registry.example.com/web:1.4.2",
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}}]}
            }
        }
    })
}

fn review(uid: &str, kind: (&str, &str, &str), object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": kind.0, "version": kind.1, "kind": kind.2},
            "name": "web",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": object,
        }
    })
}

fn deployment_review(uid: &str) -> Value {
    review(uid, ("apps", "v1", "Deployment"), deployment("web"))
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// Bodies that are not a readable AdmissionReview: HTTP 400 with a JSON error saying so.
#[tokio::test]
async fn unreadable_reviews_get_400_with_a_clear_error() {
    let server = Server::start("400").await;
    let valid = bytes(&deployment_review("truncated"));
    let mut wrong_version = deployment_review("v2");
    wrong_version["apiVersion"] = json!("admission.k8s.io/v2");
    let mut wrong_kind = deployment_review("pod");
    wrong_kind["kind"] = json!("Pod");
    let mut missing_uid = deployment_review("x");
    missing_uid["request"]
        .as_object_mut()
        .unwrap()
        .remove("uid");
    let mut empty_uid = deployment_review("x");
    empty_uid["request"]["uid"] = json!("");
    let mut no_request = deployment_review("x");
    no_request.as_object_mut().unwrap().remove("request");
    let mut uid_not_string = deployment_review("x");
    uid_not_string["request"]["uid"] = json!(42);
    let mut bad_operation = deployment_review("x");
    bad_operation["request"]["operation"] = json!("PATCH");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty body", Vec::new(), "not a valid AdmissionReview"),
        ("not JSON", b"hello".to_vec(), "not a valid AdmissionReview"),
        (
            "binary garbage",
            vec![0xff, 0xfe, 0x00, 0x9c, 0x80],
            "not a valid AdmissionReview",
        ),
        (
            "malformed JSON",
            br#"{"apiVersion": "admission.k8s.io/v1", "kind": }"#.to_vec(),
            "not a valid AdmissionReview",
        ),
        (
            "truncated JSON",
            valid[..valid.len() / 2].to_vec(),
            "not a valid AdmissionReview",
        ),
        // serde reads a struct from a sequence too; the empty one has no apiVersion or kind.
        ("JSON array", b"[]".to_vec(), "expected apiVersion"),
        ("JSON null", b"null".to_vec(), "not a valid AdmissionReview"),
        (
            "wrong apiVersion",
            bytes(&wrong_version),
            "admission.k8s.io/v2",
        ),
        ("wrong kind", bytes(&wrong_kind), "\"Pod\""),
        ("no request", bytes(&no_request), "no request"),
        ("missing uid", bytes(&missing_uid), "uid"),
        ("empty uid", bytes(&empty_uid), "uid"),
        ("uid not a string", bytes(&uid_not_string), "invalid type"),
        ("unknown operation", bytes(&bad_operation), "PATCH"),
    ];
    for (name, body, expected) in cases {
        for path in ["/mutate", "/validate"] {
            let (status, answer) = server.post(path, body.clone()).await;
            assert_eq!(status, 400, "{name} on {path}: {answer}");
            let error = answer["error"].as_str().unwrap_or_default();
            assert!(
                error.contains(expected),
                "{name} on {path}: error {error:?} should mention {expected:?}"
            );
        }
        server.assert_still_serving(name).await;
    }
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// 100k levels of `[`: serde_json skips unknown and raw values without recursing and stops
/// parsing into values at 128 levels, so deep nesting gets an answer, never a stack overflow.
#[tokio::test]
async fn deeply_nested_json_gets_an_answer() {
    let server = Server::start("deep").await;
    let depth = 100_000;

    let (status, answer) = server.post("/mutate", nested(depth).into_bytes()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]
        .as_str()
        .is_some_and(|e| e.contains("not a valid AdmissionReview")));
    server
        .assert_still_serving("a nested array as the body")
        .await;

    // Inside a field nobody reads: skipped, the review is answered as usual.
    let mut padded = deployment_review("padded");
    padded["padding"] = json!("PLACEHOLDER");
    let body = bytes(&padded).replace_placeholder(&nested(depth));
    let (status, answer) = server.post("/mutate", body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["uid"], "padded");
    assert_eq!(answer["response"]["allowed"], true);

    // As the object: kept raw while decoding, then refused as not a Deployment.
    let body = bytes(&review(
        "deep-object",
        ("apps", "v1", "Deployment"),
        json!("PLACEHOLDER"),
    ))
    .replace_placeholder(&nested(depth));
    let (status, answer) = server.post("/validate", body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["uid"], "deep-object");
    assert_eq!(answer["response"]["allowed"], false);
    assert!(answer["response"]["status"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("not a valid Deployment")));

    // Deep inside a field of a Deployment that the typed parse skips but the patch builder reads
    // as a JSON value (serde_json's recursion limit, 128, applies there): still answered.
    let mut deep_field = deployment("web");
    deep_field["spec"]["unknownField"] = json!("PLACEHOLDER");
    let body = bytes(&review(
        "deep-field",
        ("apps", "v1", "Deployment"),
        deep_field,
    ))
    .replace_placeholder(&nested(depth));
    let (status, answer) = server.post("/mutate", body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["uid"], "deep-field");
    server.assert_still_serving("deep nesting").await;
}

trait ReplacePlaceholder {
    fn replace_placeholder(self, with: &str) -> Vec<u8>;
}

impl ReplacePlaceholder for Vec<u8> {
    /// Puts raw JSON where `"PLACEHOLDER"` was (serde_json cannot build 100k-deep values).
    fn replace_placeholder(self, with: &str) -> Vec<u8> {
        String::from_utf8(self)
            .unwrap()
            .replacen("\"PLACEHOLDER\"", with, 1)
            .into_bytes()
    }
}

/// Readable reviews whose object is not what the request says: answered 200 with an
/// AdmissionReview that echoes the uid and refuses with a message (code 400), so the API server
/// shows the user why.
#[tokio::test]
async fn objects_of_the_wrong_shape_are_refused_in_an_admission_review() {
    let server = Server::start("wrong-object").await;
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    });
    let mut replicas_text = deployment("web");
    replicas_text["spec"]["replicas"] = json!("three");
    let cases = [
        (
            "a Service sent as a Deployment",
            review("svc-as-dep", ("apps", "v1", "Deployment"), service),
            "not a valid Deployment",
        ),
        (
            "replicas as text",
            review("replicas", ("apps", "v1", "Deployment"), replicas_text),
            "not a valid Deployment",
        ),
        (
            "object is a string",
            review("string", ("apps", "v1", "Deployment"), json!("web")),
            "not a valid Deployment",
        ),
        (
            "an Ingress without its rules' shape",
            review(
                "ingress",
                ("networking.k8s.io", "v1", "Ingress"),
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                       "metadata": {"name": "web", "namespace": "shop"}, "spec": {"rules": "everything"}}),
            ),
            "not a valid Ingress",
        ),
    ];
    for (name, body, expected) in cases {
        let uid = body["request"]["uid"].as_str().unwrap().to_owned();
        let (status, answer) = server.post("/mutate", bytes(&body)).await;
        assert_eq!(status, 200, "{name}: {answer}");
        assert_eq!(answer["response"]["uid"], uid.as_str(), "{name}");
        assert_eq!(answer["response"]["allowed"], false, "{name}: {answer}");
        assert_eq!(answer["response"]["status"]["code"], 400, "{name}");
        let message = answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains(expected), "{name}: {message:?}");
        server.assert_still_serving(name).await;
    }
}

/// Bodies over `--max-body-bytes`: 413 whether the length is declared or the body is chunked.
#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let server = Server::start("413").await;
    let big = vec![b' '; MAX_BODY_BYTES + 1];

    // Declared length: refused from the headers, before any of the body is sent. (Sending the
    // body as well races the server's close against the client's write: a TCP reset may then
    // arrive before the 413, which says nothing about the server.)
    let mut stream = server.raw_tls().await;
    let head = format!(
        "POST /mutate HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        MAX_BODY_BYTES + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(POLL_LIMIT, stream.read_to_end(&mut received)).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 413"), "{text:?}");
    assert!(text.contains("larger than"), "{text:?}");
    server.assert_still_serving("declared oversize").await;

    // Chunked, no declared length: cut off at the limit while reading.
    let mut stream = server.raw_tls().await;
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in big.chunks(16 * 1024) {
        let framed = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk.to_vec(),
            b"\r\n".to_vec(),
        ]
        .concat();
        // The server may answer and stop reading before the client finishes sending.
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut received = Vec::new();
    let _ = tokio::time::timeout(POLL_LIMIT, stream.read_to_end(&mut received)).await;
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 413"), "{text:?}");
    assert!(text.contains("larger than"), "{text:?}");
    server.assert_still_serving("chunked oversize").await;
}

/// Sends `bytes` one at a time with `gap` between them; returns how many were written before the
/// server closed the connection (or all of them), and whatever the server sent back.
async fn trickle<S>(stream: &mut S, bytes: &[u8], gap: Duration) -> (usize, Vec<u8>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut received = Vec::new();
    for (sent, byte) in bytes.iter().enumerate() {
        if stream.write_all(&[*byte]).await.is_err() || stream.flush().await.is_err() {
            return (sent, received);
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(gap, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (sent + 1, received),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    (bytes.len(), received)
}

/// Slowloris: headers (or a body) sent slower than the server's deadline. The server must end
/// the connection itself; it must keep serving others meanwhile.
#[tokio::test]
async fn slow_clients_are_cut_off() {
    let server = Server::start("slow").await;
    // Byte gaps well below the deadline each, so only the total time can trip it; the whole
    // trickle would take 20 s, far beyond the server's 1 s deadline.
    let gap = Duration::from_millis(100);

    // Headers that never finish.
    let headers = format!(
        "POST /mutate HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n{}\r\n\r\n",
        "X-Padding: slow\r\n".repeat(12)
    );
    let mut stream = server.raw_tls().await;
    let (sent, received) = trickle(&mut stream, headers.as_bytes(), gap).await;
    assert!(
        sent < headers.len(),
        "the server waited for all {} header bytes",
        headers.len()
    );
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "unexpected answer to slow headers: {text:?}"
    );
    server.assert_still_serving("slow headers").await;

    // Headers in time, body trickling: 408 with a JSON error, connection closed.
    let body = bytes(&deployment_review("slow-body"));
    let head = format!(
        "POST /mutate HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = server.raw_tls().await;
    stream.write_all(head.as_bytes()).await.unwrap();
    let (sent, received) = trickle(&mut stream, &body, gap).await;
    assert!(sent < body.len(), "the server waited for the whole body");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(POLL_LIMIT, stream.read_to_end(&mut rest)).await;
    let text = String::from_utf8_lossy(&[received, rest].concat()).into_owned();
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(text.contains("not received within"), "{text:?}");
    server.assert_still_serving("slow body").await;

    // A crowd of stalled connections does not starve a real request.
    let mut stalled = Vec::new();
    for _ in 0..64 {
        let mut stream = server.raw_tls().await;
        stream
            .write_all(b"POST /mutate HTTP/1.1\r\nHo")
            .await
            .unwrap();
        stalled.push(stream);
    }
    server.assert_still_serving("64 stalled connections").await;
    drop(stalled);
}

/// A TLS 1.0/1.1-only ClientHello (record and client_version 0x0301/0x0302, no
/// supported_versions extension), written by hand because rustls clients cannot speak them.
fn legacy_client_hello(version: u16) -> Vec<u8> {
    let [major, minor] = version.to_be_bytes();
    let mut hello = vec![major, minor];
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // session id
                   // TLS_RSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, ..._256_CBC_SHA
    hello.extend_from_slice(&[0x00, 0x06, 0x00, 0x2f, 0xc0, 0x13, 0xc0, 0x14]);
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&u16::try_from(hello.len()).unwrap().to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, major, minor];
    record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let _ = tokio::time::timeout(POLL_LIMIT, stream.read_to_end(&mut received))
        .await
        .expect("the server must close the connection");
    received
}

/// Plain HTTP to the TLS port and TLS older than 1.2 are refused; the server carries on.
#[tokio::test]
async fn plain_http_and_old_tls_are_refused() {
    let server = Server::start("tls").await;

    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        format!("POST /mutate HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 2\r\n\r\n{{}}")
            .as_bytes(),
    )
    .await
    .unwrap();
    let received = read_until_closed(&mut tcp).await;
    assert!(
        !received.starts_with(b"HTTP/"),
        "plain HTTP was answered in plain HTTP: {:?}",
        String::from_utf8_lossy(&received)
    );
    server.assert_still_serving("plain HTTP").await;

    for (name, version) in [("TLS 1.0", 0x0301), ("TLS 1.1", 0x0302)] {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(&legacy_client_hello(version)).await.unwrap();
        let received = read_until_closed(&mut tcp).await;
        // A ServerHello would come in a handshake record (0x16); rustls answers with a fatal
        // alert record (0x15) instead: protocol_version (70) or handshake_failure (40).
        assert_eq!(
            received.first(),
            Some(&0x15),
            "{name}: expected an alert, got {received:02x?}"
        );
        assert_eq!(
            received.get(5),
            Some(&2),
            "{name}: alert level must be fatal"
        );
        assert!(
            matches!(received.get(6), Some(70 | 40)),
            "{name}: alert {received:02x?}"
        );
        server.assert_still_serving(name).await;
    }

    // TLS 1.2 and 1.3 both work.
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&server.ca).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from(HOST).unwrap(), tcp)
            .await
            .unwrap_or_else(|e| panic!("{version:?} refused: {e}"));
        assert_eq!(stream.get_ref().1.protocol_version(), Some(version.version));
    }
}
