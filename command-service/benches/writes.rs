//! Write-side throughput, side by side with its baselines, in one run:
//! - UpdateUser through the service against pgbench running the same transaction (lock the
//!   row, update it, insert the outbox row, commit) at the same concurrency, with NOTIFY on
//!   and off, since a transaction that NOTIFYs takes a cluster-wide lock at commit;
//! - CreateUser against the raw argon2id hash rate on the same cores;
//! - the relay: time from a change's commit to the event being readable from Kafka.
//!
//!     cargo bench -p command-service --bench writes   (or: make bench)
//!
//! Needs Postgres, a broker (make broker) and pgbench. BENCH_SECONDS (default 8),
//! BENCH_CONCURRENCY (default 16) and BENCH_KAFKA_BATCH_NUM_MESSAGES (default 1000, as the
//! service's default) tune it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use argon2::{
    Argon2,
    password_hash::{PasswordHasher as _, SaltString},
};
use clap::Parser;
use command_service::{app::App, config::Cli};
use password_hash::rand_core::OsRng;
use prost_types::FieldMask;
use shared_proto::v1::{self, user_service_client::UserServiceClient};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use users_shared::{
    event_headers, kafka,
    test_support::{self, EventReader, TestDatabase},
    topics::Topics,
};
use uuid::Uuid;

struct Figures {
    label: String,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Figures {
    fn from_latencies(
        label: impl Into<String>,
        mut latencies: Vec<Duration>,
        elapsed: Duration,
    ) -> Self {
        latencies.sort();
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        };
        Self {
            label: label.into(),
            rate: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
        }
    }
}

fn print_table(title: &str, rows: &[Figures], baseline: usize) {
    println!("\n{title}");
    println!(
        "  {:<44} {:>10} {:>9} {:>9} {:>10}",
        "", "per second", "p50 ms", "p99 ms", "vs baseline"
    );
    for (index, row) in rows.iter().enumerate() {
        let ratio = if index == baseline {
            "baseline".to_owned()
        } else {
            format!("{:.2}x", row.rate / rows[baseline].rate)
        };
        println!(
            "  {:<44} {:>10.0} {:>9.2} {:>9.2} {:>10}",
            row.label, row.rate, row.p50_ms, row.p99_ms, ratio
        );
    }
}

struct Running {
    client: UserServiceClient<Channel>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(db: &TestDatabase, prefix: &str, notify: bool) -> Running {
    let cli = Cli::try_parse_from([
        "command-service".to_owned(),
        "--grpc-addr=127.0.0.1:0".to_owned(),
        "--http-addr=127.0.0.1:0".to_owned(),
        format!("--database-url={}", db.url),
        format!("--kafka-brokers={}", test_support::brokers()),
        format!("--kafka-topic-prefix={prefix}"),
        format!("--outbox-notify={notify}"),
        format!(
            "--kafka-topic-partitions={}",
            std::env::var("BENCH_PARTITIONS").unwrap_or_else(|_| "3".to_owned())
        ),
        format!(
            "--kafka-batch-num-messages={}",
            std::env::var("BENCH_KAFKA_BATCH_NUM_MESSAGES").unwrap_or_else(|_| "1000".to_owned())
        ),
    ])
    .unwrap_or_else(|error| panic!("{error}"));
    let app = App::build(cli.config)
        .await
        .expect("command-service starts");
    let addr = app.grpc_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run(stop.clone()));
    let client = UserServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("client");
    Running { client, stop, task }
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn nickname_update(id: &str, nickname: String) -> v1::UpdateUserRequest {
    v1::UpdateUserRequest {
        user: Some(v1::User {
            id: id.to_owned(),
            nickname,
            ..v1::User::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["nickname".into()],
        }),
        password: String::new(),
        expected_version: None,
    }
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
    }
}

/// Runs `concurrency` loops of `call` for `duration`; returns each call's latency.
async fn drive<F, Fut>(concurrency: usize, duration: Duration, call: F) -> (Vec<Duration>, Duration)
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let running = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (running, call) = (running.clone(), call.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0;
                while running.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    call(worker, n).await;
                    latencies.push(at.elapsed());
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    running.store(false, Ordering::Relaxed);
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    (all, started.elapsed())
}

