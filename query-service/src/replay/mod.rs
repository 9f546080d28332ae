//! `query-service replay`: rebuilds the read model from the earliest offsets into a shadow
//! table while the live table keeps serving, then swaps the two in one transaction.
//!
//! The swap first merges the live table into the shadow one under the version guard, with
//! the projector's writes held back by a lock, so no event the live view had can be missing
//! afterwards; readers wait only for the moment of the renames.

mod indexes;
mod progress;

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::FutureExt;
use prometheus_client::registry::Registry;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
};
use shared::{db, db_failure::DbFailure, db_pool, http, kafka};
use shared_proto::topics::Topics;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::progress::{Phase, Progress, ReplayMetrics};
use crate::{config::Config, migrations, user_change::UserChange, view};

/// The advisory lock a replay holds for its whole run: a second one would drop the first's
/// shadow table, and the first would then swap in a half-built model.
const REPLAY_LOCK: i64 = 8_020_417_313;

/// How long the swap may wait for its lock on the live table. Waiting longer would queue
/// every reader behind whatever long query holds it; the swap is tried again instead.
const SWAP_LOCK_TIMEOUT: &str = "2s";
const SWAP_ATTEMPTS: u32 = 5;

#[derive(Debug, thiserror::Error)]
#[error("another replay of this read model is running; try again once it has finished")]
pub struct ReplayRunning;

const BATCH: usize = 1000;

/// Batches written at once, and indexes built at once. One Postgres backend writes on one
/// core; with one lane the replay waits on it while its other cores idle. Two leave the
/// rest of a small database server to the live service, which keeps serving meanwhile.
const LANES: usize = 2;
/// How long the topics must stay quiet after the reported ends for the reading to stop. The
/// consumer fetches ahead of what it hands out, so the rest of a last batch is usually in hand
/// when its reported end is read; this is ten fetch waits more for it to come.
const QUIET: Duration = Duration::from_millis(100);
/// The longest the reading goes on after the reported ends, however busy the topics are.
const TAIL_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    pub events: u64,
    pub undecodable: u64,
}

pub async fn replay(config: &Config) -> anyhow::Result<ReplayReport> {
    let database = config.database()?;
    // A replay creates and swaps tables: it runs with a role that may change the schema.
    migrations::migrate(&database, &config.database.migration_settings()).await?;
    // Held by this session until the replay ends, however it ends.
    let lock = database.connect().await?;
    let locked: bool = lock
        .query_one("SELECT pg_try_advisory_lock($1)", &[&REPLAY_LOCK])
        .await?
        .get(0);
    if !locked {
        return Err(ReplayRunning.into());
    }
    let mut registry = Registry::default();
    let metrics = ReplayMetrics::register(&mut registry);
    let listener = tokio::net::TcpListener::bind(config.replay_metrics_addr)
        .await
        .with_context(|| {
            format!(
                "cannot bind REPLAY_METRICS_ADDR {}",
                config.replay_metrics_addr
            )
        })?;
    let serving = CancellationToken::new();
    let server = tokio::spawn(http::serve(
        listener,
        http::metrics_router(Arc::new(registry)),
        serving.clone(),
    ));
    let replayed = read_and_swap(config, &database, metrics).await;
    serving.cancel();
    let _ = server.await;
    drop(lock);
    replayed
}

