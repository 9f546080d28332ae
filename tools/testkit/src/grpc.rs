//! Requests the tests send and what they read from the answers.

/// An UpdateUser of the nickname alone; every call with a new one makes a new version.
pub fn nickname_update(id: &str, nickname: &str) -> shared_proto::v1::UpdateUserRequest {
    shared_proto::v1::UpdateUserRequest {
        user: Some(shared_proto::v1::User {
            id: id.to_owned(),
            nickname: nickname.to_owned(),
            ..shared_proto::v1::User::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["nickname".to_owned()],
        }),
        password: String::new(),
        expected_version: None,
        request_id: String::new(),
    }
}

/// The `google.rpc.BadRequest` field violations a client sees in a status.
pub fn field_violations(status: &tonic::Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| {
            bad.field_violations
                .into_iter()
                .map(|violation| (violation.field, violation.description))
                .collect()
        })
        .unwrap_or_default()
}
