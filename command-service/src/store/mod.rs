//! The write database's user table. Every function runs in the caller's transaction so the
//! change and its outbox event commit together.

use deadpool_postgres::Transaction;
use uuid::Uuid;

use crate::{
    domain::{CountryCode, Email, Nickname, PersonName},
    error::CommandError,
    user_record::UserRecord,
};

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
) -> Result<UserRecord, CommandError> {
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
    Ok(UserRecord::from_row(&row))
}

/// The user, locked until the transaction ends.
pub async fn lock(tx: &Transaction<'_>, id: Uuid) -> Result<UserRecord, CommandError> {
    let select = tx.prepare_cached(include_str!("sql/lock_user.sql")).await?;
    tx.query_opt(&select, &[&id])
        .await?
        .map(|row| UserRecord::from_row(&row))
        .ok_or(CommandError::NotFound(id))
}

/// Writes the new values and bumps the version.
pub async fn update(
    tx: &Transaction<'_>,
    id: Uuid,
    values: &UserValues,
) -> Result<UserRecord, CommandError> {
    let update = tx
        .prepare_cached(include_str!("sql/update_user.sql"))
        .await?;
    let row = tx
        .query_one(
            &update,
            &[
                &id,
                &values.first_name,
                &values.last_name,
                &values.nickname,
                &values.email,
                &values.country,
                &values.password_hash,
            ],
        )
        .await
        .map_err(email_taken_or)?;
    Ok(UserRecord::from_row(&row))
}

/// Deletes the user and returns its last state, versioned and timed as the deletion.
pub async fn delete(tx: &Transaction<'_>, id: Uuid) -> Result<UserRecord, CommandError> {
    let delete = tx
        .prepare_cached(include_str!("sql/delete_user.sql"))
        .await?;
    tx.query_opt(&delete, &[&id])
        .await?
        .map(|row| UserRecord::from_row(&row))
        .ok_or(CommandError::NotFound(id))
}

fn email_taken_or(error: tokio_postgres::Error) -> CommandError {
    if users_shared::db::is_unique_violation(&error, EMAIL_KEY) {
        CommandError::EmailTaken
    } else {
        error.into()
    }
}
