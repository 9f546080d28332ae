//! Replay: `query-service replay` rebuilding a fresh model from N events, against a bare
//! rdkafka consumer reading the same topics to their end.

use std::time::{Duration, Instant};

use anyhow::Context;
use prost::Message as _;
use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};
use shared::kafka;
use shared_proto::v1;
use shared_proto::{event_headers, topics::Topics};

use testkit::{broker, database::TestDatabase, service_args::QueryServiceArgs};
use uuid::Uuid;

use super::unique;
use crate::{Bench, table::Row};

const PARTITIONS: i32 = 3;

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let brokers = broker::brokers();
    let prefix = format!("{}.", unique("replay"));
    let topics = Topics::with_prefix(&prefix);
    kafka::ensure_topics(
        &shared::kafka::Cluster::plaintext(brokers.to_owned()),
        &topics.events(),
        &shared::kafka::TopicSettings::fixed(PARTITIONS, 1),
    )
    .await?;
    produce(&brokers, &topics, bench.replay_events).await?;

    let started = Instant::now();
    read_all(&brokers, &topics, bench.replay_events).await?;
    let bare = started.elapsed();

    let db = TestDatabase::create().await;
    let args = QueryServiceArgs::new()
        .database_url(&super::plain(&db.url))
        .brokers(&brokers)
        .topic_prefix(&prefix)
        .log_filter("warn,query_service::replay=info");
    let mut command = bench
        .cores
        .launch(&bench.binary("query-service"))
        .service(&args)
        .arg("replay")
        .command();
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    let replayed = started.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The replay's own account of its phases.
    if let Some(line) = String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|line| line.contains("replayed and swapped in"))
    {
        println!("replay{}: {}", bench.label, line.trim());
    }
    let rows: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM user_views", &[])
        .await?
        .get(0);
    // Short is a finding, not a failure of the bench: binaries before the fix stopped at
    // tansu's reported ends and lost the rest of each partition's last batch.
    let short = if rows as usize == bench.replay_events {
        String::new()
    } else {
        format!(" (only {rows} users in the model)")
    };

    let rate = |elapsed: Duration| bench.replay_events as f64 / elapsed.as_secs_f64();
    let mut rows = Vec::new();
    // Postgres's own share, once: the binaries do not change it.
    if !bench.before {
        let (inserted, indexed) = postgres_floor(&db).await?;
        println!(
            "replay: Postgres alone, the same rows: {} ms to insert in one statement, {} ms to index two at a time",
            inserted.as_millis(),
            indexed.as_millis()
        );
        rows.push(
            Row::new(
                format!(
                    "Postgres alone: the replay's {} rows inserted in one statement and indexed as the replay does, rows/s",
                    bench.replay_events
                ),
                "—",
            )
            .rate(rate(inserted + indexed))
            .against("bare rdkafka consumer to the end", rate(bare)),
        );
    }
    rows.insert(
        0,
        Row::new(
            bench.figure(&format!(
                "replay of {} events into a fresh model, events/s{short}",
                bench.replay_events
            )),
            "≥ 0.9×",
        )
        .rate(rate(replayed))
        .against("bare rdkafka consumer to the end", rate(bare)),
    );
    Ok(rows)
}

/// The least work a replay asks of Postgres: the replayed rows copied into a table with the
/// same primary key in one statement, then its other indexes built two at a time as the
/// replay builds them. Returns how long each took.
async fn postgres_floor(db: &TestDatabase) -> anyhow::Result<(Duration, Duration)> {
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE replay_floor (LIKE user_views INCLUDING DEFAULTS);
             ALTER TABLE replay_floor ADD PRIMARY KEY (id);",
        )
        .await?;
    let started = Instant::now();
    client
        .batch_execute("INSERT INTO replay_floor SELECT * FROM user_views")
        .await?;
    let inserted = started.elapsed();
    let definitions: Vec<String> = client
        .query(
            "SELECT replace(replace(indexdef, ' ON public.user_views ', ' ON public.replay_floor '),              'INDEX ' || indexname, 'INDEX floor_' || indexname)              FROM pg_indexes WHERE tablename = 'user_views' AND indexname <> 'user_views_pkey'",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let other = db.client().await;
    let started = Instant::now();
    let build = async |client: &tokio_postgres::Client, lane: usize| {
        for definition in definitions.iter().skip(lane).step_by(2) {
            client.batch_execute(definition).await?;
        }
        anyhow::Ok(())
    };
    futures::try_join!(build(&client, 0), build(&other, 1))?;
    Ok((inserted, started.elapsed()))
}

/// `count` creations of distinct users, as the relay would write them.
async fn produce(brokers: &str, topics: &Topics, count: usize) -> anyhow::Result<()> {
    let producer: FutureProducer = shared::kafka::Cluster::plaintext(brokers.to_owned())
        .client_config("bench-replay")
        .set("linger.ms", "5")
        .set("batch.num.messages", "1000")
        .create()?;
    let mut pending = Vec::with_capacity(count);
    for n in 0..count {
        let id = Uuid::now_v7();
        let payload = v1::UserCreatedEvent {
            user: Some(crate::sample_user::ada(n as u64, id)),
        }
        .encode_to_vec();
        let key = id.to_string();
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: event_headers::EVENT_TYPE,
            value: Some(event_headers::USER_CREATED),
        });
        let mut record = FutureRecord::to(&topics.created)
            .key(&key)
            .payload(&payload)
            .headers(headers);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                // The producer's queue is full: let it drain.
                Err((_, returned)) if !pending.is_empty() => {
                    for delivered in futures::future::join_all(pending.drain(..)).await {
                        delivered?.map_err(|(error, _)| error)?;
                    }
                    record = returned;
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
    }
    for delivered in futures::future::join_all(pending).await {
        delivered?.map_err(|(error, _)| error)?;
    }
    Ok(())
}

/// Reads every partition of the event topics from the start until it has read `count`
/// records (tansu's reported ends fall short of each partition's last batch).
async fn read_all(brokers: &str, topics: &Topics, count: usize) -> anyhow::Result<()> {
    let consumer: StreamConsumer = shared::kafka::Cluster::plaintext(brokers.to_owned())
        .client_config("bench-bare-consumer")
        .set("group.id", unique("bare"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for topic in topics.events() {
        for partition in 0..PARTITIONS {
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    consumer.assign(&assignment)?;
    for _ in 0..count {
        tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .context("the bare consumer stalled")??;
    }
    Ok(())
}
