//! Duplicated and shuffled events replayed into a fresh projector: every record of a run's
//! topics, written twice in a random order to a fresh prefix's topics, must project into the
//! same view as the original, row by row.

use std::{collections::BTreeSet, time::Duration};

use rand::seq::SliceRandom;
use rdkafka::{
    Message,
    message::{Headers, OwnedMessage},
};
use shared::kafka;
use shared_proto::event_headers;

use testkit::{database::TestDatabase, events::EventWriter};
use uuid::Uuid;

use crate::{
    client,
    ledger::Ledger,
    load::{self, StreamPlan, UpdateStream},
    models,
    outcome::{Recorder, thousands},
    pg, probe,
    process::{Service, Suite},
    stack::{self, Options, Stack},
    topics,
};

const USERS: usize = 20;
const UPDATES: u64 = 600;
const DELETIONS: usize = 3;

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let stack = Stack::start(&suite, "shuffled-replay", Options::default()).await?;
    let writer = stack.writer();
    let ledger = Ledger::default();
    let users = load::create_users(&writer, &ledger, USERS, "shuffle").await?;
    let stream = UpdateStream::start(
        &writer,
        users.clone(),
        &ledger,
        StreamPlan {
            callers: 4,
            pace: Duration::ZERO,
            target: Some(UPDATES),
        },
    );
    while !stream.finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tally = stream.stop().await;
    anyhow::ensure!(
        tally.failures() == 0,
        "updates failed with no fault injected: {}",
        tally.describe_failures()
    );
    for id in &users[..DELETIONS] {
        let uuid: Uuid = id.parse()?;
        let deleted_at =
            client::delete_at_known_version(&mut writer.clone(), id, ledger.newest(uuid))
                .await
                .map_err(|status| anyhow::anyhow!("DeleteUser failed: {status}"))?;
        if let Some(version) = deleted_at {
            ledger.ack_delete(uuid, version);
        }
    }

    let write_db = pg::connect(&stack.write_db.url).await?;
    let read_db = pg::connect(&stack.read_db.url).await?;
    let (comparison, _) = models::converge(
        &write_db,
        &read_db,
        &ledger.snapshot(),
        Duration::from_secs(60),
    )
    .await?;
    anyhow::ensure!(
        comparison.agrees(),
        "the original run's read model never matched its write model: {}",
        comparison.summary()
    );
    let original = models::read_model(&read_db).await?;

    let brokers = stack.brokers();
    let records =
        topics::read_all(&brokers, &stack.topics.events(), Duration::from_secs(60)).await?;
    let acknowledged: BTreeSet<(Uuid, u64)> = ledger
        .snapshot()
        .iter()
        .flat_map(|(id, acks)| acks.all().map(move |version| (*id, version)))
        .collect();
    let on_topics = topics::versions(&records);
    let missing: Vec<&(Uuid, u64)> = acknowledged.difference(&on_topics).collect();
    rec.check(missing.is_empty(), || {
        format!(
            "{} acknowledged versions are not on the original topics: {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        )
    });
    let mut doubled: Vec<&OwnedMessage> = records.iter().chain(&records).collect();
    doubled.shuffle(&mut rand::rng());
    let prefix = stack::new_prefix();
    stack::ensure_topics(&brokers, &prefix).await?;
    rec.say(format!(
        "writing {} records ({} twice, shuffled) to fresh topics",
        doubled.len(),
        records.len()
    ));
    let events = EventWriter::new(&brokers);
    for chunk in doubled.chunks(500) {
        futures::future::join_all(
            chunk
                .iter()
                .map(|record| resend(&events, record, &stack.prefix, &prefix)),
        )
        .await;
    }

    let fresh_db = TestDatabase::create().await;
    let fresh = stack::start_query(
        &suite,
        "shuffled-replay/fresh-query-service",
        &fresh_db.url,
        &brokers,
        &prefix,
        Vec::new(),
    )
    .await?;
    let fresh_client = pg::connect(&fresh_db.url).await?;
    let differences =
        models::converge_views(&original, &fresh_client, Duration::from_secs(60)).await?;
    rec.check(differences.is_empty(), || {
        format!(
            "the fresh projector's view differs from the original in {} rows: {}",
            differences.len(),
            differences
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )
    });
    rec.lost(differences.len() as u64);
    if !differences.is_empty() {
        diagnose(&rec, &fresh, &brokers, &prefix, &original, &fresh_client).await?;
    }
    rec.note(format!(
        "original view: {} users ({} tombstones), from {} records",
        original.len(),
        original.values().filter(|row| row.deleted).count(),
        records.len()
    ));
    rec.load(format!(
        "{} events ×2 = {} projected",
        thousands(records.len() as u64),
        thousands(doubled.len() as u64)
    ));
    rec.injected("every event twice, order shuffled");
    rec.bad_inputs(format!(
        "{} duplicates, reordered",
        thousands(records.len() as u64)
    ));
    Ok(())
}

