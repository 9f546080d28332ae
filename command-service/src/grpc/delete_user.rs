use shared::grpc_error::{FieldViolations, parse_id};
use shared_proto::v1::{DeleteUserRequest, DeleteUserResponse};

use super::{Commands, check_version};
use crate::{
    error::CommandError,
    events,
    events::Origin,
    outbox,
    request_ids::{self, Marked},
    store,
};

pub(super) async fn handle(
    commands: &Commands,
    request: DeleteUserRequest,
    origin: Origin,
) -> Result<DeleteUserResponse, CommandError> {
    let mut violations = FieldViolations::new();
    let id = violations.check("id", parse_id(&request.id));
    let request_id = violations.check("request_id", request_ids::parse(&request.request_id));
    let (Some(id), Some(request_id)) = (id, request_id) else {
        return Err(violations.into());
    };
    let marked = request_id.map(|request_id| {
        let unmarked = DeleteUserRequest {
            request_id: String::new(),
            ..request.clone()
        };
        Marked::new(request_id, "DeleteUser", &unmarked).by(&origin.caller)
    });
    let requests = &commands.request_ids;

    let deleted = commands
        .pool
        .run(async |client| {
            let tx = client.transaction().await?;
            if let Some(marked) = &marked
                && let Some(DeleteUserResponse {}) = requests.claim(&tx, marked).await?
            {
                return Ok(false);
            }
            let current = store::lock(&tx, id).await?;
            check_version(&current, request.expected_version)?;
            let last = store::delete(&tx, id).await?;
            outbox::enqueue(
                &tx,
                &events::user_deleted(&last, origin.clone()),
                commands.notify_relays,
            )
            .await?;
            if let Some(marked) = &marked {
                requests.answer(&tx, marked, &DeleteUserResponse {}).await?;
            }
            tx.commit().await?;
            Ok::<_, CommandError>(true)
        })
        .await?;
    if deleted {
        commands.relay_wake.notify_one();
        tracing::debug!(user_id = %id, caller = ?origin.caller.id, "user deleted");
    }
    Ok(DeleteUserResponse {})
}
