//! LISTEN on a Postgres channel from a dedicated connection, turning notifications into a
//! wake-up of in-process waiters.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::db::Database;

/// Keeps a connection listening on `channel`, reconnecting after failures, until `shutdown`.
/// Every notification, and every (re)connection (notifications sent while no one listened
/// are lost), calls `notify_one` on `wake`.
pub fn spawn_listener(
    database: Database,
    channel: &'static str,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            match listen(&database, channel, &wake, &shutdown).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, channel, retry_in = ?backoff, "LISTEN connection lost");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    })
}

async fn listen(
    database: &Database,
    channel: &str,
    wake: &Notify,
    shutdown: &CancellationToken,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = database.connect_raw().await?;
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {channel}");
    let listen = client.batch_execute(&statement);
    tokio::pin!(listen);
    let mut listening = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            result = &mut listen, if !listening => {
                result?;
                listening = true;
                wake.notify_one();
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            },
        }
    }
}
