//! go-grpc-prometheus's server metrics, as one tower layer in front of every gRPC service, so
//! dashboards built for the original service keep working: `grpc_server_started_total`,
//! `grpc_server_handled_total` and `grpc_server_handling_seconds`, labelled with
//! `grpc_type`, `grpc_service`, `grpc_method` (and `grpc_code` once handled).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use tonic::Code;
use tower::{Layer, Service};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_type: &'static str,
    grpc_service: String,
    grpc_method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_type: &'static str,
    grpc_service: String,
    grpc_method: String,
    grpc_code: &'static str,
}

type HistogramFamily = Family<MethodLabels, Histogram, fn() -> Histogram>;

/// The layer; cheap to clone.
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    started: Family<MethodLabels, Counter>,
    handled: Family<HandledLabels, Counter>,
    handling: HistogramFamily,
}

fn handling_histogram() -> Histogram {
    // go-grpc-prometheus's (Prometheus') default buckets.
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl GrpcMetricsLayer {
    pub fn register(registry: &mut Registry) -> Self {
        let layer = Self {
            started: Family::default(),
            handled: Family::default(),
            handling: Family::new_with_constructor(handling_histogram),
        };
        registry.register(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            layer.started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            layer.handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            layer.handling.clone(),
        );
        layer
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            metrics: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: GrpcMetricsLayer,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let labels = method_labels(request.uri().path());
        self.metrics.started.get_or_create(&labels).inc();
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            // A unary call that fails answers with its status in the headers (trailers-only);
            // one that succeeds sends OK in the trailers after the message.
            let code = match &response {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<i32>().ok())
                    .map_or(Code::Ok, Code::from_i32),
                Err(_) => Code::Unavailable,
            };
            metrics
                .handling
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            metrics
                .handled
                .get_or_create(&HandledLabels {
                    grpc_type: labels.grpc_type,
                    grpc_service: labels.grpc_service,
                    grpc_method: labels.grpc_method,
                    grpc_code: code_name(code),
                })
                .inc();
            response
        })
    }
}

/// The methods the servers serve, with their types. Any other path is counted as
/// `unknown`, so a caller cannot create label values (and series) at will.
const METHODS: &[(&str, &str, &str)] = &[
    ("user.v1.UserService", "GetUser", "unary"),
    ("user.v1.UserService", "ListUsers", "unary"),
    ("user.v1.UserService", "CreateUser", "unary"),
    ("user.v1.UserService", "UpdateUser", "unary"),
    ("user.v1.UserService", "DeleteUser", "unary"),
    ("grpc.health.v1.Health", "Check", "unary"),
    ("grpc.health.v1.Health", "Watch", "server_stream"),
    (
        "grpc.reflection.v1.ServerReflection",
        "ServerReflectionInfo",
        "bidi_stream",
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection",
        "ServerReflectionInfo",
        "bidi_stream",
    ),
];

fn method_labels(path: &str) -> MethodLabels {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or_default();
    let (grpc_service, grpc_method, grpc_type) = METHODS
        .iter()
        .find(|(known_service, known_method, _)| {
            *known_service == service && *known_method == method
        })
        .copied()
        .unwrap_or(("unknown", "unknown", "unary"));
    MethodLabels {
        grpc_type,
        grpc_service: grpc_service.to_owned(),
        grpc_method: grpc_method.to_owned(),
    }
}

/// The names Go's `codes.Code` prints, which go-grpc-prometheus puts in `grpc_code`.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        let labels = method_labels("/user.v1.UserService/GetUser");
        assert_eq!(
            (
                labels.grpc_type,
                labels.grpc_service.as_str(),
                labels.grpc_method.as_str()
            ),
            ("unary", "user.v1.UserService", "GetUser")
        );
        assert_eq!(
            method_labels("/grpc.health.v1.Health/Watch").grpc_type,
            "server_stream"
        );
        let made_up = method_labels("/user.v1.UserService/Whatever");
        assert_eq!(
            (made_up.grpc_service.as_str(), made_up.grpc_method.as_str()),
            ("unknown", "unknown")
        );
    }

    #[test]
    fn codes_are_named_as_go_names_them() {
        assert_eq!(code_name(Code::Cancelled), "Canceled");
        assert_eq!(code_name(Code::InvalidArgument), "InvalidArgument");
    }
}
