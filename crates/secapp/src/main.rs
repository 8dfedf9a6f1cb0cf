//! The `secapp` command: parses the command line, sets up logging, and runs
//! the server (`secapp serve`) or an admin command (`secapp apps ...`,
//! `secapp tokens ...`, see [`admin`]).

mod admin;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secapp_server::config::{API_TOKEN_ENV, Config, ServeArgs};
use secapp_server::shutdown::Signals;
use secapp_server::token::TokenOrigin;
use secapp_server::{Server, telemetry};

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
    Serve(ServeArgs),
    /// Register, list, show, change, disable and enable applications.
    Apps(admin::AppsCommand),
    /// Issue, list and revoke applications' tokens.
    Tokens(admin::TokensCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
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

async fn serve(args: ServeArgs) -> ExitCode {
    let config = match Config::load(args, std::env::var(API_TOKEN_ENV).ok()) {
        Ok(config) => config,
        Err(e) => return fail(&e.to_string()),
    };
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => return fail(&format!("cannot install signal handlers: {e}")),
    };
    let listen = config.listen;
    let server = match Server::open(config).await {
        Ok(server) => server,
        Err(e) => return fail(&e.to_string()),
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            return fail(&format!(
                "cannot listen on {listen}: {e}; choose another address with --listen or SECAPP_LISTEN"
            ));
        }
    };
    let local = listener.local_addr().unwrap_or(listen);
    announce(&server, local);
    match server.run(listener, signals.recv()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

/// Tells the operator where the server is and, the first time only, the
/// first admin token (and a generated shared token).
fn announce(server: &Server, local: SocketAddr) {
    let base = if local.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", local.port())
    } else {
        format!("http://{local}")
    };
    tracing::info!(address = %local, "secapp is listening; API docs at {base}/docs");
    if let Some(issued) = server.first_admin() {
        let token = &issued.token;
        println!(
            "\nsecapp registered the application `admin` and issued its first token ({id}).\n\
             It is shown only this once: secapp keeps only its hash.\n\n\
             \x20 admin token: {token}\n\n\
             \x20 register a producer:  secapp apps add security-team --role publish --server {base} --token {token}\n\
             \x20 register a consumer:  secapp apps add billing --role consume --server {base} --token {token}\n\
             \x20 the same over HTTP:   curl -X POST {base}/admin/apps -H 'Authorization: Bearer {token}' \
             -H 'Content-Type: application/json' -d '{{\"name\": \"billing\", \"roles\": [\"consume\"]}}'\n\
             \x20 docs:                 {base}/docs\n",
            id = issued.details.id,
        );
    }
    match server.shared_token() {
        Some((token, TokenOrigin::Generated(path))) => {
            let token = token.expose();
            println!(
                "\nsecapp generated a shared compatibility token and stored it in {path} (mode 0600).\n\
                 It is shown only this once; read the file or set {API_TOKEN_ENV} later.\n\n\
                 \x20 shared token: {token}\n\
                 \x20 poll:         curl {base}/secapp/update -H 'App-name: billing' -H 'Token: {token}'\n",
                path = path.display(),
            );
        }
        Some((_, TokenOrigin::Stored(path))) => {
            tracing::info!(token_file = %path.display(), "accepting the shared token stored in the data dir");
        }
        Some((_, TokenOrigin::Environment)) => {
            tracing::info!("accepting the shared token from {API_TOKEN_ENV}");
        }
        None => {}
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("secapp: {message}");
    ExitCode::FAILURE
}
