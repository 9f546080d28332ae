//! Records the projector cannot decode go to the dead-letter topic, whole, with why and
//! where they came from, so the projector can go on.

use std::time::Duration;

use rdkafka::{
    Message,
    error::KafkaResult,
    message::{Header, Headers, OwnedHeaders, OwnedMessage},
    producer::FutureRecord,
    util::Timeout,
};
use shared::{backoff::Backoff, kafka};
use shared_proto::event_headers::{
    DLQ_ORIGIN_OFFSET, DLQ_ORIGIN_PARTITION, DLQ_ORIGIN_TOPIC, DLQ_REASON,
};
use tokio_util::sync::CancellationToken;

pub struct DeadLetters {
    producer: kafka::Producer,
    topic: String,
}

impl DeadLetters {
    pub fn new(cluster: &kafka::Cluster, topic: String) -> KafkaResult<Self> {
        let producer = cluster
            .client_config("query-service-dead-letters")
            .set("acks", "all")
            .set("message.timeout.ms", "10000")
            .create()?;
        Ok(Self {
            producer: kafka::Producer::new(producer),
            topic,
        })
    }

    /// Retries until the broker has the record or `shutdown`; returns false on shutdown.
    pub async fn send(
        &self,
        record: &OwnedMessage,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> bool {
        tracing::warn!(topic = record.topic(), partition = record.partition(), offset = record.offset(), %reason, "dead-lettering an undecodable record");
        let partition = record.partition().to_string();
        let offset = record.offset().to_string();
        let mut backoff = Backoff::standard();
        loop {
            let mut headers = OwnedHeaders::new();
            if let Some(original) = record.headers() {
                for header in original.iter() {
                    headers = headers.insert(Header {
                        key: header.key,
                        value: header.value,
                    });
                }
            }
            let headers = headers
                .insert(Header {
                    key: DLQ_REASON,
                    value: Some(reason),
                })
                .insert(Header {
                    key: DLQ_ORIGIN_TOPIC,
                    value: Some(record.topic()),
                })
                .insert(Header {
                    key: DLQ_ORIGIN_PARTITION,
                    value: Some(&partition),
                })
                .insert(Header {
                    key: DLQ_ORIGIN_OFFSET,
                    value: Some(&offset),
                });
            let mut dead_letter = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
            if let Some(key) = record.key() {
                dead_letter = dead_letter.key(key);
            }
            if let Some(payload) = record.payload() {
                dead_letter = dead_letter.payload(payload);
            }
            match self
                .producer
                .send(dead_letter, Timeout::After(Duration::from_secs(10)))
                .await
            {
                Ok(_) => return true,
                Err((error, _)) => {
                    tracing::warn!(%error, retry_in = ?backoff.upcoming(), "cannot write to the dead-letter topic");
                    if !backoff.sleep(shutdown).await {
                        return false;
                    }
                }
            }
        }
    }
}
