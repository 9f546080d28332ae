//! Migrations that cannot stall a busy cluster: they give way to locks, build indexes
//! concurrently, refuse an edited history, and leave the service a role that cannot change
//! the schema.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use command_service::{app::App, config::Cli};
use shared::{
    db::Database,
    migrate::{self, Migration, MigrationSettings},
};
use testkit::database::TestDatabase;
use uuid::Uuid;

use crate::helpers::*;

const TABLE: Migration = Migration {
    version: 1,
    name: "t",
    sql: "CREATE TABLE t (x int); INSERT INTO t VALUES (1);",
};
const ALTER: Migration = Migration {
    version: 2,
    name: "t_y",
    sql: "ALTER TABLE t ADD COLUMN y int;",
};

fn settings(lock_timeout_ms: u64, attempts: u32) -> MigrationSettings {
    MigrationSettings {
        lock_timeout: Duration::from_millis(lock_timeout_ms),
        attempts,
        grant_to: None,
    }
}

#[tokio::test]
async fn a_migration_gives_way_to_a_long_transaction_without_holding_readers_up() {
    let db = TestDatabase::create().await;
    let database = Database::new(&db.url, None).unwrap();
    migrate::prepare(&database, &[TABLE], "test", &settings(100, 1))
        .await
        .unwrap();
    // A long transaction that read the table: the ALTER must wait for it to end.
    let mut long = db.client().await;
    let long_tx = long.transaction().await.unwrap();
    long_tx.query("SELECT * FROM t", &[]).await.unwrap();

    let migrating = tokio::spawn({
        let database = database.clone();
        async move { migrate::prepare(&database, &[TABLE, ALTER], "test", &settings(100, 50)).await }
    });
    // Meanwhile every read of the table answers at once: the migration waits 100 ms at most
    // per attempt, and readers are queued behind it for no longer.
    let reader = db.client().await;
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        reader.query("SELECT count(*) FROM t", &[]).await.unwrap();
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !migrating.is_finished(),
        "the migration waited for the long transaction"
    );
    long_tx.commit().await.unwrap();
    migrating
        .await
        .unwrap()
        .expect("migrated once the transaction ended");
    assert!(
        slowest < Duration::from_millis(900),
        "a read waited {slowest:?}"
    );
    reader.query("SELECT y FROM t", &[]).await.unwrap();
}

#[tokio::test]
async fn a_migration_that_keeps_waiting_gives_up_after_its_attempts() {
    let db = TestDatabase::create().await;
    let database = Database::new(&db.url, None).unwrap();
    migrate::prepare(&database, &[TABLE], "test", &settings(50, 1))
        .await
        .unwrap();
    let mut long = db.client().await;
    let long_tx = long.transaction().await.unwrap();
    long_tx.query("SELECT * FROM t", &[]).await.unwrap();
    let error = migrate::prepare(&database, &[TABLE, ALTER], "test", &settings(50, 3))
        .await
        .unwrap_err();
    // As the services log it: the error and what caused it.
    let error = format!("{:#}", anyhow::Error::from(error));
    assert!(
        error.contains("migration 2 (t_y) failed after 3 attempt(s)") && error.contains("lock"),
        "{error}"
    );
}

#[tokio::test]
async fn an_index_is_built_concurrently_outside_a_transaction() {
    let db = TestDatabase::create().await;
    let database = Database::new(&db.url, None).unwrap();
    let index = Migration {
        version: 2,
        name: "t_x",
        sql: "-- migrate: no transaction\n\
              DROP INDEX CONCURRENTLY IF EXISTS t_x;\n\
              CREATE INDEX CONCURRENTLY t_x ON t (x);\n",
    };
    migrate::prepare(&database, &[TABLE, index], "test", &settings(100, 3))
        .await
        .unwrap();
    let valid: bool = db
        .client()
        .await
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_x'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid);
}

#[tokio::test]
async fn a_service_whose_applied_migration_was_edited_does_not_start() {
    let app = spawn_app().await;
    let db = Arc::clone(&app.db);
    app.stop().await.unwrap();
    db.client()
        .await
        .execute(
            "UPDATE schema_migrations SET checksum = '\\x00' WHERE version = 1",
            &[],
        )
        .await
        .unwrap();
    for migrate_on_start in ["true", "false"] {
        let args = testkit::service_args::CommandServiceArgs::new()
            .any_ports()
            .database_url(&db.url)
            .flag(format!("--migrate-on-start={migrate_on_start}"));
        let cli = Cli::try_parse_from(args.argv()).unwrap();
        let Err(refused) = App::build(cli.config).await else {
            panic!("started on an edited migration (MIGRATE_ON_START={migrate_on_start})");
        };
        let refused = format!("{refused:#}");
        assert!(
            refused.contains("migration 1 (users_and_outbox) was edited"),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn the_service_runs_with_a_role_that_cannot_change_the_schema() {
    let db = Arc::new(TestDatabase::create().await);
    let role = format!("users_app_{}", Uuid::new_v4().simple());
    db.client()
        .await
        .batch_execute(&format!("CREATE ROLE {role} LOGIN"))
        .await
        .unwrap();
    // `migrate` as the owner, granting the service's role what it needs.
    let owner = Database::new(&db.url, None).unwrap();
    let grant = MigrationSettings {
        grant_to: Some(role.clone()),
        ..MigrationSettings::default()
    };
    command_service::app::migrate(&owner, &grant).await.unwrap();

    let as_role = db.url.replacen("postgres@", &format!("{role}@"), 1);
    let mut app = spawn_app_on_database(
        Arc::clone(&db),
        &[
            &format!("--database-url={as_role}"),
            "--migrate-on-start=false",
        ],
    )
    .await;
    let mut events = app.events().await;
    let created = app.create_user(&unique_email()).await;
    app.update(testkit::grpc::nickname_update(&created.id, "countess"))
        .await;
    let published = events.read(2, Duration::from_secs(20)).await;
    assert_eq!(
        published.len(),
        2,
        "the relay publishes and deletes as the role"
    );

    let role_client = Database::new(&as_role, None)
        .unwrap()
        .connect()
        .await
        .unwrap();
    for ddl in [
        "CREATE TABLE intruder (x int)",
        "ALTER TABLE users ADD COLUMN intruder int",
        "DROP TABLE outbox",
        "DELETE FROM schema_migrations",
    ] {
        let refused = role_client.batch_execute(ddl).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{ddl}: {refused}"
        );
    }

    // Told to migrate at start, the role is refused instead of half-changing the schema.
    let args = testkit::service_args::CommandServiceArgs::new()
        .any_ports()
        .database_url(&as_role);
    let cli = Cli::try_parse_from(args.argv()).unwrap();
    assert!(App::build(cli.config).await.is_err());
}
