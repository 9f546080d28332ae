//! The read model as the handlers see it: the view table behind a per-replica cache, kept
//! current by the feed, with listing pages kept briefly and looks at one user shared by the
//! readers waiting for it. A handler validates its request and makes one call here; the rules
//! for what enters the cache are in `cache`.

pub mod cache;
pub mod encoded_user;
pub mod feed;
mod loader;
pub mod page_cache;
mod shared_looks;
pub mod swaps;

use std::{collections::HashMap, sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
use shared::{db::Pool, db_failure::DbFailure};
use shared_proto::v1::ListUsersResponse;
use tokio::time::Instant;
use uuid::Uuid;

pub use self::{
    cache::{CachedUser, UserCache},
    encoded_user::EncodedUser,
    page_cache::PageKey,
};
use self::{loader::Loader, page_cache::PageCache, shared_looks::SharedLooks};
use crate::{error::QueryError, user_change::UserChange, view};

/// How often a reader looks at the view again while the event stream has announced the
/// version it waits for but the view has not caught up yet.
const RECHECK: Duration = Duration::from_millis(25);
/// How often it looks when nothing announced that version: only a safety net, since the
/// stream announces every change (to every replica) and wakes the readers.
const BLIND_RECHECK: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct ReadModel {
    pool: Pool,
    cache: UserCache,
    looks: SharedLooks,
    loader: Loader,
    pages: PageCache,
}

impl ReadModel {
    /// `list_cache_ttl` zero keeps no listing pages.
    pub fn new(
        pool: Pool,
        cache: UserCache,
        list_cache_ttl: Duration,
        registry: &mut Registry,
    ) -> Self {
        Self {
            looks: SharedLooks::new(registry),
            loader: Loader::new(pool.clone(), registry),
            pages: PageCache::new(list_cache_ttl, cache.clone()),
            pool,
            cache,
        }
    }

    /// The user as the cache holds it, else as the view does (then cached); `None` when the
    /// view has never heard of it. Misses are read together with those of other callers.
    pub async fn user(&self, id: Uuid) -> Result<Option<CachedUser>, QueryError> {
        if let Some(cached) = self.cache.get(&id) {
            return Ok(Some(cached));
        }
        let found = match self.loader.load(id).await {
            Ok(found) => found,
            // The gathered read failed: a read of our own says why.
            Err(()) => read_view(&self.pool, id).await?,
        };
        if let Some(found) = &found {
            self.cache.offer(id, found.clone());
        }
        Ok(found)
    }

    /// Each of `ids` as [`Self::user`] finds it, in the order asked: the cache's entries, and
    /// the rest of the view's rows read in one query (then cached).
    pub async fn users(&self, ids: &[Uuid]) -> Result<Vec<Option<CachedUser>>, QueryError> {
        let mut found: Vec<Option<CachedUser>> = ids.iter().map(|id| self.cache.get(id)).collect();
        let mut missing: Vec<Uuid> = ids
            .iter()
            .zip(&found)
            .filter(|(_, found)| found.is_none())
            .map(|(id, _)| *id)
            .collect();
        if missing.is_empty() {
            return Ok(found);
        }
        missing.sort_unstable();
        missing.dedup();
        let rows = self
            .pool
            .run(async |client| {
                view::get_many(&*client, &missing)
                    .await
                    .map_err(DbFailure::from)
            })
            .await?;
        let read: HashMap<Uuid, CachedUser> = rows
            .iter()
            .map(|row| (row.user.id, CachedUser::from(row)))
            .collect();
        for (id, user) in &read {
            self.cache.offer(*id, user.clone());
        }
        for (id, slot) in ids.iter().zip(&mut found) {
            if slot.is_none() {
                *slot = read.get(id).cloned();
            }
        }
        Ok(found)
    }

    /// The live user holding `email`, compared case-insensitively, from the view (then
    /// cached by id).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<CachedUser>, QueryError> {
        let row = self
            .pool
            .run(async |client| {
                view::get_by_email(&*client, email)
                    .await
                    .map_err(DbFailure::from)
            })
            .await?;
        Ok(row.map(|row| {
            let found = CachedUser::from(&row);
            self.cache.offer(row.user.id, found.clone());
            found
        }))
    }

    /// Read-your-writes: the user once this replica can serve it at `version` or newer, or
    /// `NotCaughtUp` at `deadline`. Readers wake on every projector or feed batch; each checks
    /// the cache, and looks at the view (sharing the look with every reader of the same user)
    /// only when the stream announced the version or nothing was heard for a while.
    pub async fn user_at_least(
        &self,
        id: Uuid,
        version: u64,
        deadline: Instant,
    ) -> Result<CachedUser, QueryError> {
        let not_caught_up = || QueryError::NotCaughtUp {
            id,
            wanted: version,
        };
        let wanted = i64::try_from(version).unwrap_or(i64::MAX);
        let mut last_look: Option<Instant> = None;
        loop {
            // Registered before looking, so a change that lands in between still wakes us.
            let advanced = self.cache.reader_wakeups().notified();
            if let Some(cached) = self.cache.peek(&id).filter(|c| c.version >= wanted) {
                return Ok(cached);
            }
            let announced = self
                .cache
                .stream_version(&id)
                .is_some_and(|announced| announced >= wanted);
            let recheck = if announced { RECHECK } else { BLIND_RECHECK };
            if last_look.is_none_or(|at| at.elapsed() >= recheck) {
                last_look = Some(Instant::now());
                let looked =
                    tokio::time::timeout_at(deadline, self.looks.look(&self.pool, id)).await;
                match looked.map_err(|_| not_caught_up())? {
                    Ok(Some(row)) => {
                        self.cache.offer(id, row.clone());
                        if row.version >= wanted {
                            return Ok(row);
                        }
                    }
                    Ok(None) => {}
                    // The shared look failed: one of our own says why.
                    Err(()) => {
                        tokio::time::timeout_at(deadline, read_view(&self.pool, id))
                            .await
                            .map_err(|_| not_caught_up())??;
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(not_caught_up());
            }
            let _ = tokio::time::timeout(recheck.min(deadline - now), advanced).await;
        }
    }

    /// A page of the listing: from memory when this replica has read it since the last
    /// change, else from the view. `read` runs the query, given the view's client.
    pub async fn page(
        &self,
        key: PageKey,
        read: impl AsyncFnOnce(&Pool) -> Result<ListUsersResponse, QueryError>,
    ) -> Result<Arc<ListUsersResponse>, QueryError> {
        if let Some(page) = self.pages.get(&key) {
            return Ok(page);
        }
        let changes = self.pages.before_read();
        let page = Arc::new(read(&self.pool).await?);
        self.pages.put(key, changes, Arc::clone(&page));
        Ok(page)
    }
}

/// The one read of a user's row in the view, live or tombstone.
async fn read_view(pool: &Pool, id: Uuid) -> Result<Option<CachedUser>, DbFailure> {
    let row: Option<UserChange> = pool
        .run(async |client| view::get(&*client, id).await.map_err(DbFailure::from))
        .await?;
    Ok(row.as_ref().map(CachedUser::from))
}
