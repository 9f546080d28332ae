//! What GetUser, BatchGetUsers, GetUserByEmail and ListUsers read from the live table.

use std::sync::{LazyLock, OnceLock};

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{LIVE, from_row, statement};
use crate::user_change::UserChange;

static GET: LazyLock<String> = LazyLock::new(|| statement(include_str!("sql/get.sql"), LIVE));
static GET_MANY: LazyLock<String> =
    LazyLock::new(|| statement(include_str!("sql/get_many.sql"), LIVE));
static GET_BY_EMAIL: LazyLock<String> =
    LazyLock::new(|| statement(include_str!("sql/get_by_email.sql"), LIVE));

/// The user's row, live or tombstone.
pub async fn get<C: GenericClient>(
    client: &C,
    id: Uuid,
) -> Result<Option<UserChange>, tokio_postgres::Error> {
    let select = client.prepare_cached(&GET).await?;
    Ok(client
        .query_opt(&select, &[&id])
        .await?
        .as_ref()
        .map(from_row))
}

/// The rows of `ids`, live or tombstone, in no particular order; one round trip.
pub async fn get_many<C: GenericClient>(
    client: &C,
    ids: &[Uuid],
) -> Result<Vec<UserChange>, tokio_postgres::Error> {
    let select = client.prepare_cached(&GET_MANY).await?;
    Ok(client
        .query(&select, &[&ids])
        .await?
        .iter()
        .map(from_row)
        .collect())
}

/// The live user holding `email`, compared case-insensitively.
pub async fn get_by_email<C: GenericClient>(
    client: &C,
    email: &str,
) -> Result<Option<UserChange>, tokio_postgres::Error> {
    let select = client.prepare_cached(&GET_BY_EMAIL).await?;
    Ok(client
        .query_opt(&select, &[&email])
        .await?
        .as_ref()
        .map(from_row))
}

/// What a page of ListUsers asks of the view; each condition applies when set.
#[derive(Debug, Clone, Copy)]
pub struct Listing<'a> {
    /// Sorted and deduplicated; empty: every country.
    pub countries: &'a [String],
    /// Only users whose latest change is strictly later.
    pub updated_after: Option<OffsetDateTime>,
    /// Only users whose first name, last name, nickname or email starts with this,
    /// case-insensitively.
    pub query: Option<&'a str>,
    /// The last id of the previous page.
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// Up to `limit` live users in id order that meet every condition of `listing`. Each shape
/// of query has its own statement, so each can use its index.
pub async fn list<C: GenericClient>(
    client: &C,
    listing: &Listing<'_>,
) -> Result<Vec<UserChange>, tokio_postgres::Error> {
    let shape = Shape::of(listing);
    let select = client.prepare_cached(list_sql(shape)).await?;
    // In the order `build` numbers them.
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&listing.limit];
    if shape.by_country {
        params.push(&listing.countries);
    }
    if let Some(query) = &listing.query {
        params.push(query);
    }
    if let Some(updated_after) = &listing.updated_after {
        params.push(updated_after);
    }
    if let Some(after) = &listing.after {
        params.push(after);
    }
    let rows = client.query(&select, &params).await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Which conditions a listing has: what its statement depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    by_country: bool,
    query: bool,
    updated_after: bool,
    after: bool,
}

impl Shape {
    fn of(listing: &Listing<'_>) -> Self {
        Self {
            by_country: !listing.countries.is_empty(),
            query: listing.query.is_some(),
            updated_after: listing.updated_after.is_some(),
            after: listing.after.is_some(),
        }
    }

    fn index(self) -> usize {
        usize::from(self.by_country)
            | usize::from(self.query) << 1
            | usize::from(self.updated_after) << 2
            | usize::from(self.after) << 3
    }
}

static LISTS: [OnceLock<String>; 16] = [const { OnceLock::new() }; 16];

fn list_sql(shape: Shape) -> &'static str {
    LISTS[shape.index()].get_or_init(|| build(shape))
}

