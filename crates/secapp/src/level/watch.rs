//! `secapp watch`: each change as it happens, through the library's
//! [`Watch`](secapp_client::Watch) (never twice, never an older one after a
//! newer one), printed and optionally handed to a command.

use std::time::Duration;

use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use secapp_client::{State, Transport, WatchOptions};

use super::Connection;
use crate::exit::Failure;

/// `secapp watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Start after this change id: it is not reported again (default: the
    /// current state is reported first).
    #[arg(long, value_name = "ID")]
    after: Option<i64>,

    /// How to listen: a stream falling back to long polls while streams are
    /// refused, only streams, or only long polls.
    #[arg(long, value_enum, default_value = "auto")]
    transport: Listen,

    /// Run this command (with `sh -c`) on each change, one at a time, in
    /// order, with SECAPP_LEVEL, SECAPP_CHANGE_ID and SECAPP_CHANGED_AT in
    /// its environment. A failing command is reported and the watch goes on.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,

    /// Stop after this many changes (default: watch until interrupted).
    #[arg(long, value_name = "N")]
    count: Option<u64>,

    /// The longest pause between reconnection attempts.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    max_backoff: Duration,

    #[command(flatten)]
    connection: Connection,
}

/// `--transport`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Listen {
    Auto,
    Stream,
    LongPoll,
}

/// Watches until interrupted, `--count` changes, or an error retrying
/// cannot cure (its exit code).
pub async fn watch(args: WatchArgs) -> Result<(), Failure> {
    let client = args.connection.client()?;
    let output = args.connection.output();
    let mut options = WatchOptions::default()
        .transport(match args.transport {
            Listen::Auto => Transport::Auto,
            Listen::Stream => Transport::Stream,
            Listen::LongPoll => Transport::LongPoll,
        })
        .max_backoff(args.max_backoff)
        .on_retry(|e, pause| {
            eprintln!("secapp: {e}; trying again in {:.1} s", pause.as_secs_f64());
        });
    if let Some(after) = args.after {
        options = options.after(after);
    }
    let mut changes = client.watch_with(options);
    let mut seen = 0;
    while args.count.is_none_or(|count| seen < count) {
        let Some(state) = changes.next().await else {
            break;
        };
        let state = state?;
        seen += 1;
        super::show::line(&output.format(&state));
        if let Some(command) = &args.exec {
            run(command, &state).await;
        }
    }
    Ok(())
}

/// Runs `command` for `state` and waits for it; reports a failure.
async fn run(command: &str, state: &State) {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("SECAPP_LEVEL", state.level.to_string())
        .env("SECAPP_CHANGE_ID", state.id.to_string())
        .env("SECAPP_CHANGED_AT", &state.changed_at)
        .status()
        .await;
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!(
            "secapp: --exec for change {} failed ({status}); watching on",
            state.id
        ),
        Err(e) => eprintln!(
            "secapp: --exec for change {} could not start: {e}",
            state.id
        ),
    }
}
