//! query-service end to end: the real service in-process on port 0 (with command-service
//! where a test needs real writes), fresh databases and topic names per test, the real
//! broker.

#![allow(unreachable_pub)]

mod auth;
mod cache;
mod helpers;
mod limits;
mod lookups;
mod operations;
mod projection;
mod queries;
mod replay;
mod silent_database;
mod tombstones;
mod tracing;
