//! The outbox table as the relay uses it: rows are claimed under a lease, then deleted once
//! published, moved back for a retry, or parked.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use uuid::Uuid;

/// An outbox row claimed for publishing.
#[derive(Debug, Clone)]
pub(super) struct Claimed {
    pub(super) row: i64,
    pub(super) event_id: Uuid,
    pub(super) event_type: String,
    pub(super) aggregate_id: Uuid,
    pub(super) aggregate_version: i64,
    pub(super) payload: Vec<u8>,
    pub(super) traceparent: Option<String>,
    pub(super) occurred_at: OffsetDateTime,
    pub(super) auth_id: Option<String>,
    pub(super) auth_type: Option<String>,
}

/// What waits in the outbox.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Backlog {
    /// Rows, exact up to 10,000 and an upper bound beyond.
    pub(super) rows: i64,
    pub(super) oldest_seconds: f64,
    pub(super) parked: i64,
}

/// Deletes `published`, then claims up to `limit` due rows in id order, leased to `owner`
/// for `lease`, in one statement: the function `outbox_claim` (migration 0006).
///
/// It is planned without sequential scans. Between two vacuums the outbox heap is mostly
/// dead rows (every event leaves two: its lease and its deletion), and its statistics lag a
/// backlog that swings from none to thousands and back within a minute. Planned from them,
/// the claim reads the whole heap, dead rows included, on every pass (it cost a fifth of the
/// UpdateUser rate with NOTIFY on); through the indexes it reads little more than the live
/// rows.
pub(super) async fn claim<C: GenericClient>(
    client: &C,
    owner: Uuid,
    limit: i64,
    lease: Duration,
    published: &[i64],
) -> Result<Vec<Claimed>, tokio_postgres::Error> {
    let claim = client
        .prepare_cached(
            "SELECT id, event_id, event_type, aggregate_id, aggregate_version, payload, \
             traceparent, occurred_at, auth_id, auth_type FROM outbox_claim($1, $2, $3, $4)",
        )
        .await?;
    let rows = client
        .query(&claim, &[&limit, &lease.as_secs_f64(), &published, &owner])
        .await?;
    let mut claimed: Vec<Claimed> = rows
        .iter()
        .map(|row| Claimed {
            row: row.get(0),
            event_id: row.get(1),
            event_type: row.get(2),
            aggregate_id: row.get(3),
            aggregate_version: row.get(4),
            payload: row.get(5),
            traceparent: row.get(6),
            occurred_at: row.get(7),
            auth_id: row.get(8),
            auth_type: row.get(9),
        })
        .collect();
    // RETURNING keeps no order; a user's events must be sent oldest first.
    claimed.sort_unstable_by_key(|event| event.row);
    Ok(claimed)
}

/// Extends the lease of rows still in flight that `owner` still holds.
pub(super) async fn renew<C: GenericClient>(
    client: &C,
    owner: Uuid,
    rows: &[i64],
    lease: Duration,
) -> Result<(), tokio_postgres::Error> {
    let renew = client
        .prepare_cached(include_str!("sql/renew_leases.sql"))
        .await?;
    client
        .execute(&renew, &[&rows, &lease.as_secs_f64(), &owner])
        .await?;
    Ok(())
}

/// Deletes rows the broker acknowledged.
pub(super) async fn delete<C: GenericClient>(
    client: &C,
    rows: &[i64],
) -> Result<(), tokio_postgres::Error> {
    execute_for_rows(client, include_str!("sql/delete_published.sql"), rows).await
}

/// Makes rows the broker did not acknowledge due again after their backoff, of those
/// `owner` still holds.
pub(super) async fn retry_later<C: GenericClient>(
    client: &C,
    owner: Uuid,
    rows: &[i64],
) -> Result<(), tokio_postgres::Error> {
    execute_for_held_rows(client, include_str!("sql/retry_later.sql"), owner, rows).await
}

/// Makes rows `owner` still holds due at once, for another relay to take.
pub(super) async fn release<C: GenericClient>(
    client: &C,
    owner: Uuid,
    rows: &[i64],
) -> Result<(), tokio_postgres::Error> {
    execute_for_held_rows(client, include_str!("sql/release.sql"), owner, rows).await
}

