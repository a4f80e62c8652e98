//! The HTTPS admission server and the plain-HTTP admin server.
//!
//! Start-up checks everything that can be wrong before listening (certificate and key, policies),
//! so a misconfigured pod fails fast with a message naming the file instead of serving errors.
//! Then: the admission port (TLS, `/mutate`, `/validate`, health), the admin port (`/metrics`,
//! health), the certificate watcher, and the signal handler that starts the drain.

pub mod api;
pub mod auth;
pub mod lifecycle;
pub mod metrics;
pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::certs::{self, DevCerts};
use crate::cli::ServeArgs;
use crate::policy::load::embedded_default;
use crate::policy::set::PolicySet;
use crate::policy::view::ClusterView;
use crate::reload::{self, ActivePolicies, ReloadError};
use crate::store;
use lifecycle::{ConnectionLimits, Readiness, Transport};
use metrics::Metrics;
use routes::AppState;

/// How long the admin port lingers for a scrape in progress once the admission port has drained.
const ADMIN_DRAIN: Duration = Duration::from_secs(1);

/// Runs `serve` until SIGTERM/SIGINT, then drains and returns `Ok`.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Anything else in the process that asks rustls for the default provider (the kube client
    // of the cluster store) gets ring too; our own configs name the provider explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let provider = tls::provider();

    let (files, dev) = tls_files(&args)?;
    let loaded = tls::load(&files, &provider).context("the serving certificate cannot be used")?;
    let policies = load_initial_policies(args.policies.as_deref())?;
    let policy_source = match &args.policies {
        Some(dir) => dir.display().to_string(),
        None => "embedded default".to_owned(),
    };
    let policy_digest = policies.digest().to_owned();

    let active = ActivePolicies::new(policies);
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::default());
    // The cluster store: `--objects` manifests, else the cluster's watchers, else empty (no
    // cluster found: the quick start). Rules see it only through the view.
    let cluster = store::for_serve(&args.objects)
        .await
        .context("cannot read --objects")?;
    for warning in &cluster.warnings {
        tracing::warn!("{warning}");
    }
    let store_source = match cluster.source {
        store::StoreSource::Objects => {
            let counts = cluster.store.counts();
            format!(
                "--objects ({} Deployments, {} Services, {} Ingresses, {} HTTPRoutes)",
                counts.deployments, counts.services, counts.ingresses, counts.http_routes
            )
        }
        store::StoreSource::Cluster => "watching the cluster".to_owned(),
        store::StoreSource::NoCluster => "no cluster found: empty".to_owned(),
    };
    let view: Arc<dyn ClusterView> = Arc::clone(&cluster.store) as Arc<dyn ClusterView>;
    let api_mode = args.api_auth_mode();
    let client_certs = match (&args.api_client_ca, api_mode.accepts_client_certs()) {
        (Some(path), true) => Some(Arc::new(tls::ClientCertCheck::new(
            tls::load_client_roots(path)?,
            Arc::clone(&provider),
        )?)),
        (None, true) => anyhow::bail!(
            "--api-auth {} needs --api-client-ca (the CA that signs API client certificates)",
            api_mode.as_str()
        ),
        (_, false) => None,
    };
    let reviewer: Option<Arc<dyn auth::TokenReviewer>> = if api_mode.accepts_tokens() {
        match kube::Client::try_default().await {
            Ok(client) => Some(Arc::new(auth::KubeTokenReviewer::new(
                client,
                args.api_token_audiences.clone(),
            ))),
            Err(error) => {
                tracing::warn!(
                    %error,
                    "--api-auth {}: no Kubernetes API server for TokenReviews; API calls with tokens will be refused (503)",
                    api_mode.as_str()
                );
                None
            }
        }
    } else {
        None
    };
    let api = Arc::new(api::ApiState {
        auth: auth::ApiAuth::new(
            api_mode,
            reviewer,
            Duration::from_secs(args.api_token_cache_seconds),
        ),
        limiter: api::RateLimiter::new(args.api_rate_limit),
        policy_source: policy_source.clone(),
    });
    // Shared by the admission handlers and the audit, which gives way to them.
    let reviews_in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let state = AppState {
        policies: active.clone(),
        view,
        own_namespace: args.namespace.clone(),
        metrics: Arc::clone(&metrics),
        readiness: Arc::clone(&readiness),
        max_body_bytes: args.max_body_bytes,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        api,
        reviews_in_flight: Arc::clone(&reviews_in_flight),
    };

    let resolver = Arc::new(tls::ReloadingCert::new(loaded.key));
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config_with_clients(
        Arc::clone(&resolver),
        Arc::clone(&provider),
        client_certs.as_deref(),
    )?));

    let admission_listener = bind(args.addr, "--addr").await?;
    let admin_listener = bind(args.metrics_addr, "--metrics-addr").await?;
    let admission_addr = admission_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    print_banner(&Banner {
        admission: admission_addr,
        admin: admin_addr,
        policy_source: &policy_source,
        policy_digest: &policy_digest,
        store_source: &store_source,
        api_auth: api_mode.as_str(),
        dev: dev.as_ref(),
    });
    tracing::info!(
        admission = %admission_addr,
        admin = %admin_addr,
        policies = %policy_source,
        digest = %policy_digest,
        "serving"
    );

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (admin_shutdown_tx, admin_shutdown_rx) = watch::channel(false);
    let reload_interval = Duration::from_millis(args.reload_interval_ms.max(10));
    tokio::spawn(tls::watch_files(
        files,
        resolver,
        provider,
        Arc::clone(&metrics),
        reload_interval,
        loaded.digest,
        shutdown_rx.clone(),
    ));
    // Policy hot reload (the ConfigMap mount): a valid edit is swapped in, a bad one keeps the
    // last good set and shows in /readyz and /metrics.
    if let Some(dir) = &args.policies {
        tokio::spawn(reload::watch_policy_dir(
            dir.clone(),
            active.clone(),
            reload_interval,
        ));
    }
    let audit_lease = if args.audit {
        start_audit(
            &args,
            &cluster,
            active.clone(),
            Arc::clone(&metrics.audit),
            Arc::clone(&readiness),
            reviews_in_flight,
        )
        .await?
    } else {
        None
    };
    tokio::spawn(lifecycle::on_signal(
        Arc::clone(&readiness),
        shutdown_tx,
        Duration::from_secs(args.shutdown_delay_seconds),
    ));

    let limits = ConnectionLimits {
        handshake_and_headers: state.request_timeout,
        drain: Duration::from_secs(args.shutdown_grace_seconds),
    };
    let admin = tokio::spawn(lifecycle::serve_connections(
        "admin",
        admin_listener,
        Transport::Plain,
        routes::admin_router(state.clone()),
        ConnectionLimits {
            drain: ADMIN_DRAIN,
            ..limits
        },
        Arc::clone(&metrics),
        admin_shutdown_rx,
    ));
    lifecycle::serve_connections(
        "admission",
        admission_listener,
        Transport::Tls {
            acceptor,
            client_certs,
        },
        routes::admission_router(state),
        limits,
        Arc::clone(&metrics),
        shutdown_rx,
    )
    .await;
    // The admin port outlives the drain so probes keep seeing `/readyz` 503 until the end.
    let _ = admin_shutdown_tx.send(true);
    let _ = admin.await;
    // The audit released its Lease when shutdown began; wait (briefly) for that call to end.
    if let Some(lease) = audit_lease {
        let _ = tokio::time::timeout(Duration::from_secs(2), lease).await;
    }
    for watcher in &cluster.watchers {
        watcher.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts `serve --audit`: the leader election (in a cluster) and the audit loop. Returns the
/// election task, which releases the Lease when shutdown begins.
async fn start_audit(
    args: &ServeArgs,
    cluster: &store::ServeStore,
    policies: ActivePolicies,
    metrics: Arc<crate::audit::live_metrics::AuditMetrics>,
    readiness: Arc<Readiness>,
    reviews_in_flight: Arc<std::sync::atomic::AtomicUsize>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    use crate::audit::lease::{self, LeaseElector, LeaseSettings};
    use crate::audit::run_loop::{AuditSettings, AuditSource, LiveAudit};

    let settings = AuditSettings {
        period: args.audit_period,
        reports: args.audit_reports,
        result_cap: args.audit_result_cap,
        page_size: args.audit_page_size,
        writer: crate::audit::writer::WriterSettings {
            concurrency: args.audit_write_concurrency,
            writes_per_second: args.audit_writes_per_second,
        },
        own_namespace: args.namespace.clone(),
        reviews_in_flight: Some(reviews_in_flight),
    };
    // Flips when shutdown begins, for the audit loop (a run in progress stops, unwritten).
    let (stop_tx, stop_rx) = watch::channel(false);
    {
        let readiness = Arc::clone(&readiness);
        tokio::spawn(async move {
            readiness.shutdown_begun().await;
            let _ = stop_tx.send(true);
        });
    }
    let (leading_tx, leading_rx) = watch::channel(false);
    let (source, election) = match cluster.source {
        store::StoreSource::Cluster => {
            let client = kube::Client::try_default()
                .await
                .context("--audit: cannot create a Kubernetes client")?;
            let namespace = args.namespace.clone().context(
                "--audit needs --namespace (or POD_NAMESPACE): the namespace of its Lease",
            )?;
            let identity = args
                .audit_identity
                .clone()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .filter(|identity| !identity.is_empty())
                .context("--audit needs --audit-identity (or POD_NAME): this replica's name in the Lease")?;
            let lease_settings = LeaseSettings {
                lease_duration: args.audit_lease_duration,
                renew_deadline: args.audit_renew_deadline,
                retry_period: args.audit_retry_period,
                ..LeaseSettings::new(namespace, args.audit_lease_name.clone(), identity)
            };
            let elector = LeaseElector::new(client.clone(), lease_settings)
                .context("--audit lease settings")?;
            let readiness = Arc::clone(&readiness);
            let election = tokio::spawn(lease::run(elector, leading_tx, async move {
                readiness.shutdown_begun().await;
            }));
            (AuditSource::Cluster(client), Some(election))
        }
        // One process, no API server: it is the only auditor, of the manifests it was given.
        store::StoreSource::Objects | store::StoreSource::NoCluster => {
            leading_tx.send_replace(true);
            // The sender lives as long as the loop needs it: moved into a task that ends at
            // shutdown.
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let _ = stop.changed().await;
                drop(leading_tx);
            });
            (AuditSource::Manifests(args.objects.clone()), None)
        }
    };
    tracing::info!(
        period_seconds = args.audit_period.as_secs_f64(),
        reports = args.audit_reports.as_str(),
        lease = %args.audit_lease_name,
        "background audit enabled"
    );
    let audit = LiveAudit::new(
        settings,
        source,
        policies.clone(),
        Arc::clone(&cluster.store),
        metrics,
    )
    .context("--audit: cannot start the audit thread")?;
    tokio::spawn(audit.run(leading_rx, policies.subscribe(), stop_rx));
    Ok(election)
}

