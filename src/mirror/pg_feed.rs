//! The Postgres mirror's change feed: every revocation and user change is announced with
//! `NOTIFY` in the transaction that commits it, and each replica `LISTEN`s on a connection
//! of its own, passing the announcements on and a `Resync` after every (re)connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls, Transaction};

use super::delivery::FleetEvent;
use super::error::MirrorError;
use super::pg_schema::{MAX_BACKOFF, Migrated};

/// The channel revocations and user changes are announced on.
const CHANNEL: &str = "clerk_gateway";

/// Announces `event` to every replica when `tx` commits (Postgres holds a transaction's
/// notifications until then, and drops them if it rolls back).
pub(super) async fn announce(tx: &Transaction<'_>, event: &FleetEvent) -> Result<(), MirrorError> {
    let payload = serde_json::to_string(event).unwrap_or_default();
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await?;
    Ok(())
}

/// The change feed: `LISTEN` on a connection of its own, each notification passed on, and
/// a `Resync` after every (re)connection; on a cut, reconnects with backoff.
pub(super) async fn listen(config: tokio_postgres::Config, migrated: Arc<Migrated>, events: mpsc::Sender<FleetEvent>) {
    // The Resync after the first connection must find the tables there.
    while !migrated.done.load(Ordering::Acquire) {
        if events.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut backoff = Duration::from_millis(100);
    while !events.is_closed() {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (notes, mut received) = mpsc::unbounded_channel::<String>();
                let driver = tokio::spawn(async move {
                    while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                        match message {
                            Ok(AsyncMessage::Notification(note)) => drop(notes.send(note.payload().to_owned())),
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(%error, "the mirror's change feed was cut");
                                break;
                            }
                        }
                    }
                });
                if client.batch_execute(&format!("LISTEN {CHANNEL}")).await.is_ok() {
                    backoff = Duration::from_millis(100);
                    if events.send(FleetEvent::Resync).await.is_err() {
                        return;
                    }
                    while let Some(payload) = received.recv().await {
                        match serde_json::from_str::<FleetEvent>(&payload) {
                            Ok(event) => {
                                if events.send(event).await.is_err() {
                                    return;
                                }
                            }
                            Err(error) => tracing::warn!(%error, "unreadable announcement on the mirror's change feed"),
                        }
                    }
                }
                driver.abort();
            }
            Err(error) => tracing::warn!(%error, "cannot reach the mirror's change feed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
