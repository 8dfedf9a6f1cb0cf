//! `secapp publish`, `get`, `poll` and `watch`: the level from the command
//! line, for people and for scripts, through the `secapp-client` library.
//!
//! - `show.rs`: a state as people read it on a terminal, plainly when piped,
//!   or as JSON lines.
//! - `watch.rs`: `secapp watch`, with `--exec`.

mod show;
mod watch;

use std::time::Duration;

use clap::Args;
use secapp_client::{Client, Error, Publish};

pub use show::line as print_line;
pub use watch::{WatchArgs, watch};

use crate::exit::Failure;
use show::Output;

/// Who speaks to which server.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The server's base URL (or the balancer's).
    #[arg(
        long,
        env = "SECAPP_SERVER",
        value_name = "URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub server: String,

    /// The application this command speaks for (the App-name header).
    #[arg(long, env = "SECAPP_APP", value_name = "NAME")]
    pub app: String,

    /// Its token.
    #[arg(
        long,
        env = "SECAPP_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: String,

    /// How long one request may take (long polls add their wait).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Print JSON (one object per line) instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Connection {
    /// The client these settings describe.
    pub fn client(&self) -> Result<Client, Failure> {
        Ok(Client::builder(&self.server)
            .app(&self.app)
            .token(&self.token)
            .timeout(self.timeout)
            .build()?)
    }

    fn output(&self) -> Output {
        Output::detect(self.json)
    }
}

/// `secapp publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The new level.
    level: i64,

    /// When it changed: RFC 3339, or naive ISO 8601 taken as UTC (default:
    /// when the server receives it).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,

    /// A key that makes a retried publish record nothing new (default: a
    /// fresh random key).
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,

    #[command(flatten)]
    connection: Connection,
}

/// `secapp get` and `secapp poll`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    connection: Connection,
}

/// Publishes a level and prints its id.
pub async fn publish(args: PublishArgs) -> Result<(), Failure> {
    let client = args.connection.client()?;
    let mut publish = Publish::level(args.level);
    if let Some(at) = args.at {
        publish = publish.at(at);
    }
    if let Some(key) = args.idempotency_key {
        publish = publish.key(key);
    }
    let id = client.publish(&publish).await?;
    args.connection.output().published(args.level, id);
    Ok(())
}

/// Prints the current state without moving the application's server-held
/// cursor: it asks with the client-held cursor `?after=0`, so the next plain
/// poll of the same application still tells it the head.
pub async fn get(args: ReadArgs) -> Result<(), Failure> {
    let state = args.connection.client()?.poll_after(0).await?;
    args.connection
        .output()
        .state(state.as_ref(), "nothing was published yet");
    Ok(())
}

/// A plain poll: the current state if this application was not told it
/// yet, and from then on it counts as told.
pub async fn poll(args: ReadArgs) -> Result<(), Failure> {
    let state = args.connection.client()?.poll().await?;
    args.connection
        .output()
        .state(state.as_ref(), "nothing new");
    Ok(())
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::client(&e)
    }
}
