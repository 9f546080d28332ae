//! The readiness checks both services run: Postgres answers, the Kafka broker answers.

use std::sync::Arc;

use deadpool_postgres::Pool;

use shared_proto::v1::user_service_server::SERVICE_NAME;
use tonic_health::pb::health_server::{Health as GrpcHealth, HealthServer};

use crate::{grpc_server, health::Health, kafka::BrokerProbe};

/// Readiness as both services have it: the Postgres and Kafka checks, mirrored to the gRPC
/// health service (returned, to be served) for the server and `user.v1.UserService`.
pub fn dependency_health(
    pool: Pool,
    brokers: &str,
    timeout: std::time::Duration,
) -> Result<(Health, HealthServer<impl GrpcHealth>), rdkafka::error::KafkaError> {
    let (reporter, service) = grpc_server::health();
    let health = Health::new(reporter, vec![SERVICE_NAME]);
    add_dependency_checks(&health, pool, brokers, timeout)?;
    Ok((health, service))
}

/// Registers the `postgres` and `kafka` checks. `timeout` bounds the broker's metadata call.
fn add_dependency_checks(
    health: &Health,
    pool: Pool,
    brokers: &str,
    timeout: std::time::Duration,
) -> Result<(), rdkafka::error::KafkaError> {
    health.add_check("postgres", move || {
        let pool = pool.clone();
        async move {
            let client = pool.get().await.map_err(|error| error.to_string())?;
            client
                .simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        }
    });
    let probe = Arc::new(BrokerProbe::new(brokers)?);
    health.add_check("kafka", move || {
        let probe = Arc::clone(&probe);
        async move {
            tokio::task::spawn_blocking(move || probe.check(timeout))
                .await
                .map_err(|error| error.to_string())?
        }
    });
    Ok(())
}
