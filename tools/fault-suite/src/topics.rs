//! What is on the topics: every record from the first offset to where each partition ends
//! now, and the (user, version) pairs the event records carry.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use anyhow::{Context, bail};
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, StreamConsumer},
    message::OwnedMessage,
};
use shared::kafka;
use shared_proto::event_headers;
use uuid::Uuid;

/// Every record of `topics`: up to each partition's end as of the call, then until none has
/// come for a moment.
pub(crate) async fn read_all(
    brokers: &str,
    topics: &[&str],
    within: Duration,
) -> anyhow::Result<Vec<OwnedMessage>> {
    let partitions = kafka::partitions(
        &shared::kafka::Cluster::plaintext(brokers.to_owned()),
        topics,
    )
    .await
    .context("cannot list the partitions")?;
    let ends = {
        let brokers = brokers.to_owned();
        tokio::task::spawn_blocking(move || -> anyhow::Result<HashMap<(String, i32), i64>> {
            let consumer: BaseConsumer = config(&brokers).create()?;
            let mut ends = HashMap::new();
            for (topic, partition) in partitions {
                let (low, high) = consumer
                    .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                    .with_context(|| format!("cannot read the offsets of {topic}/{partition}"))?;
                if high > low {
                    ends.insert((topic, partition), high);
                }
            }
            Ok(ends)
        })
        .await??
    };
    let expected: i64 = ends.values().sum();
    let mut remaining = ends;
    let mut records = Vec::with_capacity(expected.max(0) as usize);
    if remaining.is_empty() {
        return Ok(records);
    }
    let consumer: StreamConsumer = config(brokers).create()?;
    let mut assignment = TopicPartitionList::new();
    for (topic, partition) in remaining.keys() {
        assignment.add_partition_offset(topic, *partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let deadline = tokio::time::Instant::now() + within;
    while !remaining.is_empty() {
        let record = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(received) => received.context("cannot read the topics")?.detach(),
            Err(_) => bail!(
                "read {} records within {within:?}; partitions not read to their end: {:?}",
                records.len(),
                remaining
            ),
        };
        let key = (record.topic().to_owned(), record.partition());
        if remaining
            .get(&key)
            .is_some_and(|end| record.offset() + 1 >= *end)
        {
            remaining.remove(&key);
        }
        records.push(record);
    }
    // tansu's high watermark can fall a record or two short of a partition's end (seen:
    // watermark 177 with records up to offset 178), so whatever still comes is read too,
    // until the topics go quiet.
    while let Ok(received) = tokio::time::timeout(QUIET, consumer.recv()).await {
        records.push(received.context("cannot read the topics")?.detach());
    }
    Ok(records)
}

const QUIET: Duration = Duration::from_secs(1);

fn config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("fault-suite-{}", Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .set("log_level", "3");
    config
}

/// The (user, version) of every record that names both, from its key and `version` header.
pub(crate) fn versions(records: &[OwnedMessage]) -> BTreeSet<(Uuid, u64)> {
    records
        .iter()
        .filter_map(|record| {
            let id = Uuid::parse_str(std::str::from_utf8(record.key()?).ok()?).ok()?;
            let version = kafka::header(record, event_headers::VERSION)?
                .parse()
                .ok()?;
            Some((id, version))
        })
        .collect()
}
