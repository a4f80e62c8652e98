//! Support shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory under the system temp dir, unique per process and call, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `rollout-guard-<label>-<pid>-<n>`, empty.
    #[allow(dead_code)] // not every test binary uses it
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rollout-guard-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// A path inside the directory.
    #[allow(dead_code)] // not every test binary uses it
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `rollout-guard serve` running on OS-chosen ports, with the addresses its banner printed.
/// Killed on drop. Never reads the developer's kubeconfig (`KUBECONFIG=/nonexistent`): the
/// tests must not depend on, or touch, whatever cluster the machine knows.
#[allow(dead_code)] // not every test binary uses it
pub struct ServeProcess {
    /// The server process.
    pub child: std::process::Child,
    /// The admission (HTTPS) listener.
    pub admission: std::net::SocketAddr,
    /// The admin (HTTP: /metrics, /healthz, /readyz) listener.
    pub admin: std::net::SocketAddr,
    /// Its stderr (the logs).
    pub log: PathBuf,
}

#[allow(dead_code)] // not every test binary uses it
impl ServeProcess {
    /// Starts `serve --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 ARGS` with logs in `log`
    /// and waits (at most `limit`) for the banner lines `admission https://ADDR` and
    /// `metrics http://ADDR/metrics`. Panics with the logs when the server exits first.
    pub fn spawn(
        bin: &str,
        log: PathBuf,
        args: &[&std::ffi::OsStr],
        limit: std::time::Duration,
    ) -> Self {
        Self::spawn_with_kubeconfig(bin, log, args, std::path::Path::new("/nonexistent"), limit)
    }

    /// [`ServeProcess::spawn`] with `KUBECONFIG` naming `kubeconfig` (a fake API server the
    /// test runs, see [`kubeconfig_for`]).
    pub fn spawn_with_kubeconfig(
        bin: &str,
        log: PathBuf,
        args: &[&std::ffi::OsStr],
        kubeconfig: &std::path::Path,
        limit: std::time::Duration,
    ) -> Self {
        use std::io::{BufRead as _, BufReader};
        use std::process::{Command, Stdio};
        use std::sync::mpsc;

        let mut child = Command::new(bin)
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,rollout_guard=debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let (mut admission, mut admin) = (None, None);
        let started = std::time::Instant::now();
        while admission.is_none() || admin.is_none() {
            match lines_rx.recv_timeout(std::time::Duration::from_millis(20)) {
                Ok(line) => {
                    let mut words = line.split_whitespace();
                    let label = words.next();
                    let addr = words
                        .next()
                        .unwrap_or("")
                        .trim_start_matches("https://")
                        .trim_start_matches("http://")
                        .trim_end_matches("/metrics");
                    match label {
                        Some("admission") => admission = addr.parse().ok(),
                        Some("metrics") => admin = addr.parse().ok(),
                        _ => {}
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.wait();
                    panic!(
                        "server exited before listening:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
            assert!(started.elapsed() < limit, "no banner from the server");
        }
        Self {
            child,
            admission: admission.unwrap(),
            admin: admin.unwrap(),
            log,
        }
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token a [`fake_token_review_server`] authenticates.
#[allow(dead_code)] // not every test binary uses it
pub const GOOD_TOKEN: &str = "good-token";

/// A fake Kubernetes API server answering TokenReviews (`POST
/// /apis/authentication.k8s.io/v1/tokenreviews`) on a free port: [`GOOD_TOKEN`] is a
/// pipeline's service account `system:serviceaccount:ci:deployer`, anything else is not
/// authenticated. Counts the reviews in `reviews`; returns its `http://` URL. Runs on the
/// caller's tokio runtime.
#[allow(dead_code)] // not every test binary uses it
pub async fn fake_token_review_server(
    reviews: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> String {
    use axum::routing::post;
    use serde_json::{json, Value};
    let app = axum::Router::new().route(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        post(move |body: axum::Json<Value>| {
            let reviews = std::sync::Arc::clone(&reviews);
            async move {
                reviews.fetch_add(1, Ordering::SeqCst);
                let token = body["spec"]["token"].as_str().unwrap_or_default();
                let status = if token == GOOD_TOKEN {
                    json!({"authenticated": true, "user": {
                        "username": "system:serviceaccount:ci:deployer",
                        "groups": ["system:serviceaccounts", "system:serviceaccounts:ci"]}})
                } else {
                    json!({"authenticated": false, "error": "invalid bearer token"})
                };
                axum::Json(
                    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                    "metadata": {}, "spec": body["spec"], "status": status}),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// Writes a kubeconfig at `path` whose current context is the API server at `url`.
#[allow(dead_code)] // not every test binary uses it
pub fn kubeconfig_for(url: &str, path: &std::path::Path) {
    let config = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
         clusters: [{{name: fake, cluster: {{server: \"{url}\"}}}}]\n\
         users: [{{name: rollout-guard, user: {{token: the-webhooks-own-token}}}}]\n\
         contexts: [{{name: fake, context: {{cluster: fake, user: rollout-guard}}}}]\n"
    );
    std::fs::write(path, config).unwrap();
}

/// `target/format-cases/<kind>/` (created): where tests leave SARIF, JUnit and API outputs for
/// tests/checks/validate_formats.py, which scripts/test.sh runs after `cargo test`.
#[allow(dead_code)] // not every test binary uses it
pub fn format_cases_dir(kind: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("format-cases").join(kind);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The repository root (the working directory the binary is run in).
#[allow(dead_code)] // not every test binary uses it
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the real `rollout-guard` binary with `args` in the repository root.
#[allow(dead_code)] // not every test binary uses it
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollout-guard"))
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap()
}

/// A command's standard output as text.
#[allow(dead_code)] // not every test binary uses it
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A command's standard error as text.
#[allow(dead_code)] // not every test binary uses it
pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}
