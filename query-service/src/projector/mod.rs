//! The projector: a consumer group over the three event topics that writes the view.
//!
//! Offsets are stored only after the batch they belong to is committed to the view (or, for
//! an undecodable record, acknowledged by the dead-letter topic), so a crash replays events
//! rather than skips them; the view's version guard makes a replayed event change nothing.

mod context;
mod dead_letters;
mod group;
mod lag;
mod metrics;
mod records;
mod topics;

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use rdkafka::{
    Message,
    consumer::{BaseConsumer, Consumer},
    error::KafkaResult,
    message::OwnedMessage,
};
use shared::{
    backoff::Backoff,
    db::Pool,
    kafka::{self, Cluster},
    trace_context,
};
use shared_proto::{event_headers, topics::Topics};
use tokio_util::sync::CancellationToken;

use self::{
    context::ProjectorContext,
    group::{Group, GroupWatch},
    lag::LagWatch,
    metrics::Outcome,
    records::Records,
};
pub use self::{
    dead_letters::DeadLetters,
    lag::{Progress, ProgressReport},
    metrics::ProjectorMetrics,
};
use crate::{
    read_model::{CachedUser, UserCache},
    user_change::UserChange,
    view,
};

/// Records applied in one transaction at most.
const MAX_BATCH: usize = 500;

pub struct Projector {
    consumer: Arc<BaseConsumer<ProjectorContext>>,
    /// Started with the consumer, by `run`.
    lag_watch: Option<LagWatch>,
    stopping: Arc<AtomicBool>,
    pool: Pool,
    topics: Topics,
    dead_letters: DeadLetters,
    cache: UserCache,
    metrics: ProjectorMetrics,
}

/// How the projector consumes: its group, and the settings of `query-service`'s config.
#[derive(Debug, Clone)]
pub struct Consuming {
    pub group: String,
    /// Records to resume before a partition's committed offset (`KAFKA_RESUME_REWIND`).
    pub resume_rewind: i64,
    /// `KAFKA_FETCH_WAIT`.
    pub fetch_wait: Duration,
}

impl Projector {
    pub fn new(
        cluster: &Cluster,
        consuming: &Consuming,
        topics: Topics,
        pool: Pool,
        cache: UserCache,
        metrics: ProjectorMetrics,
        progress: ProgressReport,
    ) -> KafkaResult<Self> {
        let Consuming {
            group,
            resume_rewind,
            fetch_wait,
        } = consuming;
        let (group, resume_rewind) = (group.as_str(), *resume_rewind);
        let stopping = Arc::new(AtomicBool::new(false));
        let consumer = cluster
            .client_config("query-service-projector")
            .set("group.id", group)
            // A killed replica's partitions wait this long for its session to expire.
            .set("session.timeout.ms", "10000")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            // Offsets are stored by hand, once their events are in the view.
            .set("enable.auto.offset.store", "false")
            .set(
                "fetch.wait.max.ms",
                fetch_wait.as_millis().max(1).to_string(),
            )
            // Eager rebalancing, which the context's rebalance callback is written for.
            .set("partition.assignment.strategy", "range")
            .create_with_context(ProjectorContext::new(resume_rewind, Arc::clone(&stopping)))?;
        let consumer = Arc::new(consumer);
        // Reads the group's committed offsets; never subscribes, so never joins.
        let lag_client = cluster
            .client_config("query-service-projector-lag")
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        Ok(Self {
            lag_watch: Some(LagWatch::new(
                Arc::clone(&consumer),
                lag_client,
                metrics.clone(),
                progress,
                GroupWatch::new(Group {
                    id: group.to_owned(),
                    topics: topics.events().map(str::to_owned).to_vec(),
                }),
            )),
            consumer,
            stopping,
            dead_letters: DeadLetters::new(cluster, topics.dead_letter.clone())?,
            pool,
            topics,
            cache,
            metrics,
        })
    }

