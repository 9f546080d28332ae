//! The readiness checks both services run: Postgres answers, the Kafka broker answers.

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::{health::Health, kafka::BrokerProbe};

/// Registers the `postgres` and `kafka` checks. `timeout` bounds the broker's metadata call.
pub fn add_dependency_checks(
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
