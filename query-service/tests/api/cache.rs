//! Only what the view holds may be served from the cache: events that are redelivered,
//! rewound or late never become what GetUser answers, whatever the cache holds at the time.

use std::{sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
use rdkafka::producer::{FutureProducer, FutureRecord};
use shared::kafka;
use shared_proto::topics::Topics;
use shared_proto::v1;
use tokio_util::sync::CancellationToken;

use testkit::{
    broker,
    http::get as http_get,
    metrics::{parse_metrics, sample},
};
use uuid::Uuid;

use crate::helpers::*;

use query_service::read_model::{
    CachedUser, EncodedUser, UserCache,
    feed::{self, FeedState},
};

fn group() -> String {
    format!("group-{}", Uuid::new_v4())
}

/// Waits until the app's projector has counted `count` stale events on `topic`.
async fn wait_for_stale(app: &QueryApp, topic: &str, count: f64) {
    eventually(
        &format!("{count} stale events on {topic}"),
        Duration::from_secs(20),
        || async {
            let (_, metrics) = http_get(app.http_addr, "/metrics").await;
            let stale = sample(
                &parse_metrics(&metrics),
                "projector_events_total",
                &[("topic", topic), ("outcome", "stale")],
            );
            (stale >= Some(count)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_redelivered_old_event_does_not_replace_an_expired_entry() {
    let db = Arc::new(TestDatabase::create().await);
    let mut app = start_query(db, &new_prefix(), &group(), &["--cache-ttl=1s"]).await;
    let writer = EventWriter::new(&broker::brokers());
    let id = Uuid::now_v7();
    publish(&writer, &app.topics, "created", &user(id, 1, "Ada", "GB")).await;
    publish(
        &writer,
        &app.topics,
        "updated",
        &user(id, 2, "Augusta", "GB"),
    )
    .await;
    app.wait_for(&id.to_string(), Some(2)).await;

    tokio::time::sleep(Duration::from_millis(1200)).await;
    publish(&writer, &app.topics, "created", &user(id, 1, "Ada", "GB")).await;
    wait_for_stale(&app, &app.topics.created.clone(), 1.0).await;
    assert_eq!(
        app.get(&id.to_string()).await.unwrap().first_name,
        "Augusta"
    );

    // Nor does a late update bring back a deleted user whose tombstone expired.
    publish(
        &writer,
        &app.topics,
        "deleted",
        &user(id, 3, "Augusta", "GB"),
    )
    .await;
    app.wait_for(&id.to_string(), None).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    publish(
        &writer,
        &app.topics,
        "updated",
        &user(id, 2, "Augusta", "GB"),
    )
    .await;
    wait_for_stale(&app, &app.topics.updated.clone(), 1.0).await;
    let status = app.get(&id.to_string()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn a_cold_replica_that_rewinds_does_not_serve_an_old_version() {
    let prefix = new_prefix();
    let topics = Topics::with_prefix(&prefix);
    // One partition per topic, so the rewind below reaches exactly what it should.
    kafka::ensure_topics(
        &shared::kafka::Cluster::plaintext(broker::brokers().to_owned()),
        &topics.events(),
        &shared::kafka::TopicSettings::fixed(1, 1),
    )
    .await
    .unwrap();
    let writer = EventWriter::new(&broker::brokers());
    let gone = Uuid::now_v7();
    publish(&writer, &topics, "created", &user(gone, 1, "Ada", "GB")).await;
    publish(&writer, &topics, "updated", &user(gone, 2, "Augusta", "GB")).await;
    publish(&writer, &topics, "deleted", &user(gone, 3, "Augusta", "GB")).await;
    // Others' events put the deletion out of reach of a rewind of 2 records.
    let others: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
    for other in &others {
        publish(&writer, &topics, "created", &user(*other, 1, "Bo", "SE")).await;
        publish(&writer, &topics, "deleted", &user(*other, 2, "Bo", "SE")).await;
    }

    let db = Arc::new(TestDatabase::create().await);
    let group = group();
    let rewind = ["--kafka-resume-rewind=2", "--kafka-topic-partitions=1"];
    let mut first = start_query(Arc::clone(&db), &prefix, &group, &rewind).await;
    first.wait_for(&gone.to_string(), None).await;
    for other in &others {
        first.wait_for(&other.to_string(), None).await;
    }
    first.stop().await.unwrap();

    // A new replica resumes 2 records early: the update comes again, the deletion does not.
    let mut cold = start_query(db, &prefix, &group, &rewind).await;
    wait_for_stale(&cold, &topics.updated, 1.0).await;
    let status = cold.get(&gone.to_string()).await.unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::NotFound,
        "a deleted user came back"
    );
}

#[tokio::test]
async fn the_cache_feed_waits_for_its_topics_then_drops_what_changed() {
    let brokers = broker::brokers();
    let topics = Topics::with_prefix(&new_prefix());
    let cache = UserCache::new(1000, Duration::from_secs(60), &mut Registry::default());
    let (state, mut watch) = feed::state();
    let stop = CancellationToken::new();
    let feed = tokio::spawn(feed::run(
        broker::cluster(),
        topics.clone(),
        cache.clone(),
        state,
        Duration::from_millis(200),
        Duration::from_millis(2),
        stop.clone(),
    ));

    // No topics yet: the feed says so, and keeps trying.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(matches!(&*watch.borrow(), FeedState::Down(why) if why.contains("cannot start")));
    kafka::ensure_topics(
        &shared::kafka::Cluster::plaintext(brokers.to_owned()),
        &topics.events(),
        &shared::kafka::TopicSettings::fixed(1, 1),
    )
    .await
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        watch.wait_for(|state| *state == FeedState::Listening),
    )
    .await
    .expect("the feed starts once the topics exist")
    .unwrap();

    let id = Uuid::now_v7();
    cache.offer(
        id,
        CachedUser {
            version: 1,
            user: Some(EncodedUser::new(&user(id, 1, "Ada", "GB"))),
        },
    );
    let producer: FutureProducer = shared::kafka::Cluster::plaintext(brokers.to_owned())
        .client_config("test")
        .create()
        .unwrap();
    let event = prost::Message::encode_to_vec(&v1::UserUpdatedEvent {
        user: Some(user(id, 2, "Augusta", "GB")),
        changed_fields: vec!["first_name".into()],
    });
    let key = id.to_string();
    producer
        .send(
            FutureRecord::to(&topics.updated).key(&key).payload(&event),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    eventually(
        "the change to reach the cache",
        Duration::from_secs(20),
        || async { (cache.stream_version(&id) == Some(2)).then_some(()) },
    )
    .await;
    assert!(cache.peek(&id).is_none(), "the older entry is dropped");
    stop.cancel();
    feed.await.unwrap();
}

/// Misses that wait together are read together: many concurrent GetUser calls of users the
/// cache never saw take far fewer reads of the view than calls, and each gets its own user.
#[tokio::test]
async fn concurrent_misses_share_reads_of_the_view() {
    let app = spawn_query().await;
    let ids: Vec<Uuid> = (0..300).map(|_| Uuid::now_v7()).collect();
    app.db
        .client()
        .await
        .execute(
            "INSERT INTO user_views (id, first_name, last_name, nickname, email, country, \
                                     created_at, updated_at, version) \
             SELECT id, 'Ada' || n, 'X', '', 'ada' || n || '@example.com', 'GB', now(), now(), 1 \
             FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n)",
            &[&ids],
        )
        .await
        .unwrap();
    let reads = async || {
        let (_, text) = http_get(app.http_addr, "/metrics").await;
        testkit::metrics::sum(&parse_metrics(&text), "query_miss_reads_total", &[])
    };
    let before = reads().await;
    let calls = ids.iter().map(|id| {
        let mut client = app.client.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            client
                .get_user(v1::GetUserRequest {
                    id: id.clone(),
                    min_version: None,
                })
                .await
                .map(|answer| (id, answer.into_inner().user.unwrap()))
        })
    });
    for (n, call) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        let (id, user) = call.unwrap().expect("every miss is answered");
        assert_eq!((user.id, user.first_name), (id, format!("Ada{}", n + 1)));
    }
    let used = reads().await - before;
    assert!(
        (1.0..=150.0).contains(&used),
        "300 concurrent misses took {used} reads of the view"
    );
}
