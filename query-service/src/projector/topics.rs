//! The projector's topics: created (events and dead letters) before it consumes, retrying
//! until the broker answers.

use std::time::Duration;

use shared::{
    backoff::Backoff,
    config::KafkaArgs,
    kafka::{self, Cluster},
};
use shared_proto::topics::Topics;
use tokio_util::sync::CancellationToken;

use super::Projector;

impl Projector {
    /// Creates the topics, then projects until `shutdown`.
    pub async fn consume(
        self,
        cluster: Cluster,
        kafka_args: KafkaArgs,
        topics: Topics,
        shutdown: CancellationToken,
    ) {
        if ensure_topics(&cluster, &kafka_args, &topics, &shutdown).await {
            self.run(shutdown).await;
        }
    }
}

/// Creates the topics (events and dead letters), retrying until the broker answers.
async fn ensure_topics(
    cluster: &Cluster,
    kafka_args: &KafkaArgs,
    topics: &Topics,
    shutdown: &CancellationToken,
) -> bool {
    let events = kafka_args.topic_settings();
    // Dead letters are kept whole, whatever the event topics keep.
    let dead_letters = kafka::TopicSettings {
        retention: kafka::Retention::Forever,
        ..events
    };
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let created = match kafka::ensure_topics(cluster, &topics.events(), &events).await {
            Ok(()) => kafka::ensure_topics(cluster, &[&topics.dead_letter], &dead_letters).await,
            failed => failed,
        };
        match created {
            Ok(()) => return true,
            Err(error) => {
                tracing::error!(%error, retry_in = ?backoff.upcoming(), "cannot create the topics; the projector waits")
            }
        }
        if !backoff.sleep(shutdown).await {
            return false;
        }
    }
}
