//! Schema migrations: each applied once, in order of version, and recorded with a checksum
//! of its SQL.
//!
//! Written for a busy cluster. A migration waits at most `lock_timeout` for each lock it
//! needs, then gives way and is tried again a little later, instead of queueing every reader
//! and writer of a table behind itself while it waits for a long transaction to end. A
//! migration whose first line is `-- migrate: no transaction` runs statement by statement
//! outside a transaction, as `CREATE INDEX CONCURRENTLY` requires; its statements must be
//! safe to run again (`DROP INDEX CONCURRENTLY IF EXISTS` before each build), since one that
//! failed half way runs again from the start. A migration edited after it was applied stops
//! the service from starting: the database no longer holds what the code says it does.
//!
//! The service's own role need not be able to change the schema: `migrate` runs with a role
//! that may (`MIGRATION_GRANT_TO` then grants the service's role what it needs), and a
//! service started with `MIGRATE_ON_START=false` only checks that every migration is there.

use std::{collections::HashMap, time::Duration};

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, error::SqlState};

use crate::{
    backoff::Backoff,
    db::{Database, DbError, ensure_database},
};

/// Replicas that start together take turns on this advisory lock.
const LOCK_KEY: i64 = 8_020_417_312;
const NO_TRANSACTION: &str = "-- migrate: no transaction";

/// One schema change, applied once, in order of `version`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    fn checksum(&self) -> Vec<u8> {
        Sha256::digest(self.sql.as_bytes()).to_vec()
    }

    fn transactional(&self) -> bool {
        !self.sql.trim_start().starts_with(NO_TRANSACTION)
    }

    /// The statements of a migration run outside a transaction, one at a time: each ends
    /// with a semicolon at the end of a line.
    fn statements(&self) -> impl Iterator<Item = &'static str> {
        self.sql
            .split(";\n")
            .map(str::trim)
            .map(|statement| statement.trim_end_matches(';'))
            .filter(|statement| {
                statement
                    .lines()
                    .any(|line| !line.trim().is_empty() && !line.trim().starts_with("--"))
            })
    }
}

/// How migrations wait for locks, and whom they grant the tables to.
#[derive(Debug, Clone)]
pub struct MigrationSettings {
    /// The longest one statement waits for a lock before the migration gives way.
    pub lock_timeout: Duration,
    /// How many times a migration is tried while it keeps waiting too long for locks.
    pub attempts: u32,
    /// The role the services run as, granted reading and writing every table (and reading
    /// the migrations) once the migrations are applied.
    pub grant_to: Option<String>,
}

impl Default for MigrationSettings {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(5),
            attempts: 20,
            grant_to: None,
        }
    }
}

/// Creates the database when missing, then applies `migrations`; `what` names the database
/// in the log line and errors ("write", "read").
pub async fn prepare(
    database: &Database,
    migrations: &[Migration],
    what: &str,
    settings: &MigrationSettings,
) -> Result<(), DbError> {
    ensure_database(database).await.inspect_err(|error| {
        tracing::error!(%error, "cannot reach or create the {what} database");
    })?;
    let mut client = database.connect().await?;
    let applied = migrate(&mut client, migrations, settings).await?;
    tracing::info!(?applied, "{what} database migrated");
    Ok(())
}

