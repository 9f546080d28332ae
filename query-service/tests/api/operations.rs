use std::time::Duration;

use testkit::{
    http::get as http_get,
    metrics::{parse_metrics, sample},
};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn readiness_reports_each_dependency() {
    let app = spawn_query().await;
    let (status, body) = eventually("ready", Duration::from_secs(10), || async {
        let answer = http_get(app.http_addr, "/health-check/readiness").await;
        (answer.0 == 200).then_some(answer)
    })
    .await;
    assert_eq!(status, 200);
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["checks"]["postgres"], "ok");
    assert_eq!(report["checks"]["kafka"], "ok");
}

#[tokio::test]
async fn cache_hits_and_misses_are_counted() {
    let mut app = spawn_query().await;
    let writer = EventWriter::new(&testkit::broker::brokers());
    let id = Uuid::now_v7();
    publish(&writer, &app.topics, "created", &user(id, 1, "Ada", "GB")).await;
    app.wait_for(&id.to_string(), Some(1)).await;
    app.get(&id.to_string()).await.unwrap();
    let _ = app.get(&Uuid::now_v7().to_string()).await;

    let (status, metrics) = http_get(app.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    let samples = parse_metrics(&metrics);
    let cache = |result| {
        sample(
            &samples,
            "query_cache_requests_total",
            &[("result", result)],
        )
    };
    assert!(cache("hit").is_some_and(|hits| hits >= 1.0), "{metrics}");
    assert!(
        cache("miss").is_some_and(|misses| misses >= 1.0),
        "{metrics}"
    );
    let applied = [
        ("topic", app.topics.created.as_str()),
        ("outcome", "applied"),
    ];
    assert_eq!(
        sample(&samples, "projector_events_total", &applied),
        Some(1.0)
    );
}

#[tokio::test]
async fn compacted_event_topics_keep_the_dead_letters_whole() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};

    use clap::Parser;

    // Started by hand: the tests' helper makes the topics itself, as kept for ever.
    let db = TestDatabase::create().await;
    let prefix = new_prefix();
    let args = query_args(&db, &prefix, "group", &["--kafka-topic-retention=compact"]);
    let cli = query_service::config::Cli::try_parse_from(args.argv()).unwrap();
    let app = query_service::app::App::build(cli.config).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(app.run(stop.clone()));
    let topics = shared_proto::topics::Topics::with_prefix(&prefix);
    let cluster = testkit::broker::cluster();
    let admin: AdminClient<_> = cluster.client_config("test-admin").create().unwrap();
    let policy = |topic: String| {
        let admin = &admin;
        async move {
            let described = admin
                .describe_configs(&[ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
                .await
                .unwrap();
            let resource = described.into_iter().next().unwrap().unwrap();
            resource
                .get("cleanup.policy")
                .and_then(|entry| entry.value.clone())
                .unwrap_or_default()
        }
    };
    // The dead-letter topic is made by the projector's start, after the events'.
    eventually("the topics", Duration::from_secs(20), || async {
        (policy(topics.dead_letter.clone()).await == "delete").then_some(())
    })
    .await;
    for topic in topics.events() {
        assert_eq!(policy(topic.to_owned()).await, "compact", "{topic}");
    }
    stop.cancel();
    running.await.unwrap().unwrap();
}
