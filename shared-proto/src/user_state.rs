//! A user as both databases hold it (never with a password hash), and its protobuf form.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{timestamp, v1};

/// A user: the columns both databases keep of it, never a password hash. The other shapes
/// are built from it: query-service's `UserChange` (a `UserState` and whether it is deleted,
/// what an event carries and a row of the view holds) and `CachedUser` (what GetUser answers
/// from), and `v1::User` on the wire.
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
    /// The columns that hold it in both databases, in this order (`shared::user_row` reads
    /// them).
    pub const COLUMNS: &'static str =
        "id, first_name, last_name, nickname, email, country, created_at, updated_at, version";

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
