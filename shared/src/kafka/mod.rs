//! Kafka clients: where the cluster is and how to reach it (TLS, SASL), the producer, the
//! broker probe and record headers; topic creation is in `topic_admin`.

mod topic_admin;

use std::time::Duration;

use rdkafka::{
    ClientConfig, Message,
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::Headers,
    producer::FutureProducer,
};

pub use self::topic_admin::{Retention, TopicError, TopicSettings, ensure_topics};

/// A Kafka cluster and how to reach it: its bootstrap brokers, and the librdkafka security
/// settings (`security.protocol`, `sasl.*`, `ssl.ca.location`) every client gets.
#[derive(Clone)]
pub struct Cluster {
    brokers: String,
    security: Vec<(&'static str, String)>,
}

impl Cluster {
    /// Brokers reached over plain TCP with no authentication (a developer's broker).
    pub fn plaintext(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            security: Vec::new(),
        }
    }

    /// Brokers reached with these librdkafka security settings.
    pub fn secured(brokers: impl Into<String>, security: Vec<(&'static str, String)>) -> Self {
        Self {
            brokers: brokers.into(),
            security,
        }
    }

    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// Configuration every client of the services starts from.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut config = client_config(&self.brokers, client_id);
        for (key, value) in &self.security {
            config.set(*key, value);
        }
        config
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<(&str, &str)> = self
            .security
            .iter()
            .map(|(key, value)| {
                let value = if key.contains("password") {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (*key, value)
            })
            .collect();
        f.debug_struct("Cluster")
            .field("brokers", &self.brokers)
            .field("security", &shown)
            .finish()
    }
}

fn client_config(brokers: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", client_id)
        .set("socket.keepalive.enable", "true")
        // Requests are small and pipelined: with Nagle on, each waits for the broker's
        // delayed ACK of the one before (tens of milliseconds from commit to broker).
        .set("socket.nagle.disable", "true")
        // A consumer's metadata request never creates a topic (producers never ask): topics
        // come from `ensure_topics`, with the settings replay depends on.
        .set("allow.auto.create.topics", "false")
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

/// Asks a broker for cluster metadata: the readiness probe for Kafka.
pub struct BrokerProbe {
    consumer: BaseConsumer,
}

impl BrokerProbe {
    pub fn new(cluster: &Cluster) -> Result<Self, KafkaError> {
        Ok(Self {
            consumer: cluster.client_config("users-probe").create()?,
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
pub async fn partitions(
    cluster: &Cluster,
    topics: &[&str],
) -> Result<Vec<(String, i32)>, KafkaError> {
    let consumer: BaseConsumer = cluster.client_config("users-metadata").create()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_take_tls_and_sasl_scram_settings() {
        // librdkafka refuses these at creation when built without OpenSSL.
        let cluster = Cluster::secured(
            "127.0.0.1:1",
            vec![
                ("security.protocol", "sasl_ssl".to_owned()),
                ("sasl.mechanism", "SCRAM-SHA-512".to_owned()),
                ("sasl.username", "users".to_owned()),
                ("sasl.password", "secret".to_owned()),
            ],
        );
        let created: Result<BaseConsumer, _> = cluster.client_config("test").create();
        assert!(created.is_ok(), "{:?}", created.err());
    }

    #[test]
    fn a_cluster_never_prints_its_password() {
        let cluster = Cluster::secured(
            "b:9093",
            vec![
                ("sasl.username", "users".to_owned()),
                ("sasl.password", "hunter22".to_owned()),
            ],
        );
        let printed = format!("{cluster:?}");
        assert!(
            printed.contains("users") && !printed.contains("hunter22"),
            "{printed}"
        );
    }
}
