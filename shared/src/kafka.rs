//! Kafka clients: common configuration, topic creation and the broker probe.

use std::time::Duration;

use rdkafka::{
    ClientConfig, Message,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::Headers,
    producer::FutureProducer,
};

/// Configuration every client of the services starts from.
pub fn client_config(brokers: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", client_id)
        .set("socket.keepalive.enable", "true")
        // Requests are small and pipelined: with Nagle on, each waits for the broker's
        // delayed ACK of the one before (tens of milliseconds from commit to broker).
        .set("socket.nagle.disable", "true")
        // A broker that is down is an expected state (the outbox waits for it); librdkafka's
        // default would log every reconnect attempt as an error.
        .set("log_level", "4");
    config
}

/// A producer whose drop runs on a blocking thread: dropping one purges its queue and waits
/// for its background thread, which must not hold up an async worker.
pub struct Producer(Option<FutureProducer>);

impl Producer {
    pub fn new(producer: FutureProducer) -> Self {
        Self(Some(producer))
    }
}

impl std::ops::Deref for Producer {
    type Target = FutureProducer;

    fn deref(&self) -> &FutureProducer {
        self.0.as_ref().expect("a producer until dropped")
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let Some(producer) = self.0.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || drop(producer));
            }
            Err(_) => drop(producer),
        }
    }
}

/// Creates the topics that do not exist yet. Topics keep every event (no time or size
/// retention): they are what a read model is rebuilt from.
pub async fn ensure_topics(
    brokers: &str,
    topics: &[&str],
    partitions: i32,
    replication: i32,
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(brokers, "users-admin").create()?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| {
            NewTopic::new(name, partitions, TopicReplication::Fixed(replication))
                .set("retention.ms", "-1")
                .set("retention.bytes", "-1")
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                tracing::warn!(topic = %name, %code, "cannot create topic");
                return Err(KafkaError::AdminOp(code));
            }
        }
    }
    Ok(())
}

/// Asks a broker for cluster metadata: the readiness probe for Kafka.
pub struct BrokerProbe {
    consumer: BaseConsumer,
}

impl BrokerProbe {
    pub fn new(brokers: &str) -> Result<Self, KafkaError> {
        Ok(Self {
            consumer: client_config(brokers, "users-probe").create()?,
        })
    }

    /// Blocks up to `timeout`; call it from a blocking thread.
    pub fn check(&self, timeout: Duration) -> Result<(), String> {
        let metadata = self
            .consumer
            .fetch_metadata(None, timeout)
            .map_err(|error| format!("broker did not answer: {error}"))?;
        if metadata.brokers().is_empty() {
            return Err("broker answered with no brokers".to_owned());
        }
        Ok(())
    }
}

/// Every (topic, partition) of the given topics, from the cluster's metadata.
pub async fn partitions(brokers: &str, topics: &[&str]) -> Result<Vec<(String, i32)>, KafkaError> {
    let consumer: BaseConsumer = client_config(brokers, "users-metadata").create()?;
    let topics: Vec<String> = topics.iter().map(|topic| (*topic).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut partitions = Vec::new();
        for topic in &topics {
            let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            for found in metadata.topics() {
                if let Some(error) = found.error() {
                    return Err(KafkaError::MetadataFetch(error.into()));
                }
                partitions.extend(found.partitions().iter().map(|p| (topic.clone(), p.id())));
            }
        }
        Ok(partitions)
    })
    .await
    .unwrap_or_else(|_| Err(KafkaError::Canceled))
}

/// The value of a record's header, when it is there and UTF-8.
pub fn header<'a, M: Message>(record: &'a M, name: &str) -> Option<&'a str> {
    let headers = record.headers()?;
    headers
        .iter()
        .find(|header| header.key == name)
        .and_then(|header| std::str::from_utf8(header.value?).ok())
}
