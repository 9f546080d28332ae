//! What the broker answered, queued until it is written to the outbox: acknowledged rows are
//! deleted (by the next claim's own statement when one comes), failed ones scheduled for a
//! retry, refused ones parked after a few attempts, unsent ones released.

use time::OffsetDateTime;

use super::{
    Relay, RelayError,
    chains::{Answer, Delivery},
};
use crate::outbox::table;

/// Attempts a record the broker refuses for good gets before its row is parked.
const REFUSALS_BEFORE_PARKING: i32 = 3;

/// Answers not yet written to the outbox.
#[derive(Default)]
pub(super) struct Outcomes {
    pub(super) published: Vec<i64>,
    pub(super) failed: Vec<i64>,
    refused: Vec<i64>,
    released: Vec<i64>,
}

impl Outcomes {
    fn is_empty(&self) -> bool {
        self.published.is_empty() && !self.has_setbacks()
    }

    fn has_setbacks(&self) -> bool {
        !(self.failed.is_empty() && self.refused.is_empty() && self.released.is_empty())
    }
}

impl Relay {
    /// Counts an answer and queues what it means for the outbox; the error when it failed.
    pub(super) fn note(&self, delivery: Delivery, outcomes: &mut Outcomes) -> Result<(), String> {
        match delivery.answer {
            Answer::NotSent => {
                outcomes.released.push(delivery.row);
                Ok(())
            }
            Answer::Acknowledged => {
                self.publisher.after_success();
                self.metrics.published.inc();
                let age = (OffsetDateTime::now_utc() - delivery.occurred_at).as_seconds_f64();
                self.metrics.publish_latency.observe(age.max(0.0));
                outcomes.published.push(delivery.row);
                Ok(())
            }
            Answer::Failed(error) => {
                self.metrics.publish_failures.inc();
                self.publisher.after_failure();
                outcomes.failed.push(delivery.row);
                Err(error)
            }
            // The broker is fine and the topics are there: nothing for the producer to mend.
            Answer::Refused(error) => {
                self.metrics.publish_failures.inc();
                outcomes.refused.push(delivery.row);
                Err(error)
            }
        }
    }

    /// Schedules what failed for a retry and frees what was not sent; deleting what was
    /// published waits for the next claim.
    pub(super) async fn record_setbacks(&self, outcomes: &mut Outcomes) -> Result<(), RelayError> {
        if !outcomes.has_setbacks() {
            return Ok(());
        }
        self.pool
            .run(async |client| self.write_setbacks(client, outcomes).await)
            .await
    }

    /// Deletes what was published and schedules what failed for a retry. What it could not
    /// write stays queued in `outcomes`; a lease that runs out meanwhile means at worst a
    /// duplicate.
    pub(super) async fn record(&self, outcomes: &mut Outcomes) -> Result<(), RelayError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.pool
            .run(async |client| {
                table::delete(&*client, &outcomes.published).await?;
                outcomes.published.clear();
                self.write_setbacks(client, outcomes).await
            })
            .await
    }

    /// Retries what failed, parks what the broker refused for good too often, and frees what
    /// was not sent.
    async fn write_setbacks(
        &self,
        client: &mut deadpool_postgres::Client,
        outcomes: &mut Outcomes,
    ) -> Result<(), RelayError> {
        table::retry_later(&*client, self.owner, &outcomes.failed).await?;
        outcomes.failed.clear();
        if !outcomes.refused.is_empty() {
            let parked = table::park_refused(
                &*client,
                self.owner,
                &outcomes.refused,
                REFUSALS_BEFORE_PARKING,
            )
            .await?;
            self.metrics.refused.inc_by(parked.len() as u64);
            for row in &parked {
                tracing::warn!(
                    row,
                    attempts = REFUSALS_BEFORE_PARKING,
                    "the broker refused this outbox row's record for good; parked (outbox_parked_rows)"
                );
            }
            let again: Vec<i64> = outcomes
                .refused
                .iter()
                .copied()
                .filter(|row| !parked.contains(row))
                .collect();
            table::retry_later(&*client, self.owner, &again).await?;
            outcomes.refused.clear();
        }
        table::release(&*client, self.owner, &outcomes.released).await?;
        outcomes.released.clear();
        Ok(())
    }
}
