//! Poison on both stages: undecodable records on each event topic, and an outbox row of an
//! event type this release does not know. Both stages must go on: later writes are
//! projected, the records land on the dead-letter topic, and the row is parked and counted.

use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::Message;
use shared::kafka;
use shared_proto::event_headers;
use shared_proto::v1;

use testkit::events::EventWriter;
use uuid::Uuid;

use crate::{
    client,
    ledger::Ledger,
    load, models,
    outcome::Recorder,
    pg, probe,
    process::Suite,
    stack::{Options, Stack},
    topics,
};

const UNKNOWN_EVENT: &str = "user.v1.UserRenamedEvent";

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let stack = Stack::start(&suite, "poison", Options::default()).await?;
    let writer = stack.writer();
    let write_db = pg::connect(&stack.write_db.url).await?;
    let read_db = pg::connect(&stack.read_db.url).await?;

    write_db
        .execute(
            "INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, payload, occurred_at)
             VALUES (gen_random_uuid(), $1, gen_random_uuid(), 1, '\\x0a00', now())",
            &[&UNKNOWN_EVENT],
        )
        .await?;
    let events = EventWriter::new(&stack.brokers());
    let mut poisoned = 0;
    for (topic, event_type) in [
        (&stack.topics.created, event_headers::USER_CREATED),
        (&stack.topics.updated, event_headers::USER_UPDATED),
        (&stack.topics.deleted, event_headers::USER_DELETED),
    ] {
        for payload in poison_payloads(topic == &stack.topics.deleted) {
            let key = Uuid::now_v7().to_string();
            events
                .send(
                    topic,
                    &key,
                    &payload,
                    &[
                        (event_headers::EVENT_TYPE, event_type),
                        (event_headers::VERSION, "1"),
                    ],
                )
                .await;
            poisoned += 1;
        }
    }
    rec.say(format!(
        "{poisoned} poison records and 1 poison outbox row in place"
    ));

    let ledger = Ledger::default();
    let users = load::create_users(&writer, &ledger, 3, "poison").await?;
    for (index, id) in users.iter().enumerate() {
        let user = client::update_nickname(&mut writer.clone(), id, &format!("after{index}"))
            .await
            .map_err(|status| anyhow::anyhow!("UpdateUser failed: {status}"))?;
        ledger.ack(&user);
    }
    let doomed: Uuid = users[0].parse()?;
    client::delete(&mut writer.clone(), &users[0], Some(2))
        .await
        .map_err(|status| anyhow::anyhow!("DeleteUser failed: {status}"))?;
    ledger.ack_delete(doomed, 3);

    models::expect_converged(
        &rec,
        &write_db,
        &read_db,
        &ledger,
        Duration::from_secs(30),
        "writes after the poison did not all reach the read model",
    )
    .await?;

    // The dead letters: each poison record once at least, from each topic.
    let dead_letters = wait_for_dead_letters(&stack, poisoned).await;
    match dead_letters {
        Ok(origins) => {
            for topic in stack.topics.events() {
                let from_topic = origins
                    .iter()
                    .filter(|origin| origin.as_str() == topic)
                    .count();
                rec.check(from_topic >= 2, || {
                    format!("{from_topic} of 2 poison records from {topic} reached the dead-letter topic")
                });
            }
            rec.note(format!(
                "{} records on {}",
                origins.len(),
                stack.topics.dead_letter
            ));
        }
        Err(error) => rec.fail(format!("cannot read the dead-letter topic: {error:#}")),
    }
    let dead_lettered = probe::metric_sum(
        stack.query.http,
        "projector_events_total",
        &[("outcome", "dead_lettered")],
    )
    .await?;
    rec.check(dead_lettered >= poisoned as f64, || {
        format!("projector_events_total{{outcome=dead_lettered}} is {dead_lettered}, expected {poisoned}")
    });

    // The parked row: kept, marked, counted once.
    let deadline = Instant::now() + Duration::from_secs(15);
    let parked = loop {
        let parked: Option<bool> = write_db
            .query_opt(
                "SELECT parked_at IS NOT NULL FROM outbox WHERE event_type = $1",
                &[&UNKNOWN_EVENT],
            )
            .await?
            .map(|row| row.get(0));
        if parked != Some(false) || Instant::now() > deadline {
            break parked;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    rec.check(parked == Some(true), || match parked {
        None => "the poison outbox row is gone: it was dropped (or published) instead of parked"
            .to_owned(),
        _ => "the poison outbox row was never parked (parked_at is NULL)".to_owned(),
    });
    let parked_total = probe::metric(stack.command.http, "outbox_parked_total", &[]).await?;
    rec.check(parked_total == Some(1.0), || {
        format!("outbox_parked_total is {parked_total:?}, expected 1")
    });

    for service in [&stack.command, &stack.query] {
        let panics = service.panics();
        rec.check(panics.is_empty(), || {
            format!("{} panicked: {panics:?}", service.label)
        });
    }
    rec.load(format!(
        "{} writes after the poison, all projected",
        ledger.writes()
    ));
    rec.injected(format!("{poisoned} poison records, 1 unknown outbox event"));
    rec.bad_inputs(format!("{}", poisoned + 1));
    Ok(())
}

/// Per topic: bytes that are no protobuf at all, and a well-formed event no projector may
/// apply (a user id that is no UUID, or no user).
fn poison_payloads(deleted_topic: bool) -> [Vec<u8>; 2] {
    let junk = vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0xde, 0xad, 0xbe, 0xef];
    let invalid = if deleted_topic {
        v1::UserDeletedEvent {
            user: None,
            deleted_at: None,
        }
        .encode_to_vec()
    } else {
        v1::UserCreatedEvent {
            user: Some(v1::User {
                id: "not-a-uuid".to_owned(),
                version: 1,
                ..v1::User::default()
            }),
        }
        .encode_to_vec()
    };
    [junk, invalid]
}

/// The origin topics of the dead-letter records, once at least `expected` are there.
async fn wait_for_dead_letters(stack: &Stack, expected: usize) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let records = topics::read_all(
            &stack.brokers(),
            &[&stack.topics.dead_letter],
            Duration::from_secs(20),
        )
        .await?;
        if records.len() >= expected || Instant::now() > deadline {
            return Ok(records
                .iter()
                .map(|record| {
                    kafka::header(record, event_headers::DLQ_ORIGIN_TOPIC)
                        .unwrap_or_else(|| record.topic())
                        .to_owned()
                })
                .collect());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
