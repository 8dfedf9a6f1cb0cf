//! Hears what other servers on the database commit: a connection of its
//! own `LISTEN`s on [`CHANNEL`], where each publish that becomes the head
//! and each change to applications or tokens is announced (`pg_notify` in
//! the same transaction, so it is heard only once committed). When the
//! connection is lost it reconnects (every second until it can) and
//! announces [`Notice::Resync`], since anything may have changed meanwhile.

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::store::Notice;

/// The notification channel.
pub(super) const CHANNEL: &str = "secapp_changes";
/// The payload announcing a new head.
pub(super) const HEAD: &str = "head";
/// The payload announcing a registry change.
pub(super) const REGISTRY: &str = "registry";

/// How long to wait before connecting again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Listens until `stop` is cancelled.
pub(super) async fn run(
    config: tokio_postgres::Config,
    notices: broadcast::Sender<Notice>,
    stop: CancellationToken,
) {
    let mut first = true;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            ended = listen(&config, &notices, first) => {
                if let Err(e) = ended {
                    tracing::warn!(error = %e, "the change feed from the database was interrupted; reconnecting");
                }
            }
        }
        first = false;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RECONNECT_AFTER) => {}
        }
    }
}

/// One connection's life: connect, `LISTEN`, forward notifications.
async fn listen(
    config: &tokio_postgres::Config,
    notices: &broadcast::Sender<Notice>,
    first: bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx)).fuse();
    // The connection is driven by polling `messages`; the LISTEN completes
    // while it is.
    let statement = format!("LISTEN {CHANNEL}");
    let listening = client.batch_execute(&statement);
    tokio::pin!(listening);
    loop {
        tokio::select! {
            done = &mut listening => {
                done?;
                break;
            }
            message = messages.next() => match message {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
    if !first {
        // What was committed while nobody listened.
        let _ = notices.send(Notice::Resync);
    }
    while let Some(message) = messages.next().await {
        if let AsyncMessage::Notification(notification) = message? {
            let notice = match notification.payload() {
                HEAD => Notice::Head,
                REGISTRY => Notice::Registry,
                _ => Notice::Resync,
            };
            // No receiver yet is fine: the server reads everything at start.
            let _ = notices.send(notice);
        }
    }
    // The client lives as long as the connection is read.
    let _ = &client;
    Ok(())
}
