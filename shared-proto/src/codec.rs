//! The protobuf codec of the generated code: prost's, except that a message that cannot be
//! decoded is INVALID_ARGUMENT naming the field and the reason, rather than INTERNAL. For a
//! server that is the caller's bad input (a string that is not UTF-8, a field of the wrong
//! type, a truncated message), not a fault of its own.

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Code, Status,
    codec::{DecodeBuf, Decoder},
};
use tonic_prost::ProstEncoder;
use tonic_types::{ErrorDetails, StatusExt};

#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = MessageDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageDecoder(PhantomData)
    }
}

#[derive(Debug, Clone)]
pub struct MessageDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for MessageDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|error| undecodable(&error))
    }
}

/// prost writes `failed to decode Protobuf message: Inner.field: Outer.field: reason`, the
/// innermost field first.
fn undecodable(error: &prost::DecodeError) -> Status {
    let text = error.to_string();
    let text = text
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(&text);
    let mut fields = Vec::new();
    let mut rest = text;
    while let Some((segment, after)) = rest.split_once(": ") {
        match segment.split_once('.') {
            Some((message, field)) if is_identifier(message) && is_identifier(field) => {
                fields.push(field);
                rest = after;
            }
            _ => break,
        }
    }
    fields.reverse();
    let field = if fields.is_empty() {
        "request".to_owned()
    } else {
        fields.join(".")
    };
    let reason = format!("cannot be decoded: {rest}");
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation(&field, &reason);
    Status::with_error_details(Code::InvalidArgument, format!("{field}: {reason}"), details)
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{CreateUserRequest, User};

    #[test]
    fn a_string_that_is_not_utf8_is_invalid_argument_naming_the_field() {
        let mut bytes = CreateUserRequest {
            user: Some(User {
                email: "ada@example.com".into(),
                ..User::default()
            }),
            password: String::new(),
            request_id: String::new(),
        }
        .encode_to_vec();
        let at = bytes.iter().position(|&b| b == b'@').unwrap();
        bytes[at] = 0xff;
        let error = CreateUserRequest::decode(bytes.as_slice()).unwrap_err();
        let status = undecodable(&error);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status
                .message()
                .starts_with("user.email: cannot be decoded: "),
            "{}",
            status.message()
        );
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations[0].field, "user.email");
    }

    #[test]
    fn junk_is_invalid_argument_for_the_whole_request() {
        let error = CreateUserRequest::decode(&[0xff, 0xff, 0xff][..]).unwrap_err();
        let status = undecodable(&error);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with("request: cannot be decoded"));
    }
}
