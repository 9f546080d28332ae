//! What command-service and query-service both need, written once.

pub mod config;
pub mod country;
pub mod db;
pub mod db_failure;
pub mod db_tls;
pub mod event_headers;
pub mod frontend;
pub mod grpc_deadline;
pub mod grpc_error;
pub mod grpc_metrics;
pub mod grpc_server;
pub mod health;
pub mod http;
pub mod kafka;
pub mod pg_listen;
pub mod readiness;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod timestamp;
pub mod topics;
pub mod trace_context;
pub mod user_state;
