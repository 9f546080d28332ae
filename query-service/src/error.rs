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
    /// Of a batch: the ids that name no live user, in the order asked.
    #[error("users not found: {0:?}")]
    NotFoundMany(Vec<Uuid>),
    #[error("no user holds that email address")]
    NoUserWithEmail,
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
            QueryError::NotFoundMany(ids) => Status::not_found(not_found_many(&ids)),
            error @ QueryError::NoUserWithEmail => Status::not_found(error.to_string()),
            error @ QueryError::NotCaughtUp { .. } => Status::unavailable(error.to_string()),
            QueryError::Database(failure) => failure.into(),
        }
    }
}

/// Names the ids, the first ten of them when there are more.
fn not_found_many(ids: &[Uuid]) -> String {
    const NAMED: usize = 10;
    let named: Vec<String> = ids.iter().take(NAMED).map(Uuid::to_string).collect();
    let more = ids.len().saturating_sub(NAMED);
    let mut message = format!("users not found: {}", named.join(", "));
    if more > 0 {
        message.push_str(&format!(" and {more} more"));
    }
    message
}
