//! Readiness, signals, the accept loops and the drain on shutdown.
//!
//! SIGTERM (or SIGINT) → readiness false at once (both ports' `/readyz` answer 503) → after
//! `--shutdown-delay-seconds` (SIGTERM only) the listeners close → connections finish the requests they are in (HTTP/1 closes after the
//! response, HTTP/2 sends GOAWAY) for at most the grace period → exit 0. The admin port keeps
//! serving during the drain so probes see the 503.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::server::metrics::{BadRequest, Metrics};
use crate::server::tls::ClientCertCheck;

/// Whether the process should receive new requests.
#[derive(Debug, Default)]
pub struct Readiness {
    shutting_down: AtomicBool,
    /// Wakes what must act as soon as shutdown begins (the audit releases its Lease then, not
    /// after the drain, so the other replica takes over while this one still serves).
    begun: tokio::sync::Notify,
}

impl Readiness {
    /// True until shutdown begins. Policies are loaded before anything listens and the store's
    /// sync state is reported but does not gate readiness: cross-object rules answer by their
    /// failure mode until it syncs, and an unready webhook would block every write in the cluster.
    pub fn ready(&self) -> bool {
        !self.shutting_down.load(Ordering::SeqCst)
    }

    /// Whether shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.begun.notify_waiters();
    }

    /// Resolves once shutdown has begun (at once if it already has).
    pub async fn shutdown_begun(&self) {
        let notified = self.begun.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a shutdown in between is not missed.
        notified.as_mut().enable();
        if self.shutting_down() {
            return;
        }
        notified.await;
    }
}

/// Which signal started the shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Terminate,
    Interrupt,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
        }
    }
}

/// Waits for SIGTERM or SIGINT, flips readiness, then tells every task to stop accepting and
/// drain. After SIGTERM (the kubelet's) listeners stay open for `delay` first, because the pod
/// is only taken out of the Service's endpoints after it is marked terminating and that takes
/// a moment to reach the API server's routing: closing at once would refuse its last
/// connections. A SIGINT (Ctrl-C, or a second signal during the delay) skips the wait.
pub async fn on_signal(readiness: Arc<Readiness>, shutdown: watch::Sender<bool>, delay: Duration) {
    let signal = wait_for_signal().await;
    readiness.begin_shutdown();
    if signal == Signal::Terminate && !delay.is_zero() {
        tracing::info!(
            signal = signal.name(),
            delay_seconds = delay.as_secs(),
            "shutting down: not ready; still accepting while endpoints drop this pod"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            second = wait_for_signal() => {
                tracing::info!(signal = second.name(), "delay cut short");
            }
        }
    }
    tracing::info!(
        signal = signal.name(),
        "shutting down: not ready, no new connections, draining in-flight requests"
    );
    let _ = shutdown.send(true);
}

#[cfg(unix)]
async fn wait_for_signal() -> Signal {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => tokio::select! {
            _ = terminate.recv() => Signal::Terminate,
            _ = tokio::signal::ctrl_c() => Signal::Interrupt,
        },
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
            Signal::Interrupt
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> Signal {
    let _ = tokio::signal::ctrl_c().await;
    Signal::Interrupt
}

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time allowed for the TLS handshake and for an HTTP/1 request's headers (including the
    /// idle time before them on a kept-alive connection).
    pub handshake_and_headers: Duration,
    /// How long to wait for in-flight requests after shutdown begins.
    pub drain: Duration,
}

/// How a listener's connections are set up.
pub enum Transport {
    /// Plain HTTP (the admin port).
    Plain,
    /// HTTPS (the admission port).
    Tls {
        /// The TLS configuration.
        acceptor: TlsAcceptor,
        /// Judges the client certificates the acceptor asks for (when the API takes them).
        client_certs: Option<Arc<ClientCertCheck>>,
    },
}

/// Serves `router` on `listener` until `shutdown` flips, then drains. Returns when every
/// connection has closed or the drain period has passed.
pub async fn serve_connections(
    name: &'static str,
    listener: TcpListener,
    transport: Transport,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_and_headers);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let transport = Arc::new(transport);
    let graceful = GracefulShutdown::new();

    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually EMFILE/ENFILE: back off instead of spinning.
                tracing::warn!(listener = name, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // Taken before spawning so a connection still in its handshake counts as in flight.
        let watcher = graceful.watcher();
        let builder = Arc::clone(&builder);
        let transport = Arc::clone(&transport);
        let router = router.clone();
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            match &*transport {
                Transport::Plain => serve_io(tcp, peer, &builder, router, watcher).await,
                Transport::Tls {
                    acceptor,
                    client_certs,
                } => {
                    let handshake =
                        tokio::time::timeout(limits.handshake_and_headers, acceptor.accept(tcp))
                            .await;
                    match handshake {
                        Ok(Ok(tls)) => {
                            // A client certificate concerns the API only; the router is the
                            // shared one when there is none (the API server's admission calls).
                            let router = match client_certs
                                .as_deref()
                                .zip(tls.get_ref().1.peer_certificates())
                            {
                                Some((check, chain)) => {
                                    router.layer(axum::Extension(check.examine(chain)))
                                }
                                None => router,
                            };
                            serve_io(tls, peer, &builder, router, watcher).await
                        }
                        Ok(Err(error)) => {
                            // Scanners, plain HTTP to this port, TLS < 1.2: not worth a warning each.
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            metrics.record_bad_request(BadRequest::TlsHandshake);
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            metrics.record_bad_request(BadRequest::TlsHandshake);
                        }
                    }
                }
            }
        });
    }
    drop(listener);

    let open = graceful.count();
    if open > 0 {
        tracing::info!(listener = name, connections = open, "draining connections");
    }
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            grace_seconds = limits.drain.as_secs(),
            "drain period over; closing the remaining connections"
        );
    }
}

async fn serve_io<I>(
    io: I,
    peer: SocketAddr,
    builder: &auto::Builder<TokioExecutor>,
    router: Router,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    if let Err(error) = watcher.watch(connection).await {
        // Resets, header timeouts, clients going away: normal churn.
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}
