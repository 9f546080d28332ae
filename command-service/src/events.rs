//! The event each change produces, ready for the outbox.

use prost::Message;
use shared_proto::v1;
use time::OffsetDateTime;
use users_shared::{event_headers, timestamp};
use uuid::Uuid;

use crate::{domain::UpdatableField, outbox::OutboxEvent, user_record::UserRecord};

/// Each event carries `traceparent`, the trace it joins (`trace_context::outbox_traceparent`).
pub fn user_created(user: &UserRecord, traceparent: Option<String>) -> OutboxEvent {
    let event = v1::UserCreatedEvent {
        user: Some(user.to_proto()),
    };
    outbox_event(
        event_headers::USER_CREATED,
        user,
        user.created_at,
        event.encode_to_vec(),
        traceparent,
    )
}

pub fn user_updated(
    user: &UserRecord,
    changed: &[UpdatableField],
    traceparent: Option<String>,
) -> OutboxEvent {
    let event = v1::UserUpdatedEvent {
        user: Some(user.to_proto()),
        changed_fields: changed
            .iter()
            .map(|field| field.name().to_owned())
            .collect(),
    };
    outbox_event(
        event_headers::USER_UPDATED,
        user,
        user.updated_at,
        event.encode_to_vec(),
        traceparent,
    )
}

/// `last` is the user's final state: its version and `updated_at` are those of the deletion.
pub fn user_deleted(last: &UserRecord, traceparent: Option<String>) -> OutboxEvent {
    let event = v1::UserDeletedEvent {
        user: Some(last.to_proto()),
        deleted_at: Some(timestamp::to_proto(last.updated_at)),
    };
    outbox_event(
        event_headers::USER_DELETED,
        last,
        last.updated_at,
        event.encode_to_vec(),
        traceparent,
    )
}

fn outbox_event(
    event_type: &'static str,
    user: &UserRecord,
    occurred_at: OffsetDateTime,
    payload: Vec<u8>,
    traceparent: Option<String>,
) -> OutboxEvent {
    OutboxEvent {
        event_id: Uuid::now_v7(),
        event_type,
        aggregate_id: user.id,
        aggregate_version: user.version,
        payload,
        traceparent,
        occurred_at,
    }
}
