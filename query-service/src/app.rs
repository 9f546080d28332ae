//! Startup: everything is built and bound in `App::build`, so tests run the real service on
//! port 0; `App::run` serves until the stop token is cancelled, then drains.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use deadpool_postgres::Pool;
use prometheus_client::registry::Registry;
use shared_proto::v1::user_service_server::{SERVICE_NAME, UserServiceServer};
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use users_shared::{
    db, grpc_metrics::GrpcMetricsLayer, grpc_server, health::Health, http, kafka, pg_listen,
    readiness, topics::Topics,
};

use crate::{
    cache::UserCache,
    cache_feed,
    config::Config,
    grpc::{QueryService, Reads},
    migrations::MIGRATIONS,
    page_token::PageTokens,
    projector::{Projector, ProjectorMetrics},
    replay,
};

pub struct App {
    config: Config,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    routes: Routes,
    grpc_metrics: GrpcMetricsLayer,
    health: Health,
    registry: Arc<Registry>,
    projector: Projector,
    cache: UserCache,
    pool: Pool,
}

/// Creates the read database when missing and applies its migrations.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    db::ensure_database(database_url)
        .await
        .context("cannot reach or create the read database")?;
    let mut client = db::connect(database_url).await?;
    let applied = db::migrate(&mut client, MIGRATIONS).await?;
    tracing::info!(?applied, "read database migrated");
    Ok(())
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        migrate(&config.database_url).await?;
        let pool = db::pool(&config.database_url, config.database_pool_size.into())?;
        let topics = Topics::with_prefix(&config.kafka.topic_prefix);

        let mut registry = Registry::default();
        let grpc_metrics = GrpcMetricsLayer::register(&mut registry);
        let cache = UserCache::new(config.cache_capacity, config.cache_ttl, &mut registry);
        let projector = Projector::new(
            &config.kafka.brokers,
            &config.consumer_group,
            topics,
            pool.clone(),
            cache.clone(),
            ProjectorMetrics::register(&mut registry),
        )?;

        let (reporter, health_service) = grpc_server::health();
        let health = Health::new(reporter, vec![SERVICE_NAME]);
        readiness::add_dependency_checks(
            &health,
            pool.clone(),
            &config.kafka.brokers,
            config.health.health_check_timeout,
        )?;

        let reads = Reads {
            pool: pool.clone(),
            cache: cache.clone(),
            page_tokens: PageTokens::new(config.page_token_secret.as_bytes()),
            min_version_timeout: config.min_version_timeout,
        };
        let routes = grpc_server::base_routes(health_service)?
            .add_service(UserServiceServer::new(QueryService::new(reads)));

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
            projector,
            cache,
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

    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    /// Serves until `stop` is cancelled; then drains gRPC within the grace period, and the
    /// projector commits its position.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let background = CancellationToken::new();
        let health_task = self.health.spawn(
            self.config.health.health_check_interval,
            self.config.health.health_check_timeout,
            background.clone(),
        );
        let topics = Topics::with_prefix(&self.config.kafka.topic_prefix);
        let kafka_args = self.config.kafka.clone();
        let projector = self.projector;
        let projector_background = background.clone();
        let cache = self.cache.clone();
        let feed_background = background.clone();
        let consume_task = tokio::spawn(async move {
            if !ensure_topics(&kafka_args, &topics, &projector_background).await {
                return;
            }
            let feed = tokio::spawn(cache_feed::run(
                kafka_args.brokers.clone(),
                topics,
                cache,
                feed_background,
            ));
            projector.run(projector_background).await;
            let _ = feed.await;
        });
        let swapped = Arc::new(Notify::new());
        let listen_task = pg_listen::spawn_listener(
            self.config.database_url.clone(),
            replay::SWAPPED,
            Arc::clone(&swapped),
            background.clone(),
        );
        let cache = self.cache.clone();
        let swap_background = background.clone();
        let clear_task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = swap_background.cancelled() => return,
                    _ = swapped.notified() => cache.clear(),
                }
            }
        });
        let http_task = tokio::spawn(http::serve(
            self.http_listener,
            http::router(self.health.clone(), Arc::clone(&self.registry)),
            background.clone(),
        ));
        tracing::info!(grpc = %self.config.grpc_addr, http = %self.config.http_addr, "query-service serving");

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
        for task in [consume_task, listen_task, clear_task, health_task] {
            let _ = task.await;
        }
        let _ = http_task.await;
        tracing::info!("query-service stopped");
        served
    }
}

/// Creates the topics (events and dead letters), retrying until the broker answers.
async fn ensure_topics(
    kafka_args: &users_shared::config::KafkaArgs,
    topics: &Topics,
    shutdown: &CancellationToken,
) -> bool {
    let mut names = topics.events().to_vec();
    names.push(&topics.dead_letter);
    let mut backoff = Duration::from_millis(200);
    loop {
        match kafka::ensure_topics(
            &kafka_args.brokers,
            &names,
            kafka_args.topic_partitions,
            kafka_args.topic_replication,
        )
        .await
        {
            Ok(()) => return true,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "cannot create topics; projector waits")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return false,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
