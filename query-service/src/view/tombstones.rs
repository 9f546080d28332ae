//! Tombstones past their retention go, and each purged user's id stays, so that no event,
//! however late or old, brings that user back.

use std::time::Duration;

use shared::{db::Pool, db_failure::DbFailure};
use tokio_util::sync::CancellationToken;

use super::{PURGE_LOCK, PURGE_TOMBSTONES};

/// Tombstones deleted per statement, so a purge never holds the view for long.
const PURGE_CHUNK: i64 = 10_000;

/// Deletes the tombstones older than `retention`, keeping each purged user's id in
/// `purged_users` so that no event, however late or old, brings that user back; returns how
/// many went. Keeping the ids, rather than a time before which events may not create rows,
/// is what lets a read model catching up on old history keep every user it has not
/// projected yet. The purge lock is taken first, exclusively: a projector batch waits, then
/// sees the ids (see `apply`).
pub async fn purge_tombstones(pool: &Pool, retention: Duration) -> Result<u64, DbFailure> {
    let mut purged = 0;
    loop {
        let count: i64 = pool
            .run(async |client| {
                let tx = client.transaction().await?;
                tx.execute(PURGE_LOCK, &[]).await?;
                let purge = tx.prepare_cached(&PURGE_TOMBSTONES).await?;
                let count = tx
                    .query_one(&purge, &[&retention.as_secs_f64(), &PURGE_CHUNK])
                    .await?
                    .get(0);
                tx.commit().await?;
                Ok::<_, DbFailure>(count)
            })
            .await?;
        purged += count as u64;
        if count < PURGE_CHUNK {
            return Ok(purged);
        }
    }
}

/// Purges old tombstones every `interval`, on every replica (the purges take turns on the
/// purge lock).
pub async fn purge_every(
    pool: Pool,
    retention: Duration,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match purge_tombstones(&pool, retention).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "tombstones past their retention purged"),
            Err(error) => tracing::warn!(%error, "cannot purge tombstones; trying again later"),
        }
    }
}
