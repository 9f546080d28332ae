//! Every way a command can fail, and the one place each becomes a gRPC status.

use deadpool_postgres::PoolError;
use shared::{db_failure::DbFailure, grpc_error::FieldViolations};
use tonic::Status;
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
    #[error("user {0} is being changed by other calls; retry")]
    Contended(Uuid),
    #[error("request_id {0} expired while this request looked at it; retry")]
    RequestIdExpired(Uuid),
    /// A recorded answer that does not decode: the record was not written by this service.
    #[error("{0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] DbFailure),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl From<tokio_postgres::Error> for CommandError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Database(error.into())
    }
}

impl From<PoolError> for CommandError {
    fn from(error: PoolError) -> Self {
        Self::Database(error.into())
    }
}

impl From<FieldViolations> for CommandError {
    fn from(violations: FieldViolations) -> Self {
        Self::Invalid(violations)
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
            error @ (CommandError::VersionMismatch { .. }
            | CommandError::Contended(_)
            | CommandError::RequestIdExpired(_)) => Status::aborted(error.to_string()),
            CommandError::Corrupt(error) => {
                tracing::error!(%error, "corrupt record in the write database");
                Status::internal("internal error")
            }
            CommandError::Database(failure) => failure.into(),
            CommandError::Hash(HashError::Busy(waiting)) => Status::unavailable(format!(
                "{waiting} password hashes are already waiting; retry later"
            )),
            CommandError::Hash(error) => {
                tracing::error!(%error, "password hashing failed");
                Status::internal("internal error")
            }
        }
    }
}
