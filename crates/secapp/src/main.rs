//! The `secapp` command: parses the command line, sets up logging, and runs
//! the server (`secapp serve`, see [`serve`]) or an admin command (`secapp
//! apps ...`, `secapp tokens ...`, see [`admin`]).

mod admin;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secapp_server::telemetry::{self, LogFormat};
use serve::ServeArgs;

/// Broadcasts one organisation-wide security criticality level to every
/// application in a fleet.
#[derive(Debug, Parser)]
#[command(name = "secapp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (SQLite in the data dir; no other setup needed).
    Serve(Box<ServeArgs>),
    /// Register, list, show, change, disable and enable applications.
    Apps(admin::AppsCommand),
    /// Issue, list and revoke applications' tokens.
    Tokens(admin::TokensCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` starts logging once its configuration (and log format) is
    // read; the admin commands log as text.
    if !matches!(cli.command, Command::Serve(_)) {
        // No traces for the admin commands: nothing to shut down.
        let _ = telemetry::init(LogFormat::Text);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::serve(*args)),
        Command::Apps(command) => finish(runtime.block_on(admin::apps(command))),
        Command::Tokens(command) => finish(runtime.block_on(admin::tokens(command))),
    }
}

fn finish(result: Result<(), admin::CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(admin::CliError(message)) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("secapp: {message}");
    ExitCode::FAILURE
}
