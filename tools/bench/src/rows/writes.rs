//! Writes: UpdateUser against the simplest server doing its work (bin/bare-update.rs) and
//! against pgbench running the same transaction (lock the row, update it,
//! insert the outbox row, commit) at the same concurrency, with NOTIFY on and off (a
//! transaction that NOTIFYs takes a cluster-wide lock at commit); CreateUser against the raw
//! argon2id rate on as many cores as the service has; the relay's commit-to-broker time.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use shared::kafka;
use shared_proto::v1;
use shared_proto::{event_headers, topics::Topics};

use testkit::{
    broker, database::TestDatabase, events::EventReader, grpc::nickname_update,
    service_args::CommandServiceArgs,
};
use uuid::Uuid;

use super::{client, reads::check, unique};
use crate::{
    Bench,
    load::{self, Bodies, Plan, frame},
    pgbench,
    services::{CpuReading, Service},
    table::Row,
};

/// Where a write's CPU goes (process names as /proc has them, at most 15 characters).
const PROCESSES: &[&str] = &["command-servic", "postgres", "tansu", "bench"];

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let db = TestDatabase::create().await;
    let prefix = format!("{}.", unique("writes"));
    let start = |notify: bool| {
        let args = CommandServiceArgs::new()
            .database_url(&super::plain(&db.url))
            .brokers(&broker::brokers())
            .topic_prefix(&prefix)
            .outbox_notify(notify)
            .database_pool_size(bench.concurrency);
        Service::start(bench, args)
    };
    let mut service = start(false).await?;
    let mut ids = Vec::new();
    let mut writes = client(service.grpc).await?;
    for _ in 0..bench.concurrency {
        let user = writes
            .create_user(create_request())
            .await?
            .into_inner()
            .user
            .expect("a user");
        ids.push(user.id);
    }
    // Ids pgbench can compute (md5 of its client number + 1) rather than look up.
    let admin = db.client().await;
    for (n, id) in ids.iter_mut().enumerate() {
        *id = admin
            .query_one(
                "UPDATE users SET id = md5($2::text)::uuid WHERE id = $1::text::uuid RETURNING id::text",
                &[id, &(n + 1).to_string()],
            )
            .await?
            .get(0);
    }
    // Each caller keeps to its user, as each pgbench client does, alternating two nicknames
    // so that every call changes something.
    let per_caller = Arc::new(
        ids.iter()
            .map(|id| {
                ["a", "b"]
                    .iter()
                    .map(|nickname| frame(&nickname_update(id, nickname)))
                    .collect()
            })
            .collect(),
    );

    let mut rows = Vec::new();
    for notify in [false, true] {
        drop(service);
        // TRUNCATE waits for the lock of a killed relay's backend still finishing its claim,
        // where a DELETE could deadlock with it.
        admin.batch_execute("TRUNCATE outbox").await?;
        let statements = if bench.before {
            locked_update_transaction(notify)
        } else {
            update_statements(notify)
        };
        let cpu_before = CpuReading::now();
        let baseline = pgbench::run(
            &super::plain(&db.url),
            &statements,
            bench.concurrency,
            bench.seconds,
        )?;
        let cpu_pgbench = CpuReading::now();
        admin.batch_execute("TRUNCATE outbox").await?;
        // The same calls, to the service or to its baseline.
        let updates = |addr| Plan {
            addr,
            path: "/user.v1.UserService/UpdateUser",
            bodies: Bodies::PerCaller(Arc::clone(&per_caller)),
            connections: 4,
            concurrency: bench.concurrency,
            duration: bench.duration(),
        };
        // The simplest server doing the same work (bin/bare-update.rs), with NOTIFY off as
        // the service's default; it shares the outbox, so it runs while the service is down.
        let simplest = if notify {
            None
        } else {
            let bare = bare_update_server(bench, &db, &prefix).await?;
            let simplest = load::run(updates(bare.grpc)).await?;
            check(&simplest, "the bare UpdateUser server")?;
            drop(bare);
            admin.batch_execute("TRUNCATE outbox").await?;
            Some(simplest)
        };
        service = start(notify).await?;
        let cpu_started = CpuReading::now();
        let updated = load::run(updates(service.grpc)).await?;
        check(&updated, "UpdateUser")?;
        let cpu_after = CpuReading::now();
        let switch = if notify { "on" } else { "off" };
        println!(
            "UpdateUser, NOTIFY {switch}{}: CPU per call: {}; pgbench per transaction: {}",
            bench.label,
            cpu_after.per_call(&cpu_started, PROCESSES, updated.ok as f64),
            cpu_pgbench.per_call(&cpu_before, &[], baseline.tps * bench.seconds as f64),
        );
        let figure = format!("UpdateUser, NOTIFY {switch}, {} callers", bench.concurrency);
        if let Some(simplest) = &simplest {
            rows.push(
                Row::new(bench.figure(&figure), "≥ 0.8×")
                    .measured(&updated)
                    .against(
                        "bare tonic server: the same write, a bare producer, delete on ack",
                        simplest.rate(),
                    ),
            );
        }
        rows.push(
            Row::new(bench.figure(&format!("{figure}, against pgbench")), "—")
                .measured(&updated)
                .against(
                    format!("pgbench, the service's statements, NOTIFY {switch}"),
                    baseline.tps,
                ),
        );
    }
    rows.push(relay_keeps_up(bench, &admin).await?);
    rows.push(commit_to_broker(bench, &service, &ids, &prefix).await?);

    // CreateUser is bound by argon2id: the raw hash rate on the service's core, on as many
    // threads as the service hashes on, while the other core carries the same neighbour
    // load the service had (Postgres taking the same inserts at the same rate).
    let threads = if bench.cores.server.is_some() {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let creations = Arc::new((0..20_000).map(|_| frame(&create_request())).collect());
    let cpu_before = CpuReading::now();
    let created = load::run(Plan {
        addr: service.grpc,
        path: "/user.v1.UserService/CreateUser",
        bodies: Bodies::Once(creations),
        connections: 4,
        concurrency: bench.concurrency,
        duration: bench.duration(),
    })
    .await?;
    check(&created, "CreateUser")?;
    println!(
        "CreateUser{}: CPU used, in % of one core: {}",
        bench.label,
        CpuReading::now().share(&cpu_before, PROCESSES, created.elapsed)
    );
    let neighbours = {
        let (url, rate, seconds) = (super::plain(&db.url), created.rate(), bench.seconds);
        tokio::task::spawn_blocking(move || {
            pgbench::run_paced(&url, CREATE_TRANSACTION, 4, seconds, rate)
        })
    };
    let raw = bare_argon2(bench, threads).await?;
    neighbours.await??;
    rows.push(
        Row::new(
            bench.figure(&format!("CreateUser, {} callers", bench.concurrency)),
            "≥ 0.9×",
        )
        .measured(&created)
        .against(
            format!(
                "raw argon2id, {threads} thread(s) on the server's core, beside pgbench's inserts at the same rate"
            ),
            raw,
        ),
    );
    Ok(rows)
}

