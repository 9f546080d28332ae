//! Startup: everything is built and bound in `App::build`, so tests run the real service on
//! port 0; `App::run` serves until the stop token is cancelled, then drains.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use prometheus_client::registry::Registry;
use shared::migrate::{self, MigrationSettings};
use shared::{
    db::{self, Pool},
    frontend::Frontend,
    grpc_metrics::GrpcMetricsLayer,
    grpc_server::{self, Gate},
    pg_listen, readiness,
};
use shared_proto::topics::Topics;
use shared_proto::v1::user_service_server::UserServiceServer;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::request_ids::RequestIds;
use crate::{
    config::Config,
    grpc::{CommandService, Commands},
    migrations::MIGRATIONS,
    outbox::{self, Relay, RelayConfig, RelayMetrics},
    password_hasher::PasswordHasher,
};

pub struct App {
    config: Config,
    frontend: Frontend,
    relay: Arc<Relay>,
    relay_wake: Arc<Notify>,
    pool: Pool,
    database: db::Database,
}

/// Creates the write database when missing and applies its migrations.
pub async fn migrate(database: &db::Database, settings: &MigrationSettings) -> anyhow::Result<()> {
    migrate::prepare(database, MIGRATIONS, "write", settings)
        .await
        .context("cannot prepare the write database")
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let database = config.database()?;
        let cluster = config.kafka.cluster().map_err(anyhow::Error::msg)?;
        config
            .database
            .schema_at_start(&database, MIGRATIONS, "write")
            .await
            .context("the write database's schema")?;
        let pool = database.pool(
            config.database.database_pool_size.into(),
            config.database.session_limits(),
        )?;

        let mut registry = Registry::default();
        let grpc_metrics = GrpcMetricsLayer::register(&mut registry);
        let relay_wake = Arc::new(Notify::new());
        let relay = Arc::new(Relay::new(
            pool.clone(),
            RelayConfig {
                cluster: cluster.clone(),
                topics: Topics::with_prefix(&config.kafka.topic_prefix),
                topic_settings: config.kafka.topic_settings(),
                batch_size: config.outbox.outbox_batch_size,
                poll_interval: config.outbox.outbox_poll_interval,
                publish_timeout: config.outbox.outbox_publish_timeout,
                batch_num_messages: config.outbox.kafka_batch_num_messages,
            },
            Arc::clone(&relay_wake),
            RelayMetrics::register(&mut registry),
        )?);

        let (health, health_service) = readiness::dependency_health(
            pool.clone(),
            &cluster,
            config.health.health_check_timeout,
            &mut registry,
        )?;

        let hash_concurrency = config
            .password_hash_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let commands = Commands {
            pool: pool.clone(),
            hasher: PasswordHasher::new(hash_concurrency),
            notify_relays: config.outbox.outbox_notify,
            relay_wake: Arc::clone(&relay_wake),
            request_ids: RequestIds::new(config.request_id_retention),
        };
        let routes = grpc_server::base_routes(health_service)?
            .add_service(UserServiceServer::new(CommandService::new(commands)));

        let frontend = Frontend::bind(
            config.grpc_addr,
            config.http_addr,
            routes,
            grpc_metrics,
            Gate::from_settings(&config.grpc, &config.auth, config.grpc_addr)
                .await
                .map_err(anyhow::Error::msg)?,
            health,
            registry,
        )
        .await?;

        Ok(Self {
            config,
            frontend,
            relay,
            relay_wake,
            pool,
            database,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.frontend.grpc_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.frontend.http_addr()
    }

    pub fn relay(&self) -> Arc<Relay> {
        Arc::clone(&self.relay)
    }

    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    /// Serves until `stop` is cancelled. Then readiness turns 503 and gRPC health
    /// NOT_SERVING, the gRPC server refuses new calls and lets in-flight ones finish within
    /// the grace period, and the relay publishes what they wrote and flushes the producer.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let background = CancellationToken::new();
        let mut tasks = vec![
            tokio::spawn(Arc::clone(&self.relay).run(background.clone())),
            tokio::spawn(
                RequestIds::new(self.config.request_id_retention)
                    .purge_every(self.pool.clone(), background.clone()),
            ),
        ];
        if self.config.outbox.outbox_notify {
            tasks.push(tokio::spawn(pg_listen::keep_listening(
                self.database.clone(),
                outbox::CHANNEL,
                Arc::clone(&self.relay_wake),
                background.clone(),
            )));
        }
        tracing::info!(grpc = %self.grpc_addr(), http = %self.http_addr(), "command-service serving");
        self.frontend
            .serve(
                &self.config.health,
                self.config.shutdown.shutdown_grace,
                stop,
                background,
                tasks,
            )
            .await?;
        tracing::info!("command-service stopped");
        Ok(())
    }
}
