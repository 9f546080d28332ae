//! Publishes outbox rows to Kafka and deletes them once the broker has acknowledged them.
//!
//! A batch is claimed with `FOR UPDATE SKIP LOCKED` inside a transaction that stays open
//! until every record of the batch is acknowledged (or has failed), so several relays share
//! the backlog and a crash before the delete re-publishes rather than loses: delivery is at
//! least once, and consumers drop duplicates by version.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use deadpool_postgres::{Pool, PoolError};
use futures::future::join_all;
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use rdkafka::{
    error::KafkaError,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use users_shared::{event_headers, kafka, timestamp, topics::Topics};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub brokers: String,
    pub topics: Topics,
    pub topic_partitions: i32,
    pub topic_replication: i32,
    /// Rows claimed per transaction.
    pub batch_size: i64,
    /// How often to look for rows when no notification came.
    pub poll_interval: Duration,
    /// How long the producer keeps retrying a record before the batch fails.
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
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("outbox row {row} has the unknown event type `{event_type}`")]
    UnknownEventType { row: i64, event_type: String },
    #[error("{failed} of {claimed} records were not published; first error: {first}")]
    Publish {
        claimed: usize,
        failed: usize,
        first: String,
    },
}

/// The relay's Prometheus metrics.
#[derive(Clone)]
pub struct RelayMetrics {
    published: Counter,
    publish_failures: Counter,
    publish_latency: Histogram,
    backlog: Gauge,
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
            backlog: Gauge::default(),
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
            "outbox_backlog",
            "Events waiting in the outbox",
            metrics.backlog.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest event waiting in the outbox",
            metrics.oldest_pending_seconds.clone(),
        );
        metrics
    }
}

pub struct Relay {
    pool: Pool,
    config: RelayConfig,
    producer: RwLock<FutureProducer>,
    topics_ready: AtomicBool,
    wake: Arc<Notify>,
    metrics: RelayMetrics,
}

struct Claimed {
    row: i64,
    event_id: Uuid,
    event_type: String,
    aggregate_id: Uuid,
    aggregate_version: i64,
    payload: Vec<u8>,
    traceparent: Option<String>,
    occurred_at: OffsetDateTime,
}

impl Relay {
    /// `wake` is notified by the command handlers of this process and by the LISTEN task.
    pub fn new(
        pool: Pool,
        config: RelayConfig,
        wake: Arc<Notify>,
        metrics: RelayMetrics,
    ) -> Result<Self, KafkaError> {
        let producer = Self::producer(&config)?;
        Ok(Self {
            pool,
            config,
            producer: RwLock::new(producer),
            topics_ready: AtomicBool::new(false),
            wake,
            metrics,
        })
    }

    fn producer(config: &RelayConfig) -> Result<FutureProducer, KafkaError> {
        kafka::client_config(&config.brokers, "command-service-relay")
            // Idempotence keeps retries from duplicating or reordering records in a partition.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("batch.num.messages", config.batch_num_messages.to_string())
            .set(
                "message.timeout.ms",
                config.publish_timeout.as_millis().to_string(),
            )
            .create()
    }

    /// Publishes one batch of pending events and deletes what Kafka acknowledged. Returns how
    /// many were published. Tests call it to drain the outbox deterministically.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        if !self.topics_ready.load(Ordering::Acquire) {
            kafka::ensure_topics(
                &self.config.brokers,
                &self.config.topics.events(),
                self.config.topic_partitions,
                self.config.topic_replication,
            )
            .await?;
            self.topics_ready.store(true, Ordering::Release);
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let claim = tx
            .prepare_cached(include_str!("sql/claim_batch.sql"))
            .await?;
        let rows = tx.query(&claim, &[&self.config.batch_size]).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let claimed: Vec<Claimed> = rows
            .iter()
            .map(|row| Claimed {
                row: row.get(0),
                event_id: row.get(1),
                event_type: row.get(2),
                aggregate_id: row.get(3),
                aggregate_version: row.get(4),
                payload: row.get(5),
                traceparent: row.get(6),
                occurred_at: row.get(7),
            })
            .collect();

