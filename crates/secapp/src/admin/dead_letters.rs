//! `secapp dead-letters ...`: the events sinks gave up on, listed and sent
//! again, against a running server or a stopped server's database.

use clap::{Args, Subcommand};
use secapp_api::admin::DeadLettersAnswer;

use super::client::Admin;
use super::print::print_json;
use super::{CliError, Target};

/// `secapp dead-letters ...`.
#[derive(Debug, Args)]
pub struct DeadLettersCommand {
    #[command(subcommand)]
    action: DeadLettersAction,
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Subcommand)]
enum DeadLettersAction {
    /// List dead letters, newest event first.
    List {
        /// Only this sink's.
        #[arg(long)]
        sink: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only events older than this id (a page's `next_before`).
        #[arg(long)]
        before: Option<i64>,
    },
    /// Send a dead letter again: pending at once, its attempts afresh.
    Retry {
        /// The sink's name.
        sink: String,
        /// The event's id, as listed.
        event_id: i64,
    },
}

/// Runs `secapp dead-letters ...`.
///
/// # Errors
/// [`CliError`] with what went wrong and what to do.
pub async fn dead_letters(command: DeadLettersCommand) -> Result<(), CliError> {
    let json = command.target.json;
    let admin = Admin::connect(&command.target).await?;
    let result = run(&admin, command.action, json).await;
    admin.close().await;
    result
}

async fn run(admin: &Admin, action: DeadLettersAction, json: bool) -> Result<(), CliError> {
    match action {
        DeadLettersAction::List {
            sink,
            limit,
            before,
        } => {
            let page = admin.dead_letters(sink, before, limit).await?;
            if json {
                print_json(&page);
            } else {
                print_page(&page);
            }
        }
        DeadLettersAction::Retry { sink, event_id } => {
            let retried = admin.retry_dead_letter(&sink, event_id).await?;
            if json {
                print_json(&retried);
            } else {
                println!(
                    "event {} is pending again for {}: it is sent next",
                    retried.event_id, retried.sink
                );
            }
        }
    }
    Ok(())
}

fn print_page(page: &DeadLettersAnswer) {
    if page.dead_letters.is_empty() {
        println!("no dead letters");
        return;
    }
    println!(
        "{:<20} {:>10}  {:<20} {:<24} {:>8}  last error",
        "sink", "event", "kind", "dead at", "attempts"
    );
    for letter in &page.dead_letters {
        println!(
            "{:<20} {:>10}  {:<20} {:<24} {:>8}  {}",
            letter.sink,
            letter.event_id,
            letter.event,
            letter.dead_at.as_deref().unwrap_or("-"),
            letter.attempts,
            letter.last_error.as_deref().unwrap_or("-")
        );
    }
    if let Some(before) = page.next_before {
        println!("(more: --before {before})");
    }
}