/// Parks those of `rows` (refused by the broker for good) that `owner` holds and that have
/// had `attempts` claims; returns them. Parked rows hold back no one and are looked at again
/// in an hour.
pub(super) async fn park_refused<C: GenericClient>(
    client: &C,
    owner: Uuid,
    rows: &[i64],
    attempts: i32,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    let park = client
        .prepare_cached(include_str!("sql/park_refused.sql"))
        .await?;
    Ok(client
        .query(&park, &[&rows, &owner, &attempts])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Sets rows aside for a release that knows their event type; returns those parked only
/// now, each once.
pub(super) async fn park<C: GenericClient>(
    client: &C,
    owner: Uuid,
    rows: &[i64],
) -> Result<Vec<i64>, tokio_postgres::Error> {
    let park = client.prepare_cached(include_str!("sql/park.sql")).await?;
    Ok(client
        .query(&park, &[&rows, &owner])
        .await?
        .iter()
        .filter(|row| row.get::<_, bool>(1))
        .map(|row| row.get(0))
        .collect())
}

pub(super) async fn backlog<C: GenericClient>(
    client: &C,
) -> Result<Backlog, tokio_postgres::Error> {
    let backlog = client
        .prepare_cached(include_str!("sql/backlog.sql"))
        .await?;
    let row = client.query_one(&backlog, &[]).await?;
    let counted: i64 = row.get(0);
    let span: Option<i64> = row.get(1);
    Ok(Backlog {
        rows: if counted < 10_000 {
            counted
        } else {
            span.unwrap_or(counted)
        },
        oldest_seconds: row.get(2),
        parked: row.get(3),
    })
}

async fn execute_for_held_rows<C: GenericClient>(
    client: &C,
    sql: &str,
    owner: Uuid,
    rows: &[i64],
) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let statement = client.prepare_cached(sql).await?;
    client.execute(&statement, &[&rows, &owner]).await?;
    Ok(())
}

async fn execute_for_rows<C: GenericClient>(
    client: &C,
    sql: &str,
    rows: &[i64],
) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let statement = client.prepare_cached(sql).await?;
    client.execute(&statement, &[&rows]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use shared::{db, db_failure::DbFailure};

    use super::*;
    use testkit::database::TestDatabase;

    async fn outbox_with_one_row() -> (TestDatabase, db::Pool) {
        let test_db = TestDatabase::create().await;
        let database = db::Database::new(&test_db.url, None).unwrap();
        shared::migrate::prepare(
            &database,
            crate::migrations::MIGRATIONS,
            "write",
            &Default::default(),
        )
        .await
        .unwrap();
        let pool = database.pool(2, db::SessionLimits::NONE).unwrap();
        pool.run(async |client| {
            client
                .execute(
                    "INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, \
                     payload, occurred_at) VALUES ($1, 'user.created', $2, 1, '', now())",
                    &[&Uuid::new_v4(), &Uuid::new_v4()],
                )
                .await
                .map_err(DbFailure::from)
        })
        .await
        .unwrap();
        (test_db, pool)
    }

    /// The row's lease: when it is due, and whose it is.
    async fn lease(pool: &db::Pool) -> (OffsetDateTime, Option<Uuid>) {
        pool.run(async |client| {
            let row = client
                .query_one("SELECT available_at, leased_by FROM outbox", &[])
                .await?;
            Ok::<_, DbFailure>((row.get(0), row.get(1)))
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_relay_whose_lease_ran_out_cannot_change_the_lease_of_the_relay_that_took_over() {
        let (_db, pool) = outbox_with_one_row().await;
        let (stale, current) = (Uuid::new_v4(), Uuid::new_v4());
        let lease_time = Duration::from_secs(30);
        let claimed = pool
            .run(async |client| {
                Ok::<_, DbFailure>(claim(client, stale, 10, lease_time, &[]).await?)
            })
            .await
            .unwrap();
        let row = claimed[0].row;
        // The stale relay's lease lapses (a long pause) and another relay claims the row.
        pool.run(async |client| {
            client
                .execute(
                    "UPDATE outbox SET available_at = now() - interval '1 second'",
                    &[],
                )
                .await
                .map_err(DbFailure::from)
        })
        .await
        .unwrap();
        let taken = pool
            .run(async |client| {
                Ok::<_, DbFailure>(claim(client, current, 10, lease_time, &[]).await?)
            })
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        let held = lease(&pool).await;
        assert_eq!(held.1, Some(current));

        // The stale relay wakes up and acts on what it thinks is still its row.
        pool.run(async |client| {
            renew(&*client, stale, &[row], Duration::from_secs(3600)).await?;
            release(&*client, stale, &[row]).await?;
            retry_later(&*client, stale, &[row]).await?;
            park(&*client, stale, &[row]).await?;
            park_refused(&*client, stale, &[row], 0).await?;
            Ok::<_, DbFailure>(())
        })
        .await
        .unwrap();
        assert_eq!(
            lease(&pool).await,
            held,
            "the current relay's lease is untouched"
        );

        // Its own relay can.
        pool.run(async |client| Ok::<_, DbFailure>(release(&*client, current, &[row]).await?))
            .await
            .unwrap();
        assert_eq!(lease(&pool).await.1, None);
    }
}