/// What the service sends for an UpdateUser: read the user and the clock, then update it at
/// that version and queue its event in one statement.
fn update_statements(notify: bool) -> String {
    format!(
        "SELECT id, first_name, last_name, nickname, email, country, created_at, updated_at, version, \
         statement_timestamp() FROM users WHERE id = md5((:client_id + 1)::text)::uuid;\n\
         WITH updated AS (UPDATE users SET first_name = first_name, last_name = last_name, \
         nickname = 'n' || random(), email = email, country = country, \
         password_hash = COALESCE(NULL, password_hash), updated_at = statement_timestamp(), \
         version = version + 1 WHERE id = md5((:client_id + 1)::text)::uuid RETURNING id, version), \
         queued AS (INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, payload, \
         traceparent, occurred_at) SELECT gen_random_uuid(), 'user.v1.UserUpdatedEvent', id, version, \
         decode(repeat('ab', 160), 'hex'), NULL, now() FROM updated RETURNING id) \
         SELECT CASE WHEN {notify} THEN pg_notify('users_outbox', '') END FROM queued;\n"
    )
}

/// What the binaries before sent: lock the row, update it, insert the outbox row, commit.
fn locked_update_transaction(notify: bool) -> String {
    let user = "md5((:client_id + 1)::text)::uuid";
    format!(
        "BEGIN;\n\
         SELECT id, first_name, last_name, nickname, email, country, created_at, updated_at, version \
         FROM users WHERE id = {user} FOR UPDATE;\n\
         UPDATE users SET nickname = 'n' || random(), updated_at = now(), version = version + 1 \
         WHERE id = {user} \
         RETURNING id, first_name, last_name, nickname, email, country, created_at, updated_at, version;\n\
         INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, payload, traceparent, occurred_at) \
         VALUES (gen_random_uuid(), 'user.v1.UserUpdatedEvent', {user}, 1, \
         decode(repeat('ab', 160), 'hex'), NULL, now());\n\
         {}COMMIT;\n",
        if notify { "NOTIFY users_outbox;\n" } else { "" }
    )
}

/// Whether the relay drained what the update runs left in the outbox, and how fast.
async fn relay_keeps_up(bench: &Bench, admin: &tokio_postgres::Client) -> anyhow::Result<Row> {
    let count = || async {
        admin
            .query_one("SELECT count(*) FROM outbox", &[])
            .await
            .map(|row| row.get::<_, i64>(0))
    };
    let backlog = count().await?;
    let started = Instant::now();
    while count().await? > 0 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the relay did not drain the outbox"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = started.elapsed().as_secs_f64().max(0.001);
    Ok(Row::new(
        bench.figure(&format!(
            "relay: events left in the outbox after the last run ({backlog}), drained per second"
        )),
        "keeps up",
    )
    .rate(if backlog == 0 {
        0.0
    } else {
        backlog as f64 / drained
    }))
}

