//! The write half of `user.v1.UserService`; one file per RPC.

mod create_user;
mod delete_user;
mod update_user;

use std::sync::Arc;

use shared::{db::Pool, grpc_error::owned_by};
use shared_proto::v1::{self, user_service_server::UserService};
use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::{
    error::CommandError, events::Origin, password_hasher::PasswordHasher, request_ids::RequestIds,
};
use shared_proto::user_state::UserState;

/// What every command handler needs.
#[derive(Clone)]
pub struct Commands {
    pub pool: Pool,
    pub hasher: PasswordHasher,
    /// Whether each write NOTIFYs the relays of every replica (see `outbox::enqueue`).
    pub notify_relays: bool,
    /// Wakes this process's relay after a commit, with or without NOTIFY.
    pub relay_wake: Arc<Notify>,
    pub request_ids: RequestIds,
}

pub struct CommandService {
    commands: Commands,
}

impl CommandService {
    pub fn new(commands: Commands) -> Self {
        Self { commands }
    }
}

const OWNER_OF_READS: &str = "query-service";

#[tonic::async_trait]
impl UserService for CommandService {
    async fn get_user(
        &self,
        _request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::GetUserResponse>, Status> {
        Err(owned_by("GetUser", OWNER_OF_READS))
    }

    async fn list_users(
        &self,
        _request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        Err(owned_by("ListUsers", OWNER_OF_READS))
    }

    async fn batch_get_users(
        &self,
        _request: Request<v1::BatchGetUsersRequest>,
    ) -> Result<Response<v1::BatchGetUsersResponse>, Status> {
        Err(owned_by("BatchGetUsers", OWNER_OF_READS))
    }

    async fn get_user_by_email(
        &self,
        _request: Request<v1::GetUserByEmailRequest>,
    ) -> Result<Response<v1::GetUserByEmailResponse>, Status> {
        Err(owned_by("GetUserByEmail", OWNER_OF_READS))
    }

    async fn create_user(
        &self,
        request: Request<v1::CreateUserRequest>,
    ) -> Result<Response<v1::CreateUserResponse>, Status> {
        let origin = Origin::of(&request);
        Ok(Response::new(
            create_user::handle(&self.commands, request.into_inner(), origin).await?,
        ))
    }

    async fn update_user(
        &self,
        request: Request<v1::UpdateUserRequest>,
    ) -> Result<Response<v1::UpdateUserResponse>, Status> {
        let origin = Origin::of(&request);
        Ok(Response::new(
            update_user::handle(&self.commands, request.into_inner(), origin).await?,
        ))
    }

    async fn delete_user(
        &self,
        request: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        let origin = Origin::of(&request);
        Ok(Response::new(
            delete_user::handle(&self.commands, request.into_inner(), origin).await?,
        ))
    }
}

/// ABORTED unless the user is at the version the caller expected.
fn check_version(user: &UserState, expected: Option<u64>) -> Result<(), CommandError> {
    match expected {
        Some(expected) if user.version as u64 != expected => Err(CommandError::VersionMismatch {
            id: user.id,
            expected,
            actual: user.version,
        }),
        _ => Ok(()),
    }
}
