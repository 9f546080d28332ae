//! Publishes outbox rows to Kafka and deletes them once the broker has acknowledged them.
//!
//! Rows are claimed under a lease, renewed while their records are in flight, instead of
//! being held locked until the broker answers; the relay goes on claiming while earlier
//! records wait for their acknowledgement. So a record the broker is slow to take (a sick
//! partition, a broker that is down) holds back only its own user's later rows, and a relay
//! that dies leaves its rows to the others after one lease.
//!
//! Delivery is at least once, and not in order across relays and retries: a row whose relay
//! died after publishing it, or whose lease ran out, is published again, and two relays may
//! publish one user's rows in either order. Consumers order a user's changes by version.

mod chains;
mod drain;
mod failure_log;
mod outcomes;
mod schedule;

use std::{collections::HashSet, sync::Arc, time::Duration};

use deadpool_postgres::PoolError;
use rdkafka::error::KafkaError;
use shared::{
    db::Pool,
    db_failure::DbFailure,
    kafka::{Cluster, TopicError, TopicSettings},
};
use shared_proto::topics::Topics;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::{
    chains::Delivery,
    failure_log::FailureLog,
    outcomes::Outcomes,
    schedule::{Room, Schedule},
};
use super::{RelayMetrics, publisher::Publisher, table};

