//! The read model's table: version-guarded writes from the projector and replay, and the
//! queries GetUser and ListUsers run.

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
/// Returns, per change, whether it was applied.
pub async fn apply<C: GenericClient>(
    client: &C,
    table: &str,
    changes: &[&UserChange],
) -> Result<Vec<bool>, tokio_postgres::Error> {
    let upsert = client
        .prepare_cached(&format!(
            "INSERT INTO {table} AS v ({columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO UPDATE SET first_name = EXCLUDED.first_name, \
             last_name = EXCLUDED.last_name, nickname = EXCLUDED.nickname, email = EXCLUDED.email, \
             country = EXCLUDED.country, created_at = EXCLUDED.created_at, \
             updated_at = EXCLUDED.updated_at, version = EXCLUDED.version, deleted = EXCLUDED.deleted \
             WHERE v.version < EXCLUDED.version",
            columns = columns()
        ))
        .await?;
    // Sent together: the connection pipelines them and Postgres runs them in order, so two
    // changes of one user in a batch still apply oldest first.
    let upsert = &upsert;
    let writes = changes.iter().map(|change| async move {
        client
            .execute(
                upsert,
                &[
                    &change.user.id,
                    &change.user.first_name,
                    &change.user.last_name,
                    &change.user.nickname,
                    &change.user.email,
                    &change.user.country,
                    &change.user.created_at,
                    &change.user.updated_at,
                    &change.user.version,
                    &change.deleted,
                ],
            )
            .await
    });
    let applied = futures::future::try_join_all(writes)
        .await?
        .into_iter()
        .map(|rows| rows == 1)
        .collect();
    Ok(applied)
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
