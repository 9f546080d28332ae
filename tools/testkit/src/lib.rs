//! What the tests of both services, the fault suite and the bench share: real Postgres
//! databases and broker topics of their own, the services' command lines and processes, and
//! real peers to test against (a proxy that silences connections, a token issuer, a
//! certificate authority).

pub mod broker;
pub mod database;
pub mod events;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod ports;
pub mod process;
pub mod service_args;
pub mod spans;
pub mod test_certs;
pub mod test_issuer;
pub mod test_proxy;
