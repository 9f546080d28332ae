//! What command-service and query-service both need, written once.

pub mod auth;
pub mod config;
pub mod country;
pub mod db;
pub mod db_failure;
pub mod db_pool;
pub mod db_tls;
pub mod event_headers;
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
pub mod pg_listen;
pub mod readiness;
pub mod shutdown;
pub mod telemetry;
pub mod timestamp;
pub mod topics;
pub mod trace_context;
pub mod user_state;
