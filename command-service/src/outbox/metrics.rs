//! The relay's Prometheus metrics.

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use super::table::Backlog;

#[derive(Clone)]
pub struct RelayMetrics {
    pub(super) published: Counter,
    pub(super) publish_failures: Counter,
    pub(super) publish_latency: Histogram,
    pub(super) parked: Counter,
    pub(super) refused: Counter,
    backlog: Gauge,
    parked_now: Gauge,
    oldest_pending_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl RelayMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            publish_latency: Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            published: Counter::default(),
            publish_failures: Counter::default(),
            parked: Counter::default(),
            refused: Counter::default(),
            backlog: Gauge::default(),
            parked_now: Gauge::default(),
            oldest_pending_seconds: Gauge::default(),
        };
        registry.register(
            "outbox_events_published",
            "Outbox events acknowledged by Kafka",
            metrics.published.clone(),
        );
        registry.register(
            "outbox_publish_failures",
            "Outbox events Kafka did not acknowledge (they stay in the outbox and are retried)",
            metrics.publish_failures.clone(),
        );
        registry.register(
            "outbox_publish_latency_seconds",
            "Time from the change's commit to Kafka's acknowledgement",
            metrics.publish_latency.clone(),
        );
        registry.register(
            "outbox_parked",
            "Outbox rows set aside because this release does not know their event type",
            metrics.parked.clone(),
        );
        registry.register(
            "outbox_refused",
            "Outbox rows parked because the broker refused their record for good (too large, a policy) on every attempt",
            metrics.refused.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Events waiting in the outbox (exact up to 10,000, an upper bound beyond)",
            metrics.backlog.clone(),
        );
        registry.register(
            "outbox_parked_rows",
            "Outbox rows parked now, waiting for a release that knows their event type",
            metrics.parked_now.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest event waiting in the outbox",
            metrics.oldest_pending_seconds.clone(),
        );
        metrics
    }

    pub(super) fn set_backlog(&self, backlog: Backlog) {
        self.backlog.set(backlog.rows);
        self.parked_now.set(backlog.parked);
        self.oldest_pending_seconds.set(backlog.oldest_seconds);
    }
}
