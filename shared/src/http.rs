//! The operations HTTP server: health checks and Prometheus metrics, on their own port.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::{Health, Status};

#[derive(Clone)]
struct OpsState {
    health: Health,
    registry: Arc<Registry>,
}

pub fn router(health: Health, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/health-check/liveness", get(liveness))
        .route("/health-check/readiness", get(readiness))
        .route("/metrics", get(metrics))
        .with_state(OpsState { health, registry })
}

/// Serves until `shutdown` is cancelled. Health stays reachable while gRPC drains, so probes
/// see the draining state rather than a refused connection.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn liveness() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "alive" }))
}

async fn readiness(State(state): State<OpsState>) -> impl IntoResponse {
    let report = state.health.report();
    let code = if report.status == Status::Ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report))
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {error}"),
        ),
    }
}
