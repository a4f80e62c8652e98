//! CA and serving-certificate generation.
//!
//! TODO(server): `certs generate` and `serve --dev` certificates.

use crate::cli::CertsGenerateArgs;

/// Runs `certs generate`.
pub fn generate(_args: &CertsGenerateArgs) -> anyhow::Result<()> {
    anyhow::bail!("certs generate is not implemented yet")
}
