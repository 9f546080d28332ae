//! When the relay claims, renews its leases and measures the backlog: every timer of its
//! loop in one value, so their rules can be read, and tested under a paused clock, apart
//! from the database and the broker.

use std::time::Duration;

use shared::backoff::Backoff;
use tokio::time::Instant;

/// How often the leases of records in flight are renewed (the lease is 10 s).
pub(super) const RENEW_EVERY: Duration = Duration::from_secs(3);
/// Least time between two claims when the last one found fewer rows than it could take.
/// Every write wakes the relay, and a claim per wake costs Postgres a committed statement and
/// the broker a produce request for each event; waiting this long gathers the events that
/// arrive meanwhile into one claim, for at most a millisecond of latency.
pub(super) const CLAIM_GAP: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub(super) struct Schedule {
    poll_interval: Duration,
    /// Something says there are rows to take: a wake, a full claim, the start.
    claim_now: bool,
    next_poll: Instant,
    next_renew: Instant,
    next_measure: Instant,
    earliest_claim: Instant,
    /// After a failed claim, the next one waits.
    backoff: Backoff,
}

/// What the relay may do about claiming in this turn of its loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Room {
    /// Records it may still put in flight.
    pub(super) records: usize,
    /// Whether the topics are known to exist (nothing is sent while they may be missing).
    pub(super) topics_ready: bool,
    /// Rows the broker acknowledged, which the next claim deletes.
    pub(super) acknowledged: bool,
}

impl Schedule {
    pub(super) fn new(poll_interval: Duration) -> Self {
        let now = Instant::now();
        Self {
            poll_interval,
            claim_now: true,
            next_poll: now,
            next_renew: now + RENEW_EVERY,
            next_measure: now,
            earliest_claim: now,
            backoff: Backoff::standard(),
        }
    }

    /// A command handler or the LISTEN task said rows were written.
    pub(super) fn woken(&mut self) {
        self.claim_now = true;
    }

    pub(super) fn measure_due(&mut self) -> bool {
        let now = Instant::now();
        if now < self.next_measure {
            return false;
        }
        self.next_measure = now + self.poll_interval;
        true
    }

    pub(super) fn renew_due(&mut self) -> bool {
        let now = Instant::now();
        if now < self.next_renew {
            return false;
        }
        self.next_renew = now + RENEW_EVERY;
        true
    }

    /// Whether to claim now. A poll that is due, or acknowledged rows to delete, call for a
    /// claim; it waits for room, for the topics, and for the gap after a short claim.
    pub(super) fn claim_due(&mut self, room: Room) -> bool {
        self.claim_now |= Instant::now() >= self.next_poll || room.acknowledged;
        self.claim_now
            && room.records > 0
            && room.topics_ready
            && Instant::now() >= self.earliest_claim
    }

    /// A claim took `claimed` of the `limit` rows it asked for. A full claim means more are
    /// waiting: the next goes at once. A short one means the outbox is drained: the next
    /// waits for the gap, a wake or the poll.
    pub(super) fn claimed(&mut self, claimed: usize, limit: usize) {
        let now = Instant::now();
        self.claim_now = claimed == limit;
        self.earliest_claim = now
            + if self.claim_now {
                Duration::ZERO
            } else {
                CLAIM_GAP
            };
        self.backoff.reset();
        self.next_poll = now + self.poll_interval;
    }

    /// A claim failed (the database is down, say): the next waits, longer after each failure.
    pub(super) fn claim_failed(&mut self) {
        self.claim_now = false;
        self.next_poll = Instant::now() + self.backoff.next_wait();
    }

