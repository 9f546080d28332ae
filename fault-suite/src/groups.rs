//! The projector's consumer group as the broker describes it: who is in it and which
//! partitions each member holds. Evidence for a projector that stopped projecting.

use std::time::Duration;

use anyhow::Context;
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
};
use users_shared::kafka;

/// A line for the group, then one per member: its id and how many partitions it holds.
pub(crate) async fn describe(brokers: &str, group: &str) -> anyhow::Result<Vec<String>> {
    let (brokers, group) = (brokers.to_owned(), group.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("log_level", "3")
            .create()?;
        let list = consumer
            .fetch_group_list(Some(&group), Duration::from_secs(10))
            .context("DescribeGroups")?;
        let mut lines = Vec::new();
        for described in list.groups() {
            lines.push(format!(
                "group {} is {} with {} member(s)",
                described.name(),
                described.state(),
                described.members().len()
            ));
            for member in described.members() {
                let partitions = member
                    .assignment()
                    .map_or(0, |bytes| kafka::assigned_partitions(bytes).unwrap_or(0));
                lines.push(format!(
                    "member {} holds {partitions} partition(s)",
                    member.id()
                ));
            }
        }
        Ok(lines)
    })
    .await?
}
