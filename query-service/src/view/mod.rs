//! The read model's table: version-guarded writes from the projector and replay, and the
//! queries GetUser and ListUsers run.

mod reads;
mod tombstones;

pub use self::{
    reads::{Listing, get, get_by_email, get_many, list},
    tombstones::{purge_every, purge_tombstones},
};

use std::{collections::HashMap, sync::LazyLock};

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use shared::user_row::FromUserRow;
use shared_proto::user_state::UserState;

use crate::user_change::UserChange;

/// The table the service reads.
pub const LIVE: &str = "user_views";
/// Where a replay rebuilds the read model before swapping it in.
pub const SHADOW: &str = "user_views_shadow";
/// Postgres channel on which a replay announces its swap; every replica clears its cache.
pub const SWAPPED: &str = "user_views_swapped";

/// The user's columns, then whether it is deleted: what every statement below reads and
/// writes, in `from_row`'s order.
fn columns() -> String {
    format!("{}, deleted", UserState::COLUMNS)
}

/// A statement of `sql/` for `table`.
fn statement(template: &str, table: &str) -> String {
    template
        .replace("{table}", table)
        .replace("{columns}", &columns())
}

fn upsert_template(table: &str) -> String {
    // The live table refuses every event of a user whose tombstone was purged, however old
    // the event (see `purge_tombstones`). A replay's shadow table gets every event,
    // deletions included, and is never purged.
    let (guard, refused) = if table == LIVE {
        (
            " WHERE NOT EXISTS (SELECT 1 FROM purged_users AS p WHERE p.id = e.id)",
            " UNION ALL SELECT p.id, false FROM purged_users AS p JOIN e ON p.id = e.id",
        )
    } else {
        ("", "")
    };
    statement(include_str!("sql/upsert.sql"), table)
        .replace("{purged_guard}", guard)
        .replace("{purged_refused}", refused)
}

static UPSERT_LIVE: LazyLock<String> = LazyLock::new(|| upsert_template(LIVE));
static UPSERT_SHADOW: LazyLock<String> = LazyLock::new(|| upsert_template(SHADOW));
static PURGE_TOMBSTONES: LazyLock<String> =
    LazyLock::new(|| statement(include_str!("sql/purge_tombstones.sql"), LIVE));

/// Which of the read model's tables a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Live,
    Shadow,
}

fn upsert_sql(table: Table) -> &'static str {
    match table {
        Table::Live => &UPSERT_LIVE,
        Table::Shadow => &UPSERT_SHADOW,
    }
}

/// Reads a row of [`columns`].
fn from_row(row: &Row) -> UserChange {
    UserChange {
        user: UserState::from_row(row),
        deleted: row.get(9),
    }
}

/// What became of one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// The table holds the user at the same or a newer version (a duplicate, a late event).
    Stale,
    /// The user was deleted and its tombstone purged: nothing may bring it back.
    Purged,
}

/// Writes each change unless the table already holds that user at the same or a newer
/// version, so duplicates and late events change nothing and a tombstone stays deleted; in
/// the live table, unless the user's tombstone was purged. Returns what became of each.
///
/// One statement for the whole batch. Of several changes of one user in it only the newest
/// can matter (the others would be overwritten or refused by the version guard), and one
/// statement may not touch a row twice, so only that one is sent.
pub async fn apply<C: GenericClient>(
    client: &C,
    table: Table,
    changes: &[&UserChange],
) -> Result<Vec<Applied>, tokio_postgres::Error> {
    let newest = newest_per_user(changes);
    let mut columns = Columns::with_capacity(newest.len());
    for &at in &newest {
        columns.push(changes[at]);
    }
    let upsert = client.prepare_cached(upsert_sql(table)).await?;
    if table == Table::Live {
        // In a statement of its own, before the write: a purge under way is waited for, and
        // the write's snapshot, taken after, sees every id that purge kept. Taken inside the
        // write, the lock would come after its snapshot, and a late event could bring back a
        // user purged meanwhile. Sent together, both statements cost one round trip.
        let lock = client.prepare_cached(PURGE_LOCK_SHARED).await?;
        let (_, rows) = futures::try_join!(
            client.execute(&lock, &[]),
            upsert_rows(client, &upsert, &columns)
        )?;
        return Ok(outcomes(&newest, changes, &rows));
    }
    let rows = upsert_rows(client, &upsert, &columns).await?;
    Ok(outcomes(&newest, changes, &rows))
}

/// Taken by every write of the live table, and exclusively by a purge.
const PURGE_LOCK_SHARED: &str = "SELECT 1 FROM read_model_purge FOR SHARE";
const PURGE_LOCK: &str = "SELECT 1 FROM read_model_purge FOR UPDATE";

fn outcomes(newest: &[usize], changes: &[&UserChange], rows: &[Row]) -> Vec<Applied> {
    let decided: HashMap<Uuid, bool> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    let mut applied = vec![Applied::Stale; changes.len()];
    for &at in newest {
        applied[at] = match decided.get(&changes[at].user.id) {
            Some(true) => Applied::Written,
            Some(false) => Applied::Purged,
            None => Applied::Stale,
        };
    }
    applied
}

async fn upsert_rows<C: GenericClient>(
    client: &C,
    upsert: &tokio_postgres::Statement,
    columns: &Columns,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    client
        .query(
            upsert,
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
        .await
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
    // Rows are written, and so locked, in the order of their ids: two writes of overlapping
    // users (the replay's lanes) then wait for each other rather than deadlock.
    newest.sort_unstable_by_key(|&at| changes[at].user.id);
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

/// How many times a replay has swapped the read model in.
pub async fn generation(pool: &shared::db::Pool) -> Result<i64, shared::db_failure::DbFailure> {
    pool.run(async |client| {
        let row = client
            .query_one("SELECT generation FROM read_model_generation", &[])
            .await?;
        Ok(row.get(0))
    })
    .await
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
        // In the order of the ids (a's was made first).
        assert_eq!(newest_per_user(&refs), [2, 1]);
    }
}
