//! The services' logs and spans inside a test binary.

use std::sync::OnceLock;

use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

/// Logs of the services under test, shown for failing tests; `TEST_LOG` filters them
/// (default `warn`). Spans get trace ids as in production and are kept for [`finished_spans`].
pub fn init_tracing() {
    span_exporter();
}

fn span_exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let args = shared::config::TelemetryArgs {
            log_format: shared::config::LogFormat::Text,
            log_filter: std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            otlp_endpoint: None,
        };
        // Leaked on purpose: the subscriber lives as long as the test binary.
        if let Ok(telemetry) = shared::telemetry::init_for_tests(&args, exporter.clone()) {
            std::mem::forget(telemetry);
        }
        exporter
    })
}

/// Every span that has ended so far in this test binary.
pub fn finished_spans() -> Vec<SpanData> {
    span_exporter().get_finished_spans().unwrap_or_default()
}
