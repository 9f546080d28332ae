//! A user event decoded into the one thing the read model needs: the user's state at a
//! version, live or deleted.

use prost::Message;
use shared_proto::v1;
use shared_proto::{timestamp, topics::Topics, user_state::UserState};
use uuid::Uuid;

/// A user after one change, live or deleted: what an event carries, and what a row of the
/// view holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChange {
    pub user: UserState,
    pub deleted: bool,
}

/// Why a record cannot be projected; it goes to the dead-letter topic with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndecodableRecord {
    #[error("record from unexpected topic `{0}`")]
    UnknownTopic(String),
    #[error("record has no value")]
    NoPayload,
    #[error("value is not a {message}: {reason}")]
    NotProtobuf {
        message: &'static str,
        reason: String,
    },
    #[error("event carries no user")]
    NoUser,
    #[error("user id `{0}` is not a UUID")]
    BadId(String),
    #[error("user version {0} is out of range")]
    BadVersion(u64),
    #[error("user has no {0}")]
    MissingTimestamp(&'static str),
    #[error("user {0} is outside the years 1 to 9999")]
    TimestampOutOfRange(&'static str),
    #[error("user {0} contains a NUL character")]
    NulInText(&'static str),
}

impl UserChange {
    pub fn decode(
        topics: &Topics,
        topic: &str,
        payload: Option<&[u8]>,
    ) -> Result<Self, UndecodableRecord> {
        let payload = payload.ok_or(UndecodableRecord::NoPayload)?;
        let (user, deleted) = if topic == topics.created {
            (
                decode_as::<v1::UserCreatedEvent>(payload, "UserCreatedEvent")?.user,
                false,
            )
        } else if topic == topics.updated {
            (
                decode_as::<v1::UserUpdatedEvent>(payload, "UserUpdatedEvent")?.user,
                false,
            )
        } else if topic == topics.deleted {
            (
                decode_as::<v1::UserDeletedEvent>(payload, "UserDeletedEvent")?.user,
                true,
            )
        } else {
            return Err(UndecodableRecord::UnknownTopic(topic.to_owned()));
        };
        let user = user.ok_or(UndecodableRecord::NoUser)?;
        Self::from_user(user, deleted)
    }

    fn from_user(user: v1::User, deleted: bool) -> Result<Self, UndecodableRecord> {
        let id =
            Uuid::parse_str(&user.id).map_err(|_| UndecodableRecord::BadId(user.id.clone()))?;
        let version = i64::try_from(user.version)
            .ok()
            .filter(|version| *version >= 1)
            .ok_or(UndecodableRecord::BadVersion(user.version))?;
        // Values Postgres would refuse are refused here, so they are dead-lettered rather
        // than retried forever.
        let time = |at: &Option<prost_types::Timestamp>, name| {
            let at = at
                .as_ref()
                .and_then(timestamp::from_proto)
                .ok_or(UndecodableRecord::MissingTimestamp(name))?;
            if (1..=9999).contains(&at.year()) {
                Ok(at)
            } else {
                Err(UndecodableRecord::TimestampOutOfRange(name))
            }
        };
        for (name, text) in [
            ("first_name", &user.first_name),
            ("last_name", &user.last_name),
            ("nickname", &user.nickname),
            ("email", &user.email),
            ("country", &user.country),
        ] {
            if text.contains('\0') {
                return Err(UndecodableRecord::NulInText(name));
            }
        }
        Ok(Self {
            user: UserState {
                id,
                version,
                created_at: time(&user.created_at, "created_at")?,
                updated_at: time(&user.updated_at, "updated_at")?,
                first_name: user.first_name,
                last_name: user.last_name,
                nickname: user.nickname,
                email: user.email,
                country: user.country,
            },
            deleted,
        })
    }
}

fn decode_as<M: Message + Default>(
    payload: &[u8],
    message: &'static str,
) -> Result<M, UndecodableRecord> {
    M::decode(payload).map_err(|error| UndecodableRecord::NotProtobuf {
        message,
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> v1::User {
        v1::User {
            id: Uuid::now_v7().to_string(),
            first_name: "Ada".into(),
            email: "ada@example.com".into(),
            created_at: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            updated_at: Some(prost_types::Timestamp {
                seconds: 2,
                nanos: 0,
            }),
            version: 3,
            ..v1::User::default()
        }
    }

    #[test]
    fn a_deleted_event_decodes_to_a_tombstone_with_the_last_state() {
        let topics = Topics::with_prefix("");
        let last = user();
        let deleted = v1::UserDeletedEvent {
            user: Some(last.clone()),
            deleted_at: None,
        }
        .encode_to_vec();
        let change = UserChange::decode(&topics, &topics.deleted, Some(&deleted)).unwrap();
        assert!(change.deleted);
        assert_eq!(change.user.version, 3);
        assert_eq!(change.user.to_proto(), last);
    }

    #[test]
    fn garbage_missing_users_and_bad_ids_are_undecodable() {
        let topics = Topics::with_prefix("");
        assert!(matches!(
            UserChange::decode(&topics, &topics.created, Some(b"\xff\xff\xff")),
            Err(UndecodableRecord::NotProtobuf { .. })
        ));
        let empty = v1::UserCreatedEvent { user: None }.encode_to_vec();
        assert_eq!(
            UserChange::decode(&topics, &topics.created, Some(&empty)),
            Err(UndecodableRecord::NoUser)
        );
        let bad_id = v1::UserCreatedEvent {
            user: Some(v1::User {
                id: "42".into(),
                ..user()
            }),
        }
        .encode_to_vec();
        assert_eq!(
            UserChange::decode(&topics, &topics.created, Some(&bad_id)),
            Err(UndecodableRecord::BadId("42".into()))
        );
        assert_eq!(
            UserChange::decode(&topics, &topics.created, None),
            Err(UndecodableRecord::NoPayload)
        );
        let nul = v1::UserCreatedEvent {
            user: Some(v1::User {
                first_name: "A\0a".into(),
                ..user()
            }),
        }
        .encode_to_vec();
        assert_eq!(
            UserChange::decode(&topics, &topics.created, Some(&nul)),
            Err(UndecodableRecord::NulInText("first_name"))
        );
        let ancient = prost_types::Timestamp {
            seconds: -70_000_000_000,
            nanos: 0,
        };
        let old = v1::UserCreatedEvent {
            user: Some(v1::User {
                created_at: Some(ancient),
                ..user()
            }),
        }
        .encode_to_vec();
        assert_eq!(
            UserChange::decode(&topics, &topics.created, Some(&old)),
            Err(UndecodableRecord::TimestampOutOfRange("created_at"))
        );
        assert!(matches!(
            UserChange::decode(&topics, "elsewhere", Some(&empty)),
            Err(UndecodableRecord::UnknownTopic(_))
        ));
    }
}
