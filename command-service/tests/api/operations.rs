use std::time::Duration;

use testkit::{
    http::get as http_get,
    metrics::{parse_metrics, sample},
    ports::free_addr,
};

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
    assert_eq!(report["checks"]["postgres"], "ok");
    assert_eq!(report["checks"]["kafka"], "ok");

    // `command-service healthcheck`, as a container runs it: this port, any address.
    let mut unspecified = app.http_addr;
    unspecified.set_ip(std::net::Ipv4Addr::UNSPECIFIED.into());
    shared::http::check_readiness(unspecified)
        .await
        .expect("ready");
    let closed = free_addr();
    assert!(shared::http::check_readiness(closed).await.is_err());
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

#[tokio::test]
async fn metrics_count_calls_by_method_and_code_with_the_original_names() {
    let mut app = spawn_app().await;
    app.create_user(&unique_email()).await;
    let _ = app
        .client
        .create_user(create_request("not an address"))
        .await;
    let _ = app
        .client
        .get_user(shared_proto::v1::GetUserRequest::default())
        .await;

    let (status, text) = http_get(app.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    let samples = parse_metrics(&text);
    let create = [
        ("grpc_type", "unary"),
        ("grpc_service", "user.v1.UserService"),
        ("grpc_method", "CreateUser"),
    ];
    let with_code = |code| {
        let mut labels = create.to_vec();
        labels.push(("grpc_code", code));
        sample(&samples, "grpc_server_handled_total", &labels)
    };
    assert_eq!(
        sample(&samples, "grpc_server_started_total", &create),
        Some(2.0)
    );
    assert_eq!(with_code("OK"), Some(1.0));
    assert_eq!(with_code("InvalidArgument"), Some(1.0));
    assert_eq!(
        sample(&samples, "grpc_server_handling_seconds_count", &create),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &samples,
            "grpc_server_handled_total",
            &[("grpc_method", "GetUser"), ("grpc_code", "Unimplemented")]
        ),
        Some(1.0)
    );
    let published = eventually_published(&app).await;
    assert!(published >= 1.0);
}

async fn eventually_published(app: &TestApp) -> f64 {
    for _ in 0..100 {
        let (_, text) = http_get(app.http_addr, "/metrics").await;
        let published = sample(&parse_metrics(&text), "outbox_events_published_total", &[]);
        if let Some(value) = published.filter(|value| *value >= 1.0) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("outbox_events_published_total never counted the event");
}

#[tokio::test]
async fn calls_in_flight_when_postgres_drops_every_connection_say_retry_and_the_pool_heals() {
    let mut app = spawn_app().await;
    let mut users = Vec::new();
    for _ in 0..8 {
        users.push(app.create_user(&unique_email()).await.id);
    }
    let calling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let callers: Vec<_> = users
        .into_iter()
        .map(|id| {
            let (mut client, calling) = (app.client.clone(), calling.clone());
            tokio::spawn(async move {
                let mut codes = Vec::new();
                let mut n = 0;
                while calling.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let answer = client
                        .update_user(nickname_update(&id, &format!("n{n}")))
                        .await;
                    codes.push(answer.map(|_| tonic::Code::Ok).unwrap_or_else(|s| s.code()));
                }
                codes
            })
        })
        .collect();

    let admin = app.db.client().await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
    }
    let terminated_at = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    calling.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut codes = Vec::new();
    for caller in callers {
        codes.extend(caller.await.unwrap());
    }
    assert!(
        codes.iter().all(|code| matches!(
            code,
            tonic::Code::Ok | tonic::Code::Unavailable | tonic::Code::Aborted
        )),
        "{codes:?}"
    );

    // No restart: the next calls succeed, within seconds of the last termination.
    let user = app.create_user(&unique_email()).await;
    app.update(nickname_update(&user.id, "healed")).await;
    assert!(terminated_at.elapsed() < Duration::from_secs(10));
}
