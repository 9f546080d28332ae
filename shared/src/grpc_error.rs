//! INVALID_ARGUMENT statuses that carry `google.rpc.BadRequest` field violations and a short
//! human message such as `email: must be a valid address`.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Longest a field name or a description may be, in characters: a description may quote
/// the bad value, and what a caller sends must not swell the answer past the 16 KiB of
/// headers a gRPC client accepts (it would see RESOURCE_EXHAUSTED instead).
const MAX_TEXT: usize = 120;
/// Violations reported at most; the last one says how many more there were.
const MAX_VIOLATIONS: usize = 10;

/// The field violations found in one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldViolations(Vec<(String, String)>, usize);

impl FieldViolations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        if self.0.len() >= MAX_VIOLATIONS {
            self.1 += 1;
            return;
        }
        self.0
            .push((shortened(field.into()), shortened(description.into())));
    }

    /// Records the error of a check, passing its value on when there was none.
    pub fn check<T, E: Into<String>>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(description) => {
                self.add(field, description);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(f, d)| (f.as_str(), d.as_str()))
    }

    /// Violations found past `MAX_VIOLATIONS`, not reported one by one.
    pub fn more(&self) -> usize {
        self.1
    }

    /// `Ok(())` when nothing was found, else the INVALID_ARGUMENT status.
    pub fn into_result(self) -> Result<(), Status> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.into())
        }
    }
}

impl From<FieldViolations> for Status {
    fn from(violations: FieldViolations) -> Self {
        let mut message = violations
            .iter()
            .map(|(field, description)| format!("{field}: {description}"))
            .collect::<Vec<_>>()
            .join("; ");
        if violations.more() > 0 {
            message.push_str(&format!("; and {} more", violations.more()));
        }
        let mut details = ErrorDetails::new();
        for (field, description) in violations.iter() {
            details.add_bad_request_violation(field, description);
        }
        Status::with_error_details(Code::InvalidArgument, message, details)
    }
}

/// `text` cut to `MAX_TEXT` characters, marked where it was cut.
fn shortened(text: String) -> String {
    match text.char_indices().nth(MAX_TEXT) {
        None => text,
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

/// Checks an id field: required, a UUID.
pub fn parse_id(text: &str) -> Result<uuid::Uuid, &'static str> {
    if text.is_empty() {
        return Err("is required");
    }
    uuid::Uuid::parse_str(text).map_err(|_| "must be a UUID")
}

/// A single-field INVALID_ARGUMENT.
pub fn invalid_field(field: &str, description: &str) -> Status {
    let mut violations = FieldViolations::new();
    violations.add(field, description);
    violations.into()
}

/// The answer of a service to the half of `UserService` that the other service owns.
pub fn owned_by(method: &str, owner: &str) -> Status {
    Status::unimplemented(format!("{method} is served by {owner}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_bad_value_makes_a_short_answer() {
        let mut violations = FieldViolations::new();
        for _ in 0..50 {
            violations.add(
                "filter.countries",
                format!("`{}` is not a country", "x".repeat(5_000)),
            );
        }
        let status = Status::from(violations);
        assert!(status.message().len() < 2_000, "{}", status.message().len());
        assert!(status.details().len() < 4_000, "{}", status.details().len());
        assert!(
            status.message().ends_with("and 40 more"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn violations_become_a_short_message_and_bad_request_details() {
        let mut violations = FieldViolations::new();
        violations.add("email", "must be a valid address");
        violations.add("user.country", "is not an ISO 3166-1 country code");
        let status = Status::from(violations);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "email: must be a valid address; user.country: is not an ISO 3166-1 country code"
        );
        let bad_request = status
            .get_details_bad_request()
            .expect("BadRequest details");
        assert_eq!(bad_request.field_violations.len(), 2);
        assert_eq!(bad_request.field_violations[0].field, "email");
    }
}
