//! `check`: offline evaluation of manifests with the webhook's own engine.
//!
//! TODO(check): evaluate each object as a CREATE through mutate then validate.

use std::process::ExitCode;

use crate::cli::CheckArgs;

/// Runs `check`; exit 0 when nothing is denied, 1 when something is, 2 on usage or parse errors.
pub fn run(_args: &CheckArgs) -> ExitCode {
    eprintln!("check is not implemented yet");
    ExitCode::from(2)
}
