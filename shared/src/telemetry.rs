//! Logs and traces: a `tracing` subscriber that writes text or JSON lines and feeds
//! OpenTelemetry, exporting over OTLP when an endpoint is configured.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    trace::{SdkTracerProvider, TracerProviderBuilder},
};
use tracing::{Metadata, subscriber::Interest};
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::{DynFilterFn, FilterExt, LevelFilter},
    layer::SubscriberExt,
    util::SubscriberInitExt,
};

use crate::config::{LogFormat, TelemetryArgs};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Flushes buffered spans when dropped or shut down.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(Err(error)) = self.provider.map(|provider| provider.shutdown()) {
            eprintln!("cannot flush traces: {error}");
        }
    }
}

/// Installs the global subscriber. Spans are built for OpenTelemetry only when they are
/// exported (an OTLP endpoint is set): building them costs every call a good share of its
/// time. Without, a caller's `traceparent` still reaches the change's Kafka event
/// (`trace_context::outbox_traceparent`).
pub fn init(service_name: &'static str, args: &TelemetryArgs) -> Result<Telemetry, TelemetryError> {
    install(
        service_name,
        args,
        false,
        args.otlp_endpoint.is_some(),
        |builder| builder,
    )
}

/// For tests: log lines go through the test harness's capture and finished spans to
/// `exporter`, where a test can look for them.
pub fn init_for_tests(
    args: &TelemetryArgs,
    exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static,
) -> Result<Telemetry, TelemetryError> {
    install("test", args, true, true, |builder| {
        builder.with_simple_exporter(exporter)
    })
}

fn install(
    service_name: &'static str,
    args: &TelemetryArgs,
    for_tests: bool,
    traced: bool,
    add_exporters: impl FnOnce(TracerProviderBuilder) -> TracerProviderBuilder,
) -> Result<Telemetry, TelemetryError> {
    // The log filter shapes the log lines only; traces always carry this code's spans.
    let filter = EnvFilter::try_new(&args.log_filter)?;
    if !traced {
        return tracing_subscriber::registry()
            .with(logs(args, filter, for_tests))
            .try_init()
            .map(|()| Telemetry { provider: None })
            .map_err(|_| TelemetryError::AlreadyInstalled);
    }
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service_name).build());
    if let Some(endpoint) = &args.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = add_exporters(builder).build();
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service_name))
        .with_filter(LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(logs(args, filter, for_tests))
        .with(traces)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(Telemetry {
        provider: Some(provider),
    })
}

fn logs<S>(
    args: &TelemetryArgs,
    filter: EnvFilter,
    for_tests: bool,
) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    // The span of every call (grpc_server::request_span) is for traces. Recorded for the log
    // lines too, it would cost each call its fields' formatting even when nothing logs, a
    // few percent of a cache hit at RUST_LOG=info; untraced, it is then not made at all.
    // Decided once per callsite: a filter asked on every event would make each of the
    // libraries' disabled trace! calls cost a call of it (a cache hit at less than half).
    let is_call_span = |meta: &Metadata<'_>| meta.is_span() && meta.name() == "grpc.request";
    let logged = filter.and(
        DynFilterFn::new(move |meta, _| !is_call_span(meta)).with_callsite_filter(move |meta| {
            if is_call_span(meta) {
                Interest::never()
            } else {
                Interest::always()
            }
        }),
    );
    match (args.log_format, for_tests) {
        (LogFormat::Json, _) => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_filter(logged)
            .boxed(),
        (LogFormat::Text, true) => tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(logged)
            .boxed(),
        (LogFormat::Text, false) => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .with_filter(logged)
            .boxed(),
    }
}
