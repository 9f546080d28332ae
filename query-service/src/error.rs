//! Every way a query can fail, and the one place each becomes a gRPC status.

use deadpool_postgres::PoolError;
use shared::{db_failure::DbFailure, grpc_error::FieldViolations};
use tonic::Status;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("invalid request: {0:?}")]
    Invalid(FieldViolations),
    #[error("user {0} not found")]
    NotFound(Uuid),
    #[error("the read model has not caught up to version {wanted} of user {id} yet")]
    NotCaughtUp { id: Uuid, wanted: u64 },
    #[error(transparent)]
    Database(#[from] DbFailure),
}

impl From<tokio_postgres::Error> for QueryError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Database(error.into())
    }
}

impl From<PoolError> for QueryError {
    fn from(error: PoolError) -> Self {
        Self::Database(error.into())
    }
}

impl From<FieldViolations> for QueryError {
    fn from(violations: FieldViolations) -> Self {
        Self::Invalid(violations)
    }
}

impl From<QueryError> for Status {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::Invalid(violations) => violations.into(),
            QueryError::NotFound(id) => Status::not_found(format!("user {id} not found")),
            error @ QueryError::NotCaughtUp { .. } => Status::unavailable(error.to_string()),
            QueryError::Database(failure) => failure.into(),
        }
    }
}
