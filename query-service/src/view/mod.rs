//! The read model's table: version-guarded writes from the projector and replay, and the
//! queries GetUser and ListUsers run.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use users_shared::user_state::UserState;

use crate::user_change::UserChange;

/// The table the service reads.
pub const LIVE: &str = "user_views";
/// Where a replay rebuilds the read model before swapping it in.
pub const SHADOW: &str = "user_views_shadow";

/// The user's columns, then whether it is deleted.
fn columns() -> String {
    format!("{}, deleted", UserState::COLUMNS)
}

fn from_row(row: &Row) -> UserChange {
    UserChange {
        user: UserState::from_row(row),
        deleted: row.get(9),
    }
}

/// Writes each change unless the table already holds that user at the same or a newer
/// version, so duplicates and late events change nothing and a tombstone stays deleted.
/// Returns, per change, whether it was written.
///
/// One statement for the whole batch. Of several changes of one user in it only the newest
/// can matter (the others would be overwritten or refused by the version guard), and one
/// statement may not touch a row twice, so only that one is sent.
pub async fn apply<C: GenericClient>(
    client: &C,
    table: &str,
    changes: &[&UserChange],
) -> Result<Vec<bool>, tokio_postgres::Error> {
    let newest = newest_per_user(changes);
    let mut columns = Columns::with_capacity(newest.len());
    for &at in &newest {
        columns.push(changes[at]);
    }
    // In the live table, an event no newer than the purge horizon may update a row but not
    // create one. Safe because a user's versions are committed in time order: an event late
    // for a purged user is older than that user's tombstone, which was no newer than the
    // horizon when it was purged, so it finds no row and creates none; while every user the
    // view should hold has its row (the view has projected each creation it was given), so
    // refusing to create rows from such old events loses nothing. A replay's shadow table
    // gets every event, deletions included, and needs no horizon.
    let horizon = if table == LIVE {
        format!(
            " WHERE e.updated_at > (SELECT horizon FROM read_model_purge FOR SHARE) \
             OR EXISTS (SELECT 1 FROM {table} AS existing WHERE existing.id = e.id)"
        )
    } else {
        String::new()
    };
    let upsert = client
        .prepare_cached(&format!(
            "INSERT INTO {table} AS v ({columns}) \
             SELECT e.* FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], \
                                    $6::text[], $7::timestamptz[], $8::timestamptz[], $9::int8[], $10::bool[]) \
                  AS e({columns}){horizon} \
             ON CONFLICT (id) DO UPDATE SET first_name = EXCLUDED.first_name, \
             last_name = EXCLUDED.last_name, nickname = EXCLUDED.nickname, email = EXCLUDED.email, \
             country = EXCLUDED.country, created_at = EXCLUDED.created_at, \
             updated_at = EXCLUDED.updated_at, version = EXCLUDED.version, deleted = EXCLUDED.deleted \
             WHERE v.version < EXCLUDED.version \
             RETURNING v.id",
            columns = self::columns()
        ))
        .await?;
    let written: HashSet<Uuid> = client
        .query(
            &upsert,
            &[
                &columns.id,
                &columns.first_name,
                &columns.last_name,
                &columns.nickname,
                &columns.email,
                &columns.country,
                &columns.created_at,
                &columns.updated_at,
                &columns.version,
                &columns.deleted,
            ],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut applied = vec![false; changes.len()];
    for at in newest {
        applied[at] = written.contains(&changes[at].user.id);
    }
    Ok(applied)
}

/// The index of each user's newest change (the first of equal versions).
fn newest_per_user(changes: &[&UserChange]) -> Vec<usize> {
    let mut newest: HashMap<Uuid, usize> = HashMap::with_capacity(changes.len());
    for (at, change) in changes.iter().enumerate() {
        newest
            .entry(change.user.id)
            .and_modify(|kept| {
                if changes[*kept].user.version < change.user.version {
                    *kept = at;
                }
            })
            .or_insert(at);
    }
    let mut newest: Vec<usize> = newest.into_values().collect();
    newest.sort_unstable();
    newest
}

/// A batch of changes as one array per column, for `unnest`.
struct Columns {
    id: Vec<Uuid>,
    first_name: Vec<String>,
    last_name: Vec<String>,
    nickname: Vec<String>,
    email: Vec<String>,
    country: Vec<String>,
    created_at: Vec<time::OffsetDateTime>,
    updated_at: Vec<time::OffsetDateTime>,
    version: Vec<i64>,
    deleted: Vec<bool>,
}

impl Columns {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            id: Vec::with_capacity(capacity),
            first_name: Vec::with_capacity(capacity),
            last_name: Vec::with_capacity(capacity),
            nickname: Vec::with_capacity(capacity),
            email: Vec::with_capacity(capacity),
            country: Vec::with_capacity(capacity),
            created_at: Vec::with_capacity(capacity),
            updated_at: Vec::with_capacity(capacity),
            version: Vec::with_capacity(capacity),
            deleted: Vec::with_capacity(capacity),
        }
    }

    fn push(&mut self, change: &UserChange) {
        let user = &change.user;
        self.id.push(user.id);
        self.first_name.push(user.first_name.clone());
        self.last_name.push(user.last_name.clone());
        self.nickname.push(user.nickname.clone());
        self.email.push(user.email.clone());
        self.country.push(user.country.clone());
        self.created_at.push(user.created_at);
        self.updated_at.push(user.updated_at);
        self.version.push(user.version);
        self.deleted.push(change.deleted);
    }
}