/// The statement of a shape: `$1` is the limit, then the countries, the query, the time and
/// the last id follow in that order, each only when the shape has it.
fn build(shape: Shape) -> String {
    let mut next = 1;
    let mut parameter = |wanted: bool| {
        wanted.then(|| {
            next += 1;
            format!("${next}")
        })
    };
    let countries = parameter(shape.by_country);
    let query = parameter(shape.query);
    let updated_after = parameter(shape.updated_after);
    let after = parameter(shape.after);
    let mut filters = String::new();
    if let Some(updated_after) = &updated_after {
        filters.push_str(&format!(" AND updated_at > {updated_after}"));
    }
    if let Some(after) = &after {
        filters.push_str(&format!(" AND id > {after}"));
    }
    match (query, countries) {
        (Some(query), countries) => {
            if let Some(countries) = countries {
                filters = format!(" AND country = ANY({countries}::text[]){filters}");
            }
            statement(include_str!("sql/list_by_text.sql"), LIVE)
                .replace("{query}", &query)
                .replace("{filters}", &filters)
        }
        (None, Some(countries)) => statement(include_str!("sql/list_by_country.sql"), LIVE)
            .replace("{countries}", &countries)
            .replace("{filters}", &filters),
        (None, None) => {
            statement(include_str!("sql/list.sql"), LIVE).replace("{filters}", &filters)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(by_country: bool, query: bool, updated_after: bool, after: bool) -> &'static str {
        list_sql(Shape {
            by_country,
            query,
            updated_after,
            after,
        })
    }

    #[test]
    fn list_queries_number_their_parameters_in_binding_order() {
        let by_country = shape(true, false, false, true);
        assert!(by_country.contains("unnest($2::text[])"), "{by_country}");
        assert!(
            by_country.contains("country = c.code AND id > $3"),
            "{by_country}"
        );
        assert!(
            shape(false, false, false, true)
                .contains("WHERE NOT deleted AND id > $2 ORDER BY id LIMIT $1")
        );
        assert!(!shape(false, false, false, false).contains("$2"));
        assert!(!shape(true, false, false, false).contains("$3"));

        let everything = shape(true, true, true, true);
        assert!(
            everything.contains("country = ANY($2::text[])"),
            "{everything}"
        );
        assert!(everything.contains("lower(email) COLLATE \"C\" >= lower($3)"));
        assert!(
            everything.contains("updated_at > $4 AND id > $5"),
            "{everything}"
        );
        assert!(!everything.contains("$6"));
        assert!(shape(false, false, true, false).contains("NOT deleted AND updated_at > $2 ORDER"));
    }

    #[test]
    fn every_shape_has_a_statement_of_its_own() {
        let mut seen = std::collections::HashSet::new();
        for index in 0..16 {
            let statement = shape(
                index & 1 != 0,
                index & 2 != 0,
                index & 4 != 0,
                index & 8 != 0,
            );
            assert!(
                !statement.contains('{'),
                "a placeholder is left: {statement}"
            );
            assert!(seen.insert(statement), "two shapes share {statement}");
        }
    }

    /// The plans of the filtered listings on a read model of 20,000 users. The query
    /// filter's statement reads its indexes whatever the values, so both the plan Postgres
    /// makes for the statement as prepared (generic) and the one for its values (custom) are
    /// checked. The time filter's best plan depends on the time: a recent one (a sync job's)
    /// reads the updated_at index, an old one walks the ids; Postgres keeps planning per value
    /// while that is cheaper than its generic plan, so the custom plan is the one that counts.
    #[tokio::test]
    async fn neither_the_query_nor_the_time_filter_scans_the_table() {
        let db = testkit::database::TestDatabase::create().await;
        let database = shared::db::Database::new(&db.url, None).unwrap();
        crate::migrations::migrate(&database, &Default::default())
            .await
            .unwrap();
        let client = db.client().await;
        client
            .batch_execute(
                "INSERT INTO user_views (id, first_name, last_name, nickname, email, country, \
                                         created_at, updated_at, version) \
                 SELECT gen_random_uuid(), 'first' || n, 'last' || n, 'nick' || n, \
                        'user' || n || '@example.com', 'GB', now(), \
                        now() - n * interval '1 minute', 1 \
                 FROM generate_series(1, 20000) AS n; \
                 ANALYZE user_views",
            )
            .await
            .unwrap();
        let both: &[&str] = &["force_generic_plan", "force_custom_plan"];
        let cases = [
            (
                Shape {
                    by_country: false,
                    query: true,
                    updated_after: false,
                    after: false,
                },
                "50, 'first12'",
                "user_views_live_by_first_name",
                both,
            ),
            (
                Shape {
                    by_country: true,
                    query: true,
                    updated_after: false,
                    after: false,
                },
                "50, '{GB}', 'user1@'",
                "user_views_live_by_email",
                both,
            ),
            (
                Shape {
                    by_country: false,
                    query: false,
                    updated_after: true,
                    after: false,
                },
                "50, now() - interval '1 hour'",
                "user_views_live_by_updated_at",
                &both[1..],
            ),
        ];
        for (at, (shape, values, index, modes)) in cases.into_iter().enumerate() {
            client
                .batch_execute(&format!("PREPARE listing{at} AS {}", list_sql(shape)))
                .await
                .unwrap();
            for mode in modes {
                let explain =
                    format!("SET plan_cache_mode = {mode}; EXPLAIN EXECUTE listing{at}({values})");
                let plan: Vec<String> = client
                    .simple_query(&explain)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter_map(|message| match message {
                        tokio_postgres::SimpleQueryMessage::Row(row) => {
                            row.get(0).map(str::to_owned)
                        }
                        _ => None,
                    })
                    .collect();
                let plan = plan.join("\n");
                assert!(!plan.contains("Seq Scan"), "{mode}, {shape:?}:\n{plan}");
                assert!(
                    plan.contains(index),
                    "{mode}, {shape:?} does not use {index}:\n{plan}"
                );
            }
        }
    }
}