/// The record again, as is, on the same topic under `to` instead of `from`.
async fn resend(events: &EventWriter, record: &OwnedMessage, from: &str, to: &str) {
    let topic = format!(
        "{to}{}",
        record.topic().strip_prefix(from).unwrap_or(record.topic())
    );
    let key = String::from_utf8_lossy(record.key().unwrap_or_default()).into_owned();
    let headers: Vec<(String, String)> = record
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| {
                    (
                        header.key.to_owned(),
                        String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    events
        .send(&topic, &key, record.payload().unwrap_or_default(), &headers)
        .await;
}

/// Where the events the fresh projector did not apply sit on its topics, and what it says
/// it handled.
async fn diagnose(
    rec: &Recorder,
    fresh: &Service,
    brokers: &str,
    prefix: &str,
    original: &models::Model,
    fresh_db: &tokio_postgres::Client,
) -> anyhow::Result<()> {
    let handled = probe::metric_sum(fresh.http, "projector_events_total", &[]).await?;
    let dead = probe::metric_sum(
        fresh.http,
        "projector_events_total",
        &[("outcome", "dead_lettered")],
    )
    .await?;
    let lag = probe::metric_sum(fresh.http, "projector_lag", &[]).await?;
    rec.note(format!(
        "the fresh projector handled {handled} events ({dead} dead-lettered); projector_lag sums to {lag}"
    ));
    let have = models::read_model(fresh_db).await?;
    let topics = shared_proto::topics::Topics::with_prefix(prefix);
    let records = topics::read_all(brokers, &topics.events(), Duration::from_secs(60)).await?;
    for (id, want) in original {
        let got = have.get(id).map_or(0, |row| row.version);
        if got >= want.version {
            continue;
        }
        let places: Vec<String> = records
            .iter()
            .filter(|record| {
                record.key() == Some(id.to_string().as_bytes())
                    && kafka::header(*record, event_headers::VERSION)
                        .and_then(|version| version.parse::<i64>().ok())
                        .is_some_and(|version| version > got)
            })
            .map(|record| {
                format!(
                    "{} v{} at {}/{}@{}",
                    id,
                    kafka::header(record, event_headers::VERSION).unwrap_or("?"),
                    record
                        .topic()
                        .strip_prefix(prefix)
                        .unwrap_or(record.topic()),
                    record.partition(),
                    record.offset()
                )
            })
            .collect();
        rec.note(format!("not applied: {}", places.join(", ")));
    }
    let mut ends: std::collections::BTreeMap<String, i64> = Default::default();
    for record in &records {
        let end = ends
            .entry(format!(
                "{}/{}",
                record
                    .topic()
                    .strip_prefix(prefix)
                    .unwrap_or(record.topic()),
                record.partition()
            ))
            .or_default();
        *end = (*end).max(record.offset() + 1);
    }
    rec.note(format!("fresh topics' partition ends: {ends:?}"));
    Ok(())
}
