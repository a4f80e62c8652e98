//! Command line: `serve`, `check`, `certs generate`, `policy validate|schema`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Kubernetes admission webhook that keeps Deployments, Services, Ingresses and HTTPRoutes
/// release-safe.
#[derive(Debug, Parser)]
#[command(name = "rollout-guard", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "ROLLOUT_GUARD_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the admission webhook over HTTPS.
    Serve(Box<ServeArgs>),
    /// Evaluate manifests offline with the webhook's own engine.
    Check(CheckArgs),
    /// Run declarative policy tests (`kind: PolicyTest` files).
    Test(TestArgs),
    /// Audit manifests as the background audit audits a cluster, and print the policy reports.
    Audit(AuditArgs),
    /// Certificate tooling.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Policy tooling.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// `serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory of policy files (re-read when it changes). Default: the embedded default policy.
    #[arg(long, env = "ROLLOUT_GUARD_POLICIES")]
    pub policies: Option<PathBuf>,
    /// PEM serving certificate (chain). Re-read when it changes.
    #[arg(long, required_unless_present = "dev", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the serving certificate.
    #[arg(long, required_unless_present = "dev", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// HTTPS address for /mutate, /validate, /healthz, /readyz.
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub addr: SocketAddr,
    /// Plain HTTP address for /metrics, /healthz, /readyz.
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
    /// Development mode: generate (or reuse) a CA and a localhost serving certificate in
    /// `--dev-certs-dir` instead of taking cert flags.
    #[arg(long)]
    pub dev: bool,
    /// Where `--dev` keeps its certificates.
    #[arg(long, default_value = "certs")]
    pub dev_certs_dir: PathBuf,
    /// Namespace the webhook runs in; never intercepted.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Manifests (files or directories) used as the cluster state instead of watching a cluster.
    #[arg(long = "objects", num_args = 1..)]
    pub objects: Vec<PathBuf>,
    /// Largest request body accepted, in bytes (larger gets HTTP 413).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Per-request deadline in milliseconds; keep it below the webhook's timeoutSeconds so the
    /// answer (by each rule's failure mode) reaches the API server before it gives up.
    #[arg(long, default_value_t = 4000)]
    pub request_timeout_ms: u64,
    /// After SIGTERM, how long to keep accepting connections while readiness is already false,
    /// in seconds: endpoints and the API server's routing take a moment to drop a terminating
    /// pod, and connections refused meanwhile would fail admission calls. SIGINT skips it.
    #[arg(long, default_value_t = 5)]
    pub shutdown_delay_seconds: u64,
    /// How long to drain in-flight requests after SIGTERM, in seconds.
    #[arg(long, default_value_t = 20)]
    pub shutdown_grace_seconds: u64,
    /// How often the policy directory and TLS files are checked for changes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub reload_interval_ms: u64,
    /// How callers of the evaluation API (`/v1/...`) authenticate: a bearer token checked with
    /// a TokenReview (`token`), a client certificate signed by `--api-client-ca`
    /// (`client-cert`), either (`any`), or not at all (`none`). Default: `token`, or `none`
    /// with `--dev`. The admission endpoints are not affected.
    #[arg(long, value_enum, env = "ROLLOUT_GUARD_API_AUTH")]
    pub api_auth: Option<crate::server::auth::ApiAuthMode>,
    /// PEM CA bundle that signs the API's client certificates (for `--api-auth client-cert` or
    /// `any`). The TLS handshake asks for a certificate but neither requires one nor refuses
    /// one this CA did not sign, so admission calls (with or without a certificate of their
    /// own) work unchanged; the API answers such a certificate with 401 and the reason.
    #[arg(long)]
    pub api_client_ca: Option<PathBuf>,
    /// How long a TokenReview's answer is reused for the same token, in seconds (rejections at
    /// most 2 s).
    #[arg(long, default_value_t = 10)]
    pub api_token_cache_seconds: u64,
    /// Audiences a token must be issued for (`spec.audiences` of the TokenReview); default:
    /// the API server's own.
    #[arg(long = "api-token-audience")]
    pub api_token_audiences: Vec<String>,
    /// Evaluation API calls accepted per second across all callers, in bursts of as many
    /// (more get HTTP 429 with Retry-After); 0 for no limit.
    #[arg(long, default_value_t = 20)]
    pub api_rate_limit: u32,
    /// Run the background audit: one replica at a time (a `coordination.k8s.io` Lease in
    /// `--namespace`) re-evaluates the Deployments, Services, Ingresses and HTTPRoutes in the
    /// cluster on `--audit-period` and after every policy reload, and writes the results as
    /// policy reports. With `--objects`, the manifests are audited (metrics only).
    #[arg(long)]
    pub audit: bool,
    /// Time between audit runs (`30s`, `10m`, `1h`).
    #[arg(long, default_value = "10m", value_parser = crate::audit::run_loop::parse_duration)]
    pub audit_period: std::time::Duration,
    /// Which policy reports the audit writes: OpenReports (`openreports.io/v1alpha1`),
    /// `wgpolicyk8s.io/v1alpha2` PolicyReports, `auto` (OpenReports when its CRD is served, else
    /// wgpolicyk8s when that is, else none), or `off` (metrics only).
    #[arg(long, value_enum, default_value_t = crate::audit::writer::ReportsSetting::Auto)]
    pub audit_reports: crate::audit::writer::ReportsSetting,
    /// Most results kept per report (the report says how many were left out; its summary
    /// still counts all).
    #[arg(long, default_value_t = 1000)]
    pub audit_result_cap: usize,
    /// Name of the audit's Lease in `--namespace`.
    #[arg(long, default_value = "rollout-guard-audit")]
    pub audit_lease_name: String,
    /// This replica's holder identity in the Lease (default: the pod name, from `POD_NAME`,
    /// else `HOSTNAME`).
    #[arg(long, env = "POD_NAME")]
    pub audit_identity: Option<String>,
    /// How long the Lease holds without renewal.
    #[arg(long, default_value = "15s", value_parser = crate::audit::run_loop::parse_duration)]
    pub audit_lease_duration: std::time::Duration,
    /// How long the holder keeps running the audit while renewals fail (below the duration).
    #[arg(long, default_value = "10s", value_parser = crate::audit::run_loop::parse_duration)]
    pub audit_renew_deadline: std::time::Duration,
    /// How often the Lease is renewed, or tried by a replica that does not hold it.
    #[arg(long, default_value = "2s", value_parser = crate::audit::run_loop::parse_duration)]
    pub audit_retry_period: std::time::Duration,
    /// Objects per list call of the audit (and per evaluation batch).
    #[arg(long, default_value_t = 500)]
    pub audit_page_size: u32,
    /// Report writes (applies and deletes) in flight at once.
    #[arg(long, default_value_t = 4)]
    pub audit_write_concurrency: usize,
    /// Report writes started per second at most; 0 for no limit.
    #[arg(long, default_value_t = 20)]
    pub audit_writes_per_second: u32,
}

