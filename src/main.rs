//! The `rollout-guard` binary: parses the command line and dispatches.

use std::process::ExitCode;

use clap::Parser;
use rollout_guard::cli::{CertsCommand, Cli, Command, LogFormat, PolicyCommand};

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
            match runtime.block_on(rollout_guard::server::serve(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check(args) => rollout_guard::check::run(&args),
        Command::Certs(CertsCommand::Generate(args)) => match rollout_guard::certs::generate(&args)
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(1)
            }
        },
        Command::Policy(PolicyCommand::Validate { dir: _ }) => {
            eprintln!("policy validate is not implemented yet");
            ExitCode::from(2)
        }
        Command::Policy(PolicyCommand::Schema) => {
            eprintln!("policy schema is not implemented yet");
            ExitCode::from(2)
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
