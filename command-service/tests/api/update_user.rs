use std::time::Duration;

use prost_types::FieldMask;
use shared_proto::event_headers;
use shared_proto::v1::{self, UserUpdatedEvent};
use tonic::Code;

use crate::helpers::*;

fn update(id: &str, paths: &[&str], user: v1::User) -> v1::UpdateUserRequest {
    v1::UpdateUserRequest {
        user: Some(v1::User {
            id: id.to_owned(),
            ..user
        }),
        update_mask: Some(FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
        password: String::new(),
        expected_version: None,
        request_id: String::new(),
    }
}

#[tokio::test]
async fn update_changes_only_masked_fields_bumps_the_version_and_publishes_them() {
    let mut app = spawn_app().await;
    let mut events = app.events().await;
    let created = app.create_user(&unique_email()).await;

    let new_values = v1::User {
        last_name: "Byron".into(),
        country: "FR".into(),
        first_name: "ignored: not in the mask".into(),
        ..v1::User::default()
    };
    let updated = app
        .update(update(&created.id, &["last_name", "country"], new_values))
        .await;

    assert_eq!(updated.version, 2);
    assert_eq!(
        (updated.last_name.as_str(), updated.country.as_str()),
        ("Byron", "FR")
    );
    assert_eq!(updated.first_name, created.first_name);
    assert_eq!(updated.created_at, created.created_at);

    let records = events.read(2, Duration::from_secs(20)).await;
    let record = records
        .iter()
        .find(|r| rdkafka::Message::topic(*r) == app.topics.updated)
        .expect("an event on user-updated");
    assert_eq!(key(record), created.id);
    assert_eq!(header(record, event_headers::VERSION), Some("2"));
    assert_eq!(
        header(record, event_headers::EVENT_TYPE),
        Some(event_headers::USER_UPDATED)
    );
    let event: UserUpdatedEvent = decode(record);
    assert_eq!(event.user.as_ref(), Some(&updated));
    assert_eq!(event.changed_fields, ["last_name", "country"]);
}

#[tokio::test]
async fn a_password_change_is_hashed_and_named_but_never_published() {
    let mut app = spawn_app().await;
    let mut events = app.events().await;
    let created = app.create_user(&unique_email()).await;
    let client = app.db.client().await;
    let hash_of = |id: String| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT password_hash FROM users WHERE id = $1::text::uuid",
                    &[&id],
                )
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    let old_hash = hash_of(created.id.clone()).await;

    let mut request = update(&created.id, &["password"], v1::User::default());
    request.password = "a brand new passphrase".into();
    let updated = app.update(request).await;

    assert_eq!(updated.version, 2);
    let new_hash = hash_of(created.id.clone()).await;
    assert!(new_hash.starts_with("$argon2id$") && new_hash != old_hash);
    let records = events.read(2, Duration::from_secs(20)).await;
    let record = records
        .iter()
        .find(|r| rdkafka::Message::topic(*r) == app.topics.updated)
        .expect("an event on user-updated");
    let event: UserUpdatedEvent = decode(record);
    assert_eq!(event.changed_fields, ["password"]);
    let payload = rdkafka::Message::payload(record).unwrap();
    assert!(
        !payload
            .windows(9)
            .any(|w| w == b"passphras" || w == b"$argon2id")
    );
}

