//! go-grpc-prometheus's server metrics, as one tower layer in front of every gRPC service, so
//! dashboards built for the original service keep working: `grpc_server_started_total`,
//! `grpc_server_handled_total` and `grpc_server_handling_seconds`, labelled with
//! `grpc_type`, `grpc_service`, `grpc_method` (and `grpc_code` once handled).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
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

/// Every code, in the order of their numbers.
const CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

/// One method's series, looked up once at start: a call then only bumps them, with no label
/// set to build, hash or allocate. As go-grpc-prometheus does, every series starts at zero,
/// so a rate over the first calls after a restart is right.
struct MethodSeries {
    path: String,
    started: Counter,
    handling: Histogram,
    handled: [Counter; CODES.len()],
}

/// The layer; cheap to clone.
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    methods: Arc<[MethodSeries]>,
}

fn handling_histogram() -> Histogram {
    // go-grpc-prometheus's (Prometheus') default buckets.
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl GrpcMetricsLayer {
    pub fn register(registry: &mut Registry) -> Self {
        let started = Family::<MethodLabels, Counter>::default();
        let handled = Family::<HandledLabels, Counter>::default();
        let handling: HistogramFamily = Family::new_with_constructor(handling_histogram);
        registry.register(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            handling.clone(),
        );
        let methods = METHODS
            .iter()
            .chain(std::iter::once(&UNKNOWN))
            .map(|&(service, method, grpc_type)| {
                let labels = MethodLabels {
                    grpc_type,
                    grpc_service: service.to_owned(),
                    grpc_method: method.to_owned(),
                };
                MethodSeries {
                    path: format!("/{service}/{method}"),
                    started: started.get_or_create(&labels).clone(),
                    handling: handling.get_or_create(&labels).clone(),
                    handled: CODES.map(|code| {
                        handled
                            .get_or_create(&HandledLabels {
                                grpc_type,
                                grpc_service: service.to_owned(),
                                grpc_method: method.to_owned(),
                                grpc_code: code_name(code),
                            })
                            .clone()
                    }),
                }
            })
            .collect();
        Self { methods }
    }

    /// The series of the method at `path`; any other path counts as `unknown`, so a caller
    /// cannot create series at will.
    fn series(&self, path: &str) -> usize {
        self.methods
            .iter()
            .position(|method| method.path == path)
            .unwrap_or(self.methods.len() - 1)
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
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Handling<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let at = self.metrics.series(request.uri().path());
        self.metrics.methods[at].started.inc();
        Handling {
            response: self.inner.call(request),
            methods: Arc::clone(&self.metrics.methods),
            at,
            started: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A call being handled: the inner future, and what to count once it is ready. A named
    /// future rather than a boxed one, since every call of every method goes through it.
    pub struct Handling<F> {
        #[pin]
        response: F,
        methods: Arc<[MethodSeries]>,
        at: usize,
        started: Instant,
    }
}

impl<F, ResBody, E> Future for Handling<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.response.poll(cx));
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
        let series = &this.methods[*this.at];
        series
            .handling
            .observe(this.started.elapsed().as_secs_f64());
        series.handled[code as usize].inc();
        Poll::Ready(response)
    }
}

/// The methods the servers serve, with their types. Any other path is counted as
/// `unknown`, so a caller cannot create label values (and series) at will.
const METHODS: &[(&str, &str, &str)] = &[
    ("user.v1.UserService", "GetUser", "unary"),
    ("user.v1.UserService", "ListUsers", "unary"),
    ("user.v1.UserService", "BatchGetUsers", "unary"),
    ("user.v1.UserService", "GetUserByEmail", "unary"),
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

/// Where every path the servers do not serve is counted.
const UNKNOWN: (&str, &str, &str) = ("unknown", "unknown", "unary");

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
    fn paths_find_their_series_and_others_count_as_unknown() {
        let layer = GrpcMetricsLayer::register(&mut Registry::default());
        let get_user = layer.series("/user.v1.UserService/GetUser");
        assert_eq!(layer.methods[get_user].path, "/user.v1.UserService/GetUser");
        let unknown = layer.methods.len() - 1;
        assert_eq!(layer.series("/user.v1.UserService/Whatever"), unknown);
        assert_eq!(layer.series("GetUser"), unknown);
    }

    #[test]
    fn every_method_of_the_proto_has_its_series() {
        use prost::Message;
        let files = prost_types::FileDescriptorSet::decode(shared_proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        let layer = GrpcMetricsLayer::register(&mut Registry::default());
        let unknown = layer.methods.len() - 1;
        let mut methods = 0;
        for file in files.file.iter().filter(|file| file.package() == "user.v1") {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/user.v1.{}/{}", service.name(), method.name());
                    assert_ne!(layer.series(&path), unknown, "{path} is counted as unknown");
                    methods += 1;
                }
            }
        }
        assert!(methods >= 7, "the proto's methods were not found");
    }

    #[test]
    fn every_series_is_there_from_the_start() {
        let mut registry = Registry::default();
        GrpcMetricsLayer::register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"user.v1.UserService\",grpc_method=\"GetUser\",grpc_code=\"NotFound\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn the_codes_are_in_the_order_of_their_numbers() {
        for (number, code) in CODES.iter().enumerate() {
            assert_eq!(*code as usize, number);
        }
    }

    #[test]
    fn codes_are_named_as_go_names_them() {
        assert_eq!(code_name(Code::Cancelled), "Canceled");
        assert_eq!(code_name(Code::InvalidArgument), "InvalidArgument");
    }
}
