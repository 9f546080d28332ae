use std::time::Duration;

use users_shared::test_support::http_get;

use crate::helpers::*;

#[tokio::test]
async fn liveness_and_readiness_answer_on_the_http_port() {
    let app = spawn_app().await;

    let (status, _) = http_get(app.http_addr, "/health-check/liveness").await;
    assert_eq!(status, 200);

    // Checks run on a timer; the first round completes shortly after start.
    let mut readiness = (0, String::new());
    for _ in 0..50 {
        readiness = http_get(app.http_addr, "/health-check/readiness").await;
        if readiness.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(readiness.0, 200, "{}", readiness.1);
    let report: serde_json::Value = serde_json::from_str(&readiness.1).unwrap();
    assert_eq!(report["status"], "ready");
    assert_eq!(report["checks"]["postgres"]["ok"], true);
    assert_eq!(report["checks"]["kafka"]["ok"], true);
}

#[tokio::test]
async fn a_stopped_service_exits_cleanly_having_published_what_it_accepted() {
    let mut app = spawn_app().await;
    let mut events = app.events().await;
    for _ in 0..5 {
        app.create_user(&unique_email()).await;
    }
    let db = std::sync::Arc::clone(&app.db);

    app.stop().await.expect("a clean exit");

    events.read(5, Duration::from_secs(20)).await;
    let client = db.client().await;
    let pending: i64 = client
        .query_one("SELECT count(*) FROM outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0);
}
