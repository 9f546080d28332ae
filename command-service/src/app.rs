//! Startup: everything is built and bound in `App::build`, so tests run the real service on
//! port 0; `App::run` serves until the stop token is cancelled, then drains.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use deadpool_postgres::Pool;
use prometheus_client::registry::Registry;
use shared_proto::v1::user_service_server::{SERVICE_NAME, UserServiceServer};
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use users_shared::{
    db, grpc_metrics::GrpcMetricsLayer, grpc_server, health::Health, http, pg_listen, readiness,
    topics::Topics,
};

use crate::{
    config::Config,
    grpc::{CommandService, Commands},
    migrations::MIGRATIONS,
    outbox::{self, Relay, RelayConfig, RelayMetrics},
    password_hasher::PasswordHasher,
};

pub struct App {
    config: Config,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    routes: Routes,
    grpc_metrics: GrpcMetricsLayer,
    health: Health,
    registry: Arc<Registry>,
    relay: Arc<Relay>,
    relay_wake: Arc<Notify>,
    pool: Pool,
}

/// Creates the write database when missing and applies its migrations.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    db::ensure_database(database_url)
        .await
        .context("cannot reach or create the write database")?;
    let mut client = db::connect(database_url).await?;
    let applied = db::migrate(&mut client, MIGRATIONS).await?;
    tracing::info!(?applied, "write database migrated");
    Ok(())
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        migrate(&config.database_url).await?;
        let pool = db::pool(&config.database_url, config.database_pool_size.into())?;

        let mut registry = Registry::default();
        let grpc_metrics = GrpcMetricsLayer::register(&mut registry);
        let relay_wake = Arc::new(Notify::new());
        let relay = Arc::new(Relay::new(
            pool.clone(),
            RelayConfig {
                brokers: config.kafka.brokers.clone(),
                topics: Topics::with_prefix(&config.kafka.topic_prefix),
                topic_partitions: config.kafka.topic_partitions,
                topic_replication: config.kafka.topic_replication,
                batch_size: config.outbox.outbox_batch_size,
                poll_interval: config.outbox.outbox_poll_interval,
                publish_timeout: config.outbox.outbox_publish_timeout,
                batch_num_messages: config.outbox.kafka_batch_num_messages,
            },
            Arc::clone(&relay_wake),
            RelayMetrics::register(&mut registry),
        )?);

        let (reporter, health_service) = grpc_server::health();
        let health = Health::new(reporter, vec![SERVICE_NAME]);
        readiness::add_dependency_checks(
            &health,
            pool.clone(),
            &config.kafka.brokers,
            config.health.health_check_timeout,
        )?;

        let hash_concurrency = config
            .password_hash_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let commands = Commands {
            pool: pool.clone(),
            hasher: PasswordHasher::new(hash_concurrency),
            notify_relays: config.outbox.outbox_notify,
            relay_wake: Arc::clone(&relay_wake),
        };
        let routes = grpc_server::base_routes(health_service)?
            .add_service(UserServiceServer::new(CommandService::new(commands)));

        let grpc_listener = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("cannot bind the gRPC address {}", config.grpc_addr))?;
        let http_listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot bind the HTTP address {}", config.http_addr))?;

        Ok(Self {
            config,
            grpc_listener,
            http_listener,
            routes,
            grpc_metrics,
            health,
            registry: Arc::new(registry),
            relay,
            relay_wake,
            pool,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_listener
            .local_addr()
            .expect("a bound listener has an address")
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
        let health_task = self.health.spawn(
            self.config.health.health_check_interval,
            self.config.health.health_check_timeout,
            background.clone(),
        );
        let listener_task = self.config.outbox.outbox_notify.then(|| {
            pg_listen::spawn_listener(
                self.config.database_url.clone(),
                outbox::CHANNEL,
                Arc::clone(&self.relay_wake),
                background.clone(),
            )
        });
        let relay_task = tokio::spawn(Arc::clone(&self.relay).run(background.clone()));
        let http_task = tokio::spawn(http::serve(
            self.http_listener,
            http::router(self.health.clone(), Arc::clone(&self.registry)),
            background.clone(),
        ));
        tracing::info!(grpc = %self.config.grpc_addr, http = %self.config.http_addr, "command-service serving");

        let served = grpc_server::serve_with_grace(
            self.grpc_listener,
            self.routes,
            self.grpc_metrics,
            self.health.clone(),
            stop,
            self.config.shutdown.shutdown_grace,
        )
        .await
        .context("the gRPC server failed");

        background.cancel();
        let _ = relay_task.await;
        if let Some(task) = listener_task {
            let _ = task.await;
        }
        let _ = health_task.await;
        let _ = http_task.await;
        tracing::info!("command-service stopped");
        served
    }
}
