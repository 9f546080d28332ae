//! ListUsers pages answered again from memory, briefly: a page is kept at most
//! `LIST_CACHE_TTL`, and only while this replica has seen no user change since it was read.
//! Readers of a listing far outnumber writers; a listing is as fresh as the read model
//! behind it either way.

use std::{sync::Arc, time::Duration};

use moka::sync::Cache;
use shared_proto::v1::ListUsersResponse;

use super::UserCache;

/// A request as it came: the filter, the page token (verified when the page was first
/// read) and the page size.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct PageKey {
    pub filter: [u8; 8],
    pub page_token: String,
    pub page_size: i64,
}

#[derive(Clone)]
pub(super) struct PageCache {
    /// Each page with the count of changes when it was read.
    pages: Option<Cache<PageKey, (u64, Arc<ListUsersResponse>)>>,
    users: UserCache,
}

impl PageCache {
    /// Off when `ttl` is zero.
    pub(super) fn new(ttl: Duration, users: UserCache) -> Self {
        Self {
            pages: (!ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(ttl)
                    .build()
            }),
            users,
        }
    }

    /// The page, if read since the last change.
    pub(super) fn get(&self, key: &PageKey) -> Option<Arc<ListUsersResponse>> {
        let (changes, page) = self.pages.as_ref()?.get(key)?;
        (changes == self.users.changes()).then_some(page)
    }

    /// Where a read starts: the count of changes to keep its page under.
    pub(super) fn before_read(&self) -> u64 {
        self.users.changes()
    }

    pub(super) fn put(&self, key: PageKey, changes_before_read: u64, page: Arc<ListUsersResponse>) {
        if let Some(pages) = &self.pages {
            pages.insert(key, (changes_before_read, page));
        }
    }
}
