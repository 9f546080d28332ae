//! The relay's last act when the service stops: publish what the calls that finished during
//! the drain committed, wait briefly for the broker's answers, and give back the rest.

use std::{collections::HashSet, time::Duration};

use tokio::{sync::mpsc, time::Instant};

use super::{Relay, RelayError, chains::Delivery, outcomes::Outcomes};
use crate::outbox::table;

/// How long a stopping relay waits for the broker to acknowledge what it has sent.
pub(super) const FINAL_FLUSH: Duration = Duration::from_secs(5);

impl Relay {
    pub(super) async fn drain(
        &self,
        sender: mpsc::UnboundedSender<Delivery>,
        mut receiver: mpsc::UnboundedReceiver<Delivery>,
        mut in_flight: HashSet<i64>,
        mut outcomes: Outcomes,
    ) {
        let deadline = Instant::now() + FINAL_FLUSH;
        let limit = self.config.batch_size as usize;
        while Instant::now() < deadline {
            match self.claim_and_send(limit, &[], &sender).await {
                Ok(claim) => {
                    in_flight.extend(claim.in_flight);
                    if claim.claimed < limit {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "last outbox claim failed; events stay in the outbox");
                    break;
                }
            }
        }
        while !in_flight.is_empty() {
            tokio::select! {
                Some(delivery) = receiver.recv() => {
                    in_flight.remove(&delivery.row);
                    let _ = self.note(delivery, &mut outcomes);
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if let Err(error) = self.record(&mut outcomes).await {
            tracing::warn!(%error, "cannot record the last acknowledgements; those events will be published again");
        }
        if in_flight.is_empty() {
            return;
        }
        tracing::warn!(
            unacknowledged = in_flight.len(),
            "stopping with records in flight; they stay in the outbox for the next relay"
        );
        let rows: Vec<i64> = in_flight.into_iter().collect();
        let released = self
            .pool
            .run(async |client| {
                Ok::<_, RelayError>(table::release(&*client, self.owner, &rows).await?)
            })
            .await;
        if let Err(error) = released {
            tracing::debug!(%error, "cannot free the leases of records in flight; they lapse");
        }
    }
}
