//! Events in and out of the broker, as the services' peers would send and read them.

use std::time::Duration;

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    message::{Header, OwnedHeaders, OwnedMessage},
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
};
use uuid::Uuid;

/// A consumer of whole topics from their first offset, outside any consumer group.
pub struct EventReader {
    consumer: StreamConsumer,
}

impl EventReader {
    /// Reads from the first offset of each partition.
    pub fn new(brokers: &str, topics: &[&str], partitions: i32) -> Self {
        Self::starting_at(brokers, topics, partitions, Offset::Beginning)
    }

    /// Reads from `start` in each partition (e.g. `Offset::End`: only what comes next).
    pub fn starting_at(brokers: &str, topics: &[&str], partitions: i32, start: Offset) -> Self {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("test-reader-{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("a consumer");
        let mut assignment = TopicPartitionList::new();
        for topic in topics {
            for partition in 0..partitions {
                assignment
                    .add_partition_offset(topic, partition, start)
                    .unwrap();
            }
        }
        consumer.assign(&assignment).expect("assign");
        Self { consumer }
    }

    /// The next `count` records, failing the test when they do not come within `within`.
    pub async fn read(&mut self, count: usize, within: Duration) -> Vec<OwnedMessage> {
        let mut records = Vec::with_capacity(count);
        let deadline = tokio::time::Instant::now() + within;
        while records.len() < count {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => records.push(message.detach()),
                Ok(Err(error)) => panic!("consumer error: {error}"),
                Err(_) => panic!(
                    "only {} of {count} events arrived within {within:?}",
                    records.len()
                ),
            }
        }
        records
    }

    /// The next record, if one arrives within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<OwnedMessage> {
        let received = tokio::time::timeout(within, self.consumer.recv())
            .await
            .ok()?;
        Some(received.expect("a record").detach())
    }

    /// Every record that arrives until none has come for `idle`.
    pub async fn read_available(&mut self, idle: Duration) -> Vec<OwnedMessage> {
        let mut records = Vec::new();
        while let Ok(received) = tokio::time::timeout(idle, self.consumer.recv()).await {
            records.push(received.expect("a record").detach());
        }
        records
    }

    /// Fails when any record arrives within `within`.
    pub async fn expect_nothing(&mut self, within: Duration) {
        if let Ok(Ok(message)) = tokio::time::timeout(within, self.consumer.recv()).await {
            panic!("unexpected event on {}", message.topic());
        }
    }
}

/// Produces records as the relay would, or as a misbehaving producer might.
pub struct EventWriter {
    producer: FutureProducer,
}

impl EventWriter {
    pub fn new(brokers: &str) -> Self {
        Self {
            producer: ClientConfig::new()
                .set("bootstrap.servers", brokers)
                // Batches of several records when sends overlap, as the relay makes them.
                .set("batch.num.messages", "1000")
                .set("linger.ms", "5")
                .create()
                .expect("a producer"),
        }
    }

    /// Sends a record and waits for the broker to acknowledge it.
    pub async fn send(&self, topic: &str, key: &str, payload: &[u8], headers: &[(&str, &str)]) {
        let mut owned = OwnedHeaders::new();
        for (key, value) in headers {
            owned = owned.insert(Header {
                key,
                value: Some(*value),
            });
        }
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(owned);
        self.producer
            .send(record, Timeout::After(Duration::from_secs(20)))
            .await
            .unwrap_or_else(|(error, _)| panic!("cannot produce to {topic}: {error}"));
    }
}
