//! The projector's consumer group as the broker describes it: who is in it and which
//! partitions each member holds. Evidence for a projector that stopped projecting.

use std::time::Duration;

use anyhow::Context;
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
};

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
                    .map_or(0, |bytes| assigned_partitions(bytes).unwrap_or(0));
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

/// How many partitions a consumer-protocol assignment (a group member's, as DescribeGroups
/// returns it) holds: version (i16), then an array (i32 length) of topic (i16 length +
/// bytes) with an array (i32 length) of partitions (i32). `None` when malformed.
fn assigned_partitions(bytes: &[u8]) -> Option<usize> {
    let mut rest = bytes.get(2..)?;
    let mut take = |width: usize| -> Option<&[u8]> {
        let (field, after) = (rest.get(..width)?, rest.get(width..)?);
        rest = after;
        Some(field)
    };
    let int32 =
        |field: &[u8]| i32::from_be_bytes([field[0], field[1], field[2], field[3]]).max(0) as usize;
    let topics = int32(take(4)?);
    let mut partitions = 0;
    for _ in 0..topics {
        let name = take(2)?;
        take(i16::from_be_bytes([name[0], name[1]]).max(0) as usize)?;
        let count = int32(take(4)?);
        take(4 * count)?;
        partitions += count;
    }
    Some(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assignment_counts_its_partitions() {
        let mut bytes = vec![0, 0, 0, 0, 0, 2];
        for topic in ["a", "bc"] {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend(2i32.to_be_bytes());
            bytes.extend(0i32.to_be_bytes());
            bytes.extend(1i32.to_be_bytes());
        }
        assert_eq!(assigned_partitions(&bytes), Some(4));
        assert_eq!(assigned_partitions(&[0, 0]), None);
        assert_eq!(assigned_partitions(&bytes[..bytes.len() - 2]), None);
    }
}
