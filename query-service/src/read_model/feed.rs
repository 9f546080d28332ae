//! Keeps this replica's cache coherent: a consumer outside the group reads every partition
//! of the event topics from where it ended when the feed started, and tells the cache which
//! users changed. The group's projector may run on another replica; this one still learns of
//! every change.
//!
//! The feed keeps trying until it can start (a brand-new topic has no metadata for a while),
//! clears the cache once it has (entries cached before it listened may have missed changes),
//! and takes up partitions added later. Its state is a readiness check of its own: degraded,
//! never failing, since reads stay correct up to `CACHE_TTL` without it.

use std::{collections::HashSet, sync::Arc, time::Duration};

use futures::FutureExt;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    error::KafkaError,
};
use shared::{
    backoff::Backoff,
    kafka::{self, Cluster},
};
use shared_proto::topics::Topics;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::UserCache;
use crate::user_change::UserChange;

/// How often the feed looks for partitions added to the topics, as a service runs it.
pub const PARTITION_REFRESH: Duration = Duration::from_secs(30);

/// The feed's state, as readiness reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedState {
    Listening,
    Down(String),
}

impl FeedState {
    pub fn check(&self) -> Result<(), String> {
        match self {
            Self::Listening => Ok(()),
            Self::Down(why) => Err(why.clone()),
        }
    }
}

pub fn state() -> (watch::Sender<FeedState>, watch::Receiver<FeedState>) {
    watch::channel(FeedState::Down("not started yet".to_owned()))
}

/// Runs until `shutdown`, looking for new partitions every `partition_refresh`.
pub async fn run(
    cluster: Cluster,
    topics: Topics,
    cache: UserCache,
    state: watch::Sender<FeedState>,
    partition_refresh: Duration,
    fetch_wait: Duration,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let (consumer, mut assigned) = loop {
        match start(&cluster, &topics, fetch_wait).await {
            Ok(started) => break started,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff.upcoming(), "cache feed cannot start yet");
                state.send_replace(FeedState::Down(format!("cannot start: {error}")));
            }
        }
        if !backoff.sleep(&shutdown).await {
            return;
        }
    };
    cache.clear();
    state.send_replace(FeedState::Listening);
    tracing::info!(partitions = assigned.len(), "cache feed listening");

    let mut refresh = tokio::time::interval(partition_refresh);
    refresh.tick().await;
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = refresh.tick() => {
                if let Err(error) = take_new_partitions(&cluster, &topics, &consumer, &mut assigned).await {
                    tracing::debug!(%error, "cache feed cannot look for new partitions");
                }
                continue;
            }
            received = consumer.recv() => received,
        };
        let mut next = Some(received);
        while let Some(received) = next {
            match received {
                Ok(record) => {
                    // Undecodable records are the projector's to dead-letter.
                    if let Ok(change) =
                        UserChange::decode(&topics, record.topic(), record.payload())
                    {
                        cache.saw_in_stream(change.user.id, change.user.version);
                    }
                    if *state.borrow() != FeedState::Listening {
                        state.send_replace(FeedState::Listening);
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "cache feed consumer error");
                    state.send_replace(FeedState::Down(format!("consumer error: {error}")));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            next = consumer.recv().now_or_never();
        }
        cache.wake_readers();
    }
}

/// A consumer assigned every partition of the event topics at its current end (a replica's
/// cache starts empty), and those partitions.
async fn start(
    cluster: &Cluster,
    topics: &Topics,
    fetch_wait: Duration,
) -> Result<(Arc<StreamConsumer>, HashSet<(String, i32)>), KafkaError> {
    let consumer: StreamConsumer = cluster
        .client_config("query-service-cache-feed")
        // Never joins or commits for this group; librdkafka wants one all the same.
        .set(
            "group.id",
            format!("query-service-cache-feed-{}", Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        // Its position lies past the end only when a topic was deleted and made again (a
        // broker restored empty): every record of the new topic is news to the cache.
        .set("auto.offset.reset", "earliest")
        .set(
            "fetch.wait.max.ms",
            fetch_wait.as_millis().max(1).to_string(),
        )
        .create()?;
    let consumer = Arc::new(consumer);
    let partitions = kafka::partitions(cluster, &topics.events()).await?;
    if partitions.is_empty() {
        return Err(KafkaError::MetadataFetch(
            rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
        ));
    }
    // The end as it is now, not whenever the fetcher starts: from here on nothing is missed.
    let list = {
        let consumer = Arc::clone(&consumer);
        let partitions = partitions.clone();
        tokio::task::spawn_blocking(move || at_their_end(&consumer, &partitions))
            .await
            .map_err(|_| KafkaError::Canceled)??
    };
    consumer.assign(&list)?;
    Ok((consumer, partitions.into_iter().collect()))
}

fn at_their_end(
    consumer: &StreamConsumer,
    partitions: &[(String, i32)],
) -> Result<TopicPartitionList, KafkaError> {
    let mut list = TopicPartitionList::new();
    for (topic, partition) in partitions {
        let (_, high) = consumer.fetch_watermarks(topic, *partition, Duration::from_secs(10))?;
        list.add_partition_offset(topic, *partition, Offset::Offset(high))?;
    }
    Ok(list)
}

/// Adds partitions created since the last look, from their first record.
async fn take_new_partitions(
    cluster: &Cluster,
    topics: &Topics,
    consumer: &StreamConsumer,
    assigned: &mut HashSet<(String, i32)>,
) -> Result<(), KafkaError> {
    let partitions = kafka::partitions(cluster, &topics.events()).await?;
    let new = not_yet(assigned, &partitions);
    if new.is_empty() {
        return Ok(());
    }
    let mut added = TopicPartitionList::new();
    for (topic, partition) in &new {
        added.add_partition_offset(topic, *partition, Offset::Beginning)?;
    }
    consumer.incremental_assign(&added)?;
    tracing::info!(added = new.len(), "cache feed took up new partitions");
    assigned.extend(new);
    Ok(())
}

fn not_yet(assigned: &HashSet<(String, i32)>, partitions: &[(String, i32)]) -> Vec<(String, i32)> {
    partitions
        .iter()
        .filter(|partition| !assigned.contains(*partition))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partitions_not_assigned_yet_are_added() {
        let assigned: HashSet<_> = [("a".to_owned(), 0), ("b".to_owned(), 0)].into();
        let now = [
            ("a".to_owned(), 0),
            ("a".to_owned(), 1),
            ("b".to_owned(), 0),
        ];
        assert_eq!(not_yet(&assigned, &now), [("a".to_owned(), 1)]);
        assert!(not_yet(&assigned, &now[..1]).is_empty());
    }
}
