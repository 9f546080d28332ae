use std::{collections::HashSet, time::Duration};

use rdkafka::Message;
use users_shared::event_headers;

use crate::helpers::*;

#[tokio::test]
async fn replicas_share_the_outbox_and_publish_every_event_exactly_once() {
    // One replica NOTIFYs on every write, the other does not: both kinds share the outbox.
    let mut first = spawn_app_with(
        &users_shared::test_support::brokers(),
        &["--outbox-notify=true"],
    )
    .await;
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
        &users_shared::test_support::brokers(),
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