fn pgbench(db: &TestDatabase, concurrency: usize, seconds: u64, notify: bool) -> Figures {
    let script = format!(
        "BEGIN;\n\
         SELECT id, first_name, last_name, nickname, email, country, created_at, updated_at, version \
         FROM users WHERE id = (SELECT id FROM bench_ids WHERE n = :client_id) FOR UPDATE;\n\
         UPDATE users SET nickname = 'n' || :client_id || '_' || random(), updated_at = now(), version = version + 1 \
         WHERE id = (SELECT id FROM bench_ids WHERE n = :client_id) \
         RETURNING id, first_name, last_name, nickname, email, country, created_at, updated_at, version;\n\
         INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, payload, traceparent, occurred_at) \
         VALUES (gen_random_uuid(), 'user.v1.UserUpdatedEvent', (SELECT id FROM bench_ids WHERE n = :client_id), 1, \
         decode(repeat('ab', 160), 'hex'), NULL, now());\n\
         {}COMMIT;\n",
        if notify { "NOTIFY users_outbox;\n" } else { "" }
    );
    let path = std::env::temp_dir().join(format!("users-bench-{}.sql", Uuid::new_v4()));
    std::fs::write(&path, script).unwrap();
    let output = std::process::Command::new("pgbench")
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &concurrency.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
        ])
        .args(["-f", path.to_str().unwrap(), "-r"])
        .arg(&db.url)
        .output()
        .expect("pgbench runs (Debian: postgresql-client or the server package)");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&output.stdout);
    let tps = text
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse::<f64>().ok())
        .unwrap_or_else(|| {
            panic!(
                "pgbench printed no tps:\n{text}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let latency = text
        .lines()
        .find_map(|line| line.strip_prefix("latency average = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|ms| ms.parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    Figures {
        label: format!(
            "pgbench, same transaction{}",
            if notify { " + NOTIFY" } else { "" }
        ),
        rate: tps,
        // pgbench reports the mean; there is no percentile without a log.
        p50_ms: latency,
        p99_ms: f64::NAN,
    }
}

/// How long ago the record's change was committed, for changes committed since `since`.
fn commit_delay(
    record: &rdkafka::message::OwnedMessage,
    since: time::OffsetDateTime,
) -> Option<Duration> {
    let received = time::OffsetDateTime::now_utc();
    let at = users_shared::kafka::header(record, event_headers::OCCURRED_AT)?;
    let at =
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    (at >= since).then(|| (received - at).unsigned_abs())
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let duration = Duration::from_secs(seconds);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "users write benchmarks: {concurrency} concurrent callers, {seconds} s per row, {cores} cores"
    );

    let db = TestDatabase::create().await;
    let prefix = format!("bench-{}.", Uuid::new_v4().simple());
    let topics = Topics::with_prefix(&prefix);

    // The users each caller updates: one each, as pgbench's clients do.
    let mut app = start(&db, &prefix, true).await;
    let mut ids = Vec::new();
    for _ in 0..concurrency {
        let user = app
            .client
            .create_user(create_request())
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap();
        ids.push(user.id);
    }
    let admin = db.client().await;
    admin
        .batch_execute("CREATE TABLE bench_ids (n integer PRIMARY KEY, id uuid NOT NULL)")
        .await
        .unwrap();
    for (n, id) in ids.iter().enumerate() {
        admin
            .execute(
                "INSERT INTO bench_ids VALUES ($1, $2::text::uuid)",
                &[&(n as i32), id],
            )
            .await
            .unwrap();
    }

    let mut update_rows = Vec::new();
    for notify in [true, false] {
        app.stop().await;
        admin.batch_execute("DELETE FROM outbox").await.unwrap();
        update_rows.push(pgbench(&db, concurrency, seconds, notify));
        admin.batch_execute("DELETE FROM outbox").await.unwrap();
        app = start(&db, &prefix, notify).await;
        let client = app.client.clone();
        let ids = Arc::new(ids.clone());
        let (latencies, elapsed) = drive(concurrency, duration, move |worker, n| {
            let mut client = client.clone();
            let ids = ids.clone();
            async move {
                client
                    .update_user(nickname_update(&ids[worker], format!("n{worker}_{n}")))
                    .await
                    .expect("update");
            }
        })
        .await;
        update_rows.push(Figures::from_latencies(
            format!(
                "UpdateUser via gRPC, NOTIFY {}",
                if notify { "on" } else { "off" }
            ),
            latencies,
            elapsed,
        ));
    }
    // Rows: pgbench+NOTIFY, UpdateUser on, pgbench, UpdateUser off.
    print_table(
        "UpdateUser (NOTIFY on), against pgbench with NOTIFY",
        &update_rows[0..2],
        0,
    );
    print_table(
        "UpdateUser (NOTIFY off), against pgbench without NOTIFY",
        &update_rows[2..4],
        0,
    );

    // How fast the relay drains what the update runs left in the outbox.
    let backlog: i64 = admin
        .query_one("SELECT count(*) FROM outbox", &[])
        .await
        .unwrap()
        .get(0);
    let drain_started = Instant::now();
    loop {
        let left: i64 = admin
            .query_one("SELECT count(*) FROM outbox", &[])
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = drain_started.elapsed();
    if backlog == 0 {
        println!("\nRelay: kept up with every run above (nothing left in the outbox)");
    } else {
        println!(
            "\nRelay drain: {backlog} pending events published in {:.2} s ({:.0} events/s)",
            drained.as_secs_f64(),
            backlog as f64 / drained.as_secs_f64().max(0.001)
        );
    }

    // The relay: commit (occurred-at) to the record being read back, under a steady load.
    kafka::ensure_topics(&test_support::brokers(), &topics.events(), 3, 1)
        .await
        .unwrap();
    let mut reader = EventReader::starting_at(
        &test_support::brokers(),
        &[&topics.updated],
        3,
        rdkafka::Offset::End,
    );
    let _ = reader.read_available(Duration::from_secs(1)).await;
    let client = app.client.clone();
    let ids_for_load = Arc::new(ids.clone());
    let load = tokio::spawn(drive(
        4,
        Duration::from_secs(seconds.min(5)),
        move |worker, n| {
            let mut client = client.clone();
            let ids = ids_for_load.clone();
            async move {
                // Paced: 4 callers at 50 calls/s each make a steady 200 writes/s, under what
                // the relay drains, so the figure is latency rather than queueing.
                tokio::time::sleep(Duration::from_millis(20)).await;
                client
                    .update_user(nickname_update(&ids[worker], format!("r{worker}_{n}")))
                    .await
                    .expect("update");
            }
        },
    ));
    let mut delays = Vec::new();
    let load_started = Instant::now();
    let load_started_at = time::OffsetDateTime::now_utc();
    // Each record's delay is taken the moment it is read.
    while !load.is_finished() {
        if let Some(record) = reader.next(Duration::from_millis(100)).await {
            delays.extend(commit_delay(&record, load_started_at));
        }
    }
    let (updates, _) = load.await.unwrap();
    let elapsed = load_started.elapsed();
    while let Some(record) = reader.next(Duration::from_secs(2)).await {
        delays.extend(commit_delay(&record, load_started_at));
    }
    let mut relay = Figures::from_latencies(
        "commit to readable on Kafka (relay + broker)",
        delays,
        elapsed,
    );
    relay.rate = updates.len() as f64 / elapsed.as_secs_f64();
    print_table(
        "Commit to broker under a steady ~200 updates/s (rate = updates/s)",
        &[relay],
        0,
    );

    // CreateUser is bound by argon2id; the baseline is the raw hash rate on every core.
    let hashing = Arc::new(AtomicBool::new(true));
    let hash_started = Instant::now();
    let hashers: Vec<_> = (0..cores)
        .map(|_| {
            let hashing = hashing.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                while hashing.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let salt = SaltString::generate(&mut OsRng);
                    Argon2::default()
                        .hash_password(b"correct horse battery staple", &salt)
                        .unwrap();
                    latencies.push(at.elapsed());
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(duration);
    hashing.store(false, Ordering::Relaxed);
    let hash_latencies: Vec<Duration> = hashers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let raw = Figures::from_latencies(
        format!("raw argon2id hashes on {cores} threads"),
        hash_latencies,
        hash_started.elapsed(),
    );
    let client = app.client.clone();
    let (latencies, elapsed) = drive(concurrency, duration, move |_, _| {
        let mut client = client.clone();
        async move {
            client.create_user(create_request()).await.expect("create");
        }
    })
    .await;
    let create = Figures::from_latencies("CreateUser via gRPC", latencies, elapsed);
    print_table(
        "CreateUser, against the raw argon2id rate",
        &[raw, create],
        0,
    );
    app.stop().await;
}
