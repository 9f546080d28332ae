//! The projector's Prometheus metrics.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Written to the view.
    Applied,
    /// The view already held that version or a newer one.
    Stale,
    /// The user's tombstone was purged, so the event was refused.
    Purged,
    /// Undecodable, sent to the dead-letter topic.
    DeadLettered,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Stale => "stale",
            Self::Purged => "purged",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    topic: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PartitionLabels {
    pub(super) topic: String,
    pub(super) partition: i64,
}

#[derive(Clone)]
pub struct ProjectorMetrics {
    events: Family<EventLabels, Counter>,
    pub(super) lag: Family<PartitionLabels, Gauge>,
    /// 1 while a held partition has records waiting and a committed offset that stands still.
    pub(super) stalled: Gauge,
    pub(super) errors: Counter,
    /// From a change's commit on the write side to its row in the view.
    pub(super) delay: Histogram,
}

impl ProjectorMetrics {
    /// Registers the metrics, with every (topic, outcome) series of `topics` at zero, so that
    /// an alert on the first dead letter after a restart sees it.
    pub fn register(registry: &mut Registry, topics: &[&str]) -> Self {
        let metrics = Self {
            events: Family::default(),
            lag: Family::default(),
            stalled: Gauge::default(),
            errors: Counter::default(),
            delay: Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        };
        registry.register(
            "projector_events",
            "Events the projector handled, by topic and outcome (applied, stale, purged, dead_lettered)",
            metrics.events.clone(),
        );
        registry.register(
            "projector_lag",
            "Records not yet projected, per partition this replica holds (high watermark minus the group's committed offset, measured apart from the consumer)",
            metrics.lag.clone(),
        );
        registry.register(
            "projector_stalled",
            "1 while records wait on a partition this replica holds and its committed offset has not moved for 30 s",
            metrics.stalled.clone(),
        );
        registry.register(
            "projector_delay_seconds",
            "Time from a change's commit to its row in the view (applied changes)",
            metrics.delay.clone(),
        );
        registry.register(
            "projector_errors",
            "Failed attempts to write the view (the batch is retried)",
            metrics.errors.clone(),
        );
        for topic in topics {
            for outcome in [
                Outcome::Applied,
                Outcome::Stale,
                Outcome::Purged,
                Outcome::DeadLettered,
            ] {
                drop(metrics.events.get_or_create(&EventLabels {
                    topic: (*topic).to_owned(),
                    outcome: outcome.label(),
                }));
            }
        }
        metrics
    }

    pub(super) fn count(&self, topic: &str, outcome: Outcome) {
        self.events
            .get_or_create(&EventLabels {
                topic: topic.to_owned(),
                outcome: outcome.label(),
            })
            .inc();
    }
}
