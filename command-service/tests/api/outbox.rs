use std::{collections::HashSet, time::Duration};

use rdkafka::Message;
use shared_proto::v1;
use shared_proto::{event_headers, topics::Topics};

use crate::helpers::*;
use testkit::{
    broker::PrivateBroker,
    http::get as http_get,
    metrics::{parse_metrics, sample},
};

#[tokio::test]
async fn replicas_share_the_outbox_and_publish_every_event_exactly_once() {
    // One replica NOTIFYs on every write, the other does not: both kinds share the outbox.
    let mut first = spawn_app_with(&testkit::broker::brokers(), &["--outbox-notify=true"]).await;
    let mut second = first.replica().await;
    let mut events = first.events().await;

    let mut ids = HashSet::new();
    for round in 0..10 {
        let app = if round % 2 == 0 {
            &mut first
        } else {
            &mut second
        };
        ids.insert(app.create_user(&unique_email()).await.id);
    }
    // Extra passes from outside both run loops race with them for the same rows.
    let (a, b) = tokio::join!(first.relay.relay_once(), second.relay.relay_once());
    a.expect("relay pass");
    b.expect("relay pass");

    let records = events.read(10, Duration::from_secs(30)).await;
    events.expect_nothing(Duration::from_secs(1)).await;
    let keys: HashSet<String> = records.iter().map(|r| key(r).to_owned()).collect();
    assert_eq!(keys, ids, "each user's creation is published");
    let event_ids: HashSet<&str> = records
        .iter()
        .map(|r| header(r, event_headers::EVENT_ID).unwrap())
        .collect();
    assert_eq!(event_ids.len(), 10, "no event is published twice");
    assert!(records.iter().all(|r| r.topic() == first.topics.created));
    assert_eq!(first.outbox_len().await, 0);
}

#[tokio::test]
async fn relay_once_drains_what_is_pending_and_then_finds_nothing() {
    let mut app = spawn_app_with(
        &testkit::broker::brokers(),
        // Neither notifications nor the poll wake the background relay during this test.
        &["--outbox-notify=false", "--outbox-poll-interval=1h"],
    )
    .await;
    let mut events = app.events().await;
    // The background relay's first pass may race this test; wait for it to go idle.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let user = app.create_user(&unique_email()).await;
    // The handler wakes its own relay; let that pass finish, then drain by hand.
    let mut published = 0;
    for _ in 0..50 {
        published += app.relay.relay_once().await.expect("relay pass");
        if app.outbox_len().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(published <= 1);
    assert_eq!(app.outbox_len().await, 0);
    assert_eq!(app.relay.relay_once().await.expect("relay pass"), 0);
    let records = events.read(1, Duration::from_secs(20)).await;
    assert_eq!(key(&records[0]), user.id);
}

#[tokio::test]
async fn a_topic_the_broker_refuses_holds_back_only_its_own_users_events() {
    let broker = PrivateBroker::start_with_schemas();
    let prefix = new_prefix();
    let topics = Topics::with_prefix(&prefix);
    broker.reject(&topics.updated);
    let mut app = spawn_app_on(&broker.brokers(), &prefix, &["--outbox-publish-timeout=2s"]).await;
    let mut events = app.events().await;

    let stuck = app.create_user(&unique_email()).await;
    let update = nickname_update(&stuck.id, "refused");
    app.update(update).await;
    app.client
        .delete_user(v1::DeleteUserRequest {
            id: stuck.id.clone(),
            expected_version: None,
            request_id: String::new(),
        })
        .await
        .expect("deleted");
    let mut expected = HashSet::from([stuck.id.clone()]);
    for _ in 0..20 {
        expected.insert(app.create_user(&unique_email()).await.id);
    }

    // Every creation arrives while the updated topic refuses records (tansu also fences the
    // producer session at each refusal, so some arrive twice: delivery is at least once)...
    let mut keys = HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while keys != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "only {keys:?} arrived"
        );
        if let Some(record) = events.next(Duration::from_secs(1)).await {
            assert_eq!(record.topic(), topics.created);
            keys.insert(key(&record).to_owned());
        }
    }
    // ...while the refused user's deletion waits behind its update.
    let later = events.read_available(Duration::from_secs(3)).await;
    assert!(later.iter().all(|r| r.topic() == topics.created));
    assert_eq!(app.outbox_len().await, 2);

    broker.accept(&topics.updated);
    let records = events.read(2, Duration::from_secs(30)).await;
    let by_topic = |topic: &str| {
        records
            .iter()
            .find(|r| r.topic() == topic)
            .unwrap_or_else(|| panic!("nothing on {topic}"))
    };
    let (updated, deleted) = (by_topic(&topics.updated), by_topic(&topics.deleted));
    assert_eq!((key(updated), key(deleted)), (&*stuck.id, &*stuck.id));
    let sent_at = |record: &rdkafka::message::OwnedMessage| {
        record.timestamp().to_millis().expect("a timestamp")
    };
    assert!(
        sent_at(updated) <= sent_at(deleted),
        "the deletion was sent before the update it follows"
    );
}

