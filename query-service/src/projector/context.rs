//! The projector consumer's callbacks: where to resume a partition it is assigned.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rdkafka::{
    ClientContext, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, ConsumerContext},
    error::KafkaError,
    types::RDKafkaRespErr,
};
use shared::backoff::Backoff;

pub(super) struct ProjectorContext {
    rewind: i64,
    stopping: Arc<AtomicBool>,
}

impl ProjectorContext {
    pub(super) fn new(rewind: i64, stopping: Arc<AtomicBool>) -> Self {
        Self { rewind, stopping }
    }

    /// [`Self::rewound`], retried until it succeeds: resuming a partition without its
    /// rewind would skip records on tansu. `None` when the projector stops meanwhile. Runs
    /// on the consumer's own thread, where blocking is fine.
    fn rewound_retrying(
        &self,
        consumer: &BaseConsumer<Self>,
        assigned: &TopicPartitionList,
    ) -> Option<TopicPartitionList> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            match self.rewound(consumer, assigned) {
                Ok(resume) => return Some(resume),
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff.upcoming(), "cannot read committed offsets; retrying before resuming")
                }
            }
            let until = std::time::Instant::now() + backoff.next_wait();
            while std::time::Instant::now() < until {
                if self.stopping.load(Ordering::Acquire) {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Moves each committed position `rewind` records back. Projecting records again is
    /// harmless (the view's version guard drops them), while a broker that returns only
    /// record batches starting at or after the requested offset (tansu) would otherwise skip
    /// the rest of a batch the last owner had committed part of.
    fn rewound(
        &self,
        consumer: &BaseConsumer<Self>,
        assigned: &TopicPartitionList,
    ) -> Result<TopicPartitionList, KafkaError> {
        let committed = consumer.committed_offsets(assigned.clone(), Duration::from_secs(10))?;
        let mut resume = TopicPartitionList::new();
        for partition in committed.elements() {
            let offset = match partition.offset() {
                Offset::Offset(at) => Offset::Offset((at - self.rewind).max(0)),
                other => other,
            };
            resume.add_partition_offset(partition.topic(), partition.partition(), offset)?;
        }
        Ok(resume)
    }
}

impl ClientContext for ProjectorContext {}

impl ConsumerContext for ProjectorContext {
    // The consumer uses the eager protocol (`partition.assignment.strategy=range`), so an
    // assignment replaces the whole set and a revocation empties it.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        assigned: &mut TopicPartitionList,
    ) {
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let resume = if self.rewind > 0 {
                    match self.rewound_retrying(consumer, assigned) {
                        Some(resume) => resume,
                        None => return,
                    }
                } else {
                    assigned.clone()
                };
                tracing::info!(partitions = resume.count(), "projector assigned partitions");
                consumer.assign(&resume)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => consumer.unassign(),
            other => {
                tracing::warn!(error = ?other, "rebalance failed");
                consumer.unassign()
            }
        };
        if let Err(error) = result {
            tracing::error!(%error, "cannot apply the rebalance");
        }
    }
}
