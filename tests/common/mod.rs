//! Support shared by the integration tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory under the system temp dir, unique per process and call, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `rollout-guard-<label>-<pid>-<n>`, empty.
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
            .env("KUBECONFIG", "/nonexistent")
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
