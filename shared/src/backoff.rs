//! The wait between attempts at something that keeps failing: it doubles after each failure,
//! up to a ceiling, so a dependency that is down is not hammered and one that is back is
//! tried again soon.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    ceiling: Duration,
    upcoming: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, ceiling: Duration) -> Self {
        Self {
            first,
            ceiling,
            upcoming: first,
        }
    }

    /// 100 ms, doubling up to 5 s: what most retry loops of the services use.
    pub const fn standard() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// The wait the next failure gets (for a log line that says when the next attempt is).
    pub fn upcoming(&self) -> Duration {
        self.upcoming
    }

    /// The wait after this failure; the next one waits twice as long, up to the ceiling.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.upcoming;
        self.upcoming = (wait * 2).min(self.ceiling);
        wait
    }

    /// After a success the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.upcoming = self.first;
    }

    /// Sleeps for the wait after this failure; false when `shutdown` came first.
    pub async fn sleep(&mut self, shutdown: &CancellationToken) -> bool {
        let wait = self.next_wait();
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = shutdown.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_doubles_the_wait_up_to_the_ceiling_and_a_success_starts_over() {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
        let waits: Vec<_> = (0..5).map(|_| backoff.next_wait().as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.upcoming(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_lasts_the_wait_unless_shutdown_comes_first() {
        let shutdown = CancellationToken::new();
        let mut backoff = Backoff::standard();
        let started = tokio::time::Instant::now();
        assert!(backoff.sleep(&shutdown).await);
        assert!(backoff.sleep(&shutdown).await);
        assert_eq!(started.elapsed(), Duration::from_millis(300));

        shutdown.cancel();
        assert!(!backoff.sleep(&shutdown).await);
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }
}
