//! The transactional outbox: events written in the transaction of the change they describe,
//! published to Kafka by the relay.

mod metrics;
mod publisher;
mod relay;
mod table;

use deadpool_postgres::Transaction;
use time::OffsetDateTime;
use uuid::Uuid;

pub use metrics::RelayMetrics;
pub use relay::{Relay, RelayConfig, RelayError};

/// The channel the relay LISTENs on; each committed outbox row notifies it.
pub const CHANNEL: &str = "users_outbox";

/// An event waiting in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
    pub payload: Vec<u8>,
    pub traceparent: Option<String>,
    /// Who made the change (CloudEvents' auth context): the token's subject, and its kind.
    pub auth_id: Option<String>,
    pub auth_type: &'static str,
    pub occurred_at: OffsetDateTime,
}

/// Writes the event in the caller's transaction; with `notify`, the relays listening on
/// [`CHANNEL`] are woken when it commits.
pub async fn enqueue(
    tx: &Transaction<'_>,
    event: &OutboxEvent,
    notify: bool,
) -> Result<(), tokio_postgres::Error> {
    let insert = tx.prepare_cached(include_str!("sql/enqueue.sql")).await?;
    tx.execute(
        &insert,
        &[
            &event.event_id,
            &event.event_type,
            &event.aggregate_id,
            &event.aggregate_version,
            &event.payload,
            &event.traceparent,
            &event.occurred_at,
            &event.auth_id,
            &event.auth_type,
        ],
    )
    .await?;
    if notify {
        tx.batch_execute(&format!("NOTIFY {CHANNEL}")).await?;
    }
    Ok(())
}
