//! The HTTPS admission server and the plain-HTTP admin server.
//!
//! TODO(server): routes, TLS with reload, metrics, lifecycle.

use crate::cli::ServeArgs;

/// Runs `serve` until SIGTERM/SIGINT.
pub async fn serve(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("serve is not implemented yet")
}
