//! The baseline for GetUser from the cache: a bare tonic server on the same runtime and
//! server settings as the services, answering every GetUser with one fixed response and
//! nothing around it (no metrics, no spans, no cache).
//!
//!     bare-grpc ADDR RESPONSE_HEX [BROKERS TOPIC...]
//!
//! With BROKERS, it also runs the idle consumers query-service runs beside its reads: one in
//! a group subscribed to the topics, one assigned them at their end, both asking the broker
//! for records every 2 ms (query-service's `KAFKA_FETCH_WAIT` default), so that the baseline
//! pays for the same background traffic.

#[path = "../baseline_server.rs"]
mod baseline_server;

use prost::Message;
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
};
use shared_proto::v1;
use tonic::{Request, Response, Status};

use baseline_server::Serves;

struct Fixed(v1::GetUserResponse);

#[tonic::async_trait]
impl Serves for Fixed {
    async fn get_user(
        &self,
        _request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::GetUserResponse>, Status> {
        Ok(Response::new(self.0.clone()))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args.next().expect("ADDR").parse()?;
    let hex = args.next().expect("RESPONSE_HEX");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16))
        .collect::<Result<_, _>>()?;
    let response = v1::GetUserResponse::decode(bytes.as_slice())?;
    if let Some(brokers) = args.next() {
        idle_consumers(&brokers, &args.collect::<Vec<_>>())?;
    }
    baseline_server::serve(addr, Fixed(response)).await
}

fn idle_consumers(brokers: &str, topics: &[String]) -> anyhow::Result<()> {
    let config = |group: &str| {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "2");
        config
    };
    let id = std::process::id();
    let grouped: StreamConsumer = config(&format!("bare-grpc-{id}")).create()?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    grouped.subscribe(&names)?;
    let at_end: StreamConsumer = config(&format!("bare-grpc-feed-{id}")).create()?;
    let metadata = at_end.fetch_metadata(None, std::time::Duration::from_secs(10))?;
    let mut assigned = TopicPartitionList::new();
    for topic in metadata
        .topics()
        .iter()
        .filter(|t| names.contains(&t.name()))
    {
        for partition in topic.partitions() {
            assigned.add_partition_offset(topic.name(), partition.id(), Offset::End)?;
        }
    }
    at_end.assign(&assigned)?;
    for consumer in [grouped, at_end] {
        tokio::spawn(async move {
            loop {
                let _ = consumer.recv().await;
            }
        });
    }
    Ok(())
}