    /// When the loop should next run, or `None` to go round again at once.
    pub(super) fn next_turn(&mut self, room: Room) -> Option<Instant> {
        let now = Instant::now();
        let wants_claim =
            (self.claim_now || room.acknowledged) && room.records > 0 && room.topics_ready;
        if wants_claim && now >= self.earliest_claim {
            return None;
        }
        // While the topics are unknown the poll cannot claim; it waits a whole interval
        // again instead of waking the loop at once.
        if !room.topics_ready && now >= self.next_poll {
            self.next_poll = now + self.poll_interval;
        }
        let mut wake_at = self.next_poll.min(self.next_renew).min(self.next_measure);
        if wants_claim {
            wake_at = wake_at.min(self.earliest_claim);
        }
        Some(wake_at)
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::advance;

    use super::*;

    const POLL: Duration = Duration::from_millis(500);

    fn room() -> Room {
        Room {
            records: 100,
            topics_ready: true,
            acknowledged: false,
        }
    }

    /// A schedule past its first turn, which claims and measures.
    fn after_start() -> Schedule {
        let mut schedule = Schedule::new(POLL);
        assert!(schedule.claim_due(room()));
        assert!(schedule.measure_due());
        schedule
    }

    /// Asserts that a claim is due after `wait` and not a millisecond before.
    async fn claim_due_after(schedule: &mut Schedule, wait: Duration) {
        advance(wait - Duration::from_millis(1)).await;
        assert!(!schedule.claim_due(room()), "claim due before {wait:?}");
        advance(Duration::from_millis(1)).await;
        assert!(schedule.claim_due(room()), "claim not due after {wait:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_claim_is_followed_at_once_and_a_short_one_after_the_gap() {
        let mut schedule = after_start();
        schedule.claimed(10, 10);
        assert!(schedule.claim_due(room()));
        assert_eq!(schedule.next_turn(room()), None);

        schedule.claimed(3, 10);
        schedule.woken();
        assert_eq!(
            schedule.next_turn(room()),
            Some(Instant::now() + CLAIM_GAP),
            "a wake within the gap sleeps to its end"
        );
        claim_due_after(&mut schedule, CLAIM_GAP).await;
    }

    #[tokio::test(start_paused = true)]
    async fn with_nothing_to_do_the_next_claim_and_measure_are_the_poll() {
        let mut schedule = after_start();
        schedule.claimed(0, 10);
        assert_eq!(schedule.next_turn(room()), Some(Instant::now() + POLL));
        claim_due_after(&mut schedule, POLL).await;
        assert!(schedule.measure_due());
        assert!(!schedule.measure_due());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_claims_back_off_doubling_and_a_good_one_starts_over() {
        let mut schedule = after_start();
        for wait in [100, 200, 400, 800, 1600, 3200, 5000, 5000] {
            schedule.claim_failed();
            claim_due_after(&mut schedule, Duration::from_millis(wait)).await;
        }
        schedule.claimed(0, 10);
        schedule.claim_failed();
        claim_due_after(&mut schedule, Duration::from_millis(100)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn acknowledged_rows_call_for_a_claim_that_deletes_them() {
        let mut schedule = after_start();
        schedule.claimed(1, 10);
        advance(CLAIM_GAP).await;
        assert!(!schedule.claim_due(room()));
        let acknowledged = Room {
            acknowledged: true,
            ..room()
        };
        assert!(schedule.claim_due(acknowledged));
    }

    #[tokio::test(start_paused = true)]
    async fn without_room_or_topics_nothing_is_claimed_and_the_loop_sleeps() {
        let mut schedule = after_start();
        let full = Room {
            records: 0,
            ..room()
        };
        assert!(!schedule.claim_due(full));
        assert!(
            schedule.next_turn(full).is_some(),
            "a full relay does not spin"
        );

        let unknown_topics = Room {
            topics_ready: false,
            ..room()
        };
        assert!(!schedule.claim_due(unknown_topics));
        assert_eq!(
            schedule.next_turn(unknown_topics),
            Some(Instant::now() + POLL),
            "a poll that cannot claim waits a whole interval again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn leases_are_renewed_every_three_seconds() {
        let mut schedule = after_start();
        assert!(!schedule.renew_due());
        advance(RENEW_EVERY).await;
        assert!(schedule.renew_due());
        assert!(!schedule.renew_due());
        advance(RENEW_EVERY).await;
        assert!(schedule.renew_due());
    }
}
