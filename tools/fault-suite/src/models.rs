//! The write model and the read model as rows, and how they must agree once the services
//! have caught up: every user of the write model is in the read model as it is, every
//! deleted user is a tombstone there, and every acknowledged version is in it.

use std::{
    collections::BTreeMap,
    fmt,
    time::{Duration, Instant},
};

use tokio_postgres::Client;
use uuid::Uuid;

use crate::{
    ledger::{Acks, Ledger},
    outcome::Recorder,
};

/// A user as the fault suite models either database: its columns, timestamps in microseconds
/// (Postgres's precision on both sides), and whether it is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelUser {
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) nickname: String,
    pub(crate) email: String,
    pub(crate) country: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) version: i64,
    pub(crate) deleted: bool,
}

impl fmt::Display for ModelUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "v{}{} {} {} nick={:?} {} {} created={} updated={}",
            self.version,
            if self.deleted { " (deleted)" } else { "" },
            self.first_name,
            self.last_name,
            self.nickname,
            self.email,
            self.country,
            self.created_at,
            self.updated_at
        )
    }
}

pub(crate) type Model = BTreeMap<Uuid, ModelUser>;

const COLUMNS: &str = "id, first_name, last_name, nickname, email, country, \
     (extract(epoch FROM created_at) * 1000000)::bigint, \
     (extract(epoch FROM updated_at) * 1000000)::bigint, version";

async fn rows(client: &Client, query: &str) -> anyhow::Result<Model> {
    Ok(client
        .query(query, &[])
        .await?
        .iter()
        .map(|row| {
            (
                row.get(0),
                ModelUser {
                    first_name: row.get(1),
                    last_name: row.get(2),
                    nickname: row.get(3),
                    email: row.get(4),
                    country: row.get(5),
                    created_at: row.get(6),
                    updated_at: row.get(7),
                    version: row.get(8),
                    deleted: row.get(9),
                },
            )
        })
        .collect())
}

/// The `users` table of the write database (a deleted user has no row).
pub(crate) async fn write_model(client: &Client) -> anyhow::Result<Model> {
    rows(client, &format!("SELECT {COLUMNS}, false FROM users")).await
}

/// The `user_views` table of a read database, tombstones included.
pub(crate) async fn read_model(client: &Client) -> anyhow::Result<Model> {
    rows(
        client,
        &format!("SELECT {COLUMNS}, deleted FROM user_views"),
    )
    .await
}

