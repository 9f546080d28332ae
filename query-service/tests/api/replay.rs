use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use clap::Parser;
use shared_proto::v1;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn replay_rebuilds_the_view_while_reads_keep_succeeding() {
    let mut app = spawn_query().await;
    let writer = EventWriter::new(&testkit::broker::brokers());
    let ids: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
    for id in &ids {
        publish(&writer, &app.topics, "created", &user(*id, 1, "Ada", "GB")).await;
    }
    for id in &ids[..10] {
        publish(
            &writer,
            &app.topics,
            "updated",
            &user(*id, 2, "Augusta", "GB"),
        )
        .await;
    }
    for id in &ids[10..15] {
        publish(&writer, &app.topics, "deleted", &user(*id, 2, "Ada", "GB")).await;
    }
    for (n, id) in ids.iter().enumerate() {
        let version = match n {
            0..10 => Some(2),
            10..15 => None,
            _ => Some(1),
        };
        app.wait_for(&id.to_string(), version).await;
    }
    let before = app.view_rows().await;
    // Damage the live view: the replay must rebuild it from the topics.
    app.db
        .client()
        .await
        .execute("DELETE FROM user_views WHERE id = $1", &[&ids[20]])
        .await
        .unwrap();

    let reading = Arc::new(AtomicBool::new(true));
    let (reads, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let reader = {
        let (reading, reads, failures) = (reading.clone(), reads.clone(), failures.clone());
        let mut client = app.client.clone();
        let id = ids[30].to_string();
        tokio::spawn(async move {
            while reading.load(Ordering::Relaxed) {
                let get = client
                    .get_user(v1::GetUserRequest {
                        id: id.clone(),
                        min_version: None,
                    })
                    .await;
                let list = client
                    .list_users(v1::ListUsersRequest {
                        page_size: 100,
                        ..Default::default()
                    })
                    .await;
                reads.fetch_add(2, Ordering::Relaxed);
                if get.is_err() || list.map(|page| page.into_inner().users.len()).unwrap_or(0) < 24
                {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    let args = query_args(&app.db, &app.prefix, &app.group, &[]);
    let cli = query_service::config::Cli::try_parse_from(args.argv()).unwrap();
    let report = query_service::replay::replay(&cli.config)
        .await
        .expect("replay succeeds");
    tokio::time::sleep(Duration::from_millis(200)).await;
    reading.store(false, Ordering::Relaxed);
    reader.await.unwrap();

    let generation: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT generation FROM read_model_generation", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(generation, 1, "the swap is announced as a new generation");
    assert_eq!(report.events, 55);
    assert_eq!(report.undecodable, 0);
    assert_eq!(
        app.view_rows().await,
        before,
        "the rebuilt view equals the one before the damage"
    );
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no read failed during the replay"
    );
    // The service reads and projects into the swapped-in table.
    let late = Uuid::now_v7();
    publish(
        &writer,
        &app.topics,
        "created",
        &user(late, 1, "Late", "GB"),
    )
    .await;
    app.wait_for(&late.to_string(), Some(1)).await;
}

#[tokio::test]
async fn of_two_replays_started_together_one_completes_and_the_other_refuses() {
    let mut app = spawn_query().await;
    let writer = EventWriter::new(&testkit::broker::brokers());
    let ids: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    for id in &ids {
        publish(&writer, &app.topics, "created", &user(*id, 1, "Ada", "GB")).await;
    }
    for id in &ids {
        app.wait_for(&id.to_string(), Some(1)).await;
    }
    let before = app.view_rows().await;

    let args = query_args(&app.db, &app.prefix, &app.group, &[]);
    let cli = query_service::config::Cli::try_parse_from(args.argv()).unwrap();
    let (first, second) = tokio::join!(
        query_service::replay::replay(&cli.config),
        query_service::replay::replay(&cli.config)
    );
    let (done, refused) = match (first, second) {
        (Ok(done), Err(refused)) | (Err(refused), Ok(done)) => (done, refused),
        (first, second) => panic!("expected one success and one refusal: {first:?}, {second:?}"),
    };
    assert_eq!(done.events, 20);
    assert!(
        refused
            .downcast_ref::<query_service::replay::ReplayRunning>()
            .is_some(),
        "{refused:#}"
    );
    assert_eq!(app.view_rows().await, before, "the model is complete");
}

/// Event topics under a prefix of the test's own, made up front (a replay only reads).
async fn topics_of_their_own() -> (String, shared_proto::topics::Topics) {
    let prefix = new_prefix();
    let topics = shared_proto::topics::Topics::with_prefix(&prefix);
    shared::kafka::ensure_topics(
        &shared::kafka::Cluster::plaintext(testkit::broker::brokers().to_owned()),
        &topics.events(),
        &shared::kafka::TopicSettings::fixed(PARTITIONS, 1),
    )
    .await
    .unwrap();
    (prefix, topics)
}

/// The rows of the live view, tombstones included.
async fn view_count(db: &TestDatabase) -> i64 {
    db.client()
        .await
        .query_one("SELECT count(*) FROM user_views", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_replay_into_a_fresh_model_reads_the_whole_last_batch_of_each_partition() {
    // Sent together, the creations leave in a few producer batches; tansu reports a
    // partition's end as its last batch's first offset.
    let (prefix, topics) = topics_of_their_own().await;
    let writer = EventWriter::new(&testkit::broker::brokers());
    let users: Vec<v1::User> = (0..60)
        .map(|_| user(Uuid::now_v7(), 1, "Ada", "GB"))
        .collect();
    futures::future::join_all(
        users
            .iter()
            .map(|user| publish(&writer, &topics, "created", user)),
    )
    .await;

    let db = TestDatabase::create().await;
    let args = query_args(&db, &prefix, "group-unused", &[]);
    let cli = query_service::config::Cli::try_parse_from(args.argv()).unwrap();
    let report = query_service::replay::replay(&cli.config)
        .await
        .expect("replay succeeds");
    assert_eq!(report.events, 60);
    let rows = view_count(&db).await;
    assert_eq!(rows, 60);
}

/// The shadow table is indexed once filled, with the live table's indexes under the names the
/// migrations gave them, however many replays swap it in.
#[tokio::test]
async fn a_replayed_model_keeps_the_live_tables_indexes_and_their_names() {
    let (prefix, topics) = topics_of_their_own().await;
    let writer = EventWriter::new(&testkit::broker::brokers());
    for n in 0..20 {
        publish(
            &writer,
            &topics,
            "created",
            &user(Uuid::now_v7(), 1, &format!("Ada{n}"), "GB"),
        )
        .await;
    }
    let db = TestDatabase::create().await;
    let args = query_args(&db, &prefix, "group-unused", &[]);
    let cli = query_service::config::Cli::try_parse_from(args.argv()).unwrap();
    let indexes = async || -> Vec<(String, String)> {
        db.client()
            .await
            .query(
                "SELECT indexname::text, indexdef FROM pg_indexes \
                 WHERE tablename = 'user_views' ORDER BY indexname",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    };
    query_service::replay::replay(&cli.config)
        .await
        .expect("replay succeeds");
    let first = indexes().await;
    let names: Vec<&str> = first.iter().map(|(name, _)| name.as_str()).collect();
    for migrated in [
        "user_views_pkey",
        "user_views_live_by_email",
        "user_views_live_by_country",
    ] {
        assert!(
            names.contains(&migrated),
            "{migrated} missing after a replay: {names:?}"
        );
    }
    assert!(
        first
            .iter()
            .all(|(_, definition)| !definition.contains("shadow")),
        "{first:?}"
    );
    query_service::replay::replay(&cli.config)
        .await
        .expect("replay succeeds");
    assert_eq!(indexes().await, first);
    let rows = view_count(&db).await;
    assert_eq!(rows, 20);
}

#[tokio::test]
async fn a_replays_progress_can_be_scraped_while_it_runs() {
    let app = spawn_query().await;
    let writer = EventWriter::new(&testkit::broker::brokers());
    let users: Vec<v1::User> = (0..3000)
        .map(|_| user(Uuid::now_v7(), 1, "Ada", "GB"))
        .collect();
    for chunk in users.chunks(500) {
        futures::future::join_all(
            chunk
                .iter()
                .map(|user| publish(&writer, &app.topics, "created", user)),
        )
        .await;
    }

    let addr = testkit::ports::free_addr();
    let args = query_args(&app.db, &app.prefix, &app.group, &[]).replay_metrics_addr(addr);
    let cli = query_service::config::Cli::try_parse_from(args.argv()).unwrap();
    let replay = tokio::spawn(async move { query_service::replay::replay(&cli.config).await });
    let mut seen = Vec::new();
    while !replay.is_finished() {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(50),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            drop(stream);
            // The replay may end, and its server with it, between the connect and the GET.
            let Ok((_, metrics)) = testkit::http::try_get(addr, "/metrics").await else {
                continue;
            };
            let samples = testkit::metrics::parse_metrics(&metrics);
            let value = |name: &str, labels: &[(&str, &str)]| {
                testkit::metrics::sample(&samples, name, labels)
            };
            seen.push((
                value("replay_phase", &[("phase", "reading")]),
                value("replay_events_read_total", &[]),
                value("replay_remaining_events", &[]),
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let report = replay.await.unwrap().expect("replay succeeds");
    assert_eq!(report.events, 3000);
    assert!(
        seen.iter()
            .any(|(reading, read, remaining)| *reading == Some(1.0)
                && read.is_some_and(|read| read > 0.0)
                && remaining.is_some_and(|remaining| remaining > 0.0)),
        "never caught it reading: {seen:?}"
    );
}

/// The replay writes two batches at once. Two batches of the same users, in opposite orders,
/// must wait for each other and both land, not deadlock (Postgres would fail one).
#[tokio::test]
async fn two_batches_of_the_same_users_written_at_once_in_opposite_orders_both_land() {
    use query_service::{user_change::UserChange, view};
    use shared_proto::user_state::UserState;

    let db = Arc::new(TestDatabase::create().await);
    // Started only for its migrations.
    let group = format!("group-{}", Uuid::new_v4());
    let app = start_query(db.clone(), &new_prefix(), &group, &[]).await;
    let at = time::OffsetDateTime::now_utc();
    let ids: Vec<Uuid> = (0..2_000).map(|_| Uuid::now_v7()).collect();
    let batch = |version: i64, ids: Vec<Uuid>| -> Vec<UserChange> {
        ids.into_iter()
            .map(|id| UserChange {
                user: UserState {
                    id,
                    first_name: format!("v{version}"),
                    last_name: "Lovelace".into(),
                    nickname: String::new(),
                    email: format!("{id}@example.com"),
                    country: "GB".into(),
                    created_at: at,
                    updated_at: at,
                    version,
                },
                deleted: false,
            })
            .collect()
    };
    let forwards = batch(1, ids.clone());
    let backwards = batch(2, ids.iter().rev().copied().collect());
    let pool = shared::db::Database::new(&db.url, None)
        .unwrap()
        .pool(2, shared::db::SessionLimits::NONE)
        .unwrap();
    let write = async |changes: &[UserChange]| {
        pool.run(async |client| {
            let tx = client.transaction().await?;
            let refs: Vec<&UserChange> = changes.iter().collect();
            view::apply(&tx, view::Table::Live, &refs).await?;
            // Each holds its locks a moment, so the two overlap.
            tx.batch_execute("SELECT pg_sleep(0.05)").await?;
            tx.commit().await?;
            Ok::<_, shared::db_failure::DbFailure>(())
        })
        .await
    };
    for round in 0..5 {
        let (a, b) = tokio::join!(write(&forwards), write(&backwards));
        a.unwrap_or_else(|error| panic!("round {round}, forwards: {error:?}"));
        b.unwrap_or_else(|error| panic!("round {round}, backwards: {error:?}"));
    }
    let newest: i64 = db
        .client()
        .await
        .query_one("SELECT min(version) FROM user_views", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(newest, 2, "the newer batch is what the view holds");
    app.stop().await.unwrap();
}
