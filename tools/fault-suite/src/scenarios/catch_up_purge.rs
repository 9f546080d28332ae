//! A new read model (a new environment, a rebuild after a restore) catches up on a history
//! older than a short tombstone retention: a day-old creation of every user and an hour-old
//! deletion of a few. Tombstones are purged while the projector is still consuming the
//! creations; every user not deleted must end up live in the view.

use std::time::{Duration, Instant};

use prost::Message as _;
use shared_proto::event_headers;
use shared_proto::v1;

use testkit::{database::TestDatabase, events::EventWriter};
use uuid::Uuid;

use crate::{
    outcome::{Recorder, thousands},
    pg,
    process::Suite,
    stack::{self, Options, Stack},
};

const USERS: usize = 30_000;
const DELETED: usize = 20;

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let stack = Stack::start(&suite, "catch-up-purge", Options::default()).await?;
    let brokers = stack.brokers();
    let events = EventWriter::new(&brokers);
    let now = time::OffsetDateTime::now_utc();
    let day_ago = now - time::Duration::days(1);
    let hour_ago = now - time::Duration::hours(1);
    let ids: Vec<Uuid> = (0..USERS).map(|_| Uuid::now_v7()).collect();
    rec.say(format!(
        "writing {USERS} day-old creations and {DELETED} hour-old deletions"
    ));
    for chunk in ids.chunks(1_000) {
        futures::future::join_all(chunk.iter().map(|id| {
            let created = v1::UserCreatedEvent {
                user: Some(user(*id, 1, day_ago, day_ago)),
            };
            send(
                &events,
                &stack.topics.created,
                *id,
                1,
                event_headers::USER_CREATED,
                created.encode_to_vec(),
            )
        }))
        .await;
    }
    for id in &ids[..DELETED] {
        let deleted = v1::UserDeletedEvent {
            user: Some(user(*id, 2, day_ago, hour_ago)),
            deleted_at: Some(timestamp(hour_ago)),
        };
        send(
            &events,
            &stack.topics.deleted,
            *id,
            2,
            event_headers::USER_DELETED,
            deleted.encode_to_vec(),
        )
        .await;
    }

    let fresh_db = TestDatabase::create().await;
    let started = Instant::now();
    let fresh = stack::start_query(
        &suite,
        "catch-up-purge/fresh-query-service",
        &fresh_db.url,
        &brokers,
        &stack.prefix,
        vec![
            "--tombstone-retention=1s".to_owned(),
            "--tombstone-purge-interval=1s".to_owned(),
        ],
    )
    .await?;
    let view = pg::connect(&fresh_db.url).await?;
    let expected = (USERS - DELETED) as i64;
    let mut live = 0;
    let mut settled_since = None;
    // Done once the count has stood still for a few seconds (purges included).
    while started.elapsed() < Duration::from_secs(120) {
        let now_live: i64 = view
            .query_one("SELECT count(*) FROM user_views WHERE NOT deleted", &[])
            .await?
            .get(0);
        if now_live == expected {
            break;
        }
        if now_live != live {
            settled_since = Some(Instant::now());
        } else if settled_since.is_some_and(|since| since.elapsed() > Duration::from_secs(10)) {
            break;
        }
        live = now_live;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let live: i64 = view
        .query_one("SELECT count(*) FROM user_views WHERE NOT deleted", &[])
        .await?
        .get(0);
    let purged: i64 = view
        .query_one("SELECT count(*) FROM purged_users", &[])
        .await
        .map(|row| row.get(0))
        .unwrap_or(-1);
    rec.check(live == expected, || {
        format!("the new read model holds {live} live users instead of {expected}")
    });
    rec.note(format!(
        "{live} live users of {expected} after {:.1} s; {purged} tombstones purged meanwhile",
        started.elapsed().as_secs_f64()
    ));
    drop(fresh);
    rec.load(format!(
        "{} day-old creations, {DELETED} hour-old deletions",
        thousands(USERS as u64)
    ));
    rec.injected("TOMBSTONE_RETENTION=1s, purge every 1 s, during catch-up");
    rec.bad_inputs("0");
    Ok(())
}

fn timestamp(at: time::OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: at.nanosecond() as i32,
    }
}

fn user(
    id: Uuid,
    version: u64,
    created: time::OffsetDateTime,
    updated: time::OffsetDateTime,
) -> v1::User {
    v1::User {
        id: id.to_string(),
        first_name: "Ada".to_owned(),
        last_name: "Lovelace".to_owned(),
        nickname: String::new(),
        email: format!("{}@example.com", id.simple()),
        country: "GB".to_owned(),
        created_at: Some(timestamp(created)),
        updated_at: Some(timestamp(updated)),
        version,
    }
}

async fn send(
    events: &EventWriter,
    topic: &str,
    id: Uuid,
    version: u64,
    event_type: &str,
    payload: Vec<u8>,
) {
    let version = version.to_string();
    events
        .send(
            topic,
            &id.to_string(),
            &payload,
            &[
                (event_headers::EVENT_TYPE, event_type),
                (event_headers::VERSION, &version),
            ],
        )
        .await;
}
