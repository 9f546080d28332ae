//! Partitions that no live member of the projector's group projects, and how the group is
//! made to assign them again. Run from the lag watch's thread with the watch's own client,
//! so that the broker calls it makes never hold up the consumer.
//!
//! The symptom is watched, since it is what every broker shows: a partition this replica
//! does not hold, with records past the group's committed offset, and that offset unmoved
//! since the last check. Two ways into it are known, both on the development broker
//! (tansu), both where DescribeGroups lists no members:
//! - the broker hung past the members' sessions: on waking it expires the leader, yet keeps
//!   it as the group's leader, so every JoinGroup after that is answered as a follower's and
//!   no assignment is ever made. Rejoining does not help (the group keeps the leader); an
//!   offset commit from outside the group does, as it makes the broker reload the group's
//!   state without the departed leader. So a replica that holds nothing re-commits the
//!   stalled partitions' own committed offsets, which moves nothing.
//! - killed members' sessions expired, and the group handed the survivor an assignment made
//!   for the dead ones too. Leaving and joining the group again makes it assign anew.
//!
//! A replica whose own projector is stalled does neither: its lag is its own, and churning
//! the group would stop every other replica too.

use std::{collections::HashMap, time::Duration};

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer},
    error::KafkaResult,
};

use super::context::ProjectorContext;

const BROKER_WAIT: Duration = Duration::from_secs(5);
/// Commits of the stalled offsets, a second apart, before falling back to a rejoin.
const RECOMMITS: u32 = 5;

/// The consumer group the projector is in, and what it subscribes to.
pub(super) struct Group {
    pub(super) id: String,
    pub(super) topics: Vec<String>,
}

/// One partition held elsewhere and behind: the group's committed offset, if it has one,
/// else the partition's first offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Behind {
    at: i64,
    committed: bool,
}

pub(super) struct GroupWatch {
    group: Group,
    behind: HashMap<(String, i32), Behind>,
    stalled_checks: u32,
}

impl GroupWatch {
    pub(super) fn new(group: Group) -> Self {
        Self {
            group,
            behind: HashMap::new(),
            stalled_checks: 0,
        }
    }

    /// One check; `own_stalled` when this replica's own partitions do not advance.
    pub(super) fn check(
        &mut self,
        projector: &BaseConsumer<ProjectorContext>,
        client: &BaseConsumer,
        own_stalled: bool,
    ) {
        if own_stalled {
            self.forget();
            return;
        }
        let held = match projector.assignment() {
            Ok(held) => held,
            Err(error) => {
                tracing::debug!(%error, "cannot read the projector's assignment");
                return;
            }
        };
        let behind = match behind_elsewhere(client, &self.group, &held) {
            Ok(behind) => behind,
            Err(error) => {
                tracing::debug!(%error, "cannot check the group's progress");
                return;
            }
        };
        let stalled: Vec<((String, i32), Behind)> = behind
            .iter()
            .filter(|(partition, at)| self.behind.get(*partition) == Some(at))
            .map(|(partition, at)| (partition.clone(), *at))
            .collect();
        self.behind = behind;
        if stalled.is_empty() {
            self.stalled_checks = 0;
            return;
        }
        self.stalled_checks += 1;
        if held.count() == 0 {
            tracing::warn!(
                stalled = stalled.len(),
                group = %self.group.id,
                "partitions held by no live member and none assigned here; committing their offsets again so the group assigns them"
            );
            if recommit(projector, client, &stalled) {
                self.forget();
                return;
            }
        } else if self.stalled_checks < 2 {
            // A rebalance under way passes by within a check.
            return;
        }
        tracing::warn!(
            stalled = stalled.len(),
            group = %self.group.id,
            "partitions held by no live member of the group; joining the group again"
        );
        self.forget();
        let topics: Vec<&str> = self.group.topics.iter().map(String::as_str).collect();
        projector.unsubscribe();
        if let Err(error) = projector.subscribe(&topics) {
            tracing::error!(%error, "projector cannot subscribe again");
        }
    }

    fn forget(&mut self) {
        self.behind.clear();
        self.stalled_checks = 0;
    }
}

/// Commits the stalled partitions' own offsets from outside the group, a second apart, until
/// the projector is assigned partitions; whether it was.
fn recommit(
    projector: &BaseConsumer<ProjectorContext>,
    client: &BaseConsumer,
    stalled: &[((String, i32), Behind)],
) -> bool {
    let mut offsets = TopicPartitionList::new();
    let committed: Vec<_> = stalled.iter().filter(|(_, at)| at.committed).collect();
    // A group that never committed: one partition's first offset, where it starts anyway.
    let chosen = if committed.is_empty() {
        stalled.iter().take(1).collect()
    } else {
        committed
    };
    for ((topic, partition), at) in chosen {
        if let Err(error) = offsets.add_partition_offset(topic, *partition, Offset::Offset(at.at)) {
            tracing::debug!(%error, "cannot name an offset to commit");
            return false;
        }
    }
    for _ in 0..RECOMMITS {
        if let Err(error) = client.commit(&offsets, CommitMode::Sync) {
            tracing::debug!(%error, "cannot commit the stalled offsets");
        }
        std::thread::sleep(Duration::from_secs(1));
        if projector.assignment().is_ok_and(|held| held.count() > 0) {
            return true;
        }
    }
    false
}

/// The partitions of the subscribed topics that `held` does not include and whose records
/// the group has not all committed.
fn behind_elsewhere(
    client: &BaseConsumer,
    group: &Group,
    held: &TopicPartitionList,
) -> KafkaResult<HashMap<(String, i32), Behind>> {
    let mut elsewhere = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for topic in &group.topics {
        let metadata = client.fetch_metadata(Some(topic), BROKER_WAIT)?;
        for partition in metadata
            .topics()
            .iter()
            .flat_map(|topic| topic.partitions())
        {
            let id = partition.id();
            if held.find_partition(topic, id).is_some() {
                continue;
            }
            let (low, high) = client.fetch_watermarks(topic, id, BROKER_WAIT)?;
            elsewhere.add_partition(topic, id);
            ends.insert((topic.clone(), id), (low, high));
        }
    }
    if elsewhere.count() == 0 {
        return Ok(HashMap::new());
    }
    let committed = client.committed_offsets(elsewhere, BROKER_WAIT)?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|element| {
            let key = (element.topic().to_owned(), element.partition());
            let (low, high) = *ends.get(&key)?;
            let at = match element.offset() {
                Offset::Offset(offset) => Behind {
                    at: offset,
                    committed: true,
                },
                _ => Behind {
                    at: low,
                    committed: false,
                },
            };
            (at.at < high).then_some((key, at))
        })
        .collect())
}