/// Tombstones deleted per statement, so a purge never holds the view for long.
const PURGE_CHUNK: i64 = 10_000;

/// Deletes the tombstones older than `retention` and moves the purge horizon past them (see
/// `apply`); returns how many went. The horizon's row is locked first: a projector batch
/// running meanwhile waits and then sees the new horizon, so it cannot create a row for a
/// user whose tombstone goes in this very purge.
pub async fn purge_tombstones(
    pool: &deadpool_postgres::Pool,
    retention: std::time::Duration,
) -> Result<u64, users_shared::db_failure::DbFailure> {
    let mut purged = 0;
    loop {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT horizon FROM read_model_purge FOR UPDATE", &[])
            .await?;
        let purge = tx
            .prepare_cached(&format!(
                "WITH purged AS ( \
                     DELETE FROM {LIVE} WHERE id IN ( \
                         SELECT id FROM {LIVE} \
                         WHERE deleted AND updated_at < now() - make_interval(secs => $1) \
                         ORDER BY updated_at LIMIT $2) \
                     RETURNING updated_at), \
                 moved AS ( \
                     UPDATE read_model_purge \
                     SET horizon = GREATEST(horizon, (SELECT max(updated_at) FROM purged)) \
                     WHERE EXISTS (SELECT 1 FROM purged)) \
                 SELECT count(*) FROM purged"
            ))
            .await?;
        let count: i64 = tx
            .query_one(&purge, &[&retention.as_secs_f64(), &PURGE_CHUNK])
            .await?
            .get(0);
        tx.commit().await?;
        purged += count as u64;
        if count < PURGE_CHUNK {
            return Ok(purged);
        }
    }
}

/// How many times a replay has swapped the read model in.
pub async fn generation(
    pool: &deadpool_postgres::Pool,
) -> Result<i64, users_shared::db_failure::DbFailure> {
    let client = pool.get().await?;
    let row = client
        .query_one("SELECT generation FROM read_model_generation", &[])
        .await?;
    Ok(row.get(0))
}

/// The user's row, live or tombstone.
pub async fn get<C: GenericClient>(
    client: &C,
    id: Uuid,
) -> Result<Option<UserChange>, tokio_postgres::Error> {
    let select = client
        .prepare_cached(&format!("SELECT {} FROM {LIVE} WHERE id = $1", columns()))
        .await?;
    Ok(client
        .query_opt(&select, &[&id])
        .await?
        .as_ref()
        .map(from_row))
}

/// Up to `limit` live users after `after` in id order, of the given countries (all when
/// empty). Each shape of query has its own statement so each can use its index.
pub async fn list<C: GenericClient>(
    client: &C,
    countries: &[String],
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<UserChange>, tokio_postgres::Error> {
    let sql = list_sql(!countries.is_empty(), after.is_some());
    let select = client.prepare_cached(&sql).await?;
    let rows = match (countries.is_empty(), after) {
        (true, None) => client.query(&select, &[&limit]).await?,
        (true, Some(after)) => client.query(&select, &[&limit, &after]).await?,
        (false, None) => client.query(&select, &[&limit, &countries]).await?,
        (false, Some(after)) => client.query(&select, &[&limit, &countries, &after]).await?,
    };
    Ok(rows.iter().map(from_row).collect())
}

fn list_sql(by_country: bool, after: bool) -> String {
    if by_country {
        // One ordered index scan per country, each stopped at the page size, then merged:
        // `country = ANY(...) ORDER BY id` would read and sort every matching row.
        let after = if after { " AND id > $3" } else { "" };
        format!(
            "SELECT v.* FROM unnest($2::text[]) AS c(code) CROSS JOIN LATERAL \
             (SELECT {} FROM {LIVE} WHERE NOT deleted AND country = c.code{after} ORDER BY id LIMIT $1) v \
             ORDER BY v.id LIMIT $1",
            columns()
        )
    } else {
        let after = if after { " AND id > $2" } else { "" };
        format!(
            "SELECT {} FROM {LIVE} WHERE NOT deleted{after} ORDER BY id LIMIT $1",
            columns()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: Uuid, version: i64) -> UserChange {
        let at = time::OffsetDateTime::UNIX_EPOCH;
        UserChange {
            user: UserState {
                id,
                first_name: String::new(),
                last_name: String::new(),
                nickname: String::new(),
                email: String::new(),
                country: String::new(),
                created_at: at,
                updated_at: at,
                version,
            },
            deleted: false,
        }
    }

    #[test]
    fn of_a_users_changes_in_one_batch_only_the_newest_is_sent() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let batch = [
            change(a, 2),
            change(b, 1),
            change(a, 5),
            change(a, 3),
            change(b, 1),
        ];
        let refs: Vec<&UserChange> = batch.iter().collect();
        assert_eq!(newest_per_user(&refs), [1, 2]);
    }

    #[test]
    fn list_queries_number_their_parameters_in_binding_order() {
        let by_country = list_sql(true, true);
        assert!(by_country.contains("unnest($2::text[])"), "{by_country}");
        assert!(
            by_country.contains("country = c.code AND id > $3"),
            "{by_country}"
        );
        assert!(
            list_sql(false, true).contains("WHERE NOT deleted AND id > $2 ORDER BY id LIMIT $1")
        );
        assert!(!list_sql(false, false).contains("$2"));
        assert!(!list_sql(true, false).contains("$3"));
    }
}
