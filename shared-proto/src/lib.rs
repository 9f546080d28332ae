//! The `user.v1` contract shared by command-service, query-service and their clients: the
//! protobuf messages and services, the topics the events travel on, the headers each event
//! carries, and the user's stored shape.

// Generated code.
#[allow(unreachable_pub, clippy::all)]
pub mod user {
    pub mod v1 {
        tonic::include_proto!("user.v1");
    }
}

/// The encoded `FileDescriptorSet` of every `user.v1` file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("user_v1_descriptor");

pub use user::v1;

pub mod codec;
pub mod event_headers;
mod redacted;
pub mod timestamp;
pub mod topics;
pub mod user_state;
