//! command-service: the write side of users.

pub mod app;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod migrations;
pub mod outbox;
pub mod password_hasher;
pub mod request_ids;
pub mod store;
