//! Startup: everything is built and bound in `App::build`, workers included, so tests run the
//! real service on port 0; `App::run` only starts the workers and serves until the stop token
//! is cancelled, then drains.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use futures::{FutureExt, future::BoxFuture};
use prometheus_client::registry::Registry;
use shared::{
    db::Pool,
    frontend::Frontend,
    grpc_metrics::GrpcMetricsLayer,
    grpc_server::{self, Gate},
    health::Need,
    pg_listen, readiness,
};
use shared_proto::topics::Topics;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    grpc::{ReadRoutes, Reads},
    migrations,
    page_token::PageTokens,
    projector::{Consuming, ProgressReport, Projector, ProjectorMetrics},
    read_model::{
        ReadModel, UserCache,
        feed::{self, FeedState},
        swaps,
    },
    view,
};

pub struct App {
    config: Config,
    frontend: Frontend,
    pool: Pool,
    /// Started first: what keeps this replica's cache current.
    cache_workers: Vec<BoxFuture<'static, ()>>,
    /// Started once the cache feed listens (or has kept them waiting too long).
    workers: Vec<BoxFuture<'static, ()>>,
    feed_started: watch::Receiver<FeedState>,
    /// Stops the workers once gRPC has drained.
    background: CancellationToken,
}

/// How long gRPC waits for the cache feed before serving without it (it catches up later,
/// clearing the cache).
const FEED_START_WAIT: Duration = Duration::from_secs(5);

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let database = config.database()?;
        let cluster = config.kafka.cluster().map_err(anyhow::Error::msg)?;
        config
            .database
            .schema_at_start(&database, migrations::MIGRATIONS, "read")
            .await
            .context("the read database's schema")?;
        let pool = database.pool(
            config.database.database_pool_size.into(),
            config.database.session_limits(),
        )?;
        let topics = Topics::with_prefix(&config.kafka.topic_prefix);

        let mut registry = Registry::default();
        let grpc_metrics = GrpcMetricsLayer::register(&mut registry);
        let cache = UserCache::new(config.cache_capacity, config.cache_ttl, &mut registry);
        let projector_metrics = ProjectorMetrics::register(&mut registry, &topics.events());
        let progress = ProgressReport::default();
        let projector = Projector::new(
            &cluster,
            &Consuming {
                group: config.consumer_group.clone(),
                resume_rewind: config.resume_rewind,
                fetch_wait: config.fetch_wait,
            },
            topics.clone(),
            pool.clone(),
            cache.clone(),
            projector_metrics,
            progress.clone(),
        )?;

        let (health, health_service) = readiness::dependency_health(
            pool.clone(),
            &cluster,
            config.health.health_check_timeout,
            &mut registry,
        )?;
        health.add_check("projector", Need::Informational, move || {
            let state = progress.check();
            async move { state }
        });
        let (feed_state, feed_watch) = feed::state();
        health.add_check("cache_feed", Need::Informational, move || {
            let state = feed_watch.borrow().check();
            async move { state }
        });

        let reads = Reads {
            model: ReadModel::new(
                pool.clone(),
                cache.clone(),
                config.list_cache_ttl,
                &mut registry,
            ),
            page_tokens: PageTokens::new(
                config
                    .page_token_secret()
                    .map_err(anyhow::Error::msg)?
                    .as_bytes(),
            ),
            min_version_timeout: config.min_version_timeout,
        };
        let routes = grpc_server::base_routes(health_service)?.add_service(ReadRoutes::new(reads));

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

        let background = CancellationToken::new();
        let feed_started = feed_state.subscribe();
        let swapped = Arc::new(Notify::new());
        let cache_workers = vec![
            feed::run(
                cluster.clone(),
                topics.clone(),
                cache.clone(),
                feed_state,
                feed::PARTITION_REFRESH,
                config.fetch_wait,
                background.clone(),
            )
            .boxed(),
            pg_listen::keep_listening(
                database,
                view::SWAPPED,
                Arc::clone(&swapped),
                background.clone(),
            )
            .boxed(),
            swaps::clear_cache_on_swap(swapped, pool.clone(), cache, background.clone()).boxed(),
        ];
        let workers = vec![
            projector
                .consume(cluster, config.kafka.clone(), topics, background.clone())
                .boxed(),
            view::purge_every(
                pool.clone(),
                config.tombstone_retention,
                config.tombstone_purge_interval,
                background.clone(),
            )
            .boxed(),
        ];

        Ok(Self {
            config,
            frontend,
            pool,
            cache_workers,
            workers,
            feed_started,
            background,
        })
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.frontend.grpc_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.frontend.http_addr()
    }

    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    /// Serves until `stop` is cancelled; then drains gRPC within the grace period, and the
    /// projector commits its position.
    pub async fn run(mut self, stop: CancellationToken) -> anyhow::Result<()> {
        let mut running: Vec<_> = self.cache_workers.into_iter().map(tokio::spawn).collect();
        // Changes made while a replica serves must reach its cache: let the feed start first,
        // unless the broker keeps it waiting.
        if tokio::time::timeout(
            FEED_START_WAIT,
            self.feed_started
                .wait_for(|state| *state == FeedState::Listening),
        )
        .await
        .is_err()
        {
            tracing::warn!(wait = ?FEED_START_WAIT, "serving before the cache feed started");
        }
        running.extend(self.workers.into_iter().map(tokio::spawn));
        tracing::info!(grpc = %self.frontend.grpc_addr(), http = %self.frontend.http_addr(), "query-service serving");
        self.frontend
            .serve(
                &self.config.health,
                self.config.shutdown.shutdown_grace,
                stop,
                self.background,
                running,
            )
            .await?;
        tracing::info!("query-service stopped");
        Ok(())
    }
}
