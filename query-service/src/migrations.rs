//! The read database's schema, from `migrations/read`.

use users_shared::db::Migration;

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
];
