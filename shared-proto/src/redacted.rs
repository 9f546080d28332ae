//! Debug for the requests that carry a password: every field but the password.

use std::fmt;

use crate::v1::{CreateUserRequest, UpdateUserRequest};

const REDACTED: &str = "<redacted>";

impl fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("user", &self.user)
            .field("password", &REDACTED)
            .field("request_id", &self.request_id)
            .finish()
    }
}

impl fmt::Debug for UpdateUserRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateUserRequest")
            .field("user", &self.user)
            .field("update_mask", &self.update_mask)
            .field("password", &REDACTED)
            .field("expected_version", &self.expected_version)
            .field("request_id", &self.request_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_never_print_their_password() {
        let create = CreateUserRequest {
            user: None,
            password: "correct horse battery".into(),
            request_id: String::new(),
        };
        let update = UpdateUserRequest {
            password: "correct horse battery".into(),
            ..UpdateUserRequest::default()
        };
        for printed in [format!("{create:?}"), format!("{update:?}")] {
            assert!(!printed.contains("horse"), "{printed}");
            assert!(printed.contains(REDACTED));
        }
    }
}
