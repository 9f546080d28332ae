//! The figures, one module per part of the system.

pub(crate) mod broker_latency;
pub(crate) mod lookups;
pub(crate) mod reads;
pub(crate) mod replay;
pub(crate) mod scaling;
pub(crate) mod visibility;
pub(crate) mod writes;

use shared_proto::v1::user_service_client::UserServiceClient;
use tonic::transport::Channel;

pub(crate) async fn client(
    addr: std::net::SocketAddr,
) -> anyhow::Result<UserServiceClient<Channel>> {
    Ok(UserServiceClient::connect(format!("http://{addr}")).await?)
}

/// A topic prefix and a consumer group of the run's own.
pub(crate) fn unique(what: &str) -> String {
    format!("bench-{what}-{}", uuid::Uuid::new_v4().simple())
}

/// `url` without TLS, for the services and pgbench alike: the figures compare the work
/// done, not transport encryption, and libpq (pgbench) would otherwise encrypt while a
/// service told nothing would too.
pub(crate) fn plain(url: &str) -> String {
    format!("{url}?sslmode=disable")
}
