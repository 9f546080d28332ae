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

/// `/metrics` alone, for a process with no health to report (a replay).
pub fn metrics_router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", get(registry_metrics))
        .with_state(registry)
}

async fn registry_metrics(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    encode(&registry)
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
    encode(&state.registry)
}

fn encode(registry: &Registry) -> axum::response::Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {error}"),
        )
            .into_response(),
    }
}

/// `healthcheck`: whether the service listening on `addr` answers its readiness with 200,
/// within two seconds. For container health checks, in images with no shell or HTTP client;
/// it touches nothing but that port. An unspecified address (0.0.0.0, ::) means this host.
pub async fn check_readiness(addr: std::net::SocketAddr) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
        stream
            .write_all(b"GET /health-check/readiness HTTP/1.0\r\n\r\n")
            .await
            .map_err(|error| error.to_string())?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|error| error.to_string())?;
        let answer = String::from_utf8_lossy(&answer);
        let status = answer.split_whitespace().nth(1).unwrap_or_default();
        if status == "200" {
            Ok(())
        } else {
            Err(format!(
                "readiness answered {status}: {}",
                answer.lines().last().unwrap_or_default()
            ))
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), ask)
        .await
        .map_err(|_| format!("no answer from {addr} within 2 s"))?
}
