use std::time::Duration;

use users_shared::test_support::{http_get, parse_metrics, sample};
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
    let writer = EventWriter::new(&users_shared::test_support::brokers());
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
