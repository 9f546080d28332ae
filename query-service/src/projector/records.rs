//! The projector's consumer polled on a thread of its own, so that librdkafka's blocking
//! calls (the committed-offset lookup in the rebalance callback, the commit at shutdown)
//! never hold up an async worker. Records reach the projector through a bounded channel,
//! which also holds the consumer back while the projector cannot write the view.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    error::KafkaResult,
    message::OwnedMessage,
};
use tokio::sync::mpsc;
use users_shared::kafka;

use super::context::ProjectorContext;

/// Records polled ahead of the projector, at most.
const AHEAD: usize = 2_000;
/// How often the consumer thread checks that every partition has an owner in the group.
const GROUP_CHECK: Duration = Duration::from_secs(10);

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
        group: Group,
        stopping: Arc<AtomicBool>,
    ) -> std::io::Result<Self> {
        let (sender, received) = mpsc::channel(AHEAD);
        let thread = std::thread::Builder::new()
            .name("projector-consumer".to_owned())
            .spawn({
                let stopping = Arc::clone(&stopping);
                move || poll(&consumer, &group, &sender, &stopping)
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

/// The consumer group the projector is in, and what it subscribes to.
pub(super) struct Group {
    pub(super) id: String,
    pub(super) topics: Vec<String>,
}

fn poll(
    consumer: &BaseConsumer<ProjectorContext>,
    group: &Group,
    sender: &mpsc::Sender<KafkaResult<OwnedMessage>>,
    stopping: &AtomicBool,
) {
    let mut next_check = Instant::now() + GROUP_CHECK;
    let mut unheld_before = false;
    while !stopping.load(Ordering::Acquire) {
        if Instant::now() >= next_check {
            next_check = Instant::now() + GROUP_CHECK;
            unheld_before = rejoin_if_unheld(consumer, group, unheld_before);
        }
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

/// A stable group may still leave partitions to no one: tansu, once killed members' sessions
/// expire, has handed the survivor an assignment made for the dead ones too, and then
/// nothing is projected from those partitions. Seen at two checks in a row (a rebalance in
/// progress passes by), the consumer leaves the group and joins it again, which makes the
/// group assign every partition anew. Returns whether partitions were unheld this time.
fn rejoin_if_unheld(
    consumer: &BaseConsumer<ProjectorContext>,
    group: &Group,
    unheld_before: bool,
) -> bool {
    let unheld = match unheld_partitions(consumer, group) {
        Ok(unheld) => unheld,
        Err(error) => {
            tracing::debug!(%error, "cannot check the group's assignment");
            return unheld_before;
        }
    };
    if unheld == 0 {
        return false;
    }
    if !unheld_before {
        return true;
    }
    tracing::warn!(
        unheld,
        group = %group.id,
        "partitions no member of the group holds; joining the group again"
    );
    let topics: Vec<&str> = group.topics.iter().map(String::as_str).collect();
    consumer.unsubscribe();
    if let Err(error) = consumer.subscribe(&topics) {
        tracing::error!(%error, "projector cannot subscribe again");
    }
    false
}

/// Partitions of the subscribed topics that no member of the group holds; none while the
/// group is rebalancing.
fn unheld_partitions(
    consumer: &BaseConsumer<ProjectorContext>,
    group: &Group,
) -> KafkaResult<usize> {
    let mut partitions = 0;
    for topic in &group.topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        partitions += metadata
            .topics()
            .iter()
            .map(|topic| topic.partitions().len())
            .sum::<usize>();
    }
    let described = consumer.fetch_group_list(Some(&group.id), Duration::from_secs(5))?;
    let mut held = 0;
    for found in described.groups() {
        if found.state() != "Stable" {
            return Ok(0);
        }
        held += found
            .members()
            .iter()
            .filter_map(|member| member.assignment().and_then(kafka::assigned_partitions))
            .sum::<usize>();
    }
    Ok(partitions.saturating_sub(held))
}
