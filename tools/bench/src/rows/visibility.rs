//! Both services together: how soon a write is readable on query-service at a steady write
//! rate, and what a herd of readers waiting for versions does to everyone else's reads.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use shared_proto::v1::{self, user_service_client::UserServiceClient};
use testkit::{
    broker,
    database::TestDatabase,
    service_args::{CommandServiceArgs, QueryServiceArgs},
};
use tonic::transport::Channel;

use super::{client, unique};
use crate::{
    Bench,
    services::{CpuReading, Service},
    table::Row,
};

/// Where the CPU goes while both services work (process names as /proc has them).
const PROCESSES: &[&str] = &[
    "command-servic",
    "query-service",
    "postgres",
    "tansu",
    "bench",
];

const USERS: usize = 100;
const WRITES_PER_SECOND: u64 = 1_000;
/// Writers, each keeping to its own users at an even share of the rate.
const WRITERS: usize = 50;
const WAITERS: usize = 1_000;

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let (write_db, read_db) = (TestDatabase::create().await, TestDatabase::create().await);
    let prefix = format!("{}.", unique("visibility"));
    let brokers = broker::brokers();
    let command = Service::start(
        bench,
        CommandServiceArgs::new()
            .database_url(&super::plain(&write_db.url))
            .brokers(&brokers)
            .topic_prefix(&prefix),
    )
    .await?;
    let query = Service::start(
        bench,
        QueryServiceArgs::new()
            .database_url(&super::plain(&read_db.url))
            .brokers(&brokers)
            .topic_prefix(&prefix)
            .consumer_group(&unique("visibility"))
            .database_pool_size(bench.concurrency),
    )
    .await?;
    let writes = client(command.grpc).await?;
    let reads = client(query.grpc).await?;

    let mut ids = Vec::with_capacity(USERS);
    for n in 0..USERS {
        let user = writes
            .clone()
            .create_user(v1::CreateUserRequest {
                user: Some(v1::User {
                    first_name: "Ada".into(),
                    last_name: "Lovelace".into(),
                    email: format!("{}.{n}@example.com", unique("ada")),
                    country: "GB".into(),
                    ..v1::User::default()
                }),
                password: "correct horse battery staple".into(),
                request_id: String::new(),
            })
            .await?
            .into_inner()
            .user
            .expect("a user");
        ids.push(user.id);
    }
    for id in &ids {
        reads
            .clone()
            .get_user(v1::GetUserRequest {
                id: id.clone(),
                min_version: Some(1),
            })
            .await?;
    }
    let ids = Arc::new(ids);
    let mut rows = Vec::new();

    // A steady write rate; after each write, GetUser for that version.
    let cpu_before = CpuReading::now();
    let started = std::time::Instant::now();
    let (latencies, rate) = paced_writes(&writes, Some(&reads), &ids, bench.duration()).await?;
    println!(
        "commit → readable{}: CPU used, in % of one core: {}",
        bench.label,
        CpuReading::now().share(&cpu_before, PROCESSES, started.elapsed())
    );
    let (p50, p99) = percentiles(latencies);
    if let (Some(relay), Some(projector)) = (
        command.histogram_ms("outbox_publish_latency_seconds").await,
        query.histogram_ms("projector_delay_seconds").await,
    ) {
        println!(
            "commit → readable{}: commit → broker ack p50 ≤ {} ms, p99 ≤ {} ms; commit → view p50 ≤ {} ms, p99 ≤ {} ms (bucket bounds)",
            bench.label, relay.0, relay.1, projector.0, projector.1
        );
    }
    rows.push(
        Row::new(
            bench.figure(&format!(
                "commit → readable on query-service, {WRITES_PER_SECOND} UpdateUser/s"
            )),
            "p50 ≤ 5 ms, p99 ≤ 20 ms",
        )
        .rate(rate)
        .latency(p50, p99),
    );
    // The broker's part of that, with no service in the way; measured once (it has no
    // binaries of its own to compare).
    if !bench.before {
        let trips = super::broker_latency::round_trips(WRITES_PER_SECOND, bench.duration()).await?;
        let rate = trips.len() as f64 / bench.seconds as f64;
        let (p50, p99) = percentiles(trips);
        rows.push(
            Row::new(
                format!(
                    "the broker alone: bare producer (acks=all) → bare consumer, {WRITES_PER_SECOND} records/s"
                ),
                "—",
            )
            .rate(rate)
            .latency(p50, p99),
        );
    }

    // The herd: readers waiting for versions that do not come, while the writes go on.
    let waiting = Arc::new(AtomicBool::new(true));
    let mut channels = Vec::new();
    for _ in 0..10 {
        channels.push(client(query.grpc).await?);
    }
    let waiters: Vec<_> = (0..WAITERS)
        .map(|n| {
            let (mut reads, waiting, id) = (
                channels[n % channels.len()].clone(),
                waiting.clone(),
                ids[n % USERS].clone(),
            );
            tokio::spawn(async move {
                while waiting.load(Ordering::Relaxed) {
                    let _ = reads
                        .get_user(v1::GetUserRequest {
                            id: id.clone(),
                            min_version: Some(1_000_000),
                        })
                        .await;
                }
            })
        })
        .collect();
    let load = {
        let (writes, ids, duration) = (writes.clone(), ids.clone(), bench.duration());
        tokio::spawn(async move { paced_writes(&writes, None, &ids, duration).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let get = probe(bench.duration(), {
        let (reads, id) = (reads.clone(), ids[0].clone());
        move || {
            let (mut reads, id) = (reads.clone(), id.clone());
            async move {
                reads
                    .get_user(v1::GetUserRequest {
                        id,
                        min_version: None,
                    })
                    .await
                    .map(|_| ())
            }
        }
    });
    let list = probe(bench.duration(), {
        let reads = reads.clone();
        move || {
            let mut reads = reads.clone();
            async move {
                reads
                    .list_users(v1::ListUsersRequest {
                        filter: Some(v1::UserFilter {
                            countries: vec!["GB".into()],
                            updated_after: None,
                            query: String::new(),
                        }),
                        page_size: 50,
                        page_token: String::new(),
                    })
                    .await
                    .map(|_| ())
            }
        }
    });
    let (get, list) = tokio::join!(get, list);
    waiting.store(false, Ordering::Relaxed);
    let (_, write_rate) = load.await??;
    for waiter in waiters {
        waiter.abort();
    }
    for (what, (latencies, failures)) in [("GetUser", get?), ("ListUsers", list?)] {
        let calls = latencies.len() as f64 / bench.seconds as f64;
        let (p50, p99) = percentiles(latencies);
        rows.push(
            Row::new(
                bench.figure(&format!(
                    "{what} (plain) beside {WAITERS} min_version waiters and {write_rate:.0} writes/s{}",
                    if failures > 0 {
                        format!(", {failures} failed")
                    } else {
                        String::new()
                    }
                )),
                "p99 < 250 ms",
            )
            .rate(calls)
            .latency(p50, p99),
        );
    }
    Ok(rows)
}

/// UpdateUser at a steady rate for `duration`, each writer on its own users; with `reads`,
/// each write is followed by GetUser for its version, timed. Returns those times and the
/// write rate reached.
async fn paced_writes(
    writes: &UserServiceClient<Channel>,
    reads: Option<&UserServiceClient<Channel>>,
    ids: &Arc<Vec<String>>,
    duration: Duration,
) -> anyhow::Result<(Vec<Duration>, f64)> {
    let period = Duration::from_secs_f64(WRITERS as f64 / WRITES_PER_SECOND as f64);
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (mut writes, reads, ids) = (writes.clone(), reads.cloned(), ids.clone());
            tokio::spawn(async move {
                // Spread over the period, so the rate is steady rather than a burst per tick.
                tokio::time::sleep(period.mul_f64(writer as f64 / WRITERS as f64)).await;
                let mut ticks = tokio::time::interval(period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let (mut latencies, mut written) = (Vec::new(), 0u64);
                let mut n = 0;
                while started.elapsed() < duration {
                    ticks.tick().await;
                    n += 1;
                    let id = ids[(writer + WRITERS * (n % 2)) % ids.len()].clone();
                    let updated = writes
                        .update_user(testkit::grpc::nickname_update(
                            &id,
                            &format!("w{writer}n{n}"),
                        ))
                        .await?
                        .into_inner()
                        .user
                        .expect("a user");
                    written += 1;
                    if let Some(mut reads) = reads.clone() {
                        let at = Instant::now();
                        reads
                            .get_user(v1::GetUserRequest {
                                id,
                                min_version: Some(updated.version),
                            })
                            .await?;
                        latencies.push(at.elapsed());
                    }
                }
                anyhow::Ok((latencies, written))
            })
        })
        .collect();
    let (mut latencies, mut written) = (Vec::new(), 0);
    for writer in writers {
        let (some, count) = writer.await??;
        latencies.extend(some);
        written += count;
    }
    Ok((latencies, written as f64 / started.elapsed().as_secs_f64()))
}

/// One caller calling in a loop for `duration`: each call's time, and how many failed.
async fn probe<F, Fut>(duration: Duration, call: F) -> anyhow::Result<(Vec<Duration>, u64)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let started = Instant::now();
    let (mut latencies, mut failures) = (Vec::new(), 0);
    while started.elapsed() < duration {
        let at = Instant::now();
        match call().await {
            Ok(()) => latencies.push(at.elapsed()),
            Err(_) => failures += 1,
        }
    }
    Ok((latencies, failures))
}

fn percentiles(mut latencies: Vec<Duration>) -> (f64, f64) {
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    (at(0.5), at(0.99))
}
