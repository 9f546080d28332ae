//! Reads need a token that grants `users.read`; health needs none; reflection needs one.

use std::{sync::Arc, time::Duration};

use shared_proto::v1;
use testkit::test_issuer::{self, SigningKey, TestIssuer, bearing};
use tonic::Code;
use uuid::Uuid;

use crate::helpers::*;

async fn guarded_query(issuer: &TestIssuer, extra: &[&str]) -> QueryApp {
    let mut args = issuer.service_args();
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_query(
        Arc::new(TestDatabase::create().await),
        &new_prefix(),
        &format!("group-{}", Uuid::new_v4()),
        &args,
    )
    .await
}

/// GetUser of an unknown id and ListUsers, with `token`: the codes they answer.
async fn read_codes(app: &QueryApp, token: Option<&str>) -> Vec<(Code, String)> {
    let mut client = app.client.clone();
    let get = client
        .get_user(bearing(
            v1::GetUserRequest {
                id: Uuid::now_v7().to_string(),
                min_version: None,
            },
            token,
        ))
        .await
        .map(|_| ());
    let list = client
        .list_users(bearing(
            v1::ListUsersRequest {
                filter: None,
                page_size: 10,
                page_token: String::new(),
            },
            token,
        ))
        .await
        .map(|_| ());
    [get, list].into_iter().map(test_issuer::code_of).collect()
}

#[tokio::test]
async fn every_read_refuses_a_token_that_is_missing_broken_or_not_this_issuers() {
    let issuer = TestIssuer::start().await;
    let app = guarded_query(&issuer, &[]).await;
    for (what, token) in test_issuer::bad_tokens(&issuer, "users.read") {
        for (code, message) in read_codes(&app, token.as_deref()).await {
            assert_eq!(code, Code::Unauthenticated, "{what}: {message}");
            if let Some(token) = &token {
                assert!(
                    !message.contains(token.as_str()),
                    "{what}: the token echoed"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_valid_token_without_the_read_scope_is_refused_naming_the_scope() {
    let issuer = TestIssuer::start().await;
    let app = guarded_query(&issuer, &[]).await;
    for scope in ["", "profile", "users.write"] {
        for (code, message) in read_codes(&app, Some(&issuer.token("alice", scope))).await {
            assert_eq!(code, Code::PermissionDenied, "scope {scope:?}: {message}");
            assert!(message.contains("users.read"), "{message}");
        }
    }
}

#[tokio::test]
async fn reads_answer_with_the_read_scope_from_either_key_and_either_claim() {
    let issuer = TestIssuer::start().await;
    let app = guarded_query(&issuer, &[]).await;
    let mut scp = test_issuer::claims("svc", "");
    scp["scp"] = serde_json::json!(["users.read"]);
    for token in [
        issuer.token("alice", "openid users.read"),
        test_issuer::sign(&issuer.rs256, &test_issuer::claims("bob", "users.read")),
        test_issuer::sign(&issuer.es256, &scp),
    ] {
        let codes: Vec<Code> = read_codes(&app, Some(&token))
            .await
            .into_iter()
            .map(|(code, _)| code)
            .collect();
        assert_eq!(codes, [Code::NotFound, Code::Ok]);
    }
}

#[tokio::test]
async fn health_needs_no_token_and_reflection_needs_one() {
    let issuer = TestIssuer::start().await;
    let app = guarded_query(&issuer, &[]).await;
    let addr = app.grpc_addr;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let answered = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(
        !matches!(&answered, Err(status) if status.code() == Code::Unauthenticated),
        "health answers without a token: {answered:?}"
    );

    let reflection = |token: Option<String>| async move {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let path = http::uri::PathAndQuery::from_static(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        );
        let request = bearing(
            tokio_stream::iter(vec![v1::GetUserRequest::default()]),
            token.as_deref(),
        );
        grpc.streaming::<_, _, v1::GetUserResponse, _>(
            request,
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .map(|_| ())
        .map_err(|status| status.code())
    };
    assert_eq!(reflection(None).await, Err(Code::Unauthenticated));
    let with_token = reflection(Some(issuer.token("alice", "users.write"))).await;
    assert!(
        !matches!(
            with_token,
            Err(Code::Unauthenticated | Code::PermissionDenied)
        ),
        "reflection with a token of either scope passes the gate: {with_token:?}"
    );
}

#[tokio::test]
async fn rotated_keys_are_taken_up_without_a_restart_and_kept_while_the_issuer_is_away() {
    let issuer = TestIssuer::start().await;
    let app = guarded_query(&issuer, &["--auth-jwks-refresh=1s"]).await;
    let rotated = SigningKey::es256("es-2");
    let token = test_issuer::sign(&rotated, &test_issuer::claims("alice", "users.read"));
    assert_eq!(
        read_codes(&app, Some(&token)).await[1].0,
        Code::Unauthenticated
    );

    issuer.publish(&[&rotated]);
    eventually("the rotated key taken up", Duration::from_secs(10), || {
        let app = &app;
        let token = token.clone();
        async move { (read_codes(app, Some(&token)).await[1].0 == Code::Ok).then_some(()) }
    })
    .await;
    let retired = issuer.token("alice", "users.read");
    assert_eq!(
        read_codes(&app, Some(&retired)).await[1].0,
        Code::Unauthenticated
    );

    issuer.go_away();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        read_codes(&app, Some(&token)).await[1].0,
        Code::Ok,
        "the last good keys stay while the issuer cannot be reached"
    );
}
