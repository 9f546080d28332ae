//! How far a replay is, for whoever watches: a progress bar on a terminal, a log line every
//! few seconds elsewhere, and always Prometheus metrics on REPLAY_METRICS_ADDR, since a
//! replay run as a Kubernetes Job is watched through Prometheus rather than a terminal.

use std::{
    io::IsTerminal,
    sync::atomic::AtomicU64,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// Where a replay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Reading,
    Merging,
    Swapping,
    Done,
}

impl Phase {
    const ALL: [Self; 4] = [Self::Reading, Self::Merging, Self::Swapping, Self::Done];

    fn label(self) -> &'static str {
        match self {
            Self::Reading => "reading",
            Self::Merging => "merging",
            Self::Swapping => "swapping",
            Self::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

/// The replay's metrics; registered before the replay knows how much it has to read.
#[derive(Clone)]
pub(super) struct ReplayMetrics {
    read: Counter,
    per_second: Gauge<f64, AtomicU64>,
    remaining: Gauge,
    phase: Family<PhaseLabel, Gauge>,
}

impl ReplayMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            read: Counter::default(),
            per_second: Gauge::default(),
            remaining: Gauge::default(),
            phase: Family::default(),
        };
        registry.register(
            "replay_events_read",
            "Events the replay has read so far",
            metrics.read.clone(),
        );
        registry.register(
            "replay_events_per_second",
            "Events read per second since the replay began",
            metrics.per_second.clone(),
        );
        registry.register(
            "replay_remaining_events",
            "Events between the replay's position and the end of the topics as they were when it began",
            metrics.remaining.clone(),
        );
        registry.register(
            "replay_phase",
            "1 for the phase the replay is in (reading, merging, swapping, done), 0 for the others",
            metrics.phase.clone(),
        );
        metrics.enter(Phase::Reading);
        metrics
    }

    pub(super) fn enter(&self, current: Phase) {
        for phase in Phase::ALL {
            self.phase
                .get_or_create(&PhaseLabel {
                    phase: phase.label(),
                })
                .set(i64::from(phase == current));
        }
    }
}

pub(super) struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
    last_line: Instant,
    metrics: ReplayMetrics,
}

impl Progress {
    pub(super) fn new(total: u64, metrics: ReplayMetrics) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "replay {bar:40} {pos}/{len} events  {per_sec}  {eta} left",
                )
                .expect("a valid template"),
            );
            bar
        });
        metrics.remaining.set(total as i64);
        Self {
            bar,
            total,
            started: Instant::now(),
            last_line: Instant::now(),
            metrics,
        }
    }

    pub(super) fn set(&mut self, done: u64) {
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        self.metrics
            .read
            .inc_by(done.saturating_sub(self.metrics.read.get()));
        self.metrics.per_second.set(rate);
        self.metrics
            .remaining
            .set(self.total.saturating_sub(done) as i64);
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        if self.last_line.elapsed() >= Duration::from_secs(2) {
            self.last_line = Instant::now();
            tracing::info!(
                done,
                remaining = self.total.saturating_sub(done),
                events_per_second = rate.round(),
                "replaying"
            );
        }
    }

    pub(super) fn finish(&mut self, done: u64) {
        self.set(done);
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        tracing::info!(
            done,
            events_per_second = rate.round(),
            "replay read every event"
        );
    }

    pub(super) fn enter(&self, phase: Phase) {
        self.metrics.enter(phase);
    }
}