/// The certificate and key to serve: from the flags, or the `--dev` set.
fn tls_files(args: &ServeArgs) -> anyhow::Result<(tls::TlsFiles, Option<DevCerts>)> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Ok((
            tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            },
            None,
        )),
        _ if args.dev => {
            let dev = certs::ensure_dev_certs(&args.dev_certs_dir)?;
            Ok((
                tls::TlsFiles {
                    cert: dev.cert.clone(),
                    key: dev.key.clone(),
                },
                Some(dev),
            ))
        }
        _ => anyhow::bail!("--tls-cert and --tls-key are required (or --dev for local use)"),
    }
}

async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ({flag})"))
}

/// Reads the policies at start-up with the reloader's own reader and parser, or the embedded
/// default without `--policies`. Every problem is reported at once, one per line.
pub fn load_initial_policies(dir: Option<&Path>) -> anyhow::Result<PolicySet> {
    let Some(dir) = dir else {
        return Ok(embedded_default());
    };
    reload::load_policy_dir(dir).map_err(|error| match error {
        ReloadError::Invalid(errors) => {
            let listed: Vec<String> = errors.0.iter().map(|e| format!("  {e}")).collect();
            anyhow::anyhow!(
                "{} policy error(s) in {}:\n{}",
                errors.0.len(),
                dir.display(),
                listed.join("\n")
            )
        }
        other => anyhow::anyhow!(other),
    })
}

