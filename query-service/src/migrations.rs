//! The read database's schema, from `migrations/read`.

use anyhow::Context;
use shared::{
    db,
    migrate::{self, Migration, MigrationSettings},
};

/// Creates the read database when missing and applies its migrations.
pub async fn migrate(database: &db::Database, settings: &MigrationSettings) -> anyhow::Result<()> {
    migrate::prepare(database, MIGRATIONS, "read", settings)
        .await
        .context("cannot prepare the read database")
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "user_views",
        sql: include_str!("../../migrations/read/0001_user_views.sql"),
    },
    Migration {
        version: 2,
        name: "read_model_generation",
        sql: include_str!("../../migrations/read/0002_read_model_generation.sql"),
    },
    Migration {
        version: 3,
        name: "tombstone_purge",
        sql: include_str!("../../migrations/read/0003_tombstone_purge.sql"),
    },
    Migration {
        version: 4,
        name: "purged_users",
        sql: include_str!("../../migrations/read/0004_purged_users.sql"),
    },
    Migration {
        version: 5,
        name: "user_lookups",
        sql: include_str!("../../migrations/read/0005_user_lookups.sql"),
    },
];
