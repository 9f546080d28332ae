//! The write database's user table. Every function runs in the caller's transaction so the
//! change and its outbox event commit together.

use deadpool_postgres::{GenericClient, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    domain::{CountryCode, Email, Nickname, PersonName},
    error::CommandError,
    outbox::OutboxEvent,
};
use shared::user_row::FromUserRow;
use shared_proto::user_state::UserState;

/// The constraint behind case-insensitive email uniqueness (migrations/write).
const EMAIL_KEY: &str = "users_email_key";

#[derive(Debug)]
pub struct NewUser {
    pub id: Uuid,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub nickname: Nickname,
    pub email: Email,
    pub country: Option<CountryCode>,
}

/// The values a user has after an update; `password_hash` is `None` when it stays.
pub struct UserValues {
    pub first_name: String,
    pub last_name: String,
    pub nickname: String,
    pub email: String,
    pub country: String,
    pub password_hash: Option<String>,
}

pub async fn insert(
    tx: &Transaction<'_>,
    user: &NewUser,
    password_hash: &str,
) -> Result<UserState, CommandError> {
    let insert = tx
        .prepare_cached(include_str!("sql/insert_user.sql"))
        .await?;
    let country = user.country.map(|c| c.to_string()).unwrap_or_default();
    let row = tx
        .query_one(
            &insert,
            &[
                &user.id,
                &user.first_name.as_str(),
                &user.last_name.as_str(),
                &user.nickname.as_str(),
                &user.email.as_str(),
                &country,
                &password_hash,
            ],
        )
        .await
        .map_err(email_taken_or)?;
    Ok(UserState::from_row(&row))
}

/// The user, locked until the transaction ends.
pub async fn lock(tx: &Transaction<'_>, id: Uuid) -> Result<UserState, CommandError> {
    let select = tx.prepare_cached(include_str!("sql/lock_user.sql")).await?;
    tx.query_opt(&select, &[&id])
        .await?
        .map(|row| UserState::from_row(&row))
        .ok_or(CommandError::NotFound(id))
}

/// The user as it is, and the database's clock now.
pub async fn read<C: GenericClient>(
    client: &C,
    id: Uuid,
) -> Result<(UserState, OffsetDateTime), CommandError> {
    let select = client
        .prepare_cached(include_str!("sql/read_user.sql"))
        .await?;
    let row = client
        .query_opt(&select, &[&id])
        .await?
        .ok_or(CommandError::NotFound(id))?;
    Ok((UserState::from_row(&row), row.get(9)))
}

/// Writes `updated` (the next version of a user read at `updated.version - 1`) and queues
/// its event, in one statement; `notify` wakes the relays at commit. `false` when the user
/// was changed meanwhile: nothing was written.
pub async fn update_with_event<C: GenericClient>(
    client: &C,
    updated: &UserState,
    password_hash: Option<&str>,
    event: &OutboxEvent,
    notify: bool,
) -> Result<bool, CommandError> {
    let update = client
        .prepare_cached(include_str!("sql/update_with_event.sql"))
        .await?;
    let rows = client
        .query(
            &update,
            &[
                &updated.id,
                &updated.first_name,
                &updated.last_name,
                &updated.nickname,
                &updated.email,
                &updated.country,
                &password_hash,
                &updated.updated_at,
                &(updated.version - 1),
                &event.event_id,
                &event.event_type,
                &event.payload,
                &event.traceparent,
                &notify,
                &event.auth_id,
                &event.auth_type,
            ],
        )
        .await
        .map_err(email_taken_or)?;
    Ok(!rows.is_empty())
}

/// Deletes the user and returns its last state, versioned and timed as the deletion.
pub async fn delete(tx: &Transaction<'_>, id: Uuid) -> Result<UserState, CommandError> {
    let delete = tx
        .prepare_cached(include_str!("sql/delete_user.sql"))
        .await?;
    tx.query_opt(&delete, &[&id])
        .await?
        .map(|row| UserState::from_row(&row))
        .ok_or(CommandError::NotFound(id))
}

fn email_taken_or(error: tokio_postgres::Error) -> CommandError {
    if shared::db::is_unique_violation(&error, EMAIL_KEY) {
        CommandError::EmailTaken
    } else {
        error.into()
    }
}