/// The replay proper, under the lock, its progress in `metrics`.
async fn read_and_swap(
    config: &Config,
    database: &db::Database,
    metrics: ReplayMetrics,
) -> anyhow::Result<ReplayReport> {
    // The shadow's writes are bounded like the service's; the swap merges the whole live
    // table, and no statement limit suits every size.
    let pool = database.pool(LANES, config.database.session_limits())?;
    let merge_pool = database.pool(LANES, db::SessionLimits::NONE)?;
    let topics = Topics::with_prefix(&config.kafka.topic_prefix);
    let cluster = config.kafka.cluster().map_err(anyhow::Error::msg)?;
    kafka::ensure_topics(&cluster, &topics.events(), &config.kafka.topic_settings())
        .await
        .context("cannot reach Kafka")?;

    let indexes = merge_pool
        .run(async |client| {
            let indexes = indexes::of_live(&*client).await.map_err(DbFailure::from)?;
            client
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS {shadow}; \
                     CREATE TABLE {shadow} (LIKE {live} INCLUDING ALL EXCLUDING INDEXES)",
                    shadow = view::SHADOW,
                    live = view::LIVE
                ))
                .await
                .map_err(DbFailure::from)?;
            indexes::create_primary(&*client, &indexes)
                .await
                .map_err(DbFailure::from)?;
            // Once swapped in, the table is read and written by the service's role.
            if let Some(role) = &config.database.migration_settings().grant_to {
                shared::migrate::grant(client, role)
                    .await
                    .map_err(DbFailure::from)?;
            }
            Ok::<_, DbFailure>(indexes)
        })
        .await
        .context("cannot create the shadow table")?;

    // Where each partition ends now: the replay reads up to there, then the swap's merge
    // brings in whatever the live projector wrote since.
    let mut remaining: HashMap<(String, i32), i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    let consumer: StreamConsumer = cluster
        .client_config("query-service-replay")
        .set(
            "group.id",
            format!("query-service-replay-{}", Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set(
            "fetch.wait.max.ms",
            config.fetch_wait.as_millis().max(1).to_string(),
        )
        .create()?;
    for (topic, partition) in kafka::partitions(&cluster, &topics.events()).await? {
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, Duration::from_secs(10))
            .with_context(|| format!("cannot read the offsets of {topic}/{partition}"))?;
        if high > low {
            remaining.insert((topic.clone(), partition), high);
            assignment.add_partition_offset(&topic, partition, Offset::Beginning)?;
        }
    }
    let reading = Instant::now();
    let total: i64 = remaining.values().sum::<i64>();
    let mut progress = Progress::new(total.max(0) as u64, metrics);
    let mut report = ReplayReport {
        events: 0,
        undecodable: 0,
    };
    if !remaining.is_empty() {
        consumer.assign(&assignment)?;
    }

    // To each partition's reported end, then on until the topics have been quiet for a
    // moment: a broker may report an end short of its last batch (tansu reports that batch's
    // first offset). Anything later still reaches the model through the swap's merge.
    // Batches are written while the next ones are read, `LANES` at a time. Their order does
    // not matter: each row is written under the version guard, and rows are locked in the
    // order of their ids, so two batches of the same users cannot deadlock.
    let mut writing: VecDeque<tokio::task::JoinHandle<anyhow::Result<()>>> = VecDeque::new();
    let mut tail_started: Option<Instant> = None;
    loop {
        let first = if remaining.is_empty() {
            let started = *tail_started.get_or_insert_with(Instant::now);
            if started.elapsed() >= TAIL_LIMIT {
                break;
            }
            match tokio::time::timeout(QUIET, consumer.recv()).await {
                Ok(received) => received,
                Err(_) => break,
            }
        } else {
            consumer.recv().await
        };
        let mut changes = Vec::with_capacity(BATCH);
        let mut next = Some(first);
        while let Some(received) = next {
            let record = received.context("cannot read the topics")?;
            report.events += 1;
            match UserChange::decode(&topics, record.topic(), record.payload()) {
                Ok(change) => changes.push(change),
                Err(_) => report.undecodable += 1,
            }
            let key = (record.topic().to_owned(), record.partition());
            if remaining
                .get(&key)
                .is_some_and(|end| record.offset() + 1 >= *end)
            {
                remaining.remove(&key);
            }
            next = (changes.len() < BATCH)
                .then(|| consumer.recv().now_or_never())
                .flatten();
        }
        if writing.len() >= LANES
            && let Some(oldest) = writing.pop_front()
        {
            oldest.await??;
        }
        let pool = pool.clone();
        writing.push_back(tokio::spawn(async move {
            pool.run(async |client| {
                let tx = client.transaction().await?;
                let refs: Vec<&UserChange> = changes.iter().collect();
                view::apply(&tx, view::Table::Shadow, &refs).await?;
                tx.commit().await?;
                Ok::<_, DbFailure>(())
            })
            .await?;
            Ok(())
        }));
        progress.set(report.events);
    }
    for last in writing {
        last.await??;
    }
    progress.finish(report.events);
    let read_for = reading.elapsed();
    let indexing = Instant::now();
    indexes::create_secondary(&merge_pool, &indexes, LANES)
        .await
        .context("cannot index the shadow table")?;
    let indexed_for = indexing.elapsed();
    let swapping = Instant::now();
    swap(&merge_pool, &progress, &indexes::renames(&indexes)).await?;
    progress.enter(Phase::Done);
    // Where the time went, for whoever sizes a replay.
    tracing::info!(
        events = report.events,
        undecodable = report.undecodable,
        read_and_written_ms = read_for.as_millis() as u64,
        indexed_ms = indexed_for.as_millis() as u64,
        merged_and_swapped_ms = swapping.elapsed().as_millis() as u64,
        "read model replayed and swapped in"
    );
    Ok(report)
}

/// The swap, tried again when its lock on the live table did not come in time.
async fn swap(pool: &db::Pool, progress: &Progress, renames: &str) -> anyhow::Result<()> {
    let mut attempt = 1;
    loop {
        match swap_once(pool, progress, renames).await {
            // Among conflicts, a lock that did not come within the timeout.
            Err(DbFailure::Conflict(_)) if attempt < SWAP_ATTEMPTS => {
                tracing::warn!(attempt, "the live table is busy; trying the swap again");
                tokio::time::sleep(Duration::from_millis(500) * attempt).await;
                attempt += 1;
            }
            result => return result.context("cannot swap the rebuilt read model in"),
        }
    }
}

async fn swap_once(pool: &db::Pool, progress: &Progress, renames: &str) -> Result<(), DbFailure> {
    pool.run(async |client| swap_in(client, progress, renames).await)
        .await
}

async fn swap_in(
    client: &mut db_pool::Client,
    progress: &Progress,
    renames: &str,
) -> Result<(), DbFailure> {
    let tx = client.transaction().await?;
    progress.enter(Phase::Merging);
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}';
         LOCK TABLE {live} IN SHARE ROW EXCLUSIVE MODE;
         INSERT INTO {shadow} AS s SELECT * FROM {live}
         ON CONFLICT (id) DO UPDATE SET first_name = EXCLUDED.first_name,
             last_name = EXCLUDED.last_name, nickname = EXCLUDED.nickname,
             email = EXCLUDED.email, country = EXCLUDED.country,
             created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
             version = EXCLUDED.version, deleted = EXCLUDED.deleted
         WHERE s.version < EXCLUDED.version;",
        live = view::LIVE,
        shadow = view::SHADOW,
    ))
    .await?;
    progress.enter(Phase::Swapping);
    tx.batch_execute(&format!(
        "ALTER TABLE {live} RENAME TO user_views_retired;
         ALTER TABLE {shadow} RENAME TO {live};
         DROP TABLE user_views_retired;
         {renames}
         UPDATE read_model_generation SET generation = generation + 1;
         NOTIFY {SWAPPED};",
        SWAPPED = view::SWAPPED,
        live = view::LIVE,
        shadow = view::SHADOW,
    ))
    .await?;
    Ok(tx.commit().await?)
}
