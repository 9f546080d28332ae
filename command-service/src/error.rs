//! Every way a command can fail, and the one place each becomes a gRPC status.

use deadpool_postgres::PoolError;
use tonic::Status;
use users_shared::grpc_error::FieldViolations;
use uuid::Uuid;

use crate::password_hasher::HashError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("invalid request: {0:?}")]
    Invalid(FieldViolations),
    #[error("user {0} not found")]
    NotFound(Uuid),
    #[error("a user with this email already exists")]
    EmailTaken,
    #[error("user {id} is at version {actual}, not the expected {expected}")]
    VersionMismatch {
        id: Uuid,
        expected: u64,
        actual: i64,
    },
    #[error("the database is unavailable: {0}")]
    DatabaseUnavailable(String),
    #[error("database error: {0}")]
    Database(tokio_postgres::Error),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl From<PoolError> for CommandError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Backend(error) => Self::from_postgres(error),
            other => Self::DatabaseUnavailable(other.to_string()),
        }
    }
}

impl From<tokio_postgres::Error> for CommandError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::from_postgres(error)
    }
}

impl From<FieldViolations> for CommandError {
    fn from(violations: FieldViolations) -> Self {
        Self::Invalid(violations)
    }
}

impl CommandError {
    /// A lost connection is worth a retry; an error the server reported is not.
    pub fn from_postgres(error: tokio_postgres::Error) -> Self {
        if error.code().is_none() {
            Self::DatabaseUnavailable(error.to_string())
        } else {
            Self::Database(error)
        }
    }
}

impl From<CommandError> for Status {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Invalid(violations) => violations.into(),
            CommandError::NotFound(id) => Status::not_found(format!("user {id} not found")),
            CommandError::EmailTaken => {
                Status::already_exists("email: a user with this address already exists")
            }
            error @ CommandError::VersionMismatch { .. } => Status::aborted(error.to_string()),
            CommandError::DatabaseUnavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                Status::unavailable("the database is unavailable; retry later")
            }
            error @ (CommandError::Database(_) | CommandError::Hash(_)) => {
                tracing::error!(error = %error, cause = ?std::error::Error::source(&error), "command failed");
                Status::internal("internal error")
            }
        }
    }
}
