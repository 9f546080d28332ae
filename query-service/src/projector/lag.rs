//! The projector's lag, measured apart from the consumer: a thread of its own reads, for each
//! partition the projector holds, where the partition ends (its high watermark) and what the
//! group has committed, through a client of its own. librdkafka's statistics come only while
//! the consumer polls, and a projector that cannot write the view stops polling, so a lag
//! taken from them freezes at its last small value exactly when it matters.
//!
//! A partition whose committed offset has not moved for `STALL_AFTER` while records wait
//! past it is stalled; the projector is then reported degraded (readiness JSON) and
//! `projector_stalled` is 1. The same thread watches the partitions held elsewhere (see
//! `group`).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    error::KafkaResult,
};

use super::{
    context::ProjectorContext,
    group::GroupWatch,
    metrics::{PartitionLabels, ProjectorMetrics},
};

/// How often the lag is measured.
pub(super) const MEASURE_EVERY: Duration = Duration::from_secs(5);
/// How long a partition's committed offset may stand still while records wait.
pub(super) const STALL_AFTER: Duration = Duration::from_secs(30);
/// Bound on each broker call of a measurement.
const BROKER_WAIT: Duration = Duration::from_secs(5);

/// What the last measurement found, for the readiness check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Progress {
    /// Not measured yet, or nothing held.
    #[default]
    Unknown,
    Advancing,
    /// Partitions with records waiting and a committed offset that stood still.
    Stalled {
        partitions: usize,
        waiting: i64,
    },
}

/// The projector's progress as the lag watch last saw it; cheap to clone and read.
#[derive(Clone, Default)]
pub struct ProgressReport(Arc<Mutex<Progress>>);

impl ProgressReport {
    pub fn get(&self) -> Progress {
        self.0.lock().expect("progress lock poisoned").clone()
    }

    fn set(&self, progress: Progress) {
        *self.0.lock().expect("progress lock poisoned") = progress;
    }

    /// For the readiness check: an error while stalled.
    pub fn check(&self) -> Result<(), String> {
        match self.get() {
            Progress::Stalled {
                partitions,
                waiting,
            } => Err(format!(
                "stalled: {waiting} records wait on {partitions} partitions whose committed \
                 offset has not moved for {STALL_AFTER:?}"
            )),
            Progress::Unknown | Progress::Advancing => Ok(()),
        }
    }
}

/// Where one held partition stood at the last measurement.
struct Seen {
    committed: i64,
    since: Instant,
}

pub(super) struct LagWatch {
    /// The projector's consumer: asked only which partitions it holds.
    projector: Arc<BaseConsumer<ProjectorContext>>,
    /// A client of the watch's own, in the projector's group but never joining it.
    client: BaseConsumer,
    report: ProgressReport,
    tracker: Tracker,
    group: GroupWatch,
}

/// The bookkeeping of measurements: the gauges, and when each partition last moved.
struct Tracker {
    metrics: ProjectorMetrics,
    seen: HashMap<(String, i32), Seen>,
}

impl LagWatch {
    pub(super) fn new(
        projector: Arc<BaseConsumer<ProjectorContext>>,
        client: BaseConsumer,
        metrics: ProjectorMetrics,
        report: ProgressReport,
        group: GroupWatch,
    ) -> Self {
        Self {
            projector,
            client,
            report,
            group,
            tracker: Tracker {
                metrics,
                seen: HashMap::new(),
            },
        }
    }