struct Banner<'a> {
    admission: SocketAddr,
    admin: SocketAddr,
    policy_source: &'a str,
    policy_digest: &'a str,
    store_source: &'a str,
    api_auth: &'a str,
    dev: Option<&'a DevCerts>,
}

/// What an operator (or the README's quick start) needs to start talking to the server. On
/// stdout, one `label value` per line; logs go to stderr.
fn print_banner(banner: &Banner<'_>) {
    let mut lines = vec![
        "rollout-guard is serving".to_owned(),
        format!(
            "  admission  https://{}  (POST /mutate, POST /validate, GET /healthz, GET /readyz)",
            banner.admission
        ),
        format!(
            "  api        https://{}/v1/evaluate  (POST manifests; GET /v1/policies, /v1/openapi.json; auth: {})",
            banner.admission, banner.api_auth
        ),
        format!(
            "  metrics    http://{}/metrics  (also /healthz, /readyz)",
            banner.admin
        ),
        format!(
            "  policies   {} (digest {})",
            banner.policy_source, banner.policy_digest
        ),
        format!("  cluster    {}", banner.store_source),
    ];
    if let Some(dev) = banner.dev {
        let origin = if dev.reused { "reused" } else { "generated" };
        lines.push(format!(
            "  dev CA     {} ({origin}; serving certificate {} for {})",
            dev.ca_cert.display(),
            dev.cert.display(),
            certs::DEV_SANS.join(", ")
        ));
        lines.push(format!(
            "  try        curl --cacert {} https://localhost:{}/healthz",
            dev.ca_cert.display(),
            banner.admission.port()
        ));
    }
    println!("{}", lines.join("\n"));
}