#[tokio::test]
async fn an_outbox_row_of_an_unknown_event_type_is_parked_and_the_rest_flows() {
    let mut app = spawn_app().await;
    let mut events = app.events().await;
    let db = app.db.client().await;
    db.batch_execute(
        "INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, payload, occurred_at)
         VALUES (gen_random_uuid(), 'user.v1.UserRenamedEvent', gen_random_uuid(), 1, '\\x00', now())",
    )
    .await
    .unwrap();

    let user = app.create_user(&unique_email()).await;
    let records = events.read(1, Duration::from_secs(20)).await;
    assert_eq!(key(&records[0]), user.id);

    let parked = || async {
        db.query_one(
            "SELECT count(*) FILTER (WHERE parked_at IS NOT NULL), count(*) FROM outbox",
            &[],
        )
        .await
        .map(|row| (row.get::<_, i64>(0), row.get::<_, i64>(1)))
        .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while parked().await != (1, 1) {
        assert!(std::time::Instant::now() < deadline, "{:?}", parked().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Met again, it is neither counted nor logged twice.
    assert_eq!(app.relay.relay_once().await.expect("a pass"), 0);
    let (_, metrics) = http_get(app.http_addr, "/metrics").await;
    let samples = parse_metrics(&metrics);
    assert_eq!(sample(&samples, "outbox_parked_total", &[]), Some(1.0));
}

#[tokio::test]
async fn the_backlog_gauge_reads_a_bounded_part_of_a_large_outbox() {
    let db = TestDatabase::create().await;
    let database = shared::db::Database::new(&db.url, None).unwrap();
    command_service::app::migrate(&database, &Default::default())
        .await
        .unwrap();
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, payload, occurred_at)
             SELECT gen_random_uuid(), 'user.v1.UserCreatedEvent', gen_random_uuid(), 1, '\\x00',
                    now() - interval '1 minute'
             FROM generate_series(1, 30000);
             ANALYZE outbox",
        )
        .await
        .unwrap();
    let backlog = include_str!("../../src/outbox/sql/backlog.sql");

    let plan: Vec<String> = client
        .query(&format!("EXPLAIN (ANALYZE, TIMING OFF) {backlog}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Each plan node's `actual rows=R loops=L`: none may touch the whole table.
    for line in plan.iter().filter(|line| line.contains("actual rows=")) {
        let number = |name: &str| -> u64 {
            let at = line.find(name).unwrap() + name.len();
            line[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(
            number("actual rows=") * number("loops=") <= 10_000,
            "{}",
            plan.join("\n")
        );
    }

    let row = client.query_one(backlog, &[]).await.unwrap();
    let (capped, span, oldest): (i64, i64, f64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((capped, span), (10_000, 30_000));
    assert!(oldest >= 60.0, "{oldest}");
}
