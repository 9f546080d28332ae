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

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use deadpool_postgres::PoolError;
use rdkafka::error::KafkaError;
use shared::{
    db::Pool,
    db_failure::DbFailure,
    kafka::{Cluster, TopicError, TopicSettings},
};
use shared_proto::topics::Topics;
use time::OffsetDateTime;
use tokio::{
    sync::{Notify, mpsc},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{RelayMetrics, publisher::Publisher, table};

/// How long a claimed row is kept from other relays; renewed while its record is in flight.
const LEASE: Duration = Duration::from_secs(10);
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// Least time between two claims when the last one found fewer rows than it could take.
/// Every write wakes the relay, and a claim per wake costs Postgres a committed statement and
/// the broker a produce request for each event; waiting this long gathers the events that
/// arrive meanwhile into one claim, for at most a millisecond of latency.
const CLAIM_GAP: Duration = Duration::from_millis(1);
/// Records handed to the producer and not yet answered, at most. Records for a partition
/// that does not answer wait up to the publish timeout each, so this leaves room for healthy
/// partitions meanwhile.
const MAX_IN_FLIGHT: usize = 20_000;
/// How long a stopping relay waits for the broker to acknowledge what it has sent.
const FINAL_FLUSH: Duration = Duration::from_secs(5);
/// Least time between two log lines about failed records.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

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

/// What became of one row.
struct Delivery {
    row: i64,
    occurred_at: OffsetDateTime,
    answer: Answer,
}

enum Answer {
    Acknowledged,
    Failed(String),
    /// Refused in a way the same record will always be (too large, against a policy).
    Refused(String),
    /// Not sent: an earlier row of its user failed.
    NotSent,
}

/// What one claim did.
struct Claim {
    /// Rows claimed, parked ones included.
    claimed: usize,
    /// Rows whose delivery will be reported.
    in_flight: Vec<i64>,
}

/// Answers not yet written to the outbox.
#[derive(Default)]
struct Outcomes {
    published: Vec<i64>,
    failed: Vec<i64>,
    refused: Vec<i64>,
    released: Vec<i64>,
}

impl Outcomes {
    fn is_empty(&self) -> bool {
        self.published.is_empty() && !self.has_setbacks()
    }

    fn has_setbacks(&self) -> bool {
        !(self.failed.is_empty() && self.refused.is_empty() && self.released.is_empty())
    }
}

/// Attempts a record the broker refuses for good gets before its row is parked.
const REFUSALS_BEFORE_PARKING: i32 = 3;

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
        let mut claim_now = true;
        let mut backoff = Duration::from_millis(100);
        let now = Instant::now();
        let (mut next_poll, mut next_renew, mut next_measure) = (now, now + RENEW_EVERY, now);
        let mut earliest_claim = now;

        while !shutdown.is_cancelled() {
            if Instant::now() >= next_measure {
                if let Err(error) = self.measure_backlog().await {
                    tracing::debug!(%error, "cannot measure the outbox backlog");
                }
                next_measure = Instant::now() + self.config.poll_interval;
            }
            while let Ok(delivery) = receiver.try_recv() {
                in_flight.remove(&delivery.row);
                if let Err(error) = self.note(delivery, &mut outcomes) {
                    failures.note(&error);
                }
            }
            if let Err(error) = self.record_setbacks(&mut outcomes).await {
                failures.note(&format!("cannot record what the broker answered: {error}"));
            }
            // Published rows are deleted by the next claim's own statement, which may then
            // take their users' next rows.
            claim_now |= Instant::now() >= next_poll || !outcomes.published.is_empty();
            let room = MAX_IN_FLIGHT.saturating_sub(in_flight.len());
            // Nothing is sent while the topics may be missing: tansu, restarted empty,
            // acknowledges records for a topic it has not created again yet and drops them
            // when the topic is created.
            let topics_ready = self.publisher.ensure_topics_in_background(&self.wake);
            if claim_now && room > 0 && topics_ready && Instant::now() >= earliest_claim {
                let limit = room.min(self.config.batch_size as usize);
                match self
                    .claim_and_send(limit, &outcomes.published, &sender)
                    .await
                {
                    Ok(claim) => {
                        outcomes.published.clear();
                        claim_now = claim.claimed == limit;
                        earliest_claim =
                            Instant::now() + if claim_now { Duration::ZERO } else { CLAIM_GAP };
                        in_flight.extend(claim.in_flight);
                        backoff = Duration::from_millis(100);
                        next_poll = Instant::now() + self.config.poll_interval;
                    }
                    Err(error) => {
                        failures.note(&format!("cannot claim outbox rows: {error}"));
                        claim_now = false;
                        next_poll = Instant::now() + backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            // Acknowledged rows go at once when no claim will take them along: claims wait
            // while the topics are unknown or the relay is full, and the rows' leases would
            // lapse meanwhile, for other relays to publish them again.
            if !outcomes.published.is_empty()
                && (room == 0 || !topics_ready)
                && let Err(error) = self.record(&mut outcomes).await
            {
                failures.note(&format!(
                    "cannot delete what the broker acknowledged: {error}"
                ));
            }
            if Instant::now() >= next_renew {
                self.renew(&in_flight).await;
                next_renew = Instant::now() + RENEW_EVERY;
            }
            let wants_claim = (claim_now || !outcomes.published.is_empty())
                && in_flight.len() < MAX_IN_FLIGHT
                && topics_ready;
            if wants_claim && Instant::now() >= earliest_claim {
                continue;
            }
            if !topics_ready && Instant::now() >= next_poll {
                next_poll = Instant::now() + self.config.poll_interval;
            }
            let mut wake_at = next_poll.min(next_renew).min(next_measure);
            if wants_claim {
                wake_at = wake_at.min(earliest_claim);
            }
            tokio::select! {
                _ = self.wake.notified() => claim_now = true,
                _ = tokio::time::sleep_until(wake_at) => {}
                Some(delivery) = receiver.recv() => {
                    in_flight.remove(&delivery.row);
                    if let Err(error) = self.note(delivery, &mut outcomes) {
                        failures.note(&error);
                    }
                }
                _ = shutdown.cancelled() => {}
            }
        }

        // Calls that finished during the drain committed rows after the last claim.
        let deadline = Instant::now() + FINAL_FLUSH;
        let limit = self.config.batch_size as usize;
        while Instant::now() < deadline {
            match self.claim_and_send(limit, &[], &sender).await {
                Ok(claim) => {
                    in_flight.extend(claim.in_flight);
                    if claim.claimed < limit {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "last outbox claim failed; events stay in the outbox");
                    break;
                }
            }
        }
        while !in_flight.is_empty() {
            tokio::select! {
                Some(delivery) = receiver.recv() => {
                    in_flight.remove(&delivery.row);
                    let _ = self.note(delivery, &mut outcomes);
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if let Err(error) = self.record(&mut outcomes).await {
            tracing::warn!(%error, "cannot record the last acknowledgements; those events will be published again");
        }
        if !in_flight.is_empty() {
            tracing::warn!(
                unacknowledged = in_flight.len(),
                "stopping with records in flight; they stay in the outbox for the next relay"
            );
            let rows: Vec<i64> = in_flight.into_iter().collect();
            let released = self
                .pool
                .run(async |client| {
                    Ok::<_, RelayError>(table::release(&*client, self.owner, &rows).await?)
                })
                .await;
            if let Err(error) = released {
                tracing::debug!(%error, "cannot free the leases of records in flight; they lapse");
            }
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
                    table::claim(client, self.owner, limit as i64, LEASE, published).await?,
                )
            })
            .await?;
        let count = claimed.len();
        let mut unknown = Vec::new();
        let mut in_flight = Vec::with_capacity(count);
        // Each user's rows, oldest first, go one after the other: a row is sent once the one
        // before it is acknowledged, so a failure holds back that user's later rows and no
        // one else's.
        let mut chains: Vec<Vec<table::Claimed>> = Vec::new();
        let mut chain_of: HashMap<Uuid, usize> = HashMap::new();
        for event in claimed {
            if self.publisher.topic_of(&event.event_type).is_none() {
                unknown.push(event);
                continue;
            }
            in_flight.push(event.row);
            let at = *chain_of.entry(event.aggregate_id).or_insert_with(|| {
                chains.push(Vec::new());
                chains.len() - 1
            });
            chains[at].push(event);
        }
        for chain in chains {
            tokio::spawn(publish_in_turn(
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

    /// Counts an answer and queues what it means for the outbox; the error when it failed.
    fn note(&self, delivery: Delivery, outcomes: &mut Outcomes) -> Result<(), String> {
        match delivery.answer {
            Answer::NotSent => {
                outcomes.released.push(delivery.row);
                Ok(())
            }
            Answer::Acknowledged => {
                self.publisher.after_success();
                self.metrics.published.inc();
                let age = (OffsetDateTime::now_utc() - delivery.occurred_at).as_seconds_f64();
                self.metrics.publish_latency.observe(age.max(0.0));
                outcomes.published.push(delivery.row);
                Ok(())
            }
            Answer::Failed(error) => {
                self.metrics.publish_failures.inc();
                self.publisher.after_failure();
                outcomes.failed.push(delivery.row);
                Err(error)
            }
            // The broker is fine and the topics are there: nothing for the producer to mend.
            Answer::Refused(error) => {
                self.metrics.publish_failures.inc();
                outcomes.refused.push(delivery.row);
                Err(error)
            }
        }
    }

    /// Schedules what failed for a retry and frees what was not sent; deleting what was
    /// published waits for the next claim.
    async fn record_setbacks(&self, outcomes: &mut Outcomes) -> Result<(), RelayError> {
        if !outcomes.has_setbacks() {
            return Ok(());
        }
        self.pool
            .run(async |client| self.write_setbacks(client, outcomes).await)
            .await
    }

    /// Retries what failed, parks what the broker refused for good too often, and frees what
    /// was not sent.
    async fn write_setbacks(
        &self,
        client: &mut deadpool_postgres::Client,
        outcomes: &mut Outcomes,
    ) -> Result<(), RelayError> {
        table::retry_later(&*client, self.owner, &outcomes.failed).await?;
        outcomes.failed.clear();
        if !outcomes.refused.is_empty() {
            let parked = table::park_refused(
                &*client,
                self.owner,
                &outcomes.refused,
                REFUSALS_BEFORE_PARKING,
            )
            .await?;
            self.metrics.refused.inc_by(parked.len() as u64);
            for row in &parked {
                tracing::warn!(
                    row,
                    attempts = REFUSALS_BEFORE_PARKING,
                    "the broker refused this outbox row's record for good; parked (outbox_parked_rows)"
                );
            }
            let again: Vec<i64> = outcomes
                .refused
                .iter()
                .copied()
                .filter(|row| !parked.contains(row))
                .collect();
            table::retry_later(&*client, self.owner, &again).await?;
            outcomes.refused.clear();
        }
        table::release(&*client, self.owner, &outcomes.released).await?;
        outcomes.released.clear();
        Ok(())
    }

    /// Deletes what was published and schedules what failed for a retry. What it could not
    /// write stays queued in `outcomes`; a lease that runs out meanwhile means at worst a
    /// duplicate.
    async fn record(&self, outcomes: &mut Outcomes) -> Result<(), RelayError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.pool
            .run(async |client| {
                table::delete(&*client, &outcomes.published).await?;
                outcomes.published.clear();
                self.write_setbacks(client, outcomes).await
            })
            .await
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

/// Publishes one user's rows in turn, each once the one before is acknowledged; after a
/// failure the rest are not sent.
async fn publish_in_turn(
    publisher: Arc<Publisher>,
    chain: Vec<table::Claimed>,
    deliveries: mpsc::UnboundedSender<Delivery>,
) {
    let mut chain = chain.into_iter();
    while let Some(event) = chain.next() {
        let answer = match publisher.topic_of(&event.event_type) {
            None => Answer::Failed(format!("unknown event type {}", event.event_type)),
            Some(topic) => match publisher.send(topic, &event) {
                Ok(answer) => match answer.await {
                    Ok(Ok(_)) => Answer::Acknowledged,
                    Ok(Err((error, _))) if refused_for_good(&error) => {
                        Answer::Refused(error.to_string())
                    }
                    Ok(Err((error, _))) => Answer::Failed(error.to_string()),
                    Err(_) => Answer::Failed("the producer dropped the record".to_owned()),
                },
                Err(error) if refused_for_good(&error) => {
                    Answer::Refused(format!("the producer refused the record: {error}"))
                }
                Err(error) => Answer::Failed(format!("the producer refused the record: {error}")),
            },
        };
        let failed = matches!(answer, Answer::Failed(_) | Answer::Refused(_));
        let _ = deliveries.send(Delivery {
            row: event.row,
            occurred_at: event.occurred_at,
            answer,
        });
        if failed {
            for later in chain {
                let _ = deliveries.send(Delivery {
                    row: later.row,
                    occurred_at: later.occurred_at,
                    answer: Answer::NotSent,
                });
            }
            return;
        }
    }
}

/// Whether the broker (or the producer) will refuse the same record every time: too large,
/// or against a topic's policy. Such a record is parked after a few attempts instead of
/// holding its user's later events back for ever. INVALID_RECORD is not among them: a topic
/// whose validation refuses every record is sick, and its records go through once it heals.
fn refused_for_good(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        error.rdkafka_error_code(),
        Some(
            Code::MessageSizeTooLarge
                | Code::InvalidMessageSize
                | Code::MessageBatchTooLarge
                | Code::PolicyViolation
        )
    )
}

/// Logs the first failure, then at most one line per period with how many followed.
#[derive(Default)]
struct FailureLog {
    last: Option<Instant>,
    since: u64,
}

impl FailureLog {
    fn note(&mut self, error: &str) {
        self.since += 1;
        if self
            .last
            .is_none_or(|last| last.elapsed() >= FAILURE_LOG_EVERY)
        {
            tracing::warn!(%error, failures = self.since, "outbox relay: events stay in the outbox and are retried");
            self.last = Some(Instant::now());
            self.since = 0;
        }
    }
}
