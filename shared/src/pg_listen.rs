//! LISTEN on a Postgres channel from a dedicated connection, turning notifications into a
//! wake-up of in-process waiters.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use crate::{backoff::Backoff, db::Database};

/// How often the listening connection is asked to answer, and how long it has to: a
/// connection that went silent without closing (keepalives answered by a proxy that
/// forwards nothing) would otherwise listen to nothing for ever.
const HEARTBEAT: Duration = Duration::from_secs(15);
const HEARTBEAT_ANSWER: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the LISTEN connection did not answer its heartbeat within {0:?}")]
    Silent(Duration),
}

/// Keeps a connection listening on `channel`, reconnecting after failures, until `shutdown`.
/// Every notification, and every (re)connection (notifications sent while no one listened
/// are lost), calls `notify_one` on `wake`.
pub async fn keep_listening(
    database: Database,
    channel: &'static str,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !shutdown.is_cancelled() {
        match listen(&database, channel, &wake, &shutdown).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, channel, retry_in = ?backoff.upcoming(), "LISTEN connection lost");
            }
        }
        if !backoff.sleep(&shutdown).await {
            return;
        }
    }
}

async fn listen(
    database: &Database,
    channel: &str,
    wake: &Notify,
    shutdown: &CancellationToken,
) -> Result<(), ListenError> {
    let (client, mut connection) = database.connect_raw().await?;
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {channel}");
    let listen = client.batch_execute(&statement);
    tokio::pin!(listen);
    let mut listening = false;
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut answer = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            result = &mut listen, if !listening => {
                result?;
                listening = true;
                wake.notify_one();
            }
            _ = heartbeat.tick(), if listening && answer.is_none() => {
                answer = Some(Box::pin(tokio::time::timeout(HEARTBEAT_ANSWER, client.simple_query(""))));
            }
            answered = async { answer.as_mut().expect("a heartbeat under way").await }, if answer.is_some() => {
                answer = None;
                answered.map_err(|_| ListenError::Silent(HEARTBEAT_ANSWER))??;
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
                None => return Ok(()),
            },
        }
    }
}
