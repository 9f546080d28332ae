//! What one caller can cost: calls past the in-flight limit are answered at once, and a huge
//! bad value makes a short answer.

use std::{sync::Arc, time::Duration};

use shared_proto::v1;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn a_call_past_the_in_flight_limit_is_answered_unavailable_at_once() {
    let app = start_query(
        Arc::new(TestDatabase::create().await),
        &new_prefix(),
        &format!("group-{}", Uuid::new_v4()),
        &["--grpc-max-in-flight=1"],
    )
    .await;
    // Holds the one place: it waits for a version that never comes.
    let mut waiting = app.client.clone();
    let held = tokio::spawn(async move {
        waiting
            .get_user(v1::GetUserRequest {
                id: Uuid::now_v7().to_string(),
                min_version: Some(5),
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let refused = app
        .client
        .clone()
        .list_users(v1::ListUsersRequest {
            filter: None,
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("in flight"),
        "{}",
        refused.message()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    held.abort();
}

#[tokio::test]
async fn a_five_thousand_character_country_is_refused_in_a_short_answer() {
    let mut app = spawn_query().await;
    let status = app
        .client
        .list_users(v1::ListUsersRequest {
            filter: Some(v1::UserFilter {
                countries: vec!["X".repeat(5_000)],
                updated_after: None,
                query: String::new(),
            }),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().len() < 400, "{}", status.message().len());
}

#[test]
fn help_and_errors_never_show_a_secret() {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_query-service"))
            .args(args)
            .env(
                "DATABASE_URL",
                "postgres://users:hunter2-password@db.example:5432/users_read",
            )
            .env("PAGE_TOKEN_SECRET", "hunter2-page-token-secret")
            .env("KAFKA_SASL_PASSWORD", "hunter2-kafka")
            .output()
            .expect("query-service runs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let help = run(&["--help"]);
    assert!(help.contains("DATABASE_URL"), "{help}");
    assert!(!help.contains("hunter2"), "a secret in --help:\n{help}");
    let bad_url = std::process::Command::new(env!("CARGO_BIN_EXE_query-service"))
        .arg("migrate")
        .env(
            "DATABASE_URL",
            "postgres://users:hunter2-password@db.example:5432",
        )
        .output()
        .expect("query-service runs");
    let said = String::from_utf8_lossy(&bad_url.stderr);
    assert!(!bad_url.status.success());
    assert!(said.contains("DATABASE_URL"), "{said}");
    assert!(!said.contains("hunter2"), "a secret in an error:\n{said}");
}
