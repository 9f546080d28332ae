//! What a failed database call means to a caller: retry later (the database could not be
//! reached or is shedding load), retry the transaction (it lost a race with another one), or
//! a failure of ours (the server refused the statement).

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum DbFailure {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the transaction lost a race with another one: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Failed(#[source] tokio_postgres::Error),
}

/// Errors that pass by themselves: the server is restarting, failing over, out of
/// connections or over a time limit, and a new attempt soon is likely to succeed.
fn is_transient(code: &SqlState) -> bool {
    let class = &code.code()[..2];
    // 08: connection exceptions; 53: insufficient resources (too many connections, memory).
    class == "08"
        || class == "53"
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::QUERY_CANCELED,
            SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
            // A primary that became a standby during a failover.
            SqlState::READ_ONLY_SQL_TRANSACTION,
        ]
        .contains(code)
}

/// Errors a concurrent transaction caused; the same request again is expected to succeed.
fn is_conflict(code: &SqlState) -> bool {
    [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
    ]
    .contains(code)
}

impl From<tokio_postgres::Error> for DbFailure {
    fn from(error: tokio_postgres::Error) -> Self {
        // Errors the server reported carry an SQLSTATE; a lost or refused connection has none.
        match error.code() {
            None => Self::Unavailable(error.to_string()),
            Some(code) if is_transient(code) => Self::Unavailable(error.to_string()),
            Some(code) if is_conflict(code) => Self::Conflict(error.to_string()),
            Some(_) => Self::Failed(error),
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
            DbFailure::Conflict(reason) => {
                tracing::info!(%reason, "transaction conflict");
                Status::aborted("a concurrent change got in the way; retry the call")
            }
            DbFailure::Failed(error) => {
                tracing::error!(%error, detail = ?error.as_db_error(), "database error");
                Status::internal("internal error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_troubles_are_retryable_and_everything_else_is_ours() {
        for code in [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::CONNECTION_FAILURE,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::QUERY_CANCELED,
        ] {
            assert!(is_transient(&code), "{code:?}");
            assert!(!is_conflict(&code), "{code:?}");
        }
        for code in [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
        ] {
            assert!(is_conflict(&code), "{code:?}");
            assert!(!is_transient(&code), "{code:?}");
        }
        for code in [SqlState::SYNTAX_ERROR, SqlState::UNIQUE_VIOLATION] {
            assert!(!is_transient(&code) && !is_conflict(&code), "{code:?}");
        }
    }
}
