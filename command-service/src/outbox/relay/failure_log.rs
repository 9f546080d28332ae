//! The relay's failures, logged without flooding: a broker that is down fails every record.

use std::time::Duration;

use tokio::time::Instant;

/// Least time between two log lines about failed records.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

/// Logs the first failure, then at most one line per period with how many followed.
#[derive(Default)]
pub(super) struct FailureLog {
    last: Option<Instant>,
    since: u64,
}

impl FailureLog {
    pub(super) fn note(&mut self, error: &str) {
        self.since += 1;
        if self
            .last
            .is_none_or(|last| last.elapsed() >= FAILURE_LOG_EVERY)
        {
            tracing::warn!(%error, failures = self.since, "outbox relay: events stay in the outbox and are retried");
            self.last = Some(Instant::now());
            self.since = 0;
        }
    }
}
