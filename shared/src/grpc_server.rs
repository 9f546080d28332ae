//! What every gRPC server of the project carries besides its own service: a span per call
//! that continues the caller's trace, server reflection and the gRPC health service.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tonic::{
    server::NamedService,
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::server::HealthReporter;

use tokio_util::sync::CancellationToken;

use crate::{
    auth::{Auth, AuthLayer},
    config::{AuthArgs, GrpcArgs},
    grpc_limits::{InFlightLimit, MAX_STREAMS_PER_CONNECTION},
    grpc_metrics::GrpcMetricsLayer,
    grpc_tls::GrpcTls,
    health::Health,
    trace_context,
};

/// The span of one call, child of the caller's trace when it sent a `traceparent`.
pub fn request_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", path));
    let span = tracing::info_span!(
        "grpc.request",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
    );
    // Untraced (no exporter), the span is disabled: no caller context to look for.
    if !span.is_disabled() {
        trace_context::set_parent(&span, trace_context::from_http_headers(request.headers()));
    }
    span
}

/// The gRPC health service and the reporter that drives it.
pub fn health() -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    tonic_health::server::health_reporter()
}

/// Routes with reflection (v1 and v1alpha, for older grpcurl) and the given health service.
pub fn base_routes<H>(health: H) -> Result<Routes, tonic_reflection::server::Error>
where
    H: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    H::Future: Send + 'static,
{
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(shared_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(shared_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    Ok(Routes::new(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha))
}

/// What every call passes before its handler: TLS (when configured), the in-flight limit,
/// then authentication.
#[derive(Clone)]
pub struct Gate {
    pub tls: Option<Arc<GrpcTls>>,
    pub limit: InFlightLimit,
    pub auth: Auth,
    /// A connection's longest life, and the grace its last calls get.
    pub max_connection_age: Option<(Duration, Duration)>,
}

impl Gate {
    /// The gate the settings ask for, refused (with a message naming the setting) when they
    /// are incomplete or would expose the service without authentication.
    pub async fn from_settings(
        grpc: &GrpcArgs,
        auth: &AuthArgs,
        grpc_addr: std::net::SocketAddr,
    ) -> Result<Self, String> {
        Ok(Self {
            tls: grpc.tls()?,
            limit: InFlightLimit::new(grpc.max_in_flight as usize),
            auth: auth.resolve(grpc_addr).await?,
            max_connection_age: grpc
                .max_connection_age
                .map(|age| (age, grpc.max_connection_age_grace)),
        })
    }
}

/// Serves until `stop` is cancelled; then health turns NOT_SERVING at once, new calls are
/// refused and in-flight ones may finish within `grace`, after which they are abandoned.
pub async fn serve_with_grace(
    listener: TcpListener,
    routes: Routes,
    metrics: GrpcMetricsLayer,
    gate: Gate,
    health: Health,
    stop: CancellationToken,
    grace: Duration,
) -> Result<(), tonic::transport::Error> {
    let draining = stop.clone();
    let served = serve(listener, routes, metrics, gate, async move {
        draining.cancelled().await;
        health.start_draining().await;
    });
    tokio::select! {
        served = served => served,
        () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "grace period over; abandoning in-flight calls");
            Ok(())
        }
    }
}

/// Serves `routes` on `listener` until `stop` resolves, then lets in-flight calls finish.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    metrics: GrpcMetricsLayer,
    gate: Gate,
    stop: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let mut server = Server::builder();
    if let Some((age, grace)) = gate.max_connection_age {
        server = server
            .max_connection_age(age)
            .max_connection_age_grace(grace);
    }
    let router = server
        .trace_fn(request_span)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        // Refusals are counted too (UNAVAILABLE past the limit, UNAUTHENTICATED,
        // PERMISSION_DENIED).
        .layer(metrics)
        .layer(gate.limit)
        .layer(AuthLayer::new(gate.auth))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_routes(routes);
    match gate.tls {
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(tls.incoming(listener), stop)
                .await
        }
        // Without TCP_NODELAY a response larger than one segment waits for the client's
        // delayed ACK (Nagle): about 40 ms a call.
        None => {
            router
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    stop,
                )
                .await
        }
    }
}
