//! The benchmark's baseline: a no-op admission webhook on the same stack as rollout-guard
//! (tokio, rustls with ring, TLS 1.2/1.3, ALPN h2 + http/1.1, hyper-util's auto connection
//! builder, axum, mimalloc as the global allocator). It parses each AdmissionReview the way kube-rs's admission example does
//! (`AdmissionReview<DynamicObject>`) and answers allowed, echoing the uid. Whatever
//! rollout-guard costs beyond this is its own work: the policy engine, the store lookups, the
//! patches and the metrics.
//!
//! ```text
//! baseline-webhook ADDR CERT_PEM KEY_PEM
//! ```

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::DynamicObject;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

// The allocator rollout-guard's binary uses (src/main.rs): same stack, same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn admit(body: Bytes) -> Response {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(review) => review,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("{{\"error\":\"{error}\"}}"),
            )
                .into_response()
        }
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("{{\"error\":\"{error}\"}}"),
            )
                .into_response()
        }
    };
    let answer = AdmissionResponse::from(&request).into_review();
    match serde_json::to_vec(&answer) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn tls_acceptor(cert: &str, key: &str) -> Result<TlsAcceptor, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{cert}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, cert, key] = args.as_slice() else {
        eprintln!("usage: baseline-webhook ADDR CERT_PEM KEY_PEM");
        std::process::exit(2);
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("bad address {addr}: {error}");
            std::process::exit(2);
        }
    };
    let acceptor = match tls_acceptor(cert, key) {
        Ok(acceptor) => acceptor,
        Err(error) => {
            eprintln!("cannot load the certificate: {error}");
            std::process::exit(1);
        }
    };
    let router = Router::new()
        .route("/mutate", post(admit))
        .route("/validate", post(admit))
        .route("/readyz", get(|| async { "ok" }));
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {addr}: {error}");
            std::process::exit(1);
        }
    };
    println!("baseline webhook on https://{addr}");
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, router, builder) = (acceptor.clone(), router.clone(), Arc::clone(&builder));
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = builder
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
                .await;
        });
    }
}
