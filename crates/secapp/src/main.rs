//! The `secapp` command: parses the command line, sets up logging, and runs
//! the server (`secapp serve`, see [`serve`]), an admin command (`secapp
//! apps ...`, `secapp tokens ...`, see [`admin`]), a level command (`secapp
//! publish`, `get`, `poll`, `watch`, see [`level`]), the fleet simulator
//! (`secapp simulate`, see [`simulate`]) or prints its own shell completions
//! and man page (see [`docs`]). Exit codes are in [`exit`].

mod admin;
mod docs;
mod exit;
mod level;
mod serve;
mod simulate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use exit::Failure;
use secapp_server::telemetry::{self, LogFormat};
use serve::ServeArgs;

/// Broadcasts one organisation-wide security criticality level to every
/// application in a fleet.
#[derive(Debug, Parser)]
#[command(name = "secapp", version, about, after_help = docs::EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (SQLite in the data dir; no other setup needed).
    Serve(Box<ServeArgs>),
    /// Publish a level: `secapp publish 4`.
    Publish(level::PublishArgs),
    /// Print the current state, without counting the application as told.
    Get(level::ReadArgs),
    /// Poll as the prototype's clients do: the state if not yet told, once.
    Poll(level::ReadArgs),
    /// Print each change as it happens (`--exec` runs a command on each).
    Watch(level::WatchArgs),
    /// Run a fleet of producers and consumers against a server, checking
    /// that every consumer learns every head once and in order.
    Simulate(Box<simulate::SimulateArgs>),
    /// Register, list, show, change, disable and enable applications.
    Apps(admin::AppsCommand),
    /// Issue, list and revoke applications' tokens.
    Tokens(admin::TokensCommand),
    /// List the events sinks gave up on, and send them again.
    DeadLetters(admin::DeadLettersCommand),
    /// Print the shell completion script: `secapp completions bash`.
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff): `secapp man | man -l -`.
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` starts logging once its configuration (and log format) is
    // read; the other commands log as text.
    if !matches!(cli.command, Command::Serve(_)) {
        // No traces for the other commands: nothing to shut down.
        let _ = telemetry::init(LogFormat::Text);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            return Failure::new(
                exit::UNAVAILABLE,
                format!("cannot start the async runtime: {e}"),
            )
            .exit();
        }
    };
    let result = match cli.command {
        Command::Serve(args) => return runtime.block_on(serve::serve(*args)),
        Command::Publish(args) => runtime.block_on(level::publish(args)),
        Command::Get(args) => runtime.block_on(level::get(args)),
        Command::Poll(args) => runtime.block_on(level::poll(args)),
        Command::Watch(args) => runtime.block_on(level::watch(args)),
        Command::Simulate(args) => runtime.block_on(simulate::simulate(*args)),
        Command::Apps(command) => runtime
            .block_on(admin::apps(command))
            .map_err(admin_failure),
        Command::Tokens(command) => runtime
            .block_on(admin::tokens(command))
            .map_err(admin_failure),
        Command::DeadLetters(command) => runtime
            .block_on(admin::dead_letters(command))
            .map_err(admin_failure),
        Command::Completions(args) => docs::completions(&args),
        Command::Man => docs::man(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

fn admin_failure(admin::CliError(message): admin::CliError) -> Failure {
    Failure::new(exit::UNAVAILABLE, message)
}

/// Prints `message` and answers the general failure code.
fn fail(message: &str) -> ExitCode {
    Failure::new(exit::UNAVAILABLE, message).exit()
}
