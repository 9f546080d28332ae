//! Safe retries: a write sent again with its request_id is answered as the first attempt
//! was and changes and publishes nothing, within REQUEST_ID_RETENTION.

use std::time::Duration;

use prost_types::FieldMask;
use shared_proto::v1;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::*;

fn marked_create(email: &str, request_id: &str) -> v1::CreateUserRequest {
    v1::CreateUserRequest {
        request_id: request_id.to_owned(),
        ..create_request(email)
    }
}

fn marked_update(id: &str, first_name: &str, request_id: &str) -> v1::UpdateUserRequest {
    v1::UpdateUserRequest {
        user: Some(v1::User {
            id: id.to_owned(),
            first_name: first_name.to_owned(),
            ..v1::User::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["first_name".to_owned()],
        }),
        password: String::new(),
        expected_version: None,
        request_id: request_id.to_owned(),
    }
}

fn marked_delete(id: &str, request_id: &str) -> v1::DeleteUserRequest {
    v1::DeleteUserRequest {
        id: id.to_owned(),
        expected_version: None,
        request_id: request_id.to_owned(),
    }
}

fn new_request_id() -> String {
    Uuid::new_v4().to_string()
}

#[tokio::test]
async fn a_retried_create_answers_the_user_it_created_and_publishes_once() {
    let mut app = spawn_app().await;
    let mut events = app.events().await;
    let (email, request_id) = (unique_email(), new_request_id());

    let first = app
        .client
        .create_user(marked_create(&email, &request_id))
        .await
        .unwrap()
        .into_inner();
    let again = app
        .client
        .create_user(marked_create(&email, &request_id))
        .await
        .expect("a retry is answered, not ALREADY_EXISTS")
        .into_inner();
    assert_eq!(again, first);

    // A retry with another password is the same request: passwords are never compared.
    let mut other_password = marked_create(&email, &request_id);
    other_password.password = "another good password".into();
    let third = app.client.create_user(other_password).await.unwrap();
    assert_eq!(third.into_inner(), first);

    let records = events.read(1, Duration::from_secs(20)).await;
    assert_eq!(key(&records[0]), first.user.unwrap().id);
    events.expect_nothing(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_retried_update_or_delete_is_answered_as_the_first_and_changes_nothing() {
    let mut app = spawn_app().await;
    let created = app.create_user(&unique_email()).await;
    let mut events = app.events().await;
    events.read(1, Duration::from_secs(20)).await;

    let request_id = new_request_id();
    let first = app
        .update(marked_update(&created.id, "Augusta", &request_id))
        .await;
    assert_eq!(first.version, 2);
    // Meanwhile another call changes the user: the retry still answers what the first got.
    app.update(marked_update(&created.id, "Ada", "")).await;
    let again = app
        .update(marked_update(&created.id, "Augusta", &request_id))
        .await;
    assert_eq!(again, first);
    events.read(2, Duration::from_secs(20)).await;

    let delete_id = new_request_id();
    app.client
        .delete_user(marked_delete(&created.id, &delete_id))
        .await
        .unwrap();
    app.client
        .delete_user(marked_delete(&created.id, &delete_id))
        .await
        .expect("a retried delete answers OK, not NOT_FOUND");
    events.read(1, Duration::from_secs(20)).await;
    events.expect_nothing(Duration::from_secs(2)).await;

    let unmarked = app
        .client
        .delete_user(marked_delete(&created.id, ""))
        .await
        .unwrap_err();
    assert_eq!(unmarked.code(), Code::NotFound);
}

#[tokio::test]
async fn a_request_id_reused_for_another_request_or_malformed_is_invalid_argument() {
    let mut app = spawn_app().await;
    let request_id = new_request_id();
    let created = app
        .client
        .create_user(marked_create(&unique_email(), &request_id))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();

    let other_email = app
        .client
        .create_user(marked_create(&unique_email(), &request_id))
        .await
        .unwrap_err();
    let other_method = app
        .client
        .delete_user(marked_delete(&created.id, &request_id))
        .await
        .unwrap_err();
    let malformed = app
        .client
        .delete_user(marked_delete(&created.id, "retry-1"))
        .await
        .unwrap_err();
    for status in [other_email, other_method, malformed] {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let fields: Vec<_> = testkit::grpc::field_violations(&status)
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(fields, ["request_id"], "{status:?}");
    }
    // Refused requests changed nothing: the user is still there at version 1.
    let again = app
        .update(marked_update(&created.id, &created.first_name, ""))
        .await;
    assert_eq!(again.version, 1);
}

#[tokio::test]
async fn a_failed_request_records_nothing_so_its_retry_runs_again() {
    let mut app = spawn_app().await;
    let email = unique_email();
    app.create_user(&email).await;
    let request_id = new_request_id();
    for _ in 0..2 {
        let taken = app
            .client
            .create_user(marked_create(&email, &request_id))
            .await
            .unwrap_err();
        assert_eq!(taken.code(), Code::AlreadyExists);
    }
}

#[tokio::test]
async fn concurrent_copies_of_one_request_create_one_user() {
    let app = spawn_app().await;
    let (email, request_id) = (unique_email(), new_request_id());
    let copies = (0..8).map(|_| {
        let mut client = app.client.clone();
        let request = marked_create(&email, &request_id);
        async move { client.create_user(request).await.map(|r| r.into_inner()) }
    });
    let answers: Vec<_> = futures::future::join_all(copies).await;
    let first = answers[0].as_ref().expect("answered").clone();
    for answer in &answers {
        assert_eq!(answer.as_ref().expect("every copy answered"), &first);
    }
}

#[tokio::test]
async fn after_the_retention_a_request_id_is_forgotten_and_purged() {
    let mut app = spawn_app_with(&testkit::broker::brokers(), &["--request-id-retention=1s"]).await;
    let created = app.create_user(&unique_email()).await;
    let request_id = new_request_id();
    app.client
        .delete_user(marked_delete(&created.id, &request_id))
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = app
        .client
        .delete_user(marked_delete(&created.id, &request_id))
        .await
        .unwrap_err();
    assert_eq!(
        late.code(),
        Code::NotFound,
        "a retry after the retention runs again"
    );

    let db = app.db.client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let kept: i64 = db
            .query_one("SELECT count(*) FROM request_ids", &[])
            .await
            .unwrap()
            .get(0);
        if kept == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kept} expired request ids not purged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
