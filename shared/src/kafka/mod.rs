//! Kafka clients: where the cluster is and how to reach it (TLS, SASL), topic creation and
//! the broker probe.

use std::time::Duration;

use rdkafka::{
    ClientConfig, Message,
    admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::Headers,
    producer::FutureProducer,
};

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

/// Why topics could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(
        "the broker refused to create topic {topic} ({code}) with {partitions} partition(s) \
         and replication factor {replication} on a cluster of {brokers} broker(s)"
    )]
    Refused {
        topic: String,
        code: RDKafkaErrorCode,
        partitions: i32,
        replication: i32,
        brokers: usize,
    },
    #[error("topic {0} does not exist, and KAFKA_MANAGE_TOPICS=false forbids creating it")]
    Missing(String),
    #[error("cannot look topic {topic} up: {code}")]
    Lookup {
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error(
        "topic {topic} has {setting} {found}, where this service is configured for {wanted}: \
         fix the topic or the setting (a replay needs every record the topics were meant to keep)"
    )]
    Mismatch {
        topic: String,
        setting: &'static str,
        found: String,
        wanted: String,
    },
}

/// What the event topics keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Retention {
    /// Every record, for ever: a replay rebuilds the read model from the full history.
    Forever,
    /// Log compaction by key: each topic keeps at least every user's last record (a
    /// deleted user's last record is its deletion, which has a value and stays), so a
    /// replay rebuilds every user's current state, but not the history of changes.
    Compact,
}

/// What the topics must be, and whether the services make them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSettings {
    pub partitions: i32,
    /// Unset: as many replicas as the cluster has brokers, three at most.
    pub replication: Option<i32>,
    pub retention: Retention,
    /// Create the topics that are missing (`KAFKA_MANAGE_TOPICS`).
    pub manage: bool,
}

impl TopicSettings {
    /// `partitions` partitions of `replication` replicas each, kept for ever, created when
    /// missing.
    pub fn fixed(partitions: i32, replication: i32) -> Self {
        Self {
            partitions,
            replication: Some(replication),
            retention: Retention::Forever,
            manage: true,
        }
    }

    fn cleanup_policy(&self) -> &'static str {
        match self.retention {
            Retention::Forever => "delete",
            Retention::Compact => "compact",
        }
    }
}

/// Makes sure the topics exist as `settings` say: each is looked up in the cluster's
/// metadata (which needs no right to create anything); one that is missing is created when
/// `settings.manage`, and refused otherwise; one that exists must have the configured
/// partitions, cleanup policy and retention, since a topic that a broker auto-created with
/// its default 7-day retention would silently break replays.
pub async fn ensure_topics(
    cluster: &Cluster,
    topics: &[&str],
    settings: &TopicSettings,
) -> Result<(), TopicError> {
    let found = look_up(cluster, topics).await?;
    let missing: Vec<&str> = topics
        .iter()
        .copied()
        .filter(|topic| !found.contains_key(*topic))
        .collect();
    if let Some(first) = missing.first()
        && !settings.manage
    {
        return Err(TopicError::Missing((*first).to_owned()));
    }
    let existing: Vec<&str> = topics
        .iter()
        .copied()
        .filter(|topic| found.contains_key(*topic))
        .collect();
    for topic in &existing {
        if found[*topic] != settings.partitions as usize {
            return Err(TopicError::Mismatch {
                topic: (*topic).to_owned(),
                setting: "partitions",
                found: found[*topic].to_string(),
                wanted: settings.partitions.to_string(),
            });
        }
    }
    verify_configs(cluster, &existing, settings).await?;
    if missing.is_empty() {
        return Ok(());
    }
    create(cluster, &missing, settings).await
}

/// The partition count of each of `topics` that exists.
async fn look_up(
    cluster: &Cluster,
    topics: &[&str],
) -> Result<std::collections::HashMap<String, usize>, TopicError> {
    let consumer: BaseConsumer = cluster.client_config("users-metadata").create()?;
    let topics: Vec<String> = topics.iter().map(|topic| (*topic).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut found = std::collections::HashMap::new();
        for topic in topics {
            let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            for listed in metadata.topics() {
                match listed.error().map(RDKafkaErrorCode::from) {
                    None if !listed.partitions().is_empty() => {
                        found.insert(topic.clone(), listed.partitions().len());
                    }
                    None | Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {}
                    Some(RDKafkaErrorCode::LeaderNotAvailable) => {
                        // Being created; its partitions show once it is.
                        found.insert(topic.clone(), listed.partitions().len());
                    }
                    Some(code) => {
                        return Err(TopicError::Lookup {
                            topic: topic.clone(),
                            code,
                        });
                    }
                }
            }
        }
        Ok(found)
    })
    .await
    .unwrap_or(Err(TopicError::Kafka(KafkaError::Canceled)))
}

