use std::time::Duration;

use rdkafka::Message;
use shared_proto::event_headers;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn duplicated_and_out_of_order_events_give_the_in_order_view() {
    let mut app = spawn_query().await;
    let writer = EventWriter::new(&testkit::broker::brokers());
    let (kept, deleted) = (Uuid::now_v7(), Uuid::now_v7());

    // `kept`: its late create and an old update arrive after the newest update, twice.
    publish(
        &writer,
        &app.topics,
        "updated",
        &user(kept, 3, "Third", "GB"),
    )
    .await;
    publish(
        &writer,
        &app.topics,
        "created",
        &user(kept, 1, "First", "GB"),
    )
    .await;
    publish(
        &writer,
        &app.topics,
        "updated",
        &user(kept, 2, "Second", "GB"),
    )
    .await;
    publish(
        &writer,
        &app.topics,
        "updated",
        &user(kept, 3, "Third", "GB"),
    )
    .await;
    publish(
        &writer,
        &app.topics,
        "created",
        &user(kept, 1, "First", "GB"),
    )
    .await;
    // `deleted`: the delete overtakes its create and update; they must not bring it back.
    publish(
        &writer,
        &app.topics,
        "deleted",
        &user(deleted, 3, "Gone", "FR"),
    )
    .await;
    publish(
        &writer,
        &app.topics,
        "created",
        &user(deleted, 1, "Back?", "FR"),
    )
    .await;
    publish(
        &writer,
        &app.topics,
        "updated",
        &user(deleted, 2, "Back?", "FR"),
    )
    .await;

    let seen = app.wait_for(&kept.to_string(), Some(3)).await.unwrap();
    assert_eq!(seen.first_name, "Third");
    app.wait_for(&deleted.to_string(), None).await;
    // Every event was acknowledged before these waits began, and a stale one that is
    // projected late must change nothing: give any straggler time to land, then look.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = app.view_rows().await;

    let kept_row = rows.iter().find(|(id, ..)| *id == kept).unwrap();
    assert_eq!(
        (kept_row.1, kept_row.2, kept_row.3.as_str()),
        (3, false, "Third")
    );
    let deleted_row = rows.iter().find(|(id, ..)| *id == deleted).unwrap();
    assert_eq!(
        (deleted_row.1, deleted_row.2),
        (3, true),
        "a tombstone stays"
    );
    assert_eq!(
        app.get(&deleted.to_string()).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

#[tokio::test]
async fn a_poison_record_is_dead_lettered_and_the_next_one_applied() {
    let mut app = spawn_query().await;
    let brokers = testkit::broker::brokers();
    let writer = EventWriter::new(&brokers);
    let poison_key = Uuid::now_v7().to_string();
    writer
        .send(
            &app.topics.created,
            &poison_key,
            b"\x08\x96\x01 this is not a UserCreatedEvent \xff",
            &[("origin", "test")],
        )
        .await;
    let next = Uuid::now_v7();
    publish(&writer, &app.topics, "created", &user(next, 1, "Ada", "GB")).await;

    // Records of one key share a partition, but `next` may sit on another; either way it is
    // applied although the poison record came first.
    app.wait_for(&next.to_string(), Some(1)).await;

    let mut dead_letters = EventReader::new(&brokers, &[&app.topics.dead_letter], PARTITIONS);
    let record = &dead_letters.read(1, Duration::from_secs(30)).await[0];
    assert_eq!(record.key(), Some(poison_key.as_bytes()));
    assert_eq!(
        header(record, event_headers::DLQ_ORIGIN_TOPIC),
        Some(app.topics.created.as_str())
    );
    assert!(header(record, event_headers::DLQ_ORIGIN_PARTITION).is_some());
    assert!(
        header(record, event_headers::DLQ_ORIGIN_OFFSET)
            .unwrap()
            .parse::<i64>()
            .is_ok()
    );
    assert!(
        header(record, event_headers::DLQ_REASON)
            .unwrap()
            .contains("UserCreatedEvent")
    );
    assert_eq!(
        header(record, "origin"),
        Some("test"),
        "the original headers are kept"
    );
}

#[tokio::test]
async fn a_projector_restarted_mid_stream_ends_with_the_same_view() {
    let app = spawn_query().await;
    let writer = EventWriter::new(&testkit::broker::brokers());
    let ids: Vec<Uuid> = (0..30).map(|_| Uuid::now_v7()).collect();
    for id in &ids[..15] {
        publish(&writer, &app.topics, "created", &user(*id, 1, "Ada", "GB")).await;
    }
    eventually("some events projected", Duration::from_secs(30), || async {
        (!app.view_rows().await.is_empty()).then_some(())
    })
    .await;

    let (db, prefix, group) = (app.db.clone(), app.prefix.clone(), app.group.clone());
    app.stop().await.expect("a clean stop");
    for id in &ids[15..] {
        publish(
            &writer,
            &app_topics(&prefix),
            "created",
            &user(*id, 1, "Ada", "GB"),
        )
        .await;
    }
    for id in &ids[..10] {
        publish(
            &writer,
            &app_topics(&prefix),
            "updated",
            &user(*id, 2, "Augusta", "GB"),
        )
        .await;
    }

    let mut restarted = start_query(db, &prefix, &group, &[]).await;
    for (n, id) in ids.iter().enumerate() {
        restarted
            .wait_for(&id.to_string(), Some(if n < 10 { 2 } else { 1 }))
            .await;
    }
    let rows = restarted.view_rows().await;
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|(id, version, deleted, _)| {
        !deleted && *version == if ids[..10].contains(id) { 2 } else { 1 }
    }));
}

