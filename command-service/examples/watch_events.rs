//! Prints every user event from the start of the topics, decoded, with its headers: a
//! Kafka client that speaks to tansu, whose protocol Debian's kcat is too old for.
//!
//!     cargo run -p command-service --example watch_events [-- BROKERS [TOPIC_PREFIX]]

use std::time::Duration;

use prost::Message as _;
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    message::Headers,
};
use shared::kafka;
use shared_proto::topics::Topics;
use shared_proto::v1;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let topics = Topics::with_prefix(&args.next().unwrap_or_default());
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "watch-events")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    let cluster = kafka::Cluster::plaintext(brokers.clone());
    for (topic, partition) in kafka::partitions(&cluster, &topics.events()).await? {
        assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    loop {
        let record = match tokio::time::timeout(Duration::from_secs(3600), consumer.recv()).await {
            Ok(record) => record?,
            Err(_) => continue,
        };
        let payload = record.payload().unwrap_or_default();
        let event = if record.topic() == topics.created {
            format!("{:#?}", v1::UserCreatedEvent::decode(payload)?)
        } else if record.topic() == topics.updated {
            format!("{:#?}", v1::UserUpdatedEvent::decode(payload)?)
        } else {
            format!("{:#?}", v1::UserDeletedEvent::decode(payload)?)
        };
        println!(
            "── {} [{}] offset {} key {}",
            record.topic(),
            record.partition(),
            record.offset(),
            String::from_utf8_lossy(record.key().unwrap_or_default())
        );
        if let Some(headers) = record.headers() {
            for header in headers.iter() {
                println!(
                    "   {}: {}",
                    header.key,
                    String::from_utf8_lossy(header.value.unwrap_or_default())
                );
            }
        }
        println!("{event}");
    }
}
