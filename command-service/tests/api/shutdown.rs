use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use shared::kafka;
use shared_proto::topics::Topics;
use shared_proto::v1::user_service_client::UserServiceClient;
use tonic::Code;

use testkit::test_support;
use uuid::Uuid;

use crate::helpers::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn sigterm_during_a_stream_of_calls_exits_0_with_no_failed_call_or_lost_event() {
    let db = TestDatabase::create().await;
    let prefix = format!("test-{}.", Uuid::new_v4().simple());
    let topics = Topics::with_prefix(&prefix);
    let brokers = test_support::brokers();
    kafka::ensure_topics(
        &shared::kafka::Cluster::plaintext(brokers.to_owned()),
        &topics.events(),
        &shared::kafka::TopicSettings::fixed(PARTITIONS, 1),
    )
    .await
    .unwrap();
    let grpc_addr = format!("127.0.0.1:{}", free_port());
    let mut service = tokio::process::Command::new(env!("CARGO_BIN_EXE_command-service"))
        .args([
            format!("--grpc-addr={grpc_addr}"),
            format!("--http-addr=127.0.0.1:{}", free_port()),
            format!("--database-url={}", db.url),
            format!("--kafka-brokers={brokers}"),
            format!("--kafka-topic-prefix={prefix}"),
            "--shutdown-grace=10s".to_owned(),
        ])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("command-service starts");
    let mut client = None;
    for _ in 0..100 {
        if let Ok(connected) = UserServiceClient::connect(format!("http://{grpc_addr}")).await {
            client = Some(connected);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = client.expect("command-service listens");

    let created = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (mut client, created, failures) =
                (client.clone(), created.clone(), failures.clone());
            tokio::spawn(async move {
                loop {
                    match client.create_user(create_request(&unique_email())).await {
                        Ok(response) => created
                            .lock()
                            .unwrap()
                            .push(response.into_inner().user.unwrap().id),
                        // Refused once the server stopped accepting (connection refused, or
                        // the stream named unprocessed by the server's GOAWAY): the call never
                        // started. That it did not is checked below: the events published are
                        // exactly those of the calls that succeeded.
                        Err(status)
                            if matches!(status.code(), Code::Unavailable | Code::Cancelled) =>
                        {
                            return;
                        }
                        Err(status) => {
                            failures.lock().unwrap().push(status);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = service.id().expect("a pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());

    let exit = tokio::time::timeout(Duration::from_secs(30), service.wait())
        .await
        .expect("the service exits within its grace period")
        .unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    assert!(exit.success(), "exit status {exit}");
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "calls failed: {failures:?}");
    let created = created.lock().unwrap().clone();
    assert!(!created.is_empty());

    let mut events = EventReader::new(&brokers, &topics.events(), PARTITIONS);
    let records = events.read(created.len(), Duration::from_secs(30)).await;
    events.expect_nothing(Duration::from_secs(1)).await;
    let mut published: Vec<String> = records.iter().map(|r| key(r).to_owned()).collect();
    let mut expected = created;
    published.sort();
    expected.sort();
    assert_eq!(published, expected, "every accepted write is published");
}
