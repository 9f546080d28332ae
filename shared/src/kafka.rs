//! Kafka clients: common configuration, topic creation and the broker probe.

use std::time::Duration;

use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    error::{KafkaError, RDKafkaErrorCode},
};

/// Configuration every client of the services starts from.
pub fn client_config(brokers: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", client_id)
        .set("socket.keepalive.enable", "true")
        // A broker that is down is an expected state (the outbox waits for it); librdkafka's
        // default would log every reconnect attempt as an error.
        .set("log_level", "4");
    config
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