/// Outbox rows still to publish (parked rows wait for a release that knows them).
pub(crate) async fn outbox_pending(client: &Client) -> anyhow::Result<i64> {
    Ok(client
        .query_one("SELECT count(*) FROM outbox WHERE parked_at IS NULL", &[])
        .await?
        .get(0))
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Comparison {
    /// Every way the two models disagree, one line each.
    pub(crate) differences: Vec<String>,
    /// Acknowledged writes (user, version) the read model does not reflect.
    pub(crate) lost: u64,
}

impl Comparison {
    pub(crate) fn agrees(&self) -> bool {
        self.differences.is_empty()
    }

    /// The first few differences, for a failure message.
    pub(crate) fn summary(&self) -> String {
        let shown: Vec<&str> = self
            .differences
            .iter()
            .take(5)
            .map(String::as_str)
            .collect();
        let more = self.differences.len().saturating_sub(shown.len());
        let mut text = shown.join("; ");
        if more > 0 {
            text.push_str(&format!("; and {more} more"));
        }
        text
    }
}

/// How the read model differs from the write model and from what clients were told.
pub(crate) fn compare(write: &Model, read: &Model, acks: &BTreeMap<Uuid, Acks>) -> Comparison {
    let mut comparison = Comparison::default();
    for (id, written) in write {
        match read.get(id) {
            None => comparison.differences.push(format!(
                "user {id} is in the write model ({written}) but not in the read model"
            )),
            Some(view) if view != written => comparison.differences.push(format!(
                "user {id}: write model {written}, read model {view}"
            )),
            Some(_) => {}
        }
    }
    for (id, view) in read {
        if !write.contains_key(id) && !view.deleted {
            comparison.differences.push(format!(
                "user {id} is live in the read model ({view}) but not in the write model"
            ));
        }
    }
    for (id, acks) in acks {
        if let Some(deleted_at) = acks.deleted_at {
            if write.contains_key(id) {
                comparison.differences.push(format!(
                    "user {id}: the deletion at v{deleted_at} was acknowledged, yet the write model has the user"
                ));
            }
            if !read
                .get(id)
                .is_some_and(|view| view.deleted && view.version >= deleted_at as i64)
            {
                comparison.differences.push(format!(
                    "user {id}: the deletion at v{deleted_at} was acknowledged, yet the read model has {}",
                    read.get(id)
                        .map_or_else(|| "no row".to_owned(), ToString::to_string)
                ));
            }
        }
        let seen = read.get(id).map_or(0, |view| view.version);
        let lost = acks.all().filter(|version| *version as i64 > seen).count() as u64;
        if lost > 0 {
            comparison.lost += lost;
            comparison.differences.push(format!(
                "user {id}: {lost} acknowledged version(s) up to v{} are not in the read model (it has v{seen})",
                acks.newest()
            ));
        }
    }
    comparison
}

/// Waits until the outbox is drained and the read model agrees with the write model and the
/// acknowledgements, or `within` runs out; the last comparison and how long it took.
pub(crate) async fn converge(
    write_db: &Client,
    read_db: &Client,
    acks: &BTreeMap<Uuid, Acks>,
    within: Duration,
) -> anyhow::Result<(Comparison, Duration)> {
    let started = Instant::now();
    loop {
        let pending = outbox_pending(write_db).await?;
        let mut comparison = compare(
            &write_model(write_db).await?,
            &read_model(read_db).await?,
            acks,
        );
        if pending > 0 {
            comparison
                .differences
                .push(format!("{pending} outbox rows still unpublished"));
        }
        if comparison.agrees() || started.elapsed() > within {
            return Ok((comparison, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits for the models to agree (see [`converge`]) and records in `rec` what was lost and,
/// when they never agreed, `failure` with the differences.
pub(crate) async fn expect_converged(
    rec: &Recorder,
    write_db: &Client,
    read_db: &Client,
    ledger: &Ledger,
    within: Duration,
    failure: &str,
) -> anyhow::Result<(Comparison, Duration)> {
    let (comparison, took) = converge(write_db, read_db, &ledger.snapshot(), within).await?;
    rec.lost(comparison.lost);
    rec.check(comparison.agrees(), || {
        format!("{failure}: {}", comparison.summary())
    });
    Ok((comparison, took))
}

/// Waits until two read models are equal row by row, or `within` runs out; the differences
/// left.
pub(crate) async fn converge_views(
    expected: &Model,
    read_db: &Client,
    within: Duration,
) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    loop {
        let actual = read_model(read_db).await?;
        let mut differences = Vec::new();
        for (id, want) in expected {
            match actual.get(id) {
                None => differences.push(format!("user {id} ({want}) is missing")),
                Some(have) if have != want => {
                    differences.push(format!("user {id}: expected {want}, got {have}"))
                }
                Some(_) => {}
            }
        }
        for (id, have) in &actual {
            if !expected.contains_key(id) {
                differences.push(format!("user {id} ({have}) was not in the original view"));
            }
        }
        if differences.is_empty() || started.elapsed() > within {
            return Ok(differences);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: i64, deleted: bool) -> ModelUser {
        ModelUser {
            first_name: "Ada".to_owned(),
            last_name: "Lovelace".to_owned(),
            nickname: String::new(),
            email: "ada@example.com".to_owned(),
            country: "GB".to_owned(),
            created_at: 1,
            updated_at: version,
            version,
            deleted,
        }
    }

    fn acked(versions: &[u64], deleted_at: Option<u64>) -> Acks {
        Acks {
            versions: versions.iter().copied().collect(),
            deleted_at,
        }
    }

    #[test]
    fn equal_models_with_a_tombstone_agree() {
        let (live, gone) = (Uuid::now_v7(), Uuid::now_v7());
        let write = Model::from([(live, row(3, false))]);
        let read = Model::from([(live, row(3, false)), (gone, row(2, true))]);
        let acks = BTreeMap::from([(live, acked(&[1, 3], None)), (gone, acked(&[1], Some(2)))]);
        let comparison = compare(&write, &read, &acks);
        assert!(comparison.agrees(), "{:?}", comparison.differences);
        assert_eq!(comparison.lost, 0);
    }

    #[test]
    fn a_lagging_read_model_loses_the_versions_it_lacks() {
        let id = Uuid::now_v7();
        let write = Model::from([(id, row(3, false))]);
        let read = Model::from([(id, row(1, false))]);
        let acks = BTreeMap::from([(id, acked(&[1, 2, 3], None))]);
        let comparison = compare(&write, &read, &acks);
        assert_eq!(comparison.lost, 2);
        assert!(!comparison.agrees());
    }

    #[test]
    fn a_deleted_user_still_live_in_the_read_model_disagrees() {
        let id = Uuid::now_v7();
        let read = Model::from([(id, row(1, false))]);
        let acks = BTreeMap::from([(id, acked(&[1], Some(2)))]);
        let comparison = compare(&Model::new(), &read, &acks);
        assert_eq!(comparison.lost, 1);
        assert_eq!(comparison.differences.len(), 3);
    }
}
