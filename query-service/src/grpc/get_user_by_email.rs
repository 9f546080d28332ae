use shared::{email::Email, grpc_error::FieldViolations};
use shared_proto::v1::{GetUserByEmailRequest, GetUserByEmailResponse};

use super::Reads;
use crate::error::QueryError;

pub(super) async fn handle(
    reads: &Reads,
    request: GetUserByEmailRequest,
) -> Result<GetUserByEmailResponse, QueryError> {
    let mut violations = FieldViolations::new();
    let Some(email) = violations.check("email", Email::parse(&request.email)) else {
        return Err(violations.into());
    };
    match reads
        .model
        .user_by_email(email.as_str())
        .await?
        .and_then(|found| found.user)
    {
        Some(user) => Ok(GetUserByEmailResponse {
            user: Some(user.as_ref().clone()),
        }),
        None => Err(QueryError::NoUserWithEmail),
    }
}
