//! The readiness checks both services run. A pod is ready when it can serve its own calls,
//! which takes Postgres alone: writes wait in the outbox while the broker is away, and reads
//! come from the read model. The broker is still checked, and reported as degraded.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use shared_proto::v1::user_service_server::SERVICE_NAME;
use tonic_health::pb::health_server::{Health as GrpcHealth, HealthServer};

use crate::{
    db_failure::DbFailure,
    db_pool::Pool,
    grpc_server,
    health::{Health, Need},
    kafka::BrokerProbe,
};

/// Readiness as both services have it: `postgres` (required) and `kafka` (informational),
/// mirrored to the gRPC health service (returned, to be served) for the server and
/// `user.v1.UserService`. `timeout` bounds the broker's metadata call.
pub fn dependency_health(
    pool: Pool,
    cluster: &crate::kafka::Cluster,
    timeout: std::time::Duration,
    registry: &mut Registry,
) -> Result<(Health, HealthServer<impl GrpcHealth>), rdkafka::error::KafkaError> {
    let (reporter, service) = grpc_server::health();
    let health = Health::new(reporter, vec![SERVICE_NAME], registry);
    health.add_check("postgres", Need::Required, move || {
        let pool = pool.clone();
        async move {
            pool.run(async |client| {
                client
                    .simple_query("SELECT 1")
                    .await
                    .map_err(DbFailure::from)?;
                Ok::<_, DbFailure>(())
            })
            .await
            .map_err(|error| error.to_string())
        }
    });
    let probe = Arc::new(BrokerProbe::new(cluster)?);
    health.add_check("kafka", Need::Informational, move || {
        let probe = Arc::clone(&probe);
        async move {
            tokio::task::spawn_blocking(move || probe.check(timeout))
                .await
                .map_err(|error| error.to_string())?
        }
    });
    Ok((health, service))
}
