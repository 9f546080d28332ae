//! Cache misses, gathered. Misses that wait at the same moment are read in one
//! `WHERE id = ANY($1)`, and concurrent misses of one id once, by a few lanes that each take
//! every miss queued when they come free: under load a round trip serves many calls, and an
//! idle replica still answers a lone miss at once.
//!
//! The lanes are tasks of their own, so a caller that leaves (its deadline passed) takes no
//! connection with it: the lane finishes the read and gives the connection back. At most
//! one connection per lane is ever busy with misses, whatever the callers do.

use std::{collections::HashMap, sync::Arc};

use prometheus_client::{metrics::counter::Counter, registry::Registry};
use shared::db::Pool;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::CachedUser;
use crate::view;

/// Lanes, each reading one batch at a time on one pooled connection.
const LANES: usize = 2;
/// The most ids one read asks for.
const MAX_BATCH: usize = 256;
/// Misses queued at most; past that, callers wait to queue.
const QUEUE: usize = 4096;

/// A miss's answer: the row (live or tombstone) or none; `Err` when the batch's read failed
/// (each caller then reads alone, to learn why).
type Answer = Result<Option<CachedUser>, ()>;

struct Miss {
    id: Uuid,
    answer: oneshot::Sender<Answer>,
}

#[derive(Clone)]
pub(super) struct Loader {
    queue: mpsc::Sender<Miss>,
}

impl Loader {
    pub(super) fn new(pool: Pool, registry: &mut Registry) -> Self {
        let reads = Counter::default();
        registry.register(
            "query_miss_reads",
            "Reads of the view for cache misses, each serving every miss queued at the time",
            reads.clone(),
        );
        let (queue, misses) = mpsc::channel(QUEUE);
        let misses = Arc::new(Mutex::new(misses));
        for _ in 0..LANES {
            tokio::spawn(lane(pool.clone(), Arc::clone(&misses), reads.clone()));
        }
        Self { queue }
    }

    pub(super) async fn load(&self, id: Uuid) -> Answer {
        let (answer, answered) = oneshot::channel();
        self.queue.send(Miss { id, answer }).await.map_err(|_| ())?;
        answered.await.unwrap_or(Err(()))
    }
}

async fn lane(pool: Pool, misses: Arc<Mutex<mpsc::Receiver<Miss>>>, reads: Counter) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut misses = misses.lock().await;
            if misses.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        reads.inc();
        read(&pool, &mut batch).await;
    }
}

/// Reads the rows of `batch`'s ids and answers each, leaving `batch` empty.
async fn read(pool: &Pool, batch: &mut Vec<Miss>) {
    let mut ids: Vec<Uuid> = batch.iter().map(|miss| miss.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = pool
        .run(async |client| {
            view::get_many(&*client, &ids)
                .await
                .map_err(shared::db_failure::DbFailure::from)
        })
        .await;
    let found: Result<HashMap<Uuid, CachedUser>, ()> = match rows {
        Ok(rows) => Ok(rows
            .iter()
            .map(|row| (row.user.id, CachedUser::from(row)))
            .collect()),
        Err(error) => {
            tracing::debug!(%error, misses = batch.len(), "a gathered read of the view failed");
            Err(())
        }
    };
    for miss in batch.drain(..) {
        let answer = match &found {
            Ok(found) => Ok(found.get(&miss.id).cloned()),
            Err(()) => Err(()),
        };
        // A caller that left no longer listens.
        let _ = miss.answer.send(answer);
    }
}
