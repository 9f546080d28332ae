//! Logs and traces: a `tracing` subscriber that writes text or JSON lines and feeds
//! OpenTelemetry, exporting over OTLP when an endpoint is configured.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

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
    provider: SdkTracerProvider,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("cannot flush traces: {error}");
        }
    }
}

/// Installs the global subscriber. Spans always get OpenTelemetry ids, exported or not, so a
/// change's trace context reaches its Kafka event even when no collector is configured.
pub fn init(service_name: &'static str, args: &TelemetryArgs) -> Result<Telemetry, TelemetryError> {
    init_with_writer(service_name, args, false)
}

/// As [`init`]; with `for_tests`, lines go through the test harness's capture.
pub fn init_with_writer(
    service_name: &'static str,
    args: &TelemetryArgs,
    for_tests: bool,
) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_new(&args.log_filter)?;
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service_name).build());
    if let Some(endpoint) = &args.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service_name));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = match args.log_format {
        LogFormat::Text if for_tests => registry
            .with(tracing_subscriber::fmt::layer().with_test_writer())
            .try_init(),
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).try_init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init(),
    };
    installed.map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(Telemetry { provider })
}