impl ServeArgs {
    /// `--api-auth` as given, else `none` with `--dev` and `token` without.
    pub fn api_auth_mode(&self) -> crate::server::auth::ApiAuthMode {
        use crate::server::auth::ApiAuthMode;
        self.api_auth.unwrap_or(if self.dev {
            ApiAuthMode::None
        } else {
            ApiAuthMode::Token
        })
    }
}

/// `check` flags.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Manifests: files or directories of multi-document YAML or JSON.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Directory of policy files. Default: the embedded default policy.
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// The user the objects are judged as requested by (`userInfo.username`), as `kubectl --as`:
    /// change causes name them, and break-glass overrides are honoured only for the people a
    /// policy names. A service account is `system:serviceaccount:NAMESPACE:NAME`.
    #[arg(long = "as", value_name = "USER", default_value = crate::evaluate::DEFAULT_USER)]
    pub as_user: String,
    /// A group of that user (repeatable), as `kubectl --as-group`; `system:authenticated` is
    /// always added, as the API server adds it.
    #[arg(long = "as-group", value_name = "GROUP")]
    pub as_groups: Vec<String>,
}

impl CheckArgs {
    /// Who the objects are judged as requested by.
    pub fn requester(&self) -> crate::evaluate::Requester {
        let mut requester = crate::evaluate::Requester {
            username: self.as_user.clone(),
            ..crate::evaluate::Requester::default()
        };
        // As the API server does for an impersonated user: its groups, and
        // `system:authenticated` (already the default's only group).
        let mut groups = self.as_groups.clone();
        for group in std::mem::take(&mut requester.groups) {
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        requester.groups = groups;
        requester
    }
}

/// `test` flags.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Test files or directories (every `kind: PolicyTest` document in them).
    #[arg(required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Policy directory for every test (overrides each file's `policies:`).
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// `audit` flags.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Manifests (files or directories): the objects audited, and the cluster state they are
    /// judged against.
    #[arg(long = "objects", required = true, num_args = 1..)]
    pub objects: Vec<PathBuf>,
    /// Directory of policy files. Default: the embedded default policy.
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// Which policy report API to print.
    #[arg(long, value_enum, default_value_t = ReportFlavor::Openreports)]
    pub flavor: ReportFlavor,
    /// Most results per report (the rest are counted in the summary and an annotation).
    #[arg(long, default_value_t = crate::audit::report::DEFAULT_MAX_RESULTS)]
    pub max_results: usize,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = AuditFormat::Text)]
    pub output: AuditFormat,
}

