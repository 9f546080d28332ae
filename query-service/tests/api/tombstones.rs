//! A deleted user's tombstone is purged once past its retention, and a late event for that
//! user still does not bring it back.

use std::{sync::Arc, time::Duration};

use shared_proto::v1;
use testkit::{
    broker,
    http::get as http_get,
    metrics::{parse_metrics, sample},
};
use uuid::Uuid;

use crate::helpers::*;

/// The user at `version`, changed `ago` before now.
fn user_at(id: Uuid, version: u64, ago: Duration) -> v1::User {
    let at = time::OffsetDateTime::now_utc() - ago;
    v1::User {
        updated_at: Some(prost_types::Timestamp {
            seconds: at.unix_timestamp(),
            nanos: 0,
        }),
        ..user(id, version, "Ada", "GB")
    }
}

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn a_purged_tombstone_stays_purged_and_late_events_do_not_bring_the_user_back() {
    let db = Arc::new(TestDatabase::create().await);
    let group = format!("group-{}", Uuid::new_v4());
    let mut app = start_query(
        db,
        &new_prefix(),
        &group,
        &[
            "--tombstone-retention=1d",
            "--tombstone-purge-interval=300ms",
        ],
    )
    .await;
    let writer = EventWriter::new(&broker::brokers());
    let (gone, recent) = (Uuid::now_v7(), Uuid::now_v7());
    publish(&writer, &app.topics, "created", &user_at(gone, 1, DAY * 10)).await;
    publish(&writer, &app.topics, "deleted", &user_at(gone, 3, DAY * 9)).await;
    publish(
        &writer,
        &app.topics,
        "created",
        &user_at(recent, 1, DAY / 12),
    )
    .await;
    publish(
        &writer,
        &app.topics,
        "deleted",
        &user_at(recent, 2, DAY / 24),
    )
    .await;

    eventually(
        "the old tombstone purged",
        Duration::from_secs(30),
        || async {
            let rows = app.view_rows().await;
            let has = |id: Uuid| rows.iter().any(|row| row.0 == id);
            (!has(gone) && has(recent)).then_some(())
        },
    )
    .await;

    // The update between the creation and the deletion, delivered late.
    publish(
        &writer,
        &app.topics,
        "updated",
        &user_at(gone, 2, DAY * 19 / 2),
    )
    .await;
    eventually(
        "the late update handled",
        Duration::from_secs(30),
        || async {
            let (_, metrics) = http_get(app.http_addr, "/metrics").await;
            let stale = sample(
                &parse_metrics(&metrics),
                "projector_events_total",
                &[
                    ("topic", app.topics.updated.as_str()),
                    ("outcome", "purged"),
                ],
            );
            (stale >= Some(1.0)).then_some(())
        },
    )
    .await;
    assert!(app.view_rows().await.iter().all(|row| row.0 != gone));
    let status = app.get(&gone.to_string()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    // New users still get in.
    let fresh = Uuid::now_v7();
    publish(
        &writer,
        &app.topics,
        "created",
        &user_at(fresh, 1, Duration::ZERO),
    )
    .await;
    app.wait_for(&fresh.to_string(), Some(1)).await;
}

#[tokio::test]
async fn a_read_model_catching_up_on_history_older_than_the_retention_keeps_every_live_user() {
    let db = Arc::new(TestDatabase::create().await);
    let mut app = start_query(
        db,
        &new_prefix(),
        &format!("group-{}", Uuid::new_v4()),
        &[
            "--tombstone-retention=1s",
            "--tombstone-purge-interval=200ms",
        ],
    )
    .await;
    let writer = EventWriter::new(&broker::brokers());
    // Deletions from an hour ago, projected and purged first.
    let deleted: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    for &id in &deleted {
        publish(&writer, &app.topics, "deleted", &user_at(id, 2, DAY / 24)).await;
    }
    eventually(
        "the deletions projected",
        Duration::from_secs(30),
        || async {
            let (_, metrics) = http_get(app.http_addr, "/metrics").await;
            let applied = sample(
                &parse_metrics(&metrics),
                "projector_events_total",
                &[
                    ("topic", app.topics.deleted.as_str()),
                    ("outcome", "applied"),
                ],
            );
            (applied == Some(deleted.len() as f64)).then_some(())
        },
    )
    .await;
    eventually(
        "their tombstones purged",
        Duration::from_secs(30),
        || async { app.view_rows().await.is_empty().then_some(()) },
    )
    .await;

    // The rest of a day-old history, consumed only now: every one of these users is live.
    let live: Vec<Uuid> = (0..50).map(|_| Uuid::now_v7()).collect();
    for &id in &live {
        publish(&writer, &app.topics, "created", &user_at(id, 1, DAY)).await;
    }
    eventually(
        "every live user in the view",
        Duration::from_secs(30),
        || async {
            let rows = app.view_rows().await;
            let present = live
                .iter()
                .filter(|id| rows.iter().any(|row| row.0 == **id && !row.2))
                .count();
            (present == live.len()).then_some(())
        },
    )
    .await;
    // And a deleted user stays gone, its purge notwithstanding.
    let status = app.get(&deleted[0].to_string()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
}
