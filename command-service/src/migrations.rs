//! The write database's schema, from `migrations/write`.

use shared::migrate::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "users_and_outbox",
        sql: include_str!("../../migrations/write/0001_users_and_outbox.sql"),
    },
    Migration {
        version: 2,
        name: "outbox_leases",
        sql: include_str!("../../migrations/write/0002_outbox_leases.sql"),
    },
    Migration {
        version: 3,
        name: "outbox_lease_owner",
        sql: include_str!("../../migrations/write/0003_outbox_lease_owner.sql"),
    },
    Migration {
        version: 4,
        name: "outbox_auth_context",
        sql: include_str!("../../migrations/write/0004_outbox_auth_context.sql"),
    },
    Migration {
        version: 5,
        name: "request_ids",
        sql: include_str!("../../migrations/write/0005_request_ids.sql"),
    },
    Migration {
        version: 6,
        name: "outbox_claim_in_one_statement",
        sql: include_str!("../../migrations/write/0006_outbox_claim_in_one_statement.sql"),
    },
];