    /// Measures every `MEASURE_EVERY` until `stopping`.
    pub(super) fn spawn(mut self, stopping: Arc<AtomicBool>) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("projector-lag".to_owned())
            .spawn(move || {
                while !stopping.load(Ordering::Acquire) {
                    if let Err(error) = self.measure(Instant::now()) {
                        tracing::debug!(%error, "cannot measure the projector's lag");
                    }
                    let own_stalled = matches!(self.report.get(), Progress::Stalled { .. });
                    self.group.check(&self.projector, &self.client, own_stalled);
                    let until = Instant::now() + MEASURE_EVERY;
                    while Instant::now() < until && !stopping.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
            .map(drop)
    }

    fn measure(&mut self, now: Instant) -> KafkaResult<()> {
        let held = self.projector.assignment()?;
        let mut ends = HashMap::new();
        for element in held.elements() {
            let key = (element.topic().to_owned(), element.partition());
            let watermarks =
                self.client
                    .fetch_watermarks(element.topic(), element.partition(), BROKER_WAIT)?;
            ends.insert(key, watermarks);
        }
        let committed = if held.count() == 0 {
            TopicPartitionList::new()
        } else {
            self.client.committed_offsets(held, BROKER_WAIT)?
        };
        let mut measured = HashMap::new();
        for element in committed.elements() {
            let key = (element.topic().to_owned(), element.partition());
            let Some(&(low, high)) = ends.get(&key) else {
                continue;
            };
            let at = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => low,
            };
            measured.insert(key, (at, (high - at).max(0)));
        }
        let progress = self.tracker.record(measured, now);
        if matches!(progress, Progress::Stalled { .. })
            && !matches!(self.report.get(), Progress::Stalled { .. })
        {
            tracing::warn!(
                ?progress,
                "the projector has stalled: records wait and nothing is committed"
            );
        }
        self.report.set(progress);
        Ok(())
    }
}

impl Tracker {
    /// Sets the gauges from one measurement, (committed, lag) per held partition, and says
    /// how the projector progresses.
    fn record(&mut self, measured: HashMap<(String, i32), (i64, i64)>, now: Instant) -> Progress {
        // A partition no longer held leaves the metrics: its new owner reports it.
        let gone: Vec<(String, i32)> = self
            .seen
            .keys()
            .filter(|key| !measured.contains_key(*key))
            .cloned()
            .collect();
        for (topic, partition) in gone {
            self.metrics.lag.remove(&PartitionLabels {
                topic: topic.clone(),
                partition: partition.into(),
            });
            self.seen.remove(&(topic, partition));
        }
        let (mut stalled, mut waiting) = (0, 0);
        for ((topic, partition), (committed, lag)) in measured {
            self.metrics
                .lag
                .get_or_create(&PartitionLabels {
                    topic: topic.clone(),
                    partition: partition.into(),
                })
                .set(lag);
            let seen = self.seen.entry((topic, partition)).or_insert(Seen {
                committed,
                since: now,
            });
            if seen.committed != committed || lag == 0 {
                *seen = Seen {
                    committed,
                    since: now,
                };
            } else if now.duration_since(seen.since) >= STALL_AFTER {
                stalled += 1;
                waiting += lag;
            }
        }
        let progress = if stalled > 0 {
            Progress::Stalled {
                partitions: stalled,
                waiting,
            }
        } else if self.seen.is_empty() {
            Progress::Unknown
        } else {
            Progress::Advancing
        };
        self.metrics.stalled.set(i64::from(stalled > 0));
        progress
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::*;

    fn tracker() -> Tracker {
        Tracker {
            metrics: ProjectorMetrics::register(&mut Registry::default(), &["t"]),
            seen: HashMap::new(),
        }
    }

    fn at(partitions: &[(i32, i64, i64)]) -> HashMap<(String, i32), (i64, i64)> {
        partitions
            .iter()
            .map(|&(partition, committed, lag)| (("t".to_owned(), partition), (committed, lag)))
            .collect()
    }

    #[test]
    fn a_partition_whose_records_wait_unprojected_past_the_bound_is_stalled() {
        let mut tracker = tracker();
        let start = Instant::now();
        assert_eq!(
            tracker.record(at(&[(0, 10, 5), (1, 3, 0)]), start),
            Progress::Advancing
        );
        let later = start + STALL_AFTER;
        assert_eq!(
            tracker.record(at(&[(0, 10, 9), (1, 3, 0)]), later),
            Progress::Stalled {
                partitions: 1,
                waiting: 9
            }
        );
        assert_eq!(tracker.metrics.stalled.get(), 1);
        // It moves again.
        assert_eq!(
            tracker.record(at(&[(0, 11, 8), (1, 3, 0)]), later + MEASURE_EVERY),
            Progress::Advancing
        );
    }

    #[test]
    fn an_idle_partition_is_not_stalled_and_a_revoked_one_leaves_the_metrics() {
        let mut tracker = tracker();
        let start = Instant::now();
        tracker.record(at(&[(0, 10, 0), (1, 3, 2)]), start);
        assert_eq!(
            tracker.record(at(&[(0, 10, 0)]), start + STALL_AFTER * 2),
            Progress::Advancing
        );
        let label = |partition: i64| PartitionLabels {
            topic: "t".to_owned(),
            partition,
        };
        assert!(tracker.metrics.lag.remove(&label(0)));
        assert!(
            !tracker.metrics.lag.remove(&label(1)),
            "partition 1 left with its owner"
        );
    }
}
