use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use shared::kafka;
use shared_proto::topics::Topics;
use shared_proto::v1::user_service_client::UserServiceClient;
use tonic::Code;

use testkit::{
    broker,
    ports::free_addr,
    process::{Launch, Process},
    service_args::CommandServiceArgs,
};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn sigterm_during_a_stream_of_calls_exits_0_with_no_failed_call_or_lost_event() {
    let db = TestDatabase::create().await;
    let prefix = format!("test-{}.", Uuid::new_v4().simple());
    let topics = Topics::with_prefix(&prefix);
    let brokers = broker::brokers();
    kafka::ensure_topics(
        &shared::kafka::Cluster::plaintext(brokers.to_owned()),
        &topics.events(),
        &shared::kafka::TopicSettings::fixed(PARTITIONS, 1),
    )
    .await
    .unwrap();
    let grpc_addr = free_addr();
    let args = CommandServiceArgs::new()
        .grpc_addr(grpc_addr)
        .http_addr(free_addr())
        .database_url(&db.url)
        .brokers(&brokers)
        .topic_prefix(&prefix)
        .shutdown_grace("10s")
        .log_filter("warn");
    let launch = Launch::new(env!("CARGO_BIN_EXE_command-service")).service(&args);
    let log = std::env::temp_dir().join(format!("users-test-shutdown-{}.log", Uuid::new_v4()));
    let mut service =
        Process::spawn("command-service", launch, Some(log)).expect("command-service starts");
    let client = service
        .wait_for(
            "gRPC connection",
            Duration::from_secs(10),
            Duration::from_millis(100),
            || async move {
                UserServiceClient::connect(format!("http://{grpc_addr}"))
                    .await
                    .ok()
            },
        )
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));

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
    service.signal("-TERM").unwrap();

    let exit = service
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the service exits within its grace period");
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
