//! The Kafka record headers every user event carries, named once for producer and consumer.
//!
//! Each record is a CloudEvent in the Kafka protocol binding's binary mode: the attributes
//! are `ce_` headers and the value is the protobuf event. The older headers (`event-id`,
//! `event-type`, `occurred-at`) say the same as `ce_id`, `ce_type` and `ce_time`, and go in a
//! later release; `version` and `traceparent` stay.

/// CloudEvents attributes (binary mode), and the values the services give them.
pub const CE_SPECVERSION: &str = "ce_specversion";
pub const CE_ID: &str = "ce_id";
pub const CE_SOURCE: &str = "ce_source";
pub const CE_TYPE: &str = "ce_type";
pub const CE_TIME: &str = "ce_time";
/// The user id, as the record's key.
pub const CE_SUBJECT: &str = "ce_subject";
pub const CE_DATASCHEMA: &str = "ce_dataschema";
/// CloudEvents' auth context extension: who made the change (the token's `sub`), and what
/// kind of principal that is (`user`, `service_account`, `unauthenticated`).
pub const CE_AUTHID: &str = "ce_authid";
pub const CE_AUTHTYPE: &str = "ce_authtype";
/// CloudEvents' `datacontenttype`, in the binding's own header.
pub const CONTENT_TYPE: &str = "content-type";

pub const SPECVERSION: &str = "1.0";
/// Who publishes the events.
pub const SOURCE: &str = "/users/command-service";
pub const PROTOBUF: &str = "application/protobuf";

/// The schema of an event type's value: the protobuf message of that full name, in the
/// `user.v1` package of shared-proto.
pub fn dataschema(event_type: &str) -> String {
    format!("urn:protobuf:{event_type}")
}

/// UUID of the event; a consumer may use it to drop duplicates. Deprecated: `ce_id`.
pub const EVENT_ID: &str = "event-id";
/// Fully qualified protobuf message name of the value, e.g. `user.v1.UserCreatedEvent`.
/// Deprecated: `ce_type`.
pub const EVENT_TYPE: &str = "event-type";
/// The user's version after the change, in decimal.
pub const VERSION: &str = "version";
/// When the change was committed, RFC 3339. Deprecated: `ce_time`.
pub const OCCURRED_AT: &str = "occurred-at";
/// W3C trace context of the call that made the change.
pub const TRACEPARENT: &str = "traceparent";

pub const USER_CREATED: &str = "user.v1.UserCreatedEvent";
pub const USER_UPDATED: &str = "user.v1.UserUpdatedEvent";
pub const USER_DELETED: &str = "user.v1.UserDeletedEvent";

/// On `user-events-dlq_v1`: why the record could not be projected.
pub const DLQ_REASON: &str = "dlq-reason";
/// On `user-events-dlq_v1`: where the record was read from.
pub const DLQ_ORIGIN_TOPIC: &str = "dlq-origin-topic";
pub const DLQ_ORIGIN_PARTITION: &str = "dlq-origin-partition";
pub const DLQ_ORIGIN_OFFSET: &str = "dlq-origin-offset";