/// Policy report APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFlavor {
    /// `openreports.io/v1alpha1` Report / ClusterReport.
    Openreports,
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport / ClusterPolicyReport (Kyverno, Policy Reporter).
    Wgpolicyk8s,
}

/// `audit` output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// A summary per report with every result.
    Text,
    /// The reports as one `v1` `List`.
    Json,
    /// The reports as YAML documents (`kubectl apply -f -` reads them).
    Yaml,
}

/// `check` and `test` output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Readable report with a diff of what mutation changes.
    Text,
    /// One JSON document with every object's verdict and patch.
    Json,
    /// SARIF 2.1.0: each finding located at its manifest's file and line (code-scanning
    /// annotations on a pull request).
    Sarif,
    /// JUnit XML: one test case per object (or per policy test), as CI test reporters read it.
    Junit,
}

/// `certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Generate a CA and a serving certificate for the webhook Service.
    Generate(CertsGenerateArgs),
}

/// `certs generate` flags.
#[derive(Debug, Args)]
pub struct CertsGenerateArgs {
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Name of the webhook's Service.
    #[arg(long, default_value = "rollout-guard")]
    pub service: String,
    /// Namespace of the webhook's Service.
    #[arg(long, default_value = "rollout-guard")]
    pub namespace: String,
    /// Validity of the serving certificate in days (the CA gets ten times as long).
    #[arg(long, default_value_t = 365)]
    pub days: u32,
}

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load a policy directory and report every error with file, line and field.
    Validate {
        /// Directory of policy files.
        dir: PathBuf,
    },
    /// Print the JSON Schema of the policy format (or of policy test files).
    Schema {
        /// Which document kind.
        #[arg(long, value_enum, default_value_t = SchemaKind::RolloutPolicy)]
        kind: SchemaKind,
    },
}

/// The document kinds `policy schema` describes, named as their `kind:` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// Policy files (`schema/rolloutpolicy.schema.json`).
    #[value(name = "RolloutPolicy")]
    RolloutPolicy,
    /// Policy test files for `rollout-guard test` (`schema/policytest.schema.json`).
    #[value(name = "PolicyTest")]
    PolicyTest,
}