/// Checks what each existing topic keeps. A broker that does not describe a setting (the
/// development broker describes none) is taken at its word that the topic was made as
/// asked.
async fn verify_configs(
    cluster: &Cluster,
    topics: &[&str],
    settings: &TopicSettings,
) -> Result<(), TopicError> {
    if topics.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = cluster.client_config("users-admin").create()?;
    let resources: Vec<ResourceSpecifier<'_>> = topics
        .iter()
        .map(|topic| ResourceSpecifier::Topic(topic))
        .collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin.describe_configs(&resources, &options).await?;
    for (topic, result) in topics.iter().zip(described) {
        let Ok(resource) = result else {
            tracing::debug!(topic, "the broker did not describe the topic's settings");
            continue;
        };
        let value = |name: &str| {
            resource
                .get(name)
                .and_then(|entry| entry.value.clone())
                .filter(|value| !value.is_empty())
        };
        let mismatch = |setting: &'static str, found: String, wanted: &str| TopicError::Mismatch {
            topic: (*topic).to_owned(),
            setting,
            found,
            wanted: wanted.to_owned(),
        };
        let cleanup = value("cleanup.policy");
        if let Some(cleanup) = &cleanup
            && !cleanup
                .split(',')
                .any(|policy| policy.trim() == settings.cleanup_policy())
        {
            return Err(mismatch(
                "cleanup.policy",
                cleanup.clone(),
                settings.cleanup_policy(),
            ));
        }
        // A compacted topic keeps every user's last record whatever its age; a deleting one
        // must not delete by age or size.
        let deletes = cleanup
            .as_deref()
            .is_none_or(|cleanup| cleanup.contains("delete"));
        for setting in ["retention.ms", "retention.bytes"] {
            if let Some(found) = value(setting)
                && deletes
                && found != "-1"
            {
                return Err(mismatch(setting, found, "-1 (keep every record)"));
            }
        }
    }
    Ok(())
}

/// Creates `topics` as `settings` say.
async fn create(
    cluster: &Cluster,
    topics: &[&str],
    settings: &TopicSettings,
) -> Result<(), TopicError> {
    let brokers = broker_count(cluster).await?;
    let partitions = settings.partitions;
    let replication = settings
        .replication
        .unwrap_or_else(|| default_replication(brokers));
    // acks=all means "all in-sync replicas": with the broker's default of one, a single
    // replica could acknowledge a record whose outbox row is then deleted.
    let min_in_sync = replication.min(2).to_string();
    let admin: AdminClient<DefaultClientContext> = cluster.client_config("users-admin").create()?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| {
            NewTopic::new(name, partitions, TopicReplication::Fixed(replication))
                .set("cleanup.policy", settings.cleanup_policy())
                .set("retention.ms", "-1")
                .set("retention.bytes", "-1")
                .set("min.insync.replicas", &min_in_sync)
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(TopicError::Refused {
                    topic,
                    code,
                    partitions,
                    replication,
                    brokers,
                });
            }
        }
    }
    Ok(())
}

/// The replication factor a topic gets when none is configured.
fn default_replication(brokers: usize) -> i32 {
    brokers.clamp(1, 3) as i32
}

/// How many brokers the cluster's metadata lists.
async fn broker_count(cluster: &Cluster) -> Result<usize, KafkaError> {
    let consumer: BaseConsumer = cluster.client_config("users-metadata").create()?;
    tokio::task::spawn_blocking(move || {
        consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|metadata| metadata.brokers().len())
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
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
    fn replication_follows_the_cluster_up_to_three() {
        assert_eq!(default_replication(0), 1);
        assert_eq!(default_replication(1), 1);
        assert_eq!(default_replication(2), 2);
        assert_eq!(default_replication(5), 3);
    }

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
