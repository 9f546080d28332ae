//! Keeps this replica's cache coherent: a consumer outside the group reads every partition
//! of the event topics from the live end and offers each change to the cache. The group's
//! projector may run on another replica; this one still learns of every change.

use std::time::Duration;

use futures::FutureExt;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    error::KafkaError,
};
use tokio_util::sync::CancellationToken;
use users_shared::{kafka, topics::Topics};
use uuid::Uuid;

use crate::{
    cache::{CachedUser, UserCache},
    user_change::UserChange,
};

pub async fn run(brokers: String, topics: Topics, cache: UserCache, shutdown: CancellationToken) {
    let consumer = match assign_all(&brokers, &topics).await {
        Ok(consumer) => consumer,
        Err(error) => {
            tracing::error!(%error, "cache feed cannot start; entries expire by TTL only");
            return;
        }
    };
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
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
                        cache.offer(change.user.id, CachedUser::from(&change));
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "cache feed consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            next = consumer.recv().now_or_never();
        }
        cache.announce();
    }
}

/// Every partition of the event topics, from the end (a new replica's cache starts empty).
async fn assign_all(brokers: &str, topics: &Topics) -> Result<StreamConsumer, KafkaError> {
    let consumer: StreamConsumer = kafka::client_config(brokers, "query-service-cache-feed")
        // Never joins or commits for this group; librdkafka wants one all the same.
        .set(
            "group.id",
            format!("query-service-cache-feed-{}", Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let assignment = kafka::partitions(brokers, &topics.events()).await?;
    let mut list = TopicPartitionList::new();
    for (topic, partition) in assignment {
        list.add_partition_offset(&topic, partition, Offset::End)?;
    }
    consumer.assign(&list)?;
    Ok(consumer)
}
