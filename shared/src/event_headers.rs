//! The Kafka record headers every user event carries, named once for producer and consumer.

/// UUID of the event; a consumer may use it to drop duplicates.
pub const EVENT_ID: &str = "event-id";
/// Fully qualified protobuf message name of the value, e.g. `user.v1.UserCreatedEvent`.
pub const EVENT_TYPE: &str = "event-type";
/// The user's version after the change, in decimal.
pub const VERSION: &str = "version";
/// When the change was committed, RFC 3339.
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
