//! The runtime plumbing command-service and query-service both need, written once. What
//! travels on the wire (protos, topics, event headers, the user's stored shape) is in
//! shared-proto.

pub mod auth;
pub mod backoff;
pub mod config;
pub mod country;
pub mod db;
pub mod db_failure;
pub mod db_pool;
pub mod db_tls;
pub mod email;
pub mod frontend;
pub mod grpc_deadline;
pub mod grpc_error;
pub mod grpc_limits;
pub mod grpc_metrics;
pub mod grpc_server;
pub mod grpc_tls;
pub mod health;
pub mod http;
pub mod kafka;
pub mod migrate;
pub mod pg_listen;
pub mod readiness;
pub mod shutdown;
pub mod telemetry;
pub mod trace_context;
pub mod user_row;
