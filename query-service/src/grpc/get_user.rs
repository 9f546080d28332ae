use std::time::Duration;

use shared_proto::v1::{GetUserRequest, GetUserResponse};
use tokio::time::Instant;
use users_shared::grpc_error::{FieldViolations, parse_id};
use uuid::Uuid;

use super::Reads;
use crate::{cache::CachedUser, error::QueryError, view};

/// How often a reader waiting for a version looks again when no event woke it.
const RECHECK: Duration = Duration::from_millis(25);

pub(super) async fn handle(
    reads: &Reads,
    request: GetUserRequest,
) -> Result<GetUserResponse, QueryError> {
    let mut violations = FieldViolations::new();
    let Some(id) = violations.check("id", parse_id(&request.id)) else {
        return Err(violations.into());
    };
    let Some(wanted) = request.min_version else {
        return answer(id, lookup(reads, id).await?);
    };

    let deadline = Instant::now() + reads.min_version_timeout;
    loop {
        // Registered before looking, so an event that lands in between still wakes us.
        let advanced = reads.cache.advanced().notified();
        let cached = reads.cache.get(&id);
        if cached.as_ref().is_some_and(|c| c.version as u64 >= wanted) {
            return answer(id, cached);
        }
        // Not in the cache at that version (missing, or an entry the stream did not
        // refresh): one look at the view per round.
        if let Some(row) = view::get(&reads.pool.get().await?, id).await? {
            let from_view = CachedUser::from(&row);
            reads.cache.offer(id, from_view.clone());
            if from_view.version as u64 >= wanted {
                return answer(id, Some(from_view));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(QueryError::NotCaughtUp { id, wanted });
        }
        let _ = tokio::time::timeout(RECHECK.min(deadline - now), advanced).await;
    }
}

/// The cached entry, else the view's row (then cached).
async fn lookup(reads: &Reads, id: Uuid) -> Result<Option<CachedUser>, QueryError> {
    if let Some(cached) = reads.cache.get(&id) {
        return Ok(Some(cached));
    }
    let client = reads.pool.get().await?;
    Ok(view::get(&client, id).await?.map(|row| {
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
