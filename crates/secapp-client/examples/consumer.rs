//! A minimal consumer: acts on every change of the level, each once and in
//! order, through restarts and lost connections.
//!
//! ```text
//! SECAPP_SERVER=http://127.0.0.1:8000 SECAPP_APP=billing SECAPP_TOKEN=secapp_… \
//!   cargo run -p secapp-client --example consumer
//! ```

use futures_util::StreamExt;
use secapp_client::{Client, WatchOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::builder(env("SECAPP_SERVER")?)
        .app(env("SECAPP_APP")?)
        .token(env("SECAPP_TOKEN")?)
        .build()?;
    let options = WatchOptions::default().on_retry(|error, pause| {
        eprintln!("{error}; retrying in {pause:?}");
    });
    let mut changes = client.watch_with(options);
    while let Some(state) = changes.next().await {
        let state = state?;
        println!(
            "level {} since {} (change {})",
            state.level, state.changed_at, state.id
        );
        // Tighten or relax here: rate limits, step-up authentication, deploys.
    }
    Ok(())
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}