/// How long a claimed row is kept from other relays; renewed while its record is in flight.
const LEASE: Duration = Duration::from_secs(10);
/// Records handed to the producer and not yet answered, at most. Records for a partition
/// that does not answer wait up to the publish timeout each, so this leaves room for healthy
/// partitions meanwhile.
const MAX_IN_FLIGHT: usize = 20_000;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub cluster: Cluster,
    pub topics: Topics,
    pub topic_settings: TopicSettings,
    /// Rows claimed at once.
    pub batch_size: i64,
    /// How often to look for rows when nothing woke the relay.
    pub poll_interval: Duration,
    /// How long the producer keeps retrying a record before it counts as failed.
    pub publish_timeout: Duration,
    /// Records per producer batch (see `--kafka-batch-num-messages`).
    pub batch_num_messages: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Pool(#[from] PoolError),
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Database(#[from] DbFailure),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("kafka: {0}")]
    Topics(#[from] TopicError),
    #[error("{failed} of {claimed} records were not published; first error: {first}")]
    Publish {
        claimed: usize,
        failed: usize,
        first: String,
    },
}

pub struct Relay {
    /// Names this relay's leases in the outbox.
    owner: Uuid,
    pool: Pool,
    config: RelayConfig,
    publisher: Arc<Publisher>,
    wake: Arc<Notify>,
    metrics: RelayMetrics,
}

/// What one claim did.
struct Claim {
    /// Rows claimed, parked ones included.
    claimed: usize,
    /// Rows whose delivery will be reported.
    in_flight: Vec<i64>,
}

impl Relay {
    /// `wake` is notified by the command handlers of this process and by the LISTEN task.
    pub fn new(
        pool: Pool,
        config: RelayConfig,
        wake: Arc<Notify>,
        metrics: RelayMetrics,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            owner: Uuid::new_v4(),
            pool,
            publisher: Arc::new(Publisher::new(config.clone())?),
            config,
            wake,
            metrics,
        })
    }

    /// Claims one batch, publishes it and waits for every answer. Returns how many were
    /// published. Tests call it to drain the outbox deterministically.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        self.publisher.ensure_topics().await?;
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let claim = self
            .claim_and_send(self.config.batch_size as usize, &[], &sender)
            .await?;
        drop(sender);
        let mut outcomes = Outcomes::default();
        let mut first_error = None;
        while let Some(delivery) = receiver.recv().await {
            if let Err(error) = self.note(delivery, &mut outcomes) {
                first_error.get_or_insert(error);
            }
        }
        let (published, failed) = (outcomes.published.len(), outcomes.failed.len());
        self.record(&mut outcomes).await?;
        match first_error {
            None => Ok(published),
            Some(first) => Err(RelayError::Publish {
                claimed: claim.claimed,
                failed,
                first,
            }),
        }
    }

    /// Refreshes the backlog gauges.
    pub async fn measure_backlog(&self) -> Result<(), RelayError> {
        let backlog = self
            .pool
            .run(async |client| Ok::<_, RelayError>(table::backlog(&*client).await?))
            .await?;
        self.metrics.set_backlog(backlog);
        Ok(())
    }

    /// Publishes until `shutdown`, claiming when woken, when the last claim was full, and on
    /// every poll; then publishes what is left and waits briefly for the broker's answers.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Delivery>();
        let mut in_flight: HashSet<i64> = HashSet::new();
        let mut outcomes = Outcomes::default();
        let mut failures = FailureLog::default();
        let mut schedule = Schedule::new(self.config.poll_interval);

        while !shutdown.is_cancelled() {
            if schedule.measure_due()
                && let Err(error) = self.measure_backlog().await
            {
                tracing::debug!(%error, "cannot measure the outbox backlog");
            }
            while let Ok(delivery) = receiver.try_recv() {
                self.receive(delivery, &mut in_flight, &mut outcomes, &mut failures);
            }
            if let Err(error) = self.record_setbacks(&mut outcomes).await {
                failures.note(&format!("cannot record what the broker answered: {error}"));
            }
            // Nothing is sent while the topics may be missing: tansu, restarted empty,
            // acknowledges records for a topic it has not created again yet and drops them
            // when the topic is created.
            let topics_ready = self.publisher.ensure_topics_in_background(&self.wake);
            let room = room_for(&in_flight, &outcomes, topics_ready);
            // Published rows are deleted by the next claim's own statement, which may then
            // take their users' next rows.
            if schedule.claim_due(room) {
                let limit = room.records.min(self.config.batch_size as usize);
                match self
                    .claim_and_send(limit, &outcomes.published, &sender)
                    .await
                {
                    Ok(claim) => {
                        outcomes.published.clear();
                        schedule.claimed(claim.claimed, limit);
                        in_flight.extend(claim.in_flight);
                    }
                    Err(error) => {
                        failures.note(&format!("cannot claim outbox rows: {error}"));
                        schedule.claim_failed();
                    }
                }
            }
            // Acknowledged rows go at once when no claim will take them along: claims wait
            // while the topics are unknown or the relay is full, and the rows' leases would
            // lapse meanwhile, for other relays to publish them again.
            if !outcomes.published.is_empty()
                && (room.records == 0 || !topics_ready)
                && let Err(error) = self.record(&mut outcomes).await
            {
                failures.note(&format!(
                    "cannot delete what the broker acknowledged: {error}"
                ));
            }
            if schedule.renew_due() {
                self.renew(&in_flight).await;
            }
            let Some(wake_at) = schedule.next_turn(room_for(&in_flight, &outcomes, topics_ready))
            else {
                continue;
            };
            tokio::select! {
                _ = self.wake.notified() => schedule.woken(),
                _ = tokio::time::sleep_until(wake_at) => {}
                Some(delivery) = receiver.recv() => {
                    self.receive(delivery, &mut in_flight, &mut outcomes, &mut failures);
                }
                _ = shutdown.cancelled() => {}
            }
        }
        // Calls that finished during the drain committed rows after the last claim.
        self.drain(sender, receiver, in_flight, outcomes).await;
    }

    fn receive(
        &self,
        delivery: Delivery,
        in_flight: &mut HashSet<i64>,
        outcomes: &mut Outcomes,
        failures: &mut FailureLog,
    ) {
        in_flight.remove(&delivery.row);
        if let Err(error) = self.note(delivery, outcomes) {
            failures.note(&error);
        }
    }

    /// Claims up to `limit` rows and hands them to the producer; every answer is sent to
    /// `deliveries` as it comes. Rows of unknown event types are parked.
    /// Deletes `published` in the same statement.
    async fn claim_and_send(
        &self,
        limit: usize,
        published: &[i64],
        deliveries: &mpsc::UnboundedSender<Delivery>,
    ) -> Result<Claim, RelayError> {
        let claimed = self
            .pool
            .run(async |client| {
                Ok::<_, RelayError>(
                    table::claim(&*client, self.owner, limit as i64, LEASE, published).await?,
                )
            })
            .await?;
        let count = claimed.len();
        let (known, unknown): (Vec<_>, Vec<_>) = claimed
            .into_iter()
            .partition(|event| self.publisher.topic_of(&event.event_type).is_some());
        let in_flight = known.iter().map(|event| event.row).collect();
        for chain in chains::by_user(known) {
            tokio::spawn(chains::publish_in_turn(
                Arc::clone(&self.publisher),
                chain,
                deliveries.clone(),
            ));
        }
        if !unknown.is_empty() {
            self.park(&unknown).await?;
        }
        Ok(Claim {
            claimed: count,
            in_flight,
        })
    }

    async fn park(&self, unknown: &[table::Claimed]) -> Result<(), RelayError> {
        let rows: Vec<i64> = unknown.iter().map(|event| event.row).collect();
        let newly_parked = self
            .pool
            .run(async |client| {
                Ok::<_, RelayError>(table::park(&*client, self.owner, &rows).await?)
            })
            .await?;
        self.metrics.parked.inc_by(newly_parked.len() as u64);
        for event in unknown.iter().filter(|e| newly_parked.contains(&e.row)) {
            tracing::warn!(
                row = event.row,
                event_type = %event.event_type,
                user_id = %event.aggregate_id,
                "outbox row of an event type this release does not know; parked for a release that does"
            );
        }
        Ok(())
    }

    async fn renew(&self, in_flight: &HashSet<i64>) {
        if in_flight.is_empty() {
            return;
        }
        let rows: Vec<i64> = in_flight.iter().copied().collect();
        let renewed = self
            .pool
            .run(async |client| {
                Ok::<_, RelayError>(table::renew(&*client, self.owner, &rows, LEASE).await?)
            })
            .await;
        if let Err(error) = renewed {
            tracing::warn!(%error, "cannot renew the leases of records in flight; another relay may publish them again");
        }
    }
}

/// What the relay may claim, given what it holds.
fn room_for(in_flight: &HashSet<i64>, outcomes: &Outcomes, topics_ready: bool) -> Room {
    Room {
        records: MAX_IN_FLIGHT.saturating_sub(in_flight.len()),
        topics_ready,
        acknowledged: !outcomes.published.is_empty(),
    }
}
