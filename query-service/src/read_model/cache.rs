//! Each replica's cache of users, in front of the view table.
//!
//! Only what the view holds enters the cache: rows read from it, and changes the projector
//! has just written to it. The event stream itself never does, since a redelivered or rewound
//! event may be older than the view, and with no entry left to compare against (expired,
//! evicted, a cold replica) it would become what GetUser serves. What the stream does tell the
//! cache is that a user changed: older entries are dropped, and a row of the view older than
//! the announced version is served but not cached, so the cache does not settle on a version
//! the view is about to leave behind (the projector may run on another replica and lag this
//! one's stream). An entry is never replaced by an older version; a deleted user is cached as
//! a tombstone.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use moka::{ops::compute::Op, policy::EvictionPolicy, sync::Cache};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tokio::sync::Notify;
use uuid::Uuid;

use super::encoded_user::EncodedUser;
use crate::user_change::UserChange;

/// What the cache keeps of a user: its version and the encoded protobuf GetUser answers
/// with, `None` once deleted.
#[derive(Debug, Clone)]
pub struct CachedUser {
    pub version: i64,
    pub user: Option<EncodedUser>,
}

impl From<&UserChange> for CachedUser {
    fn from(change: &UserChange) -> Self {
        Self {
            version: change.user.version,
            user: (!change.deleted).then(|| EncodedUser::new(&change.user.to_proto())),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Announcements kept per cache entry: an announcement is a few bytes, and writes touch
/// many more users than readers keep cached.
const ANNOUNCED_PER_ENTRY: u64 = 4;

#[derive(Clone)]
pub struct UserCache {
    cache: Cache<Uuid, CachedUser>,
    /// The newest version the event stream announced per user, kept as long as an entry
    /// would be. Never refused: with the cache's own admission policy an announcement could
    /// be turned away under churn, and an older row then cached for a whole TTL. Least
    /// recently announced goes first, by which time the view has long caught up.
    announced: Cache<Uuid, i64>,
    hits: Counter,
    misses: Counter,
    /// Woken whenever entries may have moved forward, for readers waiting on a version.
    advanced: Arc<Notify>,
    /// Bumped by every change this replica learns of: what was read before is out of date.
    changes: Arc<AtomicU64>,
}

impl UserCache {
    pub fn new(capacity: u64, ttl: Duration, registry: &mut Registry) -> Self {
        let requests = Family::<ResultLabel, Counter>::default();
        registry.register(
            "query_cache_requests",
            "GetUser cache lookups by result (hit or miss)",
            requests.clone(),
        );
        // One statement each: a family's read guard held while it creates another series
        // would deadlock.
        let hits = requests
            .get_or_create(&ResultLabel { result: "hit" })
            .clone();
        let misses = requests
            .get_or_create(&ResultLabel { result: "miss" })
            .clone();
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            announced: Cache::builder()
                .max_capacity(capacity.saturating_mul(ANNOUNCED_PER_ENTRY))
                .time_to_live(ttl)
                .eviction_policy(EvictionPolicy::lru())
                .build(),
            hits,
            misses,
            advanced: Arc::new(Notify::new()),
            changes: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn get(&self, id: &Uuid) -> Option<CachedUser> {
        let found = self.cache.get(id);
        if found.is_some() {
            self.hits.inc();
        } else {
            self.misses.inc();
        }
        found
    }

    /// The entry, if any, without counting a lookup (for readers that look repeatedly).
    pub fn peek(&self, id: &Uuid) -> Option<CachedUser> {
        self.cache.get(id)
    }

    /// Stores `entry`, which the view holds, unless the cache holds this user at the same or
    /// a newer version, or the stream announced a newer one.
    pub fn offer(&self, id: Uuid, entry: CachedUser) {
        if self
            .announced
            .get(&id)
            .is_some_and(|announced| announced > entry.version)
        {
            return;
        }
        self.cache
            .entry(id)
            .and_compute_with(|existing| match existing {
                Some(existing) if existing.value().version >= entry.version => Op::Nop,
                _ => Op::Put(entry),
            });
    }

    /// The projector wrote `entry` to the view: a change, and what the view now holds.
    pub fn written(&self, id: Uuid, entry: CachedUser) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.offer(id, entry);
    }

    /// How many changes this replica has learnt of; anything read before a change is out of
    /// date after it.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// The event stream shows `id` at `version`: an older entry goes.
    pub fn saw_in_stream(&self, id: Uuid, version: i64) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.announced
            .entry(id)
            .and_compute_with(|existing| match existing {
                Some(existing) if *existing.value() >= version => Op::Nop,
                _ => Op::Put(version),
            });
        self.cache
            .entry(id)
            .and_compute_with(|existing| match existing {
                Some(existing) if existing.value().version < version => Op::Remove,
                _ => Op::Nop,
            });
    }

    /// The newest version the stream announced for `id`, while it is remembered.
    pub fn stream_version(&self, id: &Uuid) -> Option<i64> {
        self.announced.get(id)
    }

    /// Tells readers waiting for a version to look again.
    pub fn wake_readers(&self) {
        self.advanced.notify_waiters();
    }

    pub fn reader_wakeups(&self) -> &Notify {
        &self.advanced
    }

    pub fn clear(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
        self.announced.invalidate_all();
        self.wake_readers();
    }
}

#[cfg(test)]
mod tests {
    use shared_proto::v1;

    use super::*;

    fn entry(version: i64, name: &str) -> CachedUser {
        CachedUser {
            version,
            user: Some(EncodedUser::new(&v1::User {
                first_name: name.into(),
                version: version as u64,
                ..v1::User::default()
            })),
        }
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let cache = UserCache::new(100, Duration::from_secs(60), &mut Registry::default());
        let id = Uuid::now_v7();
        cache.offer(id, entry(2, "new"));
        cache.offer(id, entry(1, "old"));
        cache.offer(id, entry(2, "same version"));
        let cached = cache.get(&id).unwrap();
        assert_eq!(cached.user.unwrap().decode().unwrap().first_name, "new");

        cache.offer(
            id,
            CachedUser {
                version: 3,
                user: None,
            },
        );
        cache.offer(id, entry(2, "late update"));
        let cached = cache.get(&id).unwrap();
        assert_eq!((cached.version, cached.user.is_none()), (3, true));
    }

    #[test]
    fn a_row_older_than_the_streams_announcement_is_not_cached() {
        let cache = UserCache::new(100, Duration::from_secs(60), &mut Registry::default());
        let id = Uuid::now_v7();
        cache.offer(id, entry(1, "cached"));
        cache.saw_in_stream(id, 3);
        assert!(cache.get(&id).is_none(), "the older entry is dropped");

        cache.offer(id, entry(2, "a lagging view"));
        assert!(cache.get(&id).is_none());
        cache.offer(id, entry(3, "caught up"));
        assert_eq!(cache.get(&id).unwrap().version, 3);

        cache.saw_in_stream(id, 2);
        assert_eq!(
            cache.get(&id).unwrap().version,
            3,
            "a late announcement changes nothing"
        );
    }

    #[test]
    fn lookups_count_hits_and_misses() {
        let mut registry = Registry::default();
        let cache = UserCache::new(100, Duration::from_secs(60), &mut registry);
        let id = Uuid::now_v7();
        assert!(cache.get(&id).is_none());
        cache.offer(id, entry(1, "Ada"));
        assert!(cache.get(&id).is_some());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("query_cache_requests_total{result=\"hit\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("query_cache_requests_total{result=\"miss\"} 1"),
            "{text}"
        );
    }
}
