use std::time::Duration;

use shared_proto::event_headers;
use shared_proto::v1::{self, UserDeletedEvent};
use tonic::Code;

use crate::helpers::*;

fn delete(id: &str, expected_version: Option<u64>) -> v1::DeleteUserRequest {
    v1::DeleteUserRequest {
        id: id.to_owned(),
        expected_version,
        request_id: String::new(),
    }
}

#[tokio::test]
async fn delete_publishes_the_last_state_one_version_later_and_frees_the_email() {
    let mut app = spawn_app().await;
    let mut events = app.events().await;
    let email = unique_email();
    let created = app.create_user(&email).await;

    app.client
        .delete_user(delete(&created.id, Some(1)))
        .await
        .unwrap();

    let records = events.read(2, Duration::from_secs(20)).await;
    let record = records
        .iter()
        .find(|r| rdkafka::Message::topic(*r) == app.topics.deleted)
        .expect("an event on user-deleted");
    assert_eq!(key(record), created.id);
    assert_eq!(header(record, event_headers::VERSION), Some("2"));
    let event: UserDeletedEvent = decode(record);
    let last = event.user.expect("the last state");
    assert_eq!((last.email.as_str(), last.version), (email.as_str(), 2));
    assert_eq!(last.first_name, created.first_name);
    assert!(event.deleted_at.is_some());

    // The address is free again.
    app.create_user(&email).await;
}

#[tokio::test]
async fn deleting_a_missing_or_deleted_user_is_not_found() {
    let mut app = spawn_app().await;
    let created = app.create_user(&unique_email()).await;
    app.client
        .delete_user(delete(&created.id, None))
        .await
        .unwrap();

    let again = app
        .client
        .delete_user(delete(&created.id, None))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
}

#[tokio::test]
async fn a_stale_expected_version_keeps_the_user() {
    let mut app = spawn_app().await;
    let created = app.create_user(&unique_email()).await;

    let status = app
        .client
        .delete_user(delete(&created.id, Some(2)))
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::Aborted);
    let client = app.db.client().await;
    let count: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_malformed_id_is_invalid_argument() {
    let mut app = spawn_app().await;
    for id in ["", "123", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"] {
        let status = app.client.delete_user(delete(id, None)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violations(&status)[0].0, "id");
    }
}

#[tokio::test]
async fn a_deletion_that_waited_for_a_concurrent_change_is_timed_after_it() {
    let mut app = spawn_app().await;
    let mut events = app.events().await;
    let created = app.create_user(&unique_email()).await;
    let id = uuid::Uuid::parse_str(&created.id).unwrap();

    // Another writer holds the row; the deletion's transaction starts, then waits for it.
    let mut other = app.db.client().await;
    let held = other.transaction().await.unwrap();
    held.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&id])
        .await
        .unwrap();
    let mut client = app.client.clone();
    let deleting = tokio::spawn({
        let id = created.id.clone();
        async move { client.delete_user(delete(&id, None)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let changed_at: time::OffsetDateTime = held
        .query_one(
            "UPDATE users SET updated_at = clock_timestamp(), version = version + 1 \
             WHERE id = $1 RETURNING updated_at",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    held.commit().await.unwrap();
    deleting.await.unwrap().expect("deleted");

    let records = events.read(2, Duration::from_secs(20)).await;
    let record = records
        .iter()
        .find(|r| rdkafka::Message::topic(*r) == app.topics.deleted)
        .expect("an event on user-deleted");
    let last = decode::<UserDeletedEvent>(record)
        .user
        .expect("the last state");
    let deleted_at = last.updated_at.expect("updated_at");
    let deleted_at = time::OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(deleted_at.seconds) * 1_000_000_000 + i128::from(deleted_at.nanos),
    )
    .unwrap();
    assert!(
        deleted_at > changed_at,
        "the tombstone ({deleted_at}) is older than the change it follows ({changed_at})"
    );
    assert_eq!(last.version, 3);
}
