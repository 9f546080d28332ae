//! A user as both databases hold it (never with a password hash), and its protobuf form.

use shared_proto::v1;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    pub id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub nickname: String,
    pub email: String,
    pub country: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

impl UserState {
    /// The columns `from_row` reads, in its order.
    pub const COLUMNS: &'static str =
        "id, first_name, last_name, nickname, email, country, created_at, updated_at, version";

    /// Reads a row whose first columns are [`Self::COLUMNS`].
    pub fn from_row(row: &Row) -> Self {
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

    pub fn to_proto(&self) -> v1::User {
        v1::User {
            id: self.id.to_string(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            nickname: self.nickname.clone(),
            email: self.email.clone(),
            country: self.country.clone(),
            created_at: Some(timestamp::to_proto(self.created_at)),
            updated_at: Some(timestamp::to_proto(self.updated_at)),
            version: self.version as u64,
        }
    }
}
