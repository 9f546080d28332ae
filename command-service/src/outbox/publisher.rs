//! The relay's side of Kafka: the topics, the producer, and the record each outbox
//! row becomes.

use std::{
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use rdkafka::{
    error::KafkaError,
    message::{Header, OwnedHeaders},
    producer::{FutureRecord, Producer as _, future_producer::DeliveryFuture},
};
use shared::kafka::{self, TopicError};
use shared_proto::{event_headers, timestamp};
use tokio::sync::Notify;

use super::{RelayConfig, table::Claimed};

pub(super) struct Publisher {
    config: RelayConfig,
    producer: RwLock<kafka::Producer>,
    session: Mutex<Session>,
    topics_ready: Arc<AtomicBool>,
    creating_topics: Arc<AtomicBool>,
}

/// When the producer's session began and last had a record acknowledged.
struct Session {
    started: Instant,
    last_success: Instant,
}

impl Publisher {
    pub(super) fn new(config: RelayConfig) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: RwLock::new(Self::producer(&config)?),
            session: Mutex::new(Session {
                started: Instant::now(),
                last_success: Instant::now(),
            }),
            config,
            topics_ready: Arc::new(AtomicBool::new(false)),
            creating_topics: Arc::new(AtomicBool::new(false)),
        })
    }

    fn producer(config: &RelayConfig) -> Result<kafka::Producer, KafkaError> {
        let producer = config
            .cluster
            .client_config("command-service-relay")
            // Not idempotent: a user's records are already sent one at a time (each once the
            // one before is acknowledged), so retries cannot reorder a user's events, and a
            // duplicate is harmless to consumers that order by version. tansu answers an
            // idempotent producer slowly (a tenth of its acknowledgements take over 100 ms
            // at 500 records/s, against 2 ms without) and fences its session at the first
            // refused record.
            .set("enable.idempotence", "false")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("batch.num.messages", config.batch_num_messages.to_string())
            .set(
                "message.timeout.ms",
                config.publish_timeout.as_millis().to_string(),
            )
            .create()?;
        Ok(kafka::Producer::new(producer))
    }

    /// Creates the topics unless they are known to exist; errors are the caller's.
    pub(super) async fn ensure_topics(&self) -> Result<(), TopicError> {
        if self.topics_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        create_topics(&self.config).await?;
        self.topics_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether the topics are known to exist. If not, creates them like
    /// [`Self::ensure_topics`], on a task of its own that notifies `created` once they exist,
    /// so the relay goes on with its leases and acknowledgements while a broker that does
    /// not answer holds the call.
    pub(super) fn ensure_topics_in_background(&self, created: &Arc<Notify>) -> bool {
        if self.topics_ready.load(Ordering::Acquire) {
            return true;
        }
        if self.creating_topics.swap(true, Ordering::AcqRel) {
            return false;
        }
        let config = self.config.clone();
        let ready = Arc::clone(&self.topics_ready);
        let creating = Arc::clone(&self.creating_topics);
        let created = Arc::clone(created);
        tokio::spawn(async move {
            match create_topics(&config).await {
                Ok(()) => {
                    ready.store(true, Ordering::Release);
                    created.notify_one();
                }
                Err(error) => {
                    tracing::error!(%error, "cannot create the event topics; events wait in the outbox")
                }
            }
            creating.store(false, Ordering::Release);
        });
        false
    }

    /// The topic of an event type this release knows.
    pub(super) fn topic_of(&self, event_type: &str) -> Option<&str> {
        let topics = &self.config.topics;
        match event_type {
            event_headers::USER_CREATED => Some(&topics.created),
            event_headers::USER_UPDATED => Some(&topics.updated),
            event_headers::USER_DELETED => Some(&topics.deleted),
            _ => None,
        }
    }

    /// Hands the record to the producer; the future resolves once the broker acknowledged
    /// it or it failed. An error means the producer's queue refused it.
    pub(super) fn send(&self, topic: &str, event: &Claimed) -> Result<DeliveryFuture, KafkaError> {
        let key = event.aggregate_id.to_string();
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload(&event.payload)
            .headers(headers(event));
        self.producer
            .read()
            .expect("producer lock poisoned")
            .send_result(record)
            .map_err(|(error, _)| error)
    }

    pub(super) fn after_success(&self) {
        self.session
            .lock()
            .expect("session lock poisoned")
            .last_success = Instant::now();
    }

    /// After a record failed: the topics may be gone (a broker that restarted empty), and
    /// the producer's session may be dead: failed fatally, or stuck without saying so (seen
    /// with a broker that restarted empty). A session that has had nothing acknowledged for
    /// a whole publish timeout (and had that long to try) is taken for stuck. Either way the
    /// next records go through a new session; a partition that is merely sick leaves the
    /// session alone, as the others' acknowledgements show it alive.
    pub(super) fn after_failure(&self) {
        self.topics_ready.store(false, Ordering::Release);
        let fatal = self
            .producer
            .read()
            .expect("producer lock poisoned")
            .client()
            .fatal_error();
        let mut session = self.session.lock().expect("session lock poisoned");
        let timeout = self.config.publish_timeout;
        let stuck =
            session.started.elapsed() >= timeout && session.last_success.elapsed() >= timeout;
        if fatal.is_none() && !stuck {
            return;
        }
        match fatal {
            Some((code, reason)) => {
                tracing::warn!(?code, %reason, "producer failed fatally; starting a new session")
            }
            None => tracing::warn!(
                ?timeout,
                "no record acknowledged for a publish timeout; starting a new producer session"
            ),
        }
        match Self::producer(&self.config) {
            // The old producer is dropped off the runtime; its queued records fail and their
            // rows are retried.
            Ok(producer) => {
                *self.producer.write().expect("producer lock poisoned") = producer;
                session.started = Instant::now();
            }
            Err(error) => tracing::error!(%error, "cannot create a new producer"),
        }
    }
}

