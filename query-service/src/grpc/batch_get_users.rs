use shared::grpc_error::{FieldViolations, parse_id};
use shared_proto::v1::BatchGetUsersRequest;
use uuid::Uuid;

use super::Reads;
use crate::{error::QueryError, read_model::EncodedUser};

/// The most ids one call may ask for (AIP-231 leaves the bound to the service).
const MAX_IDS: usize = 1000;

/// The users found, in the order asked, and (with allow_missing) the ids of those not found.
pub(super) struct Found {
    pub users: Vec<EncodedUser>,
    pub missing: Vec<Uuid>,
}

pub(super) async fn handle(
    reads: &Reads,
    request: BatchGetUsersRequest,
) -> Result<Found, QueryError> {
    let ids = validate(&request.ids)?;
    let found = reads.model.users(&ids).await?;
    let mut users = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    for (id, found) in ids.iter().zip(found) {
        match found.and_then(|found| found.user) {
            Some(user) => users.push(user),
            None => missing.push(*id),
        }
    }
    if !missing.is_empty() && !request.allow_missing {
        return Err(QueryError::NotFoundMany(missing));
    }
    Ok(Found { users, missing })
}

fn validate(ids: &[String]) -> Result<Vec<Uuid>, FieldViolations> {
    let mut violations = FieldViolations::new();
    if ids.len() > MAX_IDS {
        violations.add("ids", format!("must name at most {MAX_IDS} users"));
        return Err(violations);
    }
    let parsed: Vec<Option<Uuid>> = ids
        .iter()
        .enumerate()
        .map(|(at, id)| violations.check(&format!("ids[{at}]"), parse_id(id)))
        .collect();
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(parsed.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_id_is_named_by_its_index() {
        let ids = [Uuid::now_v7().to_string(), "nope".to_owned()];
        let violations = validate(&ids).unwrap_err();
        let fields: Vec<_> = violations.iter().map(|(field, _)| field).collect();
        assert_eq!(fields, ["ids[1]"]);
    }

    #[test]
    fn more_than_a_thousand_ids_are_refused() {
        let ids = vec![Uuid::now_v7().to_string(); MAX_IDS + 1];
        let violations = validate(&ids).unwrap_err();
        assert!(violations.iter().any(|(field, _)| field == "ids"));
        assert_eq!(validate(&ids[..MAX_IDS]).unwrap().len(), MAX_IDS);
    }
}
