//! Topics as the services expect them: created when missing (when the service manages
//! them), and checked against the settings the services rely on when they exist.

use std::time::Duration;

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    error::{KafkaError, RDKafkaErrorCode},
};

use super::Cluster;

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
}
