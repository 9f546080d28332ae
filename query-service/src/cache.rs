//! Each replica's cache of users, in front of the view table. An entry is never replaced by
//! an older version, so the event stream and database reads can race to fill it in any
//! order; a deleted user is cached as a tombstone.

use std::{sync::Arc, time::Duration};

use moka::{ops::compute::Op, sync::Cache};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use shared_proto::v1;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::user_change::UserChange;

/// A user at a version; `None` once deleted.
#[derive(Debug, Clone)]
pub struct CachedUser {
    pub version: i64,
    pub user: Option<Arc<v1::User>>,
}

impl From<&UserChange> for CachedUser {
    fn from(change: &UserChange) -> Self {
        Self {
            version: change.user.version,
            user: (!change.deleted).then(|| Arc::new(change.user.to_proto())),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone)]
pub struct UserCache {
    cache: Cache<Uuid, CachedUser>,
    requests: Family<ResultLabel, Counter>,
    /// Woken whenever entries may have moved forward, for readers waiting on a version.
    advanced: Arc<Notify>,
}

impl UserCache {
    pub fn new(capacity: u64, ttl: Duration, registry: &mut Registry) -> Self {
        let requests = Family::<ResultLabel, Counter>::default();
        registry.register(
            "query_cache_requests",
            "GetUser cache lookups by result (hit or miss)",
            requests.clone(),
        );
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            requests,
            advanced: Arc::new(Notify::new()),
        }
    }

    pub fn get(&self, id: &Uuid) -> Option<CachedUser> {
        let found = self.cache.get(id);
        let result = if found.is_some() { "hit" } else { "miss" };
        self.requests.get_or_create(&ResultLabel { result }).inc();
        found
    }

    /// Stores `entry` unless the cache holds this user at the same or a newer version.
    pub fn offer(&self, id: Uuid, entry: CachedUser) {
        self.cache
            .entry(id)
            .and_compute_with(|existing| match existing {
                Some(existing) if existing.value().version >= entry.version => Op::Nop,
                _ => Op::Put(entry),
            });
    }

    /// Tells readers waiting for a version to look again.
    pub fn announce(&self) {
        self.advanced.notify_waiters();
    }

    pub fn advanced(&self) -> &Notify {
        &self.advanced
    }

    pub fn clear(&self) {
        self.cache.invalidate_all();
        self.announce();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: i64, name: &str) -> CachedUser {
        CachedUser {
            version,
            user: Some(Arc::new(v1::User {
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
        assert_eq!(cached.user.unwrap().first_name, "new");

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