/// Checks, changing nothing, that every migration is applied as it is written: what a
/// service whose role cannot change the schema does at start.
pub async fn verify(database: &Database, migrations: &[Migration]) -> Result<(), DbError> {
    let client = database.connect().await?;
    let applied = match recorded(&client).await {
        Ok(applied) => applied,
        Err(error) if error.code() == Some(&SqlState::UNDEFINED_TABLE) => HashMap::new(),
        Err(error) => return Err(error.into()),
    };
    for migration in migrations {
        match applied.get(&migration.version) {
            None => {
                return Err(DbError::NotMigrated {
                    version: migration.version,
                    name: migration.name,
                });
            }
            Some(Some(checksum)) if *checksum != migration.checksum() => {
                return Err(edited(migration));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Applies the migrations not applied yet, each in a transaction of its own (or none, for
/// one that says so), and returns their versions.
pub async fn migrate(
    client: &mut Client,
    migrations: &[Migration],
    settings: &MigrationSettings,
) -> Result<Vec<i32>, DbError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let applied = apply(client, migrations, settings).await;
    // Also released when the connection closes, as it does next on every path.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    applied
}

async fn apply(
    client: &mut Client,
    migrations: &[Migration],
    settings: &MigrationSettings,
) -> Result<Vec<i32>, DbError> {
    client
        .batch_execute(&format!(
            "SET lock_timeout = {}",
            settings.lock_timeout.as_millis().max(1)
        ))
        .await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );
             ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum bytea",
        )
        .await?;
    let applied = recorded(client).await?;
    let mut newly_applied = Vec::new();
    for migration in migrations {
        let checksum = migration.checksum();
        match applied.get(&migration.version) {
            Some(Some(recorded)) if *recorded != checksum => return Err(edited(migration)),
            Some(Some(_)) => continue,
            // Applied before checksums were kept: what is applied is taken to be this.
            Some(None) => {
                client
                    .execute(
                        "UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
                        &[&migration.version, &checksum],
                    )
                    .await?;
                continue;
            }
            None => {}
        }
        apply_one(client, migration, settings).await?;
        newly_applied.push(migration.version);
    }
    if let Some(role) = &settings.grant_to {
        grant(client, role).await?;
    }
    client.batch_execute("RESET lock_timeout").await?;
    Ok(newly_applied)
}

/// Runs one migration, trying again while it gives way to locks others hold.
async fn apply_one(
    client: &mut Client,
    migration: &Migration,
    settings: &MigrationSettings,
) -> Result<(), DbError> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut attempt = 1;
    loop {
        let error = match run(client, migration).await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let gave_way = matches!(
            error.code(),
            Some(&SqlState::LOCK_NOT_AVAILABLE | &SqlState::T_R_DEADLOCK_DETECTED)
        );
        if !gave_way || attempt >= settings.attempts {
            return Err(DbError::Migration {
                version: migration.version,
                name: migration.name,
                attempts: attempt,
                source: error,
            });
        }
        let wait = backoff.next_wait();
        tracing::warn!(
            version = migration.version,
            name = migration.name,
            attempt,
            retry_in = ?wait,
            %error,
            "migration gave way to a lock another session holds; trying again"
        );
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

async fn run(client: &mut Client, migration: &Migration) -> Result<(), tokio_postgres::Error> {
    let record = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)";
    let checksum = migration.checksum();
    if migration.transactional() {
        let tx = client.transaction().await?;
        tx.batch_execute(migration.sql).await?;
        tx.execute(record, &[&migration.version, &migration.name, &checksum])
            .await?;
        return tx.commit().await;
    }
    for statement in migration.statements() {
        client.batch_execute(statement).await?;
    }
    client
        .execute(record, &[&migration.version, &migration.name, &checksum])
        .await?;
    Ok(())
}

/// The service's role reads and writes every table, and reads (only) the migrations. Also for
/// tables made after the migrations (a replay's shadow table).
pub async fn grant(client: &Client, role: &str) -> Result<(), tokio_postgres::Error> {
    let role = format!("\"{}\"", role.replace('"', "\"\""));
    client
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
             GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role};
             REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM {role};"
        ))
        .await
}

async fn recorded(client: &Client) -> Result<HashMap<i32, Option<Vec<u8>>>, tokio_postgres::Error> {
    Ok(client
        .query("SELECT version, checksum FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

fn edited(migration: &Migration) -> DbError {
    DbError::MigrationEdited {
        version: migration.version,
        name: migration.name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migration_outside_a_transaction_runs_statement_by_statement() {
        let migration = Migration {
            version: 1,
            name: "indexes",
            sql: "-- migrate: no transaction\n-- Why.\nDROP INDEX CONCURRENTLY IF EXISTS a;\n\
                  CREATE INDEX CONCURRENTLY a ON t (x);\n-- done\n",
        };
        assert!(!migration.transactional());
        let statements: Vec<_> = migration.statements().collect();
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(statements[1].ends_with("CREATE INDEX CONCURRENTLY a ON t (x)"));
        let plain = Migration {
            sql: "CREATE TABLE t (x int);",
            ..migration
        };
        assert!(plain.transactional());
        assert_ne!(plain.checksum(), migration.checksum());
    }
}
