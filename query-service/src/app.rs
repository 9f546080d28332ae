//! Startup: everything is built and bound in `App::build`, so tests run the real service on
//! port 0; `App::run` serves until the stop token is cancelled, then drains.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
use shared::{
    backoff::Backoff,
    config::KafkaArgs,
    db::{self, Pool},
    frontend::Frontend,
    grpc_metrics::GrpcMetricsLayer,
    grpc_server::{self, Gate},
    health::Need,
    kafka::{self, Cluster},
    pg_listen, readiness,
};
use shared_proto::topics::Topics;
use shared_proto::v1::user_service_server::UserServiceServer;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    grpc::{QueryService, Reads},
    migrations,
    page_token::PageTokens,
    projector::{Consuming, ProgressReport, Projector, ProjectorMetrics},
    read_model::{
        ReadModel, UserCache,
        feed::{self, FeedState},
    },
    view,
};

pub struct App {
    config: Config,
    frontend: Frontend,
    projector: Projector,
    cache: UserCache,
    feed_state: watch::Sender<FeedState>,
    pool: Pool,
    database: db::Database,
    cluster: Cluster,
}

/// How long gRPC waits for the cache feed before serving without it (it catches up later,
/// clearing the cache).
const FEED_START_WAIT: Duration = Duration::from_secs(5);

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let database = config.database()?;
        let cluster = config.kafka.cluster().map_err(anyhow::Error::msg)?;
        migrations::migrate(&database).await?;
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
            topics,
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
        let routes = grpc_server::base_routes(health_service)?
            .add_service(UserServiceServer::new(QueryService::new(reads)));

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
            projector,
            cache,
            feed_state,
            pool,
            database,
            cluster,
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
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let background = CancellationToken::new();
        let topics = Topics::with_prefix(&self.config.kafka.topic_prefix);
        let mut feed_started = self.feed_state.subscribe();
        let feed = tokio::spawn(feed::run(
            self.cluster.clone(),
            topics.clone(),
            self.cache.clone(),
            self.feed_state,
            feed::PARTITION_REFRESH,
            self.config.fetch_wait,
            background.clone(),
        ));
        let consume = consume(
            self.cluster.clone(),
            self.config.kafka.clone(),
            topics,
            self.projector,
            background.clone(),
        );
        let swapped = Arc::new(Notify::new());
        let listen = pg_listen::spawn_listener(
            self.database.clone(),
            view::SWAPPED,
            Arc::clone(&swapped),
            background.clone(),
        );
        let clear = clear_cache_on_swap(
            swapped,
            self.pool.clone(),
            self.cache.clone(),
            background.clone(),
        );
        // Changes made while a replica serves must reach its cache: let the feed start first,
        // unless the broker keeps it waiting.
        if tokio::time::timeout(
            FEED_START_WAIT,
            feed_started.wait_for(|state| *state == FeedState::Listening),
        )
        .await
        .is_err()
        {
            tracing::warn!(wait = ?FEED_START_WAIT, "serving before the cache feed started");
        }
        let purge = tokio::spawn(purge_tombstones(
            self.pool.clone(),
            self.config.tombstone_retention,
            self.config.tombstone_purge_interval,
            background.clone(),
        ));
        tracing::info!(grpc = %self.frontend.grpc_addr(), http = %self.frontend.http_addr(), "query-service serving");
        self.frontend
            .serve(
                &self.config.health,
                self.config.shutdown.shutdown_grace,
                stop,
                background,
                vec![
                    tokio::spawn(consume),
                    feed,
                    listen,
                    tokio::spawn(clear),
                    purge,
                ],
            )
            .await?;
        tracing::info!("query-service stopped");
        Ok(())
    }
}

/// Creates the topics, then runs the projector until `shutdown`.
async fn consume(
    cluster: Cluster,
    kafka_args: KafkaArgs,
    topics: Topics,
    projector: Projector,
    shutdown: CancellationToken,
) {
    if ensure_topics(&cluster, &kafka_args, &topics, &shutdown).await {
        projector.run(shutdown).await;
    }
}

/// Purges old tombstones every `interval`, on every replica (the purges take turns on the
/// horizon's lock).
async fn purge_tombstones(
    pool: Pool,
    retention: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match view::purge_tombstones(&pool, retention).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "tombstones past their retention purged"),
            Err(error) => tracing::warn!(%error, "cannot purge tombstones; trying again later"),
        }
    }
}

/// A replay announces its swap; the cache may hold entries the new table does not. The
/// listener also wakes on every (re)connection, so the generation tells a real swap apart.
async fn clear_cache_on_swap(
    swapped: Arc<Notify>,
    pool: Pool,
    cache: UserCache,
    shutdown: CancellationToken,
) {
    let mut known = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = swapped.notified() => {}
        }
        match view::generation(&pool).await {
            Ok(generation) => {
                if known.is_some_and(|known| known != generation) {
                    tracing::info!(generation, "read model swapped; cache cleared");
                    cache.clear();
                }
                known = Some(generation);
            }
            Err(error) => {
                // Unknown: clearing is the safe side.
                tracing::warn!(%error, "cannot read the read model's generation; cache cleared");
                cache.clear();
                known = None;
            }
        }
    }
}

/// Creates the topics (events and dead letters), retrying until the broker answers.
async fn ensure_topics(
    cluster: &Cluster,
    kafka_args: &KafkaArgs,
    topics: &Topics,
    shutdown: &CancellationToken,
) -> bool {
    let events = kafka_args.topic_settings();
    // Dead letters are kept whole, whatever the event topics keep.
    let dead_letters = kafka::TopicSettings {
        retention: kafka::Retention::Forever,
        ..events
    };
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let created = match kafka::ensure_topics(cluster, &topics.events(), &events).await {
            Ok(()) => kafka::ensure_topics(cluster, &[&topics.dead_letter], &dead_letters).await,
            failed => failed,
        };
        match created {
            Ok(()) => return true,
            Err(error) => {
                tracing::error!(%error, retry_in = ?backoff.upcoming(), "cannot create the topics; the projector waits")
            }
        }
        if !backoff.sleep(shutdown).await {
            return false;
        }
    }
}