#[tokio::test]
async fn an_update_that_changes_nothing_keeps_the_version_and_publishes_nothing() {
    let mut app = spawn_app().await;
    let mut events = app.events().await;
    let created = app.create_user(&unique_email()).await;

    let same = v1::User {
        first_name: created.first_name.clone(),
        ..v1::User::default()
    };
    let unchanged = app.update(update(&created.id, &["first_name"], same)).await;

    assert_eq!(unchanged, created);
    events.read(1, Duration::from_secs(20)).await;
    events.expect_nothing(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_stale_expected_version_is_aborted_and_changes_nothing() {
    let mut app = spawn_app().await;
    let created = app.create_user(&unique_email()).await;
    let mut request = update(
        &created.id,
        &["nickname"],
        v1::User {
            nickname: "lovelace".into(),
            ..v1::User::default()
        },
    );
    request.expected_version = Some(7);

    let status = app.client.update_user(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert!(
        status.message().contains("version 1"),
        "{}",
        status.message()
    );

    request.expected_version = Some(1);
    let updated = app.update(request).await;
    assert_eq!(
        (updated.nickname.as_str(), updated.version),
        ("lovelace", 2)
    );
}

#[tokio::test]
async fn bad_masks_ids_and_values_are_invalid_argument() {
    let mut app = spawn_app().await;
    let created = app.create_user(&unique_email()).await;
    let cases = [
        (update(&created.id, &[], v1::User::default()), "update_mask"),
        (
            update(&created.id, &["shoe_size"], v1::User::default()),
            "update_mask",
        ),
        (
            update(&created.id, &["version"], v1::User::default()),
            "update_mask",
        ),
        (
            update("not-a-uuid", &["nickname"], v1::User::default()),
            "id",
        ),
        (
            update(
                &created.id,
                &["email"],
                v1::User {
                    email: "nope".into(),
                    ..v1::User::default()
                },
            ),
            "email",
        ),
        (
            update(
                &created.id,
                &["country"],
                v1::User {
                    country: "gb".into(),
                    ..v1::User::default()
                },
            ),
            "country",
        ),
        (
            update(&created.id, &["password"], v1::User::default()),
            "password",
        ),
    ];
    for (request, field) in cases {
        let status = app.client.update_user(request).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{field}: {}",
            status.message()
        );
        assert_eq!(violations(&status)[0].0, field, "{}", status.message());
    }
}

#[tokio::test]
async fn updating_a_missing_user_is_not_found() {
    let mut app = spawn_app().await;
    let id = uuid::Uuid::now_v7().to_string();
    let status = app
        .client
        .update_user(update(&id, &["nickname"], v1::User::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn taking_another_users_email_is_already_exists() {
    let mut app = spawn_app().await;
    let taken = unique_email();
    app.create_user(&taken).await;
    let other = app.create_user(&unique_email()).await;

    let status = app
        .client
        .update_user(update(
            &other.id,
            &["email"],
            v1::User {
                email: taken.to_uppercase(),
                ..v1::User::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn concurrent_updates_of_one_user_each_get_their_own_version_and_event() {
    let mut app = spawn_app().await;
    let mut events = app.events().await;
    let created = app.create_user(&unique_email()).await;
    let calls: Vec<_> = (0..20)
        .map(|n| {
            let mut client = app.client.clone();
            let request = update(
                &created.id,
                &["nickname"],
                v1::User {
                    nickname: format!("racer{n}"),
                    ..v1::User::default()
                },
            );
            tokio::spawn(async move { client.update_user(request).await })
        })
        .collect();
    let mut versions = Vec::new();
    for call in calls {
        match call.await.unwrap() {
            Ok(response) => versions.push(response.into_inner().user.unwrap().version),
            // Outrun three times in a row: the caller is told to retry, nothing is written.
            Err(status) => assert_eq!(status.code(), Code::Aborted, "{status:?}"),
        }
    }
    versions.sort_unstable();
    let expected: Vec<u64> = (2..2 + versions.len() as u64).collect();
    assert_eq!(
        versions, expected,
        "each write its own version, none skipped"
    );

    let records = events
        .read(1 + versions.len(), Duration::from_secs(20))
        .await;
    let mut published: Vec<u64> = records
        .iter()
        .filter(|r| rdkafka::Message::topic(*r) == app.topics.updated)
        .map(|r| decode::<UserUpdatedEvent>(r).user.unwrap().version)
        .collect();
    published.sort_unstable();
    assert_eq!(published, expected, "one event per write");
}
