//! One topic made to fail while the others are healthy: the broker refuses every record of
//! the updated topic (INVALID_RECORD). Creations must keep flowing to the read model the
//! whole time; once the topic is accepted again, everything must arrive.

use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::{
    client,
    ledger::Ledger,
    load, models,
    outcome::Recorder,
    pg, probe,
    process::Suite,
    stack::{Options, Stack},
    watch,
};

const CREATIONS: usize = 10;
/// How long a creation may take to reach the read model while the other topic is sick.
const FLOW_LIMIT: Duration = Duration::from_secs(10);
const HELD_BACK: Duration = Duration::from_secs(2);

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let stack = Stack::start(
        &suite,
        "sick-topic",
        Options {
            schemas: true,
            command: vec!["--outbox-publish-timeout=2s".to_owned()],
            ..Options::default()
        },
    )
    .await?;
    let (writer, reader) = (stack.writer(), stack.reader());
    let ledger = Ledger::default();
    let stuck = load::create_users(&writer, &ledger, 4, "sick").await?;
    let unprojected = watch::wait_projected(&reader, &stuck, 1, Duration::from_secs(30)).await;
    anyhow::ensure!(
        unprojected.is_empty(),
        "users created before the fault never reached the read model: {unprojected:?}"
    );

    stack.broker.reject(&stack.topics.updated);
    rec.say(format!("the broker refuses {}", stack.topics.updated));
    let rejected_at = Instant::now();
    for (index, id) in stuck.iter().enumerate() {
        let user = client::update_nickname(&mut writer.clone(), id, &format!("sick{index}"))
            .await
            .map_err(|status| anyhow::anyhow!("UpdateUser failed: {status}"))?;
        ledger.ack(&user);
    }
    // A deletion that must wait behind its user's refused update.
    let doomed: Uuid = stuck[0].parse()?;
    client::delete(&mut writer.clone(), &stuck[0], Some(2))
        .await
        .map_err(|status| anyhow::anyhow!("DeleteUser failed: {status}"))?;
    ledger.ack_delete(doomed, 3);

    let mut latencies = Vec::with_capacity(CREATIONS);
    for _ in 0..CREATIONS {
        let created = load::create_users(&writer, &ledger, 1, "sick").await?;
        let acked_at = Instant::now();
        let missing = watch::wait_projected(&reader, &created, 1, FLOW_LIMIT).await;
        if missing.is_empty() {
            latencies.push(acked_at.elapsed());
        }
    }
    let flowed = latencies.len();
    let slowest = latencies.iter().copied().max().unwrap_or_default();
    rec.check(flowed == CREATIONS, || {
        format!(
            "only {flowed} of {CREATIONS} creations reached the read model within {FLOW_LIMIT:?} while {} was refused",
            stack.topics.updated
        )
    });
    rec.note(format!(
        "{flowed}/{CREATIONS} creations projected while the topic was refused, after {:?} s",
        latencies
            .iter()
            .map(|took| format!("{:.2}", took.as_secs_f64()))
            .collect::<Vec<_>>()
    ));

    // Healthy records take milliseconds; seconds mean the sick topic held them back.
    let held: Vec<String> = latencies
        .iter()
        .enumerate()
        .filter(|(_, took)| **took > HELD_BACK)
        .map(|(index, took)| format!("creation {} after {:.1} s", index + 1, took.as_secs_f64()))
        .collect();
    if !held.is_empty() {
        rec.finding(format!(
            "while the updated topic was refused, some creations took seconds to reach the read model (the others ~20 ms): {}",
            held.join(", ")
        ));
    }

    // The fault must have been felt: the refused updates are not in the read model yet.
    let read_db = pg::connect(&stack.read_db.url).await?;
    let read = models::read_model(&read_db).await?;
    let ahead: Vec<String> = stuck
        .iter()
        .filter_map(|id| {
            let id: Uuid = id.parse().ok()?;
            read.get(&id)
                .filter(|row| row.version > 1)
                .map(|row| format!("{id} at v{}", row.version))
        })
        .collect();
    rec.check(ahead.is_empty(), || {
        format!(
            "refused updates reached the read model anyway, so the fault was not felt: {ahead:?}"
        )
    });
    let failures =
        probe::metric_sum(stack.command.http, "outbox_publish_failures_total", &[]).await?;
    let sick_for = rejected_at.elapsed();
    rec.note(format!(
        "the topic was refused for {:.1} s; the relay counted {failures} failed publishes",
        sick_for.as_secs_f64()
    ));

    stack.broker.accept(&stack.topics.updated);
    rec.say(format!("the broker accepts {} again", stack.topics.updated));
    let write_db = pg::connect(&stack.write_db.url).await?;
    let (comparison, took) = models::expect_converged(
        &rec,
        &write_db,
        &read_db,
        &ledger,
        Duration::from_secs(60),
        "after the topic was accepted again the read model does not match the write model",
    )
    .await?;
    if comparison.agrees() {
        rec.note(format!(
            "everything arrived {:.1} s after the topic was accepted again",
            took.as_secs_f64()
        ));
    }
    rec.load(format!(
        "{flowed}/{CREATIONS} creations flowed, slowest {:.1} s",
        slowest.as_secs_f64()
    ));
    rec.injected(format!(
        "updated topic refused (INVALID_RECORD) {:.0} s",
        sick_for.as_secs_f64()
    ));
    rec.bad_inputs("0");
    Ok(())
}
