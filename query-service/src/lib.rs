//! query-service: the read side of users.

pub mod app;
pub mod config;
pub mod error;
pub mod grpc;
pub mod migrations;
pub mod page_token;
pub mod projector;
pub mod read_model;
pub mod replay;
pub mod user_change;
pub mod view;
