//! Each user's claimed rows, published one after the other: a row is sent once the one
//! before it is acknowledged, so a failure holds back that user's later rows and no one
//! else's.

use std::{collections::HashMap, sync::Arc};

use rdkafka::error::KafkaError;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::super::{publisher::Publisher, table::Claimed};

/// What became of one row.
pub(super) struct Delivery {
    pub(super) row: i64,
    pub(super) occurred_at: OffsetDateTime,
    pub(super) answer: Answer,
}

pub(super) enum Answer {
    Acknowledged,
    Failed(String),
    /// Refused in a way the same record will always be (too large, against a policy).
    Refused(String),
    /// Not sent: an earlier row of its user failed.
    NotSent,
}

/// The rows of each user, oldest first, in the order the users first appear.
pub(super) fn by_user(claimed: Vec<Claimed>) -> Vec<Vec<Claimed>> {
    let mut chains: Vec<Vec<Claimed>> = Vec::new();
    let mut chain_of: HashMap<Uuid, usize> = HashMap::new();
    for event in claimed {
        let at = *chain_of.entry(event.aggregate_id).or_insert_with(|| {
            chains.push(Vec::new());
            chains.len() - 1
        });
        chains[at].push(event);
    }
    chains
}

/// Publishes one user's rows in turn, each once the one before is acknowledged; after a
/// failure the rest are not sent.
pub(super) async fn publish_in_turn(
    publisher: Arc<Publisher>,
    chain: Vec<Claimed>,
    deliveries: mpsc::UnboundedSender<Delivery>,
) {
    let mut chain = chain.into_iter();
    while let Some(event) = chain.next() {
        let answer = publish(&publisher, &event).await;
        let failed = matches!(answer, Answer::Failed(_) | Answer::Refused(_));
        let _ = deliveries.send(Delivery {
            row: event.row,
            occurred_at: event.occurred_at,
            answer,
        });
        if failed {
            for later in chain {
                let _ = deliveries.send(Delivery {
                    row: later.row,
                    occurred_at: later.occurred_at,
                    answer: Answer::NotSent,
                });
            }
            return;
        }
    }
}

async fn publish(publisher: &Publisher, event: &Claimed) -> Answer {
    let Some(topic) = publisher.topic_of(&event.event_type) else {
        return Answer::Failed(format!("unknown event type {}", event.event_type));
    };
    match publisher.send(topic, event) {
        Ok(answer) => match answer.await {
            Ok(Ok(_)) => Answer::Acknowledged,
            Ok(Err((error, _))) if refused_for_good(&error) => Answer::Refused(error.to_string()),
            Ok(Err((error, _))) => Answer::Failed(error.to_string()),
            Err(_) => Answer::Failed("the producer dropped the record".to_owned()),
        },
        Err(error) if refused_for_good(&error) => {
            Answer::Refused(format!("the producer refused the record: {error}"))
        }
        Err(error) => Answer::Failed(format!("the producer refused the record: {error}")),
    }
}

/// Whether the broker (or the producer) will refuse the same record every time: too large,
/// or against a topic's policy. Such a record is parked after a few attempts instead of
/// holding its user's later events back for ever. INVALID_RECORD is not among them: a topic
/// whose validation refuses every record is sick, and its records go through once it heals.
fn refused_for_good(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        error.rdkafka_error_code(),
        Some(
            Code::MessageSizeTooLarge
                | Code::InvalidMessageSize
                | Code::MessageBatchTooLarge
                | Code::PolicyViolation
        )
    )
}
