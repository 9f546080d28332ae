//! Looks at a user's row in the view, shared: a caller that asks while a look for the same
//! user is under way joins it instead of running its own. Readers waiting for a version all
//! wake at once, on every projector batch; without this, each ran its own SELECT.
//!
//! A look runs on a task of its own, so it finishes (and forgets itself) however its
//! callers go: one whose deadline passes leaves, and the look still gives its connection
//! back. Were the look polled only by its callers, the last one to leave would strand it
//! holding a pooled connection for good.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use shared::db::Pool;
use uuid::Uuid;

use super::{CachedUser, read_view};

/// The row, or `Err` when the shared look failed (logged; each caller may look again alone
/// to learn why).
type Look = Shared<BoxFuture<'static, Result<Option<CachedUser>, ()>>>;

#[derive(Clone)]
pub(super) struct SharedLooks {
    under_way: Arc<Mutex<HashMap<Uuid, Look>>>,
    run: Counter,
}

impl SharedLooks {
    pub(super) fn new(registry: &mut Registry) -> Self {
        let run = Counter::default();
        registry.register(
            "query_view_looks",
            "Reads of the view by GetUser calls waiting for min_version (shared by callers waiting together)",
            run.clone(),
        );
        Self {
            under_way: Arc::default(),
            run,
        }
    }

    pub(super) async fn look(&self, pool: &Pool, id: Uuid) -> Result<Option<CachedUser>, ()> {
        let look = {
            let mut under_way = self.under_way.lock().expect("looks lock poisoned");
            under_way
                .entry(id)
                .or_insert_with(|| {
                    let (pool, under_way) = (pool.clone(), Arc::clone(&self.under_way));
                    self.run.inc();
                    let look = tokio::spawn(async move {
                        let found = read_view(&pool, id).await.map_err(|error| {
                            tracing::debug!(%error, user_id = %id, "shared look at the view failed");
                        });
                        under_way.lock().expect("looks lock poisoned").remove(&id);
                        found
                    });
                    look.map(|joined| joined.unwrap_or(Err(())))
                        .boxed()
                        .shared()
                })
                .clone()
        };
        look.await
    }

    #[cfg(test)]
    fn under_way(&self) -> usize {
        self.under_way.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn callers_that_ask_together_share_one_look() {
        // The maintenance database has no view: every look fails, after a round trip.
        let pool = shared::db::Database::new("postgres://postgres@127.0.0.1:5432/postgres", None)
            .unwrap()
            .pool(4, shared::db::SessionLimits::NONE)
            .unwrap();
        let looks = SharedLooks::new(&mut Registry::default());
        let id = Uuid::now_v7();
        let together: Vec<_> = (0..100).map(|_| looks.look(&pool, id)).collect();
        let results = futures::future::join_all(together).await;
        assert!(results.iter().all(Result::is_err));
        assert_eq!(looks.run.get(), 1, "one look for 100 callers");
        assert_eq!(looks.under_way(), 0, "a finished look is forgotten");

        looks.look(&pool, id).await.unwrap_err();
        assert_eq!(looks.run.get(), 2, "a caller after it looks again");
    }

    #[tokio::test]
    async fn a_look_whose_callers_all_left_still_ends_and_frees_its_connection() {
        let pool = shared::db::Database::new("postgres://postgres@127.0.0.1:5432/postgres", None)
            .unwrap()
            .pool(1, shared::db::SessionLimits::NONE)
            .unwrap();
        let looks = SharedLooks::new(&mut Registry::default());
        // Each caller's deadline passes at its first wait: the look has started (it holds
        // the pool's one connection, or is opening it) and nobody waits for it any more.
        for _ in 0..5 {
            let gone =
                tokio::time::timeout(Duration::ZERO, looks.look(&pool, Uuid::now_v7())).await;
            assert!(gone.is_err(), "the caller left before the look ended");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while looks.under_way() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} looks stranded by callers that left",
                looks.under_way()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The pool's one connection came back: a new look gets it at once (and fails, after
        // its round trip, as every look at this database does).
        let answered =
            tokio::time::timeout(Duration::from_secs(2), looks.look(&pool, Uuid::now_v7())).await;
        assert!(
            answered.is_ok(),
            "a look after them waited for a connection"
        );
    }
}
