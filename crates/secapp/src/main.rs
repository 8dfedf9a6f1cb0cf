//! The `secapp` command: parses the command line, sets up logging, loads the
//! configuration and hands over to `secapp_server`.

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

/// Tells the operator where the server is and, the first time only, the token.
fn announce(server: &Server, local: SocketAddr) {
    let base = if local.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", local.port())
    } else {
        format!("http://{local}")
    };
    tracing::info!(address = %local, "secapp is listening; API docs at {base}/docs");
    match server.token_origin() {
        TokenOrigin::Generated(path) => {
            let token = server.token().expose();
            println!(
                "\nsecapp generated an API token and stored it in {path} (mode 0600).\n\
                 It is shown only this once; read the file or set {API_TOKEN_ENV} later.\n\n\
                 \x20 token:   {token}\n\n\
                 \x20 publish: curl -X POST {base}/secapp/update -H 'App-name: security-team' -H 'Token: {token}' \
                 -H 'Content-Type: application/json' -d '{{\"current_status\": 4}}'\n\
                 \x20 poll:    curl {base}/secapp/update -H 'App-name: billing' -H 'Token: {token}'\n\
                 \x20 docs:    {base}/docs\n",
                path = path.display(),
            );
        }
        TokenOrigin::Stored(path) => {
            tracing::info!(token_file = %path.display(), "using the API token stored in the data dir");
        }
        TokenOrigin::Environment => {
            tracing::info!("using the API token from {API_TOKEN_ENV}");
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("secapp: {message}");
    ExitCode::FAILURE
}
