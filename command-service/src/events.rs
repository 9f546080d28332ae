//! The event each change produces, ready for the outbox.

use prost::Message;
use shared::{auth::Caller, trace_context};
use shared_proto::v1;
use shared_proto::{event_headers, timestamp};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{domain::UpdatableField, outbox::OutboxEvent};
use shared_proto::user_state::UserState;

/// Where a change comes from: the trace it joins (`trace_context::outbox_traceparent`) and
/// who made it; each event carries both.
#[derive(Debug, Clone)]
pub struct Origin {
    pub traceparent: Option<String>,
    pub caller: Caller,
}

impl Origin {
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        Self {
            traceparent: trace_context::outbox_traceparent(request.metadata()),
            caller: Caller::of(request),
        }
    }
}

pub fn user_created(user: &UserState, origin: Origin) -> OutboxEvent {
    let event = v1::UserCreatedEvent {
        user: Some(user.to_proto()),
    };
    outbox_event(
        event_headers::USER_CREATED,
        user,
        user.created_at,
        event.encode_to_vec(),
        origin,
    )
}

pub fn user_updated(user: &UserState, changed: &[UpdatableField], origin: Origin) -> OutboxEvent {
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
        origin,
    )
}

/// `last` is the user's final state: its version and `updated_at` are those of the deletion.
pub fn user_deleted(last: &UserState, origin: Origin) -> OutboxEvent {
    let event = v1::UserDeletedEvent {
        user: Some(last.to_proto()),
        deleted_at: Some(timestamp::to_proto(last.updated_at)),
    };
    outbox_event(
        event_headers::USER_DELETED,
        last,
        last.updated_at,
        event.encode_to_vec(),
        origin,
    )
}

fn outbox_event(
    event_type: &'static str,
    user: &UserState,
    occurred_at: OffsetDateTime,
    payload: Vec<u8>,
    origin: Origin,
) -> OutboxEvent {
    OutboxEvent {
        event_id: Uuid::now_v7(),
        event_type,
        aggregate_id: user.id,
        aggregate_version: user.version,
        payload,
        traceparent: origin.traceparent,
        auth_id: origin.caller.id,
        auth_type: origin.caller.kind,
        occurred_at,
    }
}
