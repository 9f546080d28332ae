use shared::{email::Email, grpc_error::FieldViolations};
use shared_proto::v1::GetUserByEmailRequest;

use super::Reads;
use crate::{error::QueryError, read_model::EncodedUser};

pub(super) async fn handle(
    reads: &Reads,
    request: GetUserByEmailRequest,
) -> Result<EncodedUser, QueryError> {
    let mut violations = FieldViolations::new();
    let Some(email) = violations.check("email", Email::parse(&request.email)) else {
        return Err(violations.into());
    };
    reads
        .model
        .user_by_email(email.as_str())
        .await?
        .and_then(|found| found.user)
        .ok_or(QueryError::NoUserWithEmail)
}