/// Commit (the event's occurred-at) to the record being readable from the broker, under a
/// steady 200 writes/s.
async fn commit_to_broker(
    bench: &Bench,
    service: &Service,
    ids: &[String],
    prefix: &str,
) -> anyhow::Result<Row> {
    let brokers = broker::brokers();
    let topics = Topics::with_prefix(prefix);
    kafka::ensure_topics(
        &shared::kafka::Cluster::plaintext(brokers.to_owned()),
        &topics.events(),
        &shared::kafka::TopicSettings::fixed(3, 1),
    )
    .await?;
    let mut reader =
        EventReader::starting_at(&brokers, &[&topics.updated], 3, rdkafka::Offset::End);
    let _ = reader.read_available(Duration::from_secs(1)).await;
    let running = Arc::new(AtomicBool::new(true));
    let since = time::OffsetDateTime::now_utc();
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (running, id) = (running.clone(), ids[writer % ids.len()].clone());
            let addr = service.grpc;
            tokio::spawn(async move {
                let mut writes = client(addr).await?;
                let mut ticks = tokio::time::interval(Duration::from_millis(20));
                let mut n = 0u64;
                while running.load(Ordering::Relaxed) {
                    ticks.tick().await;
                    n += 1;
                    writes
                        .update_user(nickname_update(&id, &format!("r{n}")))
                        .await?;
                }
                anyhow::Ok(n)
            })
        })
        .collect();
    let started = Instant::now();
    let mut delays = Vec::new();
    while started.elapsed() < bench.duration() {
        if let Some(record) = reader.next(Duration::from_millis(100)).await {
            delays.extend(commit_delay(&record, since));
        }
    }
    running.store(false, Ordering::Relaxed);
    let mut written = 0;
    for writer in writers {
        written += writer.await??;
    }
    let elapsed = started.elapsed();
    while let Some(record) = reader.next(Duration::from_secs(2)).await {
        delays.extend(commit_delay(&record, since));
    }
    delays.sort_unstable();
    let at = |q: f64| {
        delays
            .get(((delays.len() as f64 * q) as usize).min(delays.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(Row::new(
        bench.figure("commit → readable on Kafka (relay + broker), ~200 UpdateUser/s"),
        "—",
    )
    .rate(written as f64 / elapsed.as_secs_f64())
    .latency(at(0.5), at(0.99)))
}

fn commit_delay(
    record: &rdkafka::message::OwnedMessage,
    since: time::OffsetDateTime,
) -> Option<Duration> {
    let received = time::OffsetDateTime::now_utc();
    let at = kafka::header(record, event_headers::OCCURRED_AT)?;
    let at =
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    (at >= since).then(|| (received - at).unsigned_abs())
}

/// What CreateUser writes: the user row and its outbox row, in one transaction.
const CREATE_TRANSACTION: &str = "BEGIN;\n\
     INSERT INTO users (id, first_name, last_name, nickname, email, country, password_hash, created_at, updated_at, version) \
     VALUES (gen_random_uuid(), 'Ada', 'Lovelace', '', gen_random_uuid()::text || '@example.com', 'GB', \
     '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g', now(), now(), 1);\n\
     INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, payload, traceparent, occurred_at) \
     VALUES (gen_random_uuid(), 'user.v1.UserCreatedEvent', gen_random_uuid(), 1, decode(repeat('ab', 160), 'hex'), NULL, now());\n\
     COMMIT;\n";

/// bare-argon2's hash rate on the server's core, over the bench's duration.
async fn bare_argon2(bench: &Bench, threads: usize) -> anyhow::Result<f64> {
    let binary = crate::services::binary("bare-argon2", None);
    let mut command = bench
        .cores
        .launch(&binary)
        .args([threads.to_string(), bench.seconds.to_string()])
        .command();
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    anyhow::ensure!(
        output.status.success(),
        "bare-argon2 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().parse()?)
}

fn create_request() -> v1::CreateUserRequest {
    v1::CreateUserRequest {
        user: Some(v1::User {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: format!("{}@example.com", Uuid::new_v4().simple()),
            country: "GB".into(),
            ..v1::User::default()
        }),
        password: "correct horse battery staple".into(),
        request_id: String::new(),
    }
}

/// The simplest server doing UpdateUser's work (bin/bare-update.rs), on `db`, publishing to
/// the updated-events topic of `prefix`.
async fn bare_update_server(
    bench: &Bench,
    db: &TestDatabase,
    prefix: &str,
) -> anyhow::Result<super::reads::BareServer> {
    let topics = Topics::with_prefix(prefix);
    let addr = testkit::ports::free_addr();
    let binary = crate::services::binary("bare-update", None);
    let launch = bench
        .cores
        .launch(&binary)
        .arg(addr.to_string())
        .arg(super::plain(&db.url))
        .arg(broker::brokers())
        .arg(topics.updated.clone());
    super::reads::BareServer::spawn("the bare UpdateUser server", addr, launch).await
}
