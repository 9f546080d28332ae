use shared::grpc_error::{FieldViolations, parse_id};
use shared_proto::v1::GetUserRequest;
use tokio::time::Instant;
use uuid::Uuid;

use super::Reads;
use crate::{
    error::QueryError,
    read_model::{CachedUser, EncodedUser},
};

pub(super) async fn handle(
    reads: &Reads,
    request: GetUserRequest,
    call_deadline: Option<Instant>,
) -> Result<EncodedUser, QueryError> {
    let mut violations = FieldViolations::new();
    let Some(id) = violations.check("id", parse_id(&request.id)) else {
        return Err(violations.into());
    };
    let found = match request.min_version {
        None => reads.model.user(id).await?,
        Some(wanted) => {
            let mut deadline = Instant::now() + reads.min_version_timeout;
            if let Some(call_deadline) = call_deadline {
                deadline = deadline.min(call_deadline);
            }
            Some(reads.model.user_at_least(id, wanted, deadline).await?)
        }
    };
    answer(id, found)
}

fn answer(id: Uuid, found: Option<CachedUser>) -> Result<EncodedUser, QueryError> {
    found
        .and_then(|found| found.user)
        .ok_or(QueryError::NotFound(id))
}
