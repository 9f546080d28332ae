//! Answers built from the cache's encoded users. Each is, on the wire, the message the proto
//! names (`GetUserResponse`, `GetUserByEmailResponse`, `BatchGetUsersResponse`): an embedded
//! message and a `bytes` field holding its encoding are the same bytes (tag, length, payload),
//! so a client decodes them as the generated types. They are only ever encoded.

use std::sync::Arc;

use bytes::{Buf, BufMut};
use prost::{
    DecodeError, Message,
    encoding::{
        DecodeContext, WireType, encode_key, encode_varint, encoded_len_varint, key_len,
        skip_field, string,
    },
};

/// `GetUserResponse` and `GetUserByEmailResponse`: field 1, the user.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct UserAnswer {
    pub(super) user: Arc<[u8]>,
}

/// `BatchGetUsersResponse`: field 1 each user found, field 2 each id missing.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct UsersAnswer {
    pub(super) users: Vec<Arc<[u8]>>,
    pub(super) missing_ids: Vec<String>,
}

impl Message for UserAnswer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encode_bytes(1, &self.user, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        bytes_len(1, &self.user)
    }

    fn clear(&mut self) {
        self.user = Arc::from([]);
    }
}

impl Message for UsersAnswer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for user in &self.users {
            encode_bytes(1, user, buf);
        }
        string::encode_repeated(2, &self.missing_ids, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.users
            .iter()
            .map(|user| bytes_len(1, user))
            .sum::<usize>()
            + string::encoded_len_repeated(2, &self.missing_ids)
    }

    fn clear(&mut self) {
        self.users.clear();
        self.missing_ids.clear();
    }
}

/// A `bytes` field, as prost writes one; prost's own helper takes only `Vec<u8>` or `Bytes`.
fn encode_bytes(tag: u32, value: &[u8], buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(value.len() as u64, buf);
    buf.put_slice(value);
}

fn bytes_len(tag: u32, value: &[u8]) -> usize {
    key_len(tag) + encoded_len_varint(value.len() as u64) + value.len()
}

#[cfg(test)]
mod tests {
    use shared_proto::v1;

    use super::*;
    use crate::read_model::EncodedUser;

    fn ada(n: u64) -> v1::User {
        v1::User {
            id: format!("0190d8e4-0000-7000-8000-00000000000{n}"),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            nickname: "ada".into(),
            email: format!("ada{n}@example.com"),
            country: "GB".into(),
            version: n,
            ..v1::User::default()
        }
    }

    #[test]
    fn a_user_answer_is_a_get_user_response_on_the_wire() {
        let user = ada(1);
        let answer = UserAnswer {
            user: EncodedUser::new(&user).bytes(),
        };
        let generated = v1::GetUserResponse { user: Some(user) };
        assert_eq!(answer.encode_to_vec(), generated.encode_to_vec());
        assert_eq!(answer.encoded_len(), generated.encoded_len());
        let decoded =
            v1::GetUserByEmailResponse::decode(answer.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.user, generated.user);
    }

    #[test]
    fn a_users_answer_is_a_batch_get_users_response_on_the_wire() {
        let users = vec![ada(1), ada(2)];
        let answer = UsersAnswer {
            users: users.iter().map(|u| EncodedUser::new(u).bytes()).collect(),
            missing_ids: vec!["0190d8e4-0000-7000-8000-000000000009".into()],
        };
        let generated = v1::BatchGetUsersResponse {
            users,
            missing_ids: answer.missing_ids.clone(),
        };
        assert_eq!(answer.encode_to_vec(), generated.encode_to_vec());
        assert_eq!(answer.encoded_len(), generated.encoded_len());
        let empty = UsersAnswer::default();
        assert_eq!(
            empty.encode_to_vec(),
            v1::BatchGetUsersResponse::default().encode_to_vec()
        );
    }
}
