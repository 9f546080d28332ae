//! The projector's consumer polled on a thread of its own, so that librdkafka's blocking
//! calls (the committed-offset lookup in the rebalance callback, the commit at shutdown)
//! never hold up an async worker. Records reach the projector through a bounded channel,
//! which also holds the consumer back while the projector cannot write the view.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    error::KafkaResult,
    message::OwnedMessage,
};
use tokio::sync::mpsc;

use super::context::ProjectorContext;

/// Records polled ahead of the projector, at most.
const AHEAD: usize = 2_000;

pub(super) struct Records {
    received: mpsc::Receiver<KafkaResult<OwnedMessage>>,
    stopping: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Records {
    /// Starts polling `consumer`, already subscribed. `stopping` also ends the rebalance
    /// callback's retries.
    pub(super) fn spawn(
        consumer: Arc<BaseConsumer<ProjectorContext>>,
        stopping: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        let (sender, received) = mpsc::channel(AHEAD);
        let thread = std::thread::Builder::new()
            .name("projector-consumer".to_owned())
            .spawn({
                let stopping = Arc::clone(&stopping);
                move || poll(&consumer, &sender, &stopping)
            })?;
        Ok(Self {
            received,
            stopping,
            thread,
        })
    }

    /// The next record, or `None` once the polling thread has ended.
    pub(super) async fn recv(&mut self) -> Option<KafkaResult<OwnedMessage>> {
        self.received.recv().await
    }

    /// A record already polled, if any.
    pub(super) fn try_recv(&mut self) -> Option<KafkaResult<OwnedMessage>> {
        self.received.try_recv().ok()
    }

    /// Stops polling; the thread commits the stored offsets before it ends.
    pub(super) async fn stop(self) {
        self.stopping.store(true, Ordering::Release);
        drop(self.received);
        let thread = self.thread;
        if tokio::task::spawn_blocking(move || thread.join())
            .await
            .is_err()
        {
            tracing::warn!("the projector's consumer thread did not end cleanly");
        }
    }
}

fn poll(
    consumer: &BaseConsumer<ProjectorContext>,
    sender: &mpsc::Sender<KafkaResult<OwnedMessage>>,
    stopping: &AtomicBool,
) {
    while !stopping.load(Ordering::Acquire) {
        let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        if sender
            .blocking_send(polled.map(|record| record.detach()))
            .is_err()
        {
            break;
        }
    }
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(%error, "no offsets committed at shutdown");
    }
}
