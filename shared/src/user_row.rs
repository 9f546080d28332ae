//! Reading a [`UserState`] from the columns both databases keep it in.

use shared_proto::user_state::UserState;
use tokio_postgres::Row;

pub trait FromUserRow {
    /// Reads a row whose first columns are [`UserState::COLUMNS`].
    fn from_row(row: &Row) -> Self;
}

impl FromUserRow for UserState {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            first_name: row.get(1),
            last_name: row.get(2),
            nickname: row.get(3),
            email: row.get(4),
            country: row.get(5),
            created_at: row.get(6),
            updated_at: row.get(7),
            version: row.get(8),
        }
    }
}
