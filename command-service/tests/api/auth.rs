//! Writes need a token that grants `users.write`; the event of a change names who made it;
//! a service exposed beyond loopback with no authentication configured does not start.

use std::time::Duration;

use clap::Parser;
use shared_proto::event_headers;
use shared_proto::v1;
use tonic::Code;

use crate::helpers::*;
use testkit::{
    broker,
    service_args::CommandServiceArgs,
    test_issuer::{self, TestIssuer, bearing},
};

async fn guarded_app(issuer: &TestIssuer) -> TestApp {
    let args = issuer.service_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_app_with(&broker::brokers(), &args).await
}

/// CreateUser, UpdateUser and DeleteUser with `token`: the codes they answer.
async fn write_codes(app: &TestApp, token: Option<&str>) -> Vec<(Code, String)> {
    let mut client = app.client.clone();
    let id = uuid::Uuid::now_v7().to_string();
    let answers = [
        client
            .create_user(bearing(create_request(&unique_email()), token))
            .await
            .map(|_| ()),
        client
            .update_user(bearing(nickname_update(&id, "nick"), token))
            .await
            .map(|_| ()),
        client
            .delete_user(bearing(
                v1::DeleteUserRequest {
                    id,
                    expected_version: None,
                    request_id: String::new(),
                },
                token,
            ))
            .await
            .map(|_| ()),
    ];
    answers.into_iter().map(test_issuer::code_of).collect()
}

#[tokio::test]
async fn every_write_refuses_a_token_that_is_missing_broken_or_without_the_write_scope() {
    let issuer = TestIssuer::start().await;
    let app = guarded_app(&issuer).await;
    for (what, token) in test_issuer::bad_tokens(&issuer, "users.write") {
        for (code, message) in write_codes(&app, token.as_deref()).await {
            assert_eq!(code, Code::Unauthenticated, "{what}: {message}");
        }
    }
    for scope in ["", "users.read"] {
        for (code, message) in write_codes(&app, Some(&issuer.token("alice", scope))).await {
            assert_eq!(code, Code::PermissionDenied, "scope {scope:?}: {message}");
            assert!(message.contains("users.write"), "{message}");
        }
    }
    assert_eq!(app.outbox_len().await, 0, "nothing refused was written");
}

#[tokio::test]
async fn the_event_of_a_change_names_the_caller_that_made_it() {
    let issuer = TestIssuer::start().await;
    let app = guarded_app(&issuer).await;
    let mut events = app.events().await;
    let codes: Vec<Code> = write_codes(&app, Some(&issuer.token("alice", "users.write")))
        .await
        .into_iter()
        .map(|(code, _)| code)
        .collect();
    // The update and the deletion are of an unknown user.
    assert_eq!(codes, [Code::Ok, Code::NotFound, Code::NotFound]);
    let record = events.read(1, Duration::from_secs(20)).await.remove(0);
    assert_eq!(header(&record, event_headers::CE_AUTHID), Some("alice"));
    assert_eq!(header(&record, event_headers::CE_AUTHTYPE), Some("user"));
}

#[tokio::test]
async fn a_service_on_a_public_address_without_auth_settings_refuses_to_start() {
    let db = TestDatabase::create().await;
    let args = CommandServiceArgs::new()
        .grpc_addr("0.0.0.0:0")
        .http_addr("127.0.0.1:0")
        .database_url(&db.url)
        .brokers(&broker::brokers());
    let cli = command_service::config::Cli::try_parse_from(args.argv()).unwrap();
    let refused = command_service::app::App::build(cli.config)
        .await
        .err()
        .expect("no start without AUTH_MODE on 0.0.0.0");
    assert!(format!("{refused:#}").contains("AUTH_MODE"), "{refused:#}");
}

#[tokio::test]
async fn a_request_id_another_caller_used_answers_them_nothing() {
    let issuer = TestIssuer::start().await;
    let app = guarded_app(&issuer).await;
    let mut client = app.client.clone();
    let request = v1::CreateUserRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        ..create_request(&unique_email())
    };
    let alice = issuer.token("alice", "users.write");
    client
        .create_user(bearing(request.clone(), Some(&alice)))
        .await
        .expect("created");
    let again = client
        .create_user(bearing(request.clone(), Some(&alice)))
        .await;
    assert!(again.is_ok(), "alice's retry is answered");

    let mallory = issuer.token("mallory", "users.write");
    let refused = client
        .create_user(bearing(request, Some(&mallory)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("request_id"),
        "{}",
        refused.message()
    );
}
