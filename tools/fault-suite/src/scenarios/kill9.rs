//! kill -9 of command-service and of query-service, three times each, during a stream of
//! several thousand writes over a handful of users, each restarted after its kill. Then the
//! read model must equal the write model row by row (deleted users as tombstones), and every
//! acknowledged version, indeed every committed one, must be on the topics.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use uuid::Uuid;

use crate::{
    client, groups,
    ledger::Ledger,
    load::{self, StreamPlan, UpdateStream},
    models,
    outcome::{Recorder, thousands},
    pg,
    process::Suite,
    stack::{Options, Stack},
    topics,
};

const UPDATES: u64 = 4000;
const KILLS_EACH: u64 = 3;
const STREAM_LIMIT: Duration = Duration::from_secs(150);

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let mut stack = Stack::start(&suite, "kill9", Options::default()).await?;
    let writer = stack.writer();
    let ledger = Ledger::default();
    let mut users = load::create_users(&writer, &ledger, 5, "kill9").await?;
    let stream = UpdateStream::start(
        &writer,
        users.clone(),
        &ledger,
        StreamPlan {
            callers: 8,
            pace: Duration::ZERO,
            target: Some(UPDATES),
        },
    );

    // Kills spread evenly over the stream, alternating services; a user is created and
    // another deleted between them, so every kind of event crosses a crash.
    let kills = 2 * KILLS_EACH;
    let started = Instant::now();
    let mut restarts = Vec::new();
    let mut deleted = 0;
    for kill in 1..=kills {
        let threshold = UPDATES * kill / (kills + 1);
        while stream.tally.oks() < threshold {
            anyhow::ensure!(
                started.elapsed() < STREAM_LIMIT,
                "only {} of {UPDATES} updates acknowledged within {STREAM_LIMIT:?}; failures: {}",
                stream.tally.oks(),
                stream.tally.describe_failures()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let service = if kill % 2 == 1 {
            &mut stack.command
        } else {
            &mut stack.query
        };
        service.kill9().await?;
        rec.say(format!(
            "kill -9 {} at {} acknowledged updates",
            service.label,
            stream.tally.oks()
        ));
        let back = service.restart().await?;
        restarts.push(back);

        match kill {
            2 => {
                let fresh = load::create_users(&writer, &ledger, 1, "kill9").await?;
                stream.add(fresh[0].clone());
                users.extend(fresh);
            }
            4 => {
                let id = users[0].clone();
                stream.remove(&id);
                let uuid: Uuid = id.parse()?;
                let version = client::with_retries(Duration::from_secs(20), || {
                    let mut writer = writer.clone();
                    let (id, known) = (id.clone(), ledger.newest(uuid));
                    async move { client::delete_at_known_version(&mut writer, &id, known).await }
                })
                .await
                .map_err(|status| anyhow::anyhow!("DeleteUser failed: {status}"))?;
                if let Some(version) = version {
                    ledger.ack_delete(uuid, version);
                    deleted += 1;
                }
            }
            _ => {}
        }
    }
    while !stream.finished() {
        anyhow::ensure!(
            started.elapsed() < STREAM_LIMIT,
            "only {} of {UPDATES} updates acknowledged within {STREAM_LIMIT:?}",
            stream.tally.oks()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tally = stream.stop().await;
    rec.note(format!(
        "{} updates acknowledged in {:.1} s ({} ABORTED retried); failed while a service was down: {}",
        tally.oks(),
        started.elapsed().as_secs_f64(),
        tally.retries(),
        tally.describe_failures()
    ));
    rec.note(format!(
        "restarts were ready after {:?}",
        restarts
            .iter()
            .map(|took| format!("{:.1} s", took.as_secs_f64()))
            .collect::<Vec<_>>()
    ));

    let write_db = pg::connect(&stack.write_db.url).await?;
    let read_db = pg::connect(&stack.read_db.url).await?;
    let acks = ledger.snapshot();
    let (comparison, took) =
        models::converge(&write_db, &read_db, &acks, Duration::from_secs(120)).await?;
    rec.check(comparison.agrees(), || {
        format!(
            "the read model does not match the write model {:.0} s after the stream ({} acknowledged versions not in it): {}",
            took.as_secs_f64(),
            comparison.lost,
            comparison.summary()
        )
    });
    if comparison.agrees() {
        rec.note(format!(
            "read model equal to the write model {:.1} s after the stream ended",
            took.as_secs_f64()
        ));
    } else {
        diagnose_projector(&stack, &rec).await;
    }

    let records = topics::read_all(
        &stack.brokers(),
        &stack.topics.events(),
        Duration::from_secs(60),
    )
    .await?;
    let on_topics = topics::versions(&records);
    let acknowledged: BTreeSet<(Uuid, u64)> = acks
        .iter()
        .flat_map(|(id, acks)| acks.all().map(move |version| (*id, version)))
        .collect();
    let missing: Vec<&(Uuid, u64)> = acknowledged.difference(&on_topics).collect();
    rec.check(missing.is_empty(), || {
        format!(
            "{} acknowledged versions are not on the topics, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        )
    });
    // Versions count up by one, so a user at version v committed 1..=v: all must be on the
    // topics, including writes whose answer a kill cut off. A deleted user's last version is
    // its acknowledged deletion, or its tombstone's.
    let write = models::write_model(&write_db).await?;
    let read = models::read_model(&read_db).await?;
    let newest = |id: &Uuid| {
        let written = write.get(id).map_or(0, |row| row.version as u64);
        let viewed = read.get(id).map_or(0, |row| row.version as u64);
        let acknowledged = acks.get(id).map_or(0, |acks| acks.newest());
        written.max(viewed).max(acknowledged)
    };
    let committed: BTreeSet<(Uuid, u64)> = write
        .keys()
        .chain(read.keys())
        .chain(acks.keys())
        .flat_map(|id| (1..=newest(id)).map(move |version| (*id, version)))
        .collect();
    let unpublished: Vec<&(Uuid, u64)> = committed.difference(&on_topics).collect();
    rec.check(unpublished.is_empty(), || {
        format!(
            "{} committed versions are not on the topics, e.g. {:?}",
            unpublished.len(),
            &unpublished[..unpublished.len().min(5)]
        )
    });
    rec.note(format!(
        "topics: {} records, {} distinct (user, version); {} acknowledged, {} committed; duplicates {}",
        records.len(),
        on_topics.len(),
        acknowledged.len(),
        committed.len(),
        records.len().saturating_sub(on_topics.len())
    ));
    let lost_on_topics = missing.len() as u64;
    rec.lost(comparison.lost.max(lost_on_topics));

    for service in [&stack.command, &stack.query] {
        let panics = service.panics();
        rec.check(panics.is_empty(), || {
            format!("{} panicked: {panics:?}", service.label)
        });
    }
    rec.load(format!(
        "{} writes OK over {} users ({deleted} deleted)",
        thousands(ledger.writes()),
        users.len()
    ));
    rec.injected(format!(
        "kill -9 ×{KILLS_EACH} command, ×{KILLS_EACH} query; {} restarts",
        restarts.len()
    ));
    rec.bad_inputs("0");
    Ok(())
}

/// What a projector that stopped projecting looks like from outside: its group as the
/// broker has it, and the projector's last log lines about assignments.
async fn diagnose_projector(stack: &Stack, rec: &Recorder) {
    if let Some(group) = stack.query_group() {
        match groups::describe(&stack.brokers(), &group).await {
            Ok(lines) => rec.note(format!("consumer group: {}", lines.join("; "))),
            Err(error) => rec.note(format!("cannot describe the consumer group: {error:#}")),
        }
    }
    let log = stack.query.log_text();
    let assignments: Vec<&str> = log
        .lines()
        .filter(|line| {
            line.contains("assigned") || line.contains("rebalance") || line.contains("serving")
        })
        .collect();
    rec.note(format!(
        "query-service log, assignments and starts: {}",
        assignments[assignments.len().saturating_sub(12)..].join(" | ")
    ));
}
