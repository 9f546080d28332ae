use shared::grpc_error::{FieldViolations, parse_id};
use shared_proto::v1::{DeleteUserRequest, DeleteUserResponse};

use super::{Commands, check_version};
use crate::{error::CommandError, events, events::Origin, outbox, store};

pub(super) async fn handle(
    commands: &Commands,
    request: DeleteUserRequest,
    origin: Origin,
) -> Result<DeleteUserResponse, CommandError> {
    let mut violations = FieldViolations::new();
    let id = violations.check("id", parse_id(&request.id));
    let Some(id) = id else {
        return Err(violations.into());
    };

    commands
        .pool
        .run(async |client| {
            let tx = client.transaction().await?;
            let current = store::lock(&tx, id).await?;
            check_version(&current, request.expected_version)?;
            let last = store::delete(&tx, id).await?;
            outbox::enqueue(
                &tx,
                &events::user_deleted(&last, origin.clone()),
                commands.notify_relays,
            )
            .await?;
            tx.commit().await?;
            Ok::<_, CommandError>(())
        })
        .await?;
    commands.relay_wake.notify_one();

    tracing::debug!(user_id = %id, caller = ?origin.caller.id, "user deleted");
    Ok(DeleteUserResponse {})
}
