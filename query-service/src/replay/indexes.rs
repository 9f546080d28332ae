//! The shadow table's indexes, built once it is filled. Kept up to date row by row, the
//! live table's nine indexes made each batch of the replay write nine times; built at the
//! end from the sorted rows they cost a fraction of that. The shadow starts with its primary
//! key only (the replay's upserts need it), and takes the live table's index names at the
//! swap, so the names migrations gave them survive any number of replays.

use deadpool_postgres::GenericClient;
use shared::{db, db_failure::DbFailure};

use crate::view;

/// An index of the live table, as the shadow will have it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Index {
    /// Its name on the live table, which the shadow's takes at the swap.
    pub(super) name: String,
    primary: bool,
    unique: bool,
    /// What follows `USING` in its definition: method, columns, predicate.
    using: String,
}

impl Index {
    /// The name it has on the shadow table until the swap.
    pub(super) fn shadow_name(&self) -> String {
        format!("{}_replay", self.name)
    }

    fn create(&self) -> String {
        let shadow = view::SHADOW;
        let name = self.shadow_name();
        if self.primary {
            return format!("ALTER TABLE {shadow} ADD CONSTRAINT {name} PRIMARY KEY (id)");
        }
        let unique = if self.unique { "UNIQUE " } else { "" };
        format!(
            "CREATE {unique}INDEX {name} ON {shadow} USING {}",
            self.using
        )
    }
}

/// The live table's indexes.
pub(super) async fn of_live<C: GenericClient>(
    client: &C,
) -> Result<Vec<Index>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT i.relname::text, x.indisprimary, x.indisunique, pg_get_indexdef(x.indexrelid) \
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE x.indrelid = $1::text::regclass ORDER BY x.indisprimary DESC, i.relname",
            &[&view::LIVE],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let definition: String = row.get(3);
            let (_, using) = definition.split_once(" USING ")?;
            Some(Index {
                name: row.get(0),
                primary: row.get(1),
                unique: row.get(2),
                using: using.to_owned(),
            })
        })
        .collect())
}

/// Gives the empty shadow table the primary key of `indexes`.
pub(super) async fn create_primary<C: GenericClient>(
    client: &C,
    indexes: &[Index],
) -> Result<(), tokio_postgres::Error> {
    for index in indexes.iter().filter(|index| index.primary) {
        client.batch_execute(&index.create()).await?;
    }
    Ok(())
}

/// Builds the rest of `indexes` on the filled shadow table, on `lanes` connections at once:
/// each build is a sort of the whole table, which Postgres does on one core.
pub(super) async fn create_secondary(
    pool: &db::Pool,
    indexes: &[Index],
    lanes: usize,
) -> Result<(), DbFailure> {
    let secondary: Vec<&Index> = indexes.iter().filter(|index| !index.primary).collect();
    let lanes = lanes.max(1);
    let builds = (0..lanes).map(|lane| {
        let mine: Vec<&Index> = secondary
            .iter()
            .skip(lane)
            .step_by(lanes)
            .copied()
            .collect();
        pool.run(async move |client| {
            for index in mine {
                client.batch_execute(&index.create()).await?;
            }
            Ok::<_, DbFailure>(())
        })
    });
    futures::future::try_join_all(builds).await?;
    Ok(())
}

/// The statements that give the swapped-in table's indexes their live names.
pub(super) fn renames(indexes: &[Index]) -> String {
    indexes
        .iter()
        .map(|index| {
            format!(
                "ALTER INDEX {} RENAME TO {};\n",
                index.shadow_name(),
                index.name
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_made_again_on_the_shadow_with_its_method_columns_and_predicate() {
        let index = Index {
            name: "user_views_live_by_email".into(),
            primary: false,
            unique: false,
            using: "btree (lower(email) COLLATE \"C\") WHERE (NOT deleted)".into(),
        };
        assert_eq!(
            index.create(),
            "CREATE INDEX user_views_live_by_email_replay ON user_views_shadow \
             USING btree (lower(email) COLLATE \"C\") WHERE (NOT deleted)"
        );
        assert_eq!(
            renames(&[index]),
            "ALTER INDEX user_views_live_by_email_replay RENAME TO user_views_live_by_email;\n"
        );
    }
}
