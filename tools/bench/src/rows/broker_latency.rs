//! The broker's own share of commit → readable: a bare rdkafka producer (acks=all, as the
//! relay sends) and a bare consumer (the projector's fetch wait) at the visibility row's
//! rate, timing each record from its send to its arrival. No service takes part, so this is
//! the least any event takes from the relay's hand to the projector's.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};
use shared::kafka::{self, Cluster, TopicSettings};
use testkit::{broker, service_args::DEV_BROKER_ENV};

use super::unique;

const PARTITIONS: i32 = 3;

/// Each record's time from send to arrival at `per_second` for `duration`.
pub(crate) async fn round_trips(
    per_second: u64,
    duration: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let cluster = Cluster::plaintext(broker::brokers());
    let topic = unique("broker-latency");
    kafka::ensure_topics(
        &cluster,
        &[topic.as_str()],
        &TopicSettings::fixed(PARTITIONS, 1),
    )
    .await?;
    let fetch_wait = DEV_BROKER_ENV
        .iter()
        .find(|(name, _)| *name == "KAFKA_FETCH_WAIT")
        .map_or("2ms", |(_, value)| value)
        .trim_end_matches("ms");
    let consumer: StreamConsumer = cluster
        .client_config("bench-broker-latency")
        .set("group.id", unique("broker-latency"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", fetch_wait)
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let producer: FutureProducer = cluster
        .client_config("bench-broker-latency")
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()?;
    // Timed once a first record has made it through, so the consumer's start is not.
    producer
        .send(
            FutureRecord::to(&topic).key("warm-up").payload(&[0u8; 8]),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(error, _)| error)?;
    tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .context("the bare consumer got nothing for 30 s")??;
    let epoch = Instant::now();
    // How many were sent, once all are acknowledged.
    let (done, mut sent) = tokio::sync::oneshot::channel::<u64>();
    let sending = {
        let topic = topic.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second as f64));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut pending = Vec::new();
            while epoch.elapsed() < duration {
                ticks.tick().await;
                let at = (epoch.elapsed().as_nanos() as u64).to_be_bytes();
                let key = pending.len().to_string();
                let record = FutureRecord::to(&topic).key(&key).payload(&at);
                pending.push(producer.send_result(record).map_err(|(error, _)| error)?);
            }
            let count = pending.len() as u64;
            for delivered in futures::future::join_all(pending).await {
                delivered?.map_err(|(error, _)| error)?;
            }
            let _ = done.send(count);
            anyhow::Ok(())
        })
    };
    let mut latencies = Vec::new();
    let mut expected = None;
    while expected.is_none_or(|count| (latencies.len() as u64) < count) {
        tokio::select! {
            count = &mut sent, if expected.is_none() => {
                expected = Some(count.context("the bare producer failed")?);
            }
            received = tokio::time::timeout(Duration::from_secs(10), consumer.recv()) => {
                let received = received.context("the bare consumer got nothing for 10 s")??;
                let sent_at = received
                    .payload()
                    .and_then(|payload| payload.try_into().ok())
                    .map(u64::from_be_bytes)
                    .context("a record without its send time")?;
                latencies.push(epoch.elapsed().saturating_sub(Duration::from_nanos(sent_at)));
            }
        }
    }
    sending.await??;
    Ok(latencies)
}
