//! Topics the platform manages: looked up, never created to learn they exist, and refused
//! when made with other settings than the service's.

use std::time::Duration;

use shared::kafka::{self, TopicSettings};

use crate::helpers::*;
use testkit::broker;

#[tokio::test]
async fn a_service_forbidden_to_create_topics_publishes_once_they_are_made_for_it() {
    let mut app = spawn_app_with(&broker::brokers(), &["--kafka-manage-topics=false"]).await;
    app.create_user(&unique_email()).await;

    let refused = app.relay.relay_once().await.expect_err("no topics yet");
    assert!(
        refused.to_string().contains("KAFKA_MANAGE_TOPICS=false"),
        "{refused}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let partitions = kafka::partitions(&broker::cluster(), &app.topics.events()).await;
    assert!(
        partitions.is_err() || partitions.as_ref().is_ok_and(Vec::is_empty),
        "the service created topics it was told not to: {partitions:?}"
    );
    assert_eq!(app.outbox_len().await, 1, "the event waits in the outbox");

    // The platform makes them, as the service expects them.
    kafka::ensure_topics(
        &broker::cluster(),
        &app.topics.events(),
        &TopicSettings::fixed(PARTITIONS, 1),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.outbox_len().await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "never published");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_topic_made_with_other_settings_than_the_services_is_refused_by_name() {
    let prefix = new_prefix();
    let topics = shared_proto::topics::Topics::with_prefix(&prefix);
    kafka::ensure_topics(
        &broker::cluster(),
        &topics.events(),
        &TopicSettings::fixed(1, 1),
    )
    .await
    .unwrap();
    let app = spawn_app_on(&broker::brokers(), &prefix, &[]).await;
    let refused = app
        .relay
        .relay_once()
        .await
        .expect_err("one partition where three are configured");
    let said = refused.to_string();
    assert!(
        said.contains("partitions") && said.contains(&topics.created),
        "{said}"
    );
}