async fn create_topics(config: &RelayConfig) -> Result<(), TopicError> {
    kafka::ensure_topics(
        &config.cluster,
        &config.topics.events(),
        &config.topic_settings,
    )
    .await
}

/// The record's headers: the CloudEvents attributes, then the headers of before.
fn headers(event: &Claimed) -> OwnedHeaders {
    let event_id = event.event_id.to_string();
    let subject = event.aggregate_id.to_string();
    let version = event.aggregate_version.to_string();
    let occurred_at = timestamp::to_rfc3339(event.occurred_at);
    let dataschema = event_headers::dataschema(&event.event_type);
    let mut fields = vec![
        (event_headers::CE_SPECVERSION, event_headers::SPECVERSION),
        (event_headers::CE_ID, event_id.as_str()),
        (event_headers::CE_SOURCE, event_headers::SOURCE),
        (event_headers::CE_TYPE, event.event_type.as_str()),
        (event_headers::CE_TIME, occurred_at.as_str()),
        (event_headers::CE_SUBJECT, subject.as_str()),
        (event_headers::CE_DATASCHEMA, dataschema.as_str()),
        (event_headers::CONTENT_TYPE, event_headers::PROTOBUF),
        (event_headers::EVENT_ID, event_id.as_str()),
        (event_headers::EVENT_TYPE, event.event_type.as_str()),
        (event_headers::VERSION, version.as_str()),
        (event_headers::OCCURRED_AT, occurred_at.as_str()),
    ];
    if let Some(traceparent) = &event.traceparent {
        fields.push((event_headers::TRACEPARENT, traceparent.as_str()));
    }
    if let Some(auth_id) = &event.auth_id {
        fields.push((event_headers::CE_AUTHID, auth_id.as_str()));
    }
    if let Some(auth_type) = &event.auth_type {
        fields.push((event_headers::CE_AUTHTYPE, auth_type.as_str()));
    }
    fields.into_iter().fold(
        OwnedHeaders::new_with_capacity(13),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        },
    )
}
