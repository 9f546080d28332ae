//! A replay swaps a rebuilt table in for the view and announces it on `view::SWAPPED`; every
//! replica's cache may then hold entries the new table does not, and is cleared.

use std::sync::Arc;

use shared::db::Pool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::UserCache;
use crate::view;

/// Clears `cache` whenever `swapped` is notified and the read model's generation moved. The
/// listener also wakes on every (re)connection, so the generation tells a real swap apart.
pub async fn clear_cache_on_swap(
    swapped: Arc<Notify>,
    pool: Pool,
    cache: UserCache,
    shutdown: CancellationToken,
) {
    let mut known = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = swapped.notified() => {}
        }
        match view::generation(&pool).await {
            Ok(generation) => {
                if known.is_some_and(|known| known != generation) {
                    tracing::info!(generation, "read model swapped; cache cleared");
                    cache.clear();
                }
                known = Some(generation);
            }
            Err(error) => {
                // Unknown: clearing is the safe side.
                tracing::warn!(%error, "cannot read the read model's generation; cache cleared");
                cache.clear();
                known = None;
            }
        }
    }
}
