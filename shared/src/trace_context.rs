//! W3C trace context across process boundaries: from gRPC metadata into a span, from a span
//! into the `traceparent` kept with an outbox row, and from a Kafka header back into a span.

use std::collections::HashMap;

use opentelemetry::{
    Context,
    propagation::{Extractor, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|key| key.as_str()).collect()
    }
}

/// The remote parent a caller sent in its request headers, if any.
pub fn from_http_headers(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// The context a `traceparent` value describes.
pub fn from_traceparent(traceparent: &str) -> Context {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    TraceContextPropagator::new().extract(&carrier)
}

/// Makes `span` a child of `parent` when `parent` carries a valid remote span.
pub fn set_parent(span: &tracing::Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` to keep with a change's outbox row: the current span's when spans are
/// traced, else the caller's own, so the event still joins the caller's trace.
pub fn outbox_traceparent(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    current_traceparent().or_else(|| {
        let caller = metadata.get("traceparent")?.to_str().ok()?;
        from_traceparent(caller)
            .span()
            .span_context()
            .is_valid()
            .then(|| caller.to_owned())
    })
}

/// The `traceparent` of the current span, when it is traced.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_value_describes_its_trace() {
        let context = from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let span = context.span();
        let span_context = span.span_context();
        assert!(span_context.is_valid());
        assert_eq!(
            span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn a_malformed_traceparent_gives_no_parent() {
        let context = from_traceparent("not-a-traceparent");
        assert!(!context.span().span_context().is_valid());
    }
}