    /// Projects until `shutdown`, then commits the stored offsets.
    pub async fn run(mut self, shutdown: CancellationToken) {
        if let Err(error) = self.consumer.subscribe(&self.topics.events()) {
            tracing::error!(%error, "projector cannot subscribe");
            return;
        }
        if let Some(watch) = self.lag_watch.take()
            && let Err(error) = watch.spawn(Arc::clone(&self.stopping))
        {
            tracing::error!(%error, "projector cannot start its lag watch");
            return;
        }
        let mut records =
            match Records::spawn(Arc::clone(&self.consumer), Arc::clone(&self.stopping)) {
                Ok(records) => records,
                Err(error) => {
                    tracing::error!(%error, "projector cannot start its consumer thread");
                    return;
                }
            };
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                received = records.recv() => match received {
                    Some(received) => received,
                    None => break,
                },
            };
            let mut batch = match first {
                Ok(message) => vec![message],
                Err(error) => {
                    tracing::warn!(%error, "projector consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            while batch.len() < MAX_BATCH {
                match records.try_recv() {
                    Some(Ok(message)) => batch.push(message),
                    Some(Err(error)) => tracing::warn!(%error, "projector consumer error"),
                    None => break,
                }
            }
            if !self.project(&batch, &shutdown).await {
                break;
            }
        }
        records.stop().await;
        tracing::info!("projector stopped");
    }

    /// Applies a batch, retrying while the database is down. Returns false when shutdown
    /// interrupted it (its offsets stay unstored, so it is projected again after restart).
    async fn project(&self, batch: &[OwnedMessage], shutdown: &CancellationToken) -> bool {
        let mut changes = Vec::with_capacity(batch.len());
        for record in batch {
            match UserChange::decode(&self.topics, record.topic(), record.payload()) {
                Ok(change) => changes.push((record, change)),
                Err(reason) => {
                    if !self
                        .dead_letters
                        .send(record, &reason.to_string(), shutdown)
                        .await
                    {
                        return false;
                    }
                    self.metrics.count(record.topic(), Outcome::DeadLettered);
                }
            }
        }

        let mut backoff = Backoff::standard();
        let applied = loop {
            match self.apply(&changes).await {
                Ok(applied) => break applied,
                Err(error) => {
                    self.metrics.errors.inc();
                    tracing::warn!(%error, retry_in = ?backoff.upcoming(), "projector cannot write the view; paused");
                    if !backoff.sleep(shutdown).await {
                        return false;
                    }
                }
            }
        };

        for ((record, change), applied) in changes.iter().zip(applied) {
            let span = tracing::info_span!(
                "projector.apply",
                otel.kind = "consumer",
                topic = record.topic(),
                user_id = %change.user.id,
                version = change.user.version,
                applied = ?applied,
            );
            if let Some(traceparent) = kafka::header(*record, event_headers::TRACEPARENT) {
                trace_context::set_parent(&span, trace_context::from_traceparent(traceparent));
            }
            span.in_scope(|| tracing::debug!("event projected"));
            let outcome = match applied {
                view::Applied::Written => Outcome::Applied,
                view::Applied::Stale => Outcome::Stale,
                view::Applied::Purged => {
                    tracing::warn!(
                        topic = record.topic(),
                        user_id = %change.user.id,
                        version = change.user.version,
                        "event refused: the user was deleted and its tombstone purged"
                    );
                    Outcome::Purged
                }
            };
            self.metrics.count(record.topic(), outcome);
            // Only what the view now holds: a stale change may be older than an entry that
            // expired or was evicted.
            if applied == view::Applied::Written {
                let delay = time::OffsetDateTime::now_utc() - change.user.updated_at;
                self.metrics.delay.observe(delay.as_seconds_f64().max(0.0));
                self.cache.written(change.user.id, CachedUser::from(change));
            }
        }
        self.cache.wake_readers();

        for record in batch {
            if let Err(error) =
                self.consumer
                    .store_offset(record.topic(), record.partition(), record.offset())
            {
                // A partition revoked meanwhile: its new owner projects the record again.
                tracing::debug!(%error, "offset not stored");
            }
        }
        true
    }

    async fn apply(
        &self,
        changes: &[(&OwnedMessage, UserChange)],
    ) -> Result<Vec<view::Applied>, shared::db_failure::DbFailure> {
        let refs: Vec<&UserChange> = changes.iter().map(|(_, change)| change).collect();
        self.pool
            .run(async |client| {
                let tx = client.transaction().await?;
                let applied = view::apply(&tx, view::Table::Live, &refs).await?;
                tx.commit().await?;
                Ok(applied)
            })
            .await
    }
}
