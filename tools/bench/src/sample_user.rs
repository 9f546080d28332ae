//! The user the bench makes up by the thousand, shaped as the read rows' users are.

use shared_proto::v1;
use uuid::Uuid;

/// User number `n`, with id `id`, at version 1.
pub(crate) fn ada(n: u64, id: Uuid) -> v1::User {
    let at = prost_types::Timestamp {
        seconds: 1_700_000_000,
        nanos: 0,
    };
    v1::User {
        id: id.to_string(),
        first_name: format!("Ada{n}"),
        last_name: "Lovelace".into(),
        nickname: format!("ada{n}"),
        email: format!("ada{n}@example.com"),
        country: "GB".into(),
        created_at: Some(at),
        updated_at: Some(at),
        version: 1,
    }
}
