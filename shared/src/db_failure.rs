//! What a failed database call means to a caller: retry later (the database could not be
//! reached) or a failure of ours (the server refused the statement).

use deadpool_postgres::PoolError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum DbFailure {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Failed(#[source] tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for DbFailure {
    fn from(error: tokio_postgres::Error) -> Self {
        // Errors the server reported carry an SQLSTATE; a lost or refused connection has none.
        if error.code().is_none() {
            Self::Unavailable(error.to_string())
        } else {
            Self::Failed(error)
        }
    }
}

impl From<PoolError> for DbFailure {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Backend(error) => error.into(),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<DbFailure> for Status {
    fn from(failure: DbFailure) -> Self {
        match failure {
            DbFailure::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                Status::unavailable("the database is unavailable; retry later")
            }
            DbFailure::Failed(error) => {
                tracing::error!(%error, detail = ?error.as_db_error(), "database error");
                Status::internal("internal error")
            }
        }
    }
}
