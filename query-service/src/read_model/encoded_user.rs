//! A cached user as the wire carries it. GetUser and its kin answer with these bytes as they
//! are, so a cache hit neither clones nor encodes a message, and an entry holds one buffer
//! instead of a message of six strings.

use std::sync::Arc;

use prost::Message;
use shared_proto::v1;

/// The protobuf encoding of a `user.v1.User`, made once when the user enters the cache. An
/// `Arc<[u8]>` keeps the count beside the bytes, in one allocation per cached user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedUser(Arc<[u8]>);

impl EncodedUser {
    pub fn new(user: &v1::User) -> Self {
        Self(user.encode_to_vec().into())
    }

    /// The encoding, shared: cloning it copies no bytes.
    pub fn bytes(&self) -> Arc<[u8]> {
        Arc::clone(&self.0)
    }

    /// The message again, for the answers that are built as messages (ListUsers pages).
    pub fn decode(&self) -> Result<v1::User, prost::DecodeError> {
        v1::User::decode(&self.0[..])
    }
}
