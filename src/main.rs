//! The `rollout-guard` binary: parses the command line and dispatches.

// As in the library (lib.rs): a panic in the webhook process is an outage, so errors are handled.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;

use clap::Parser;
use rollout_guard::cli::{CertsCommand, Cli, Command, LogFormat, PolicyCommand, SchemaKind};

// Every review and every audited object is many small allocations (JSON values, typed objects,
// strings): with glibc's malloc they were a third of the audit's instructions, and the audit
// thread and the review threads met on its arena locks. mimalloc keeps per-thread heaps.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::Serve(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: cannot start the async runtime: {error}");
                    return ExitCode::from(1);
                }
            };
            match runtime.block_on(rollout_guard::server::serve(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check(args) => rollout_guard::check::run(&args),
        Command::Test(args) => rollout_guard::policytest::run(&args),
        Command::Audit(args) => rollout_guard::audit::command::run(&args),
        Command::Certs(CertsCommand::Generate(args)) => match rollout_guard::certs::generate(&args)
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(1)
            }
        },
        Command::Policy(PolicyCommand::Validate { dir }) => policy_validate(&dir),
        Command::Policy(PolicyCommand::Schema { kind }) => {
            print!(
                "{}",
                match kind {
                    SchemaKind::RolloutPolicy =>
                        rollout_guard::policy::schema::policy_schema_json(),
                    SchemaKind::PolicyTest => rollout_guard::policytest::format::test_schema_json(),
                }
            );
            ExitCode::SUCCESS
        }
    }
}

/// `policy validate DIR`: every error on its own line (`file:line: field: message`) and exit 1;
/// exit 2 when the directory cannot be read; a one-line summary on success.
fn policy_validate(dir: &std::path::Path) -> ExitCode {
    use rollout_guard::policy::load::{parse_sources, PolicyErrors};
    let sources = match rollout_guard::reload::read_policy_dir(dir) {
        Ok(sources) => sources,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match parse_sources(&sources) {
        Ok(set) => {
            let count = set.policies().len();
            let noun = if count == 1 { "policy" } else { "policies" };
            println!("{count} {noun} valid (digest {})", set.digest());
            ExitCode::SUCCESS
        }
        Err(PolicyErrors(errors)) => {
            for error in &errors {
                println!("{error}");
            }
            eprintln!("{} error(s) in {}", errors.len(), dir.display());
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr so `check --output json` keeps stdout clean.
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