fn app_topics(prefix: &str) -> shared_proto::topics::Topics {
    shared_proto::topics::Topics::with_prefix(prefix)
}

#[tokio::test]
async fn a_position_inside_a_producer_batch_resumes_without_skipping_its_rest() {
    let brokers = testkit::broker::brokers();
    let prefix = new_prefix();
    let topics = shared_proto::topics::Topics::with_prefix(&prefix);
    shared::kafka::ensure_topics(
        &shared::kafka::Cluster::plaintext(brokers.to_owned()),
        &topics.events(),
        &shared::kafka::TopicSettings::fixed(PARTITIONS, 1),
    )
    .await
    .unwrap();
    // Sent together, the records share producer batches.
    let writer = EventWriter::new(&brokers);
    let ids: Vec<Uuid> = (0..30).map(|_| Uuid::now_v7()).collect();
    let users: Vec<_> = ids.iter().map(|id| user(*id, 1, "Ada", "GB")).collect();
    futures::future::join_all(
        users
            .iter()
            .map(|u| publish(&writer, &topics, "created", u)),
    )
    .await;

    // The group's position: two records into each partition, inside its first batch.
    let group = format!("group-{}", Uuid::new_v4());
    let committer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut position = rdkafka::TopicPartitionList::new();
    for topic in topics.events() {
        for partition in 0..PARTITIONS {
            position
                .add_partition_offset(topic, partition, rdkafka::Offset::Offset(2))
                .unwrap();
        }
    }
    rdkafka::consumer::Consumer::commit(&committer, &position, rdkafka::consumer::CommitMode::Sync)
        .expect("the position is committed");

    let db = std::sync::Arc::new(TestDatabase::create().await);
    let mut app = start_query(db, &prefix, &group, &[]).await;
    let mut per_partition = std::collections::HashMap::<i32, Vec<Uuid>>::new();
    let mut reader = EventReader::new(&brokers, &[&topics.created], PARTITIONS);
    for record in reader.read(30, Duration::from_secs(30)).await {
        let id = Uuid::parse_str(std::str::from_utf8(record.key().unwrap()).unwrap()).unwrap();
        per_partition
            .entry(record.partition())
            .or_default()
            .push(id);
    }
    // Everything from offset 2 on must be projected; what came before may be too.
    for ids in per_partition.values() {
        for id in ids.iter().skip(2) {
            app.wait_for(&id.to_string(), Some(1)).await;
        }
    }
}
