//! The connection pool both services use. Every call through it is bounded in time, and a
//! connection whose call did not finish (it timed out, or its caller was cancelled) is
//! closed instead of going back to the pool: its query may still be in flight, on a socket
//! that may be dead without anyone having said so (a failover that moved an address, a
//! partition). Postgres's own `statement_timeout` cannot help there, since the server never
//! sees the query.

use std::time::Duration;

use deadpool_postgres::{Object, Status};

use crate::db_failure::DbFailure;

/// How much longer than the server's statement timeout a call may take: a few round trips
/// and a commit on top of its slowest statement.
pub const CALL_MARGIN: Duration = Duration::from_secs(2);

/// A pooled connection, as a call's work gets it.
pub type Client = Object;

#[derive(Clone)]
pub struct Pool {
    inner: deadpool_postgres::Pool,
    call_limit: Option<Duration>,
}

impl Pool {
    pub(crate) fn new(inner: deadpool_postgres::Pool, call_limit: Option<Duration>) -> Self {
        Self { inner, call_limit }
    }

    /// Runs `work` on a pooled connection, within the pool's call limit (the wait for a
    /// connection included). Whatever `work` returns, the connection goes back to the pool;
    /// when `work` does not finish, because the limit passed or the caller dropped this
    /// future, the connection is closed.
    pub async fn run<T, E>(
        &self,
        work: impl AsyncFnOnce(&mut Client) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbFailure>,
    {
        let call = async {
            let mut checkout = Checkout(Some(self.inner.get().await.map_err(DbFailure::from)?));
            let client = checkout.0.as_mut().expect("checked out");
            let result = work(client).await;
            checkout.finish();
            result
        };
        match self.call_limit {
            None => call.await,
            Some(limit) => match tokio::time::timeout(limit, call).await {
                Ok(result) => result,
                Err(_) => Err(DbFailure::Unavailable(format!(
                    "no answer from the database within {limit:?}; the connection was closed"
                ))
                .into()),
            },
        }
    }

    /// How long one call may take at most, if bounded.
    pub fn call_limit(&self) -> Option<Duration> {
        self.call_limit
    }

    /// The pool's connections: open, idle, and callers waiting for one.
    pub fn status(&self) -> Status {
        self.inner.status()
    }
}

/// A connection out of the pool. Dropped before `finish`, it is detached from the pool and
/// closed (dropping deadpool's client aborts the task that drives its socket).
struct Checkout(Option<Object>);

impl Checkout {
    fn finish(mut self) {
        // Back to the pool.
        drop(self.0.take());
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(unfinished) = self.0.take() {
            tracing::debug!("a database call did not finish; its connection is closed");
            drop(Object::take(unfinished));
        }
    }
}
