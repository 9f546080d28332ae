use std::time::{Duration, Instant};

use shared_proto::event_headers;
use shared_proto::v1;

use testkit::{
    broker::PrivateBroker,
    http::get as http_get,
    metrics::{parse_metrics, sample},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::*;

#[tokio::test]
async fn writes_while_the_broker_is_down_are_published_when_it_returns() {
    let mut broker = PrivateBroker::start();
    let brokers = broker.addr.to_string();
    let mut app = spawn_app_with(&brokers, &["--outbox-publish-timeout=2s"]).await;
    let mut before = app.events().await;
    let first = app.create_user(&unique_email()).await;
    assert_eq!(
        key(&before.read(1, Duration::from_secs(20)).await[0]),
        first.id
    );
    drop(before);

    broker.stop();
    // The outbox absorbs the outage: the pod stays ready and only reports the broker.
    wait_for_readiness(&app, 200, "\"kafka\":\"degraded: ").await;
    assert_eq!(grpc_health(&app).await, ServingStatus::Serving);
    assert_eq!(broker_up(&app).await, 0.0);
    let second = app.create_user(&unique_email()).await;
    let third = app.create_user(&unique_email()).await;
    app.client
        .delete_user(v1::DeleteUserRequest {
            id: first.id.clone(),
            expected_version: None,
            request_id: String::new(),
        })
        .await
        .expect("writes succeed while the broker is down");
    // Records handed to the producer before it saw the broker gone are retried by it for the
    // publish timeout (2 s here); after the first failure the relay sends nothing until the
    // topics exist again. The broker comes back only once those retries are over: tansu
    // acknowledges a record for a topic it does not have yet and drops it when the topic is
    // created (Apache Kafka answers UNKNOWN_TOPIC_OR_PARTITION, and the record is retried).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(app.outbox_len().await, 3, "the events wait in the outbox");

    // The in-memory broker comes back empty: the relay must recreate the topics.
    let _broker = PrivateBroker::start_on(broker.addr, None);
    wait_for_readiness(&app, 200, "\"kafka\":\"ok\"").await;
    assert_eq!(broker_up(&app).await, 1.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.outbox_len().await > 0 {
        assert!(
            Instant::now() < deadline,
            "the outbox did not drain after the broker returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut after = app.events().await;
    let records = after.read(3, Duration::from_secs(20)).await;
    let mut seen: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                key(r).to_owned(),
                header(r, event_headers::EVENT_TYPE).unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        (second.id.clone(), event_headers::USER_CREATED.to_owned()),
        (third.id.clone(), event_headers::USER_CREATED.to_owned()),
        (first.id.clone(), event_headers::USER_DELETED.to_owned()),
    ];
    expected.sort();
    assert_eq!(seen, expected);
}

/// Readiness runs its checks on a timer (200 ms in tests): poll until it answers `status`
/// with `body_part` in its body; every answer on the way must be `status` too.
async fn wait_for_readiness(app: &TestApp, status: u16, body_part: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = http_get(app.http_addr, "/health-check/readiness").await;
        assert_eq!(code, status, "{body}");
        if body.contains(body_part) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "readiness never said {body_part}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn grpc_health(app: &TestApp) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.grpc_addr))
        .expect("an endpoint")
        .connect()
        .await
        .expect("gRPC health connects");
    let mut health = HealthClient::new(channel);
    let answer = health
        .check(HealthCheckRequest {
            service: "user.v1.UserService".to_owned(),
        })
        .await
        .expect("gRPC health answers")
        .into_inner();
    ServingStatus::try_from(answer.status).expect("a known status")
}

async fn broker_up(app: &TestApp) -> f64 {
    let (_, metrics) = http_get(app.http_addr, "/metrics").await;
    sample(
        &parse_metrics(&metrics),
        "dependency_up",
        &[("dependency", "kafka")],
    )
    .expect("the broker gauge")
}
