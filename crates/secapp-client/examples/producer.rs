//! A minimal producer: publishes the level given on the command line.
//!
//! ```text
//! SECAPP_SERVER=http://127.0.0.1:8000 SECAPP_APP=security-team SECAPP_TOKEN=secapp_… \
//!   cargo run -p secapp-client --example producer -- 4
//! ```

use secapp_client::{Client, Publish};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let level: i64 = std::env::args()
        .nth(1)
        .ok_or("give the level, such as 4")?
        .parse()?;
    let client = Client::builder(env("SECAPP_SERVER")?)
        .app(env("SECAPP_APP")?)
        .token(env("SECAPP_TOKEN")?)
        .build()?;
    // A generated idempotency key: retrying this same `Publish` after a
    // lost answer records it once.
    let publish = Publish::level(level);
    let id = client.publish(&publish).await?;
    println!("published level {level} as change {id}");
    Ok(())
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}