        let producer = self
            .producer
            .read()
            .expect("producer lock poisoned")
            .clone();
        let mut deliveries = Vec::with_capacity(claimed.len());
        for event in &claimed {
            let topic = self.topic_of(event)?;
            let key = event.aggregate_id.to_string();
            let record = FutureRecord::to(topic)
                .key(&key)
                .payload(&event.payload)
                .headers(headers(event));
            deliveries.push(match producer.send_result(record) {
                Ok(delivery) => Some(delivery),
                Err((error, _)) => {
                    tracing::warn!(%error, "cannot enqueue record in the producer");
                    None
                }
            });
        }
        let mut published = Vec::with_capacity(claimed.len());
        let mut first_error = None;
        for (event, delivery) in claimed.iter().zip(
            join_all(deliveries.into_iter().map(|delivery| async move {
                match delivery {
                    Some(delivery) => match delivery.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((error, _))) => Err(error.to_string()),
                        Err(_) => Err("the producer dropped the record".to_owned()),
                    },
                    None => Err("the producer queue refused the record".to_owned()),
                }
            }))
            .await,
        ) {
            match delivery {
                Ok(()) => {
                    published.push(event.row);
                    let age = (OffsetDateTime::now_utc() - event.occurred_at).as_seconds_f64();
                    self.metrics.publish_latency.observe(age.max(0.0));
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if !published.is_empty() {
            let delete = tx
                .prepare_cached(include_str!("sql/delete_published.sql"))
                .await?;
            tx.execute(&delete, &[&published]).await?;
        }
        tx.commit().await?;
        self.metrics.published.inc_by(published.len() as u64);

        match first_error {
            None => Ok(published.len()),
            Some(first) => {
                let failed = claimed.len() - published.len();
                self.metrics.publish_failures.inc_by(failed as u64);
                // The broker may have restarted without the topics or without this
                // producer's id, which an idempotent producer cannot recover from.
                self.topics_ready.store(false, Ordering::Release);
                self.renew_producer();
                Err(RelayError::Publish {
                    claimed: claimed.len(),
                    failed,
                    first,
                })
            }
        }
    }

    /// Refreshes the backlog gauges.
    pub async fn measure_backlog(&self) -> Result<(), RelayError> {
        let client = self.pool.get().await?;
        let backlog = client
            .prepare_cached(include_str!("sql/backlog.sql"))
            .await?;
        let row = client.query_one(&backlog, &[]).await?;
        self.metrics.backlog.set(row.get(0));
        self.metrics.oldest_pending_seconds.set(row.get(1));
        Ok(())
    }

    /// Publishes until `shutdown`, waking on notifications and polling as a fallback; then
    /// flushes the producer.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut last_measure = Instant::now() - self.config.poll_interval;
        while !shutdown.is_cancelled() {
            if last_measure.elapsed() >= self.config.poll_interval {
                if let Err(error) = self.measure_backlog().await {
                    tracing::debug!(%error, "cannot measure the outbox backlog");
                }
                last_measure = Instant::now();
            }
            match self.relay_once().await {
                Ok(count) if count as i64 >= self.config.batch_size => {
                    backoff = Duration::from_millis(100);
                }
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "outbox relay failed; events stay in the outbox");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // Calls that finished during the drain committed events after the last pass.
        if let Err(error) = self.relay_once().await {
            tracing::warn!(%error, "last outbox pass failed; events stay in the outbox");
        }
        let producer = self
            .producer
            .read()
            .expect("producer lock poisoned")
            .clone();
        let flushed =
            tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
        if !matches!(flushed, Ok(Ok(()))) {
            tracing::warn!(
                "producer not flushed at shutdown; unacknowledged events stay in the outbox"
            );
        }
    }

    fn topic_of(&self, event: &Claimed) -> Result<&str, RelayError> {
        let topics = &self.config.topics;
        match event.event_type.as_str() {
            event_headers::USER_CREATED => Ok(&topics.created),
            event_headers::USER_UPDATED => Ok(&topics.updated),
            event_headers::USER_DELETED => Ok(&topics.deleted),
            other => Err(RelayError::UnknownEventType {
                row: event.row,
                event_type: other.to_owned(),
            }),
        }
    }

    /// A producer whose records failed may be stuck on a broker that forgot its producer id
    /// (an idempotent session cannot recover from that); the next batch starts a new
    /// session. Failures are rare, so the cost of a new connection does not matter.
    fn renew_producer(&self) {
        let fatal = self
            .producer
            .read()
            .expect("producer lock poisoned")
            .client()
            .fatal_error();
        if let Some((code, reason)) = fatal {
            tracing::warn!(?code, %reason, "producer failed fatally");
        }
        match Self::producer(&self.config) {
            Ok(producer) => *self.producer.write().expect("producer lock poisoned") = producer,
            Err(error) => tracing::error!(%error, "cannot create a new producer"),
        }
    }
}

fn headers(event: &Claimed) -> OwnedHeaders {
    let event_id = event.event_id.to_string();
    let version = event.aggregate_version.to_string();
    let occurred_at = timestamp::to_rfc3339(event.occurred_at);
    let headers = OwnedHeaders::new_with_capacity(5)
        .insert(Header {
            key: event_headers::EVENT_ID,
            value: Some(&event_id),
        })
        .insert(Header {
            key: event_headers::EVENT_TYPE,
            value: Some(&event.event_type),
        })
        .insert(Header {
            key: event_headers::VERSION,
            value: Some(&version),
        })
        .insert(Header {
            key: event_headers::OCCURRED_AT,
            value: Some(&occurred_at),
        });
    match &event.traceparent {
        Some(traceparent) => headers.insert(Header {
            key: event_headers::TRACEPARENT,
            value: Some(traceparent),
        }),
        None => headers,
    }
}
