//! The projector's consumer polled on a thread of its own, so that librdkafka's blocking
//! calls (the committed-offset lookup in the rebalance callback, the commit at shutdown)
//! never hold up an async worker. Records reach the projector through a bounded channel,
//! which also holds the consumer back while the projector cannot write the view.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer},
    error::KafkaResult,
    message::OwnedMessage,
};
use tokio::sync::mpsc;

use super::context::ProjectorContext;

/// Records polled ahead of the projector, at most.
const AHEAD: usize = 2_000;
/// How often the consumer thread checks that every partition makes progress in the group.
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
    let mut stalls = Stalls::default();
    while !stopping.load(Ordering::Acquire) {
        if Instant::now() >= next_check {
            next_check = Instant::now() + GROUP_CHECK;
            stalls.check(consumer, group);
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

/// A group may leave partitions to no one and still call itself stable: tansu, once killed
/// members' sessions expire, has handed the survivor an assignment made for the dead ones
/// too, and then nothing is projected from those partitions. tansu's DescribeGroups lists no
/// members, so the symptom is what is watched, on any broker: a partition this consumer does
/// not hold, with records past the group's committed offset, and that offset unmoved since
/// the last check. Stalled at two checks in a row (a rebalance in progress passes by), the
/// consumer leaves the group and joins it again, which makes the group assign every
/// partition anew. A replica that cannot project itself never gets here: its thread waits
/// in `blocking_send`, so replicas do not churn the group while Postgres is down.
#[derive(Default)]
struct Stalls {
    /// The committed offset of each partition held elsewhere and behind, at the last check.
    behind: HashMap<(String, i32), i64>,
    stalled_before: bool,
}

impl Stalls {
    fn check(&mut self, consumer: &BaseConsumer<ProjectorContext>, group: &Group) {
        let behind = match behind_elsewhere(consumer, group) {
            Ok(behind) => behind,
            Err(error) => {
                tracing::debug!(%error, "cannot check the group's progress");
                return;
            }
        };
        let stalled = behind
            .iter()
            .filter(|(partition, committed)| self.behind.get(*partition) == Some(committed))
            .count();
        self.behind = behind;
        if stalled == 0 {
            self.stalled_before = false;
            return;
        }
        if !self.stalled_before {
            self.stalled_before = true;
            return;
        }
        tracing::warn!(
            stalled,
            group = %group.id,
            "partitions held by no live member of the group; joining the group again"
        );
        *self = Self::default();
        let topics: Vec<&str> = group.topics.iter().map(String::as_str).collect();
        consumer.unsubscribe();
        if let Err(error) = consumer.subscribe(&topics) {
            tracing::error!(%error, "projector cannot subscribe again");
        }
    }
}

/// The partitions of the subscribed topics that this consumer does not hold and whose
/// records the group has not all committed, with the committed offset of each.
fn behind_elsewhere(
    consumer: &BaseConsumer<ProjectorContext>,
    group: &Group,
) -> KafkaResult<HashMap<(String, i32), i64>> {
    const WAIT: Duration = Duration::from_secs(5);
    let held = consumer.assignment()?;
    let mut elsewhere = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for topic in &group.topics {
        let metadata = consumer.fetch_metadata(Some(topic), WAIT)?;
        for partition in metadata
            .topics()
            .iter()
            .flat_map(|topic| topic.partitions())
        {
            let id = partition.id();
            if held.find_partition(topic, id).is_some() {
                continue;
            }
            let (low, high) = consumer.fetch_watermarks(topic, id, WAIT)?;
            elsewhere.add_partition(topic, id);
            ends.insert((topic.clone(), id), (low, high));
        }
    }
    if elsewhere.count() == 0 {
        return Ok(HashMap::new());
    }
    let committed = consumer.committed_offsets(elsewhere, WAIT)?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|element| {
            let key = (element.topic().to_owned(), element.partition());
            let (low, high) = *ends.get(&key)?;
            let committed = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => low,
            };
            (committed < high).then_some((key, committed))
        })
        .collect())
}
