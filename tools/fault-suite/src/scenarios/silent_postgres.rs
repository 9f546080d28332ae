//! Every Postgres connection both services have open goes silent at once, while writes go
//! on: a proxy between each service and its database keeps reading both ends and passes
//! nothing on, and closes nothing (a failover that moved the address, a partition behind a
//! stateful middlebox). New connections go through. Writes, reads, the relay and the
//! projector must heal within `HEAL_BOUND`, and every acknowledged write must reach the read
//! model.

use std::time::{Duration, Instant};

use crate::{
    client,
    ledger::Ledger,
    load::{self, StreamPlan, UpdateStream},
    outcome::{Recorder, thousands},
    process::Suite,
    stack::{Options, Stack},
    watch,
};

/// Each call gives up 2 s after the statement timeout; a silent transaction's locks go with
/// the server's idle-in-transaction timeout.
const LIMITS: [&str; 2] = [
    "--database-statement-timeout=2s",
    "--database-idle-in-transaction-timeout=5s",
];
/// From the freeze until a new write is readable on the read side.
const HEAL_BOUND: Duration = Duration::from_secs(20);
const LOAD_AFTER_FREEZE: Duration = Duration::from_secs(10);

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let limits: Vec<String> = LIMITS.iter().map(|flag| (*flag).to_owned()).collect();
    let options = Options {
        command: limits.clone(),
        query: limits,
        proxied_databases: true,
        ..Options::default()
    };
    let stack = Stack::start(&suite, "silent-postgres", options).await?;
    let proxies = stack.proxies.as_ref().expect("proxied databases");
    let (writer, reader) = (stack.writer(), stack.reader());
    let ledger = Ledger::default();
    let users = load::create_users(&writer, &ledger, 5, "silent").await?;
    let unprojected = watch::wait_projected(&reader, &users, 1, Duration::from_secs(30)).await;
    anyhow::ensure!(
        unprojected.is_empty(),
        "users created before the fault never reached the read model: {unprojected:?}"
    );
    let updates = UpdateStream::start(
        &writer,
        users.clone(),
        &ledger,
        StreamPlan {
            callers: 4,
            pace: Duration::from_millis(20),
            target: None,
        },
    );
    // Every kind of connection busy: handlers, relay, projector, health checks.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let frozen = (
        proxies.write.freeze_open_connections(),
        proxies.read.freeze_open_connections(),
    );
    let frozen_at = Instant::now();
    rec.say(format!(
        "{} write and {} read connections silenced",
        frozen.0, frozen.1
    ));

    // The first write acknowledged after the freeze, then readable on the read side.
    let mut written = None;
    let mut readable = None;
    while frozen_at.elapsed() < HEAL_BOUND && readable.is_none() {
        let mut client = writer.clone();
        let user = match written.clone() {
            Some(user) => user,
            None => match client::create(&mut client, &client::unique_email("silent")).await {
                Ok(user) => {
                    ledger.ack(&user);
                    written = Some((user.clone(), frozen_at.elapsed()));
                    (user, frozen_at.elapsed())
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let mut reads = reader.clone();
        if client::get(&mut reads, &user.0.id, Some(1)).await.is_ok() {
            readable = Some(frozen_at.elapsed());
        }
    }
    tokio::time::sleep(LOAD_AFTER_FREEZE.saturating_sub(frozen_at.elapsed())).await;
    let updates = updates.stop().await;

    match &written {
        Some((_, after)) => rec.note(format!(
            "first write acknowledged {:.1} s after the freeze",
            after.as_secs_f64()
        )),
        None => rec.fail(format!(
            "no write succeeded within {HEAL_BOUND:?} of the freeze"
        )),
    }
    match readable {
        Some(after) => rec.note(format!(
            "that write readable {:.1} s after the freeze",
            after.as_secs_f64()
        )),
        None => rec.fail(format!(
            "no write made after the freeze was readable within {HEAL_BOUND:?}"
        )),
    }
    let unexpected = updates.failures_other_than(&[tonic::Code::Unavailable]);
    rec.check(unexpected.is_empty(), || {
        format!("updates failed other than UNAVAILABLE: {unexpected:?}")
    });
    rec.check(
        proxies.write.opened() > frozen.0 && proxies.read.opened() > frozen.1,
        || "the services never opened a connection past the silent ones".to_owned(),
    );

    let (comparison, _) = stack
        .expect_converged(
            &rec,
            &ledger,
            Duration::from_secs(90),
            "after the silent connections the read model does not match the write model",
        )
        .await?;
    if comparison.agrees() {
        rec.note(format!(
            "read model equal to the write model {:.1} s after the freeze",
            frozen_at.elapsed().as_secs_f64()
        ));
    }
    rec.load(format!(
        "{} updates OK, {} UNAVAILABLE while connections were silent",
        thousands(updates.oks()),
        updates.failures()
    ));
    rec.injected(format!(
        "{} + {} open connections silenced",
        frozen.0, frozen.1
    ));
    rec.bad_inputs("0");
    Ok(())
}
