//! command-service end to end: the real service in-process on port 0, a fresh Postgres

#![allow(unreachable_pub)]
//! database and fresh topic names per test, the real broker.

mod auth;
mod broker_outage;
mod cloudevents;
mod connections;
mod create_user;
mod delete_user;
mod grpc_tls;
mod helpers;
mod migrations;
mod operations;
mod outbox;
mod request_ids;
mod shutdown;
mod tls;
mod topics;
mod update_user;
