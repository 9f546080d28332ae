use std::time::Duration;

use shared::grpc_error::{FieldViolations, parse_id};
use shared_proto::v1::{GetUserRequest, GetUserResponse};
use tokio::time::Instant;
use uuid::Uuid;

use super::Reads;
use crate::{cache::CachedUser, error::QueryError, view};

/// How often a reader looks at the view again while the event stream has announced the
/// version it waits for but the view has not caught up yet.
const RECHECK: Duration = Duration::from_millis(25);
/// How often it looks when nothing announced that version: only a safety net, since the
/// stream announces every change (to every replica) and wakes the readers.
const BLIND_RECHECK: Duration = Duration::from_millis(500);

pub(super) async fn handle(
    reads: &Reads,
    request: GetUserRequest,
    call_deadline: Option<Instant>,
) -> Result<GetUserResponse, QueryError> {
    let mut violations = FieldViolations::new();
    let Some(id) = violations.check("id", parse_id(&request.id)) else {
        return Err(violations.into());
    };
    let Some(wanted) = request.min_version else {
        return answer(id, lookup(reads, id).await?);
    };
    let mut deadline = Instant::now() + reads.min_version_timeout;
    if let Some(call_deadline) = call_deadline {
        deadline = deadline.min(call_deadline);
    }
    wait_for_version(reads, id, wanted, deadline).await
}

/// Read-your-writes: answers once this replica can serve `id` at `wanted` or newer, or
/// UNAVAILABLE at `deadline`. Readers wake on every projector or feed batch; each checks the
/// cache, and looks at the view (sharing the look with every reader of the same user) only
/// when the stream announced the version or nothing was heard for a while.
async fn wait_for_version(
    reads: &Reads,
    id: Uuid,
    wanted: u64,
    deadline: Instant,
) -> Result<GetUserResponse, QueryError> {
    let wanted_version = i64::try_from(wanted).unwrap_or(i64::MAX);
    let mut last_look: Option<Instant> = None;
    loop {
        // Registered before looking, so a change that lands in between still wakes us.
        let advanced = reads.cache.advanced().notified();
        if let Some(cached) = reads
            .cache
            .peek(&id)
            .filter(|c| c.version >= wanted_version)
        {
            return answer(id, Some(cached));
        }
        let announced = reads
            .cache
            .announced(&id)
            .is_some_and(|version| version >= wanted_version);
        let due = match last_look {
            None => true,
            Some(at) => at.elapsed() >= if announced { RECHECK } else { BLIND_RECHECK },
        };
        if due {
            last_look = Some(Instant::now());
            let looked = tokio::time::timeout_at(deadline, reads.looks.look(&reads.pool, id)).await;
            match looked {
                Err(_) => return Err(QueryError::NotCaughtUp { id, wanted }),
                Ok(Ok(Some(row))) => {
                    reads.cache.offer(id, row.clone());
                    if row.version >= wanted_version {
                        return answer(id, Some(row));
                    }
                }
                Ok(Ok(None)) => {}
                // The shared look failed: one of our own says why.
                Ok(Err(())) => {
                    tokio::time::timeout_at(deadline, lookup_view(reads, id))
                        .await
                        .map_err(|_| QueryError::NotCaughtUp { id, wanted })??;
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(QueryError::NotCaughtUp { id, wanted });
        }
        let wait = if announced { RECHECK } else { BLIND_RECHECK };
        let _ = tokio::time::timeout(wait.min(deadline - now), advanced).await;
    }
}

/// The cached entry, else the view's row (then cached).
async fn lookup(reads: &Reads, id: Uuid) -> Result<Option<CachedUser>, QueryError> {
    if let Some(cached) = reads.cache.get(&id) {
        return Ok(Some(cached));
    }
    lookup_view(reads, id).await
}

async fn lookup_view(reads: &Reads, id: Uuid) -> Result<Option<CachedUser>, QueryError> {
    let row = reads
        .pool
        .run(async |client| Ok::<_, QueryError>(view::get(&*client, id).await?))
        .await?;
    Ok(row.map(|row| {
        let entry = CachedUser::from(&row);
        reads.cache.offer(id, entry.clone());
        entry
    }))
}

fn answer(id: Uuid, found: Option<CachedUser>) -> Result<GetUserResponse, QueryError> {
    match found.and_then(|found| found.user) {
        Some(user) => Ok(GetUserResponse {
            user: Some(user.as_ref().clone()),
        }),
        None => Err(QueryError::NotFound(id)),
    }
}
