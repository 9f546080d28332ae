//! The read half of `user.v1.UserService`; one file per RPC.

mod answers;
mod batch_get_users;
mod get_user;
mod get_user_by_email;
mod list_users;
mod routes;

pub use routes::ReadRoutes;

use std::time::Duration;

use shared::{grpc_deadline, grpc_error::owned_by};
use shared_proto::v1::{self, user_service_server::UserService};
use tonic::{Request, Response, Status};

use crate::{
    page_token::PageTokens,
    read_model::{EncodedUser, ReadModel},
};

/// What every query handler needs.
#[derive(Clone)]
pub struct Reads {
    pub model: ReadModel,
    pub page_tokens: PageTokens,
    /// The longest a GetUser with `min_version` waits for the read model.
    pub min_version_timeout: Duration,
}

pub struct QueryService {
    reads: Reads,
}

impl QueryService {
    pub fn new(reads: Reads) -> Self {
        Self { reads }
    }
}

const OWNER_OF_WRITES: &str = "command-service";

/// The served process answers the cache's reads with their bytes (`ReadRoutes`); this
/// implementation of the generated trait, for callers of it as a library, decodes them.
fn decoded(user: &EncodedUser) -> Result<v1::User, Status> {
    user.decode()
        .map_err(|error| Status::internal(format!("a cached user does not decode: {error}")))
}

#[tonic::async_trait]
impl UserService for QueryService {
    async fn get_user(
        &self,
        request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::GetUserResponse>, Status> {
        let deadline = grpc_deadline::of(request.metadata());
        let user = get_user::handle(&self.reads, request.into_inner(), deadline).await?;
        Ok(Response::new(v1::GetUserResponse {
            user: Some(decoded(&user)?),
        }))
    }

    async fn list_users(
        &self,
        request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        Ok(Response::new(
            list_users::handle(&self.reads, request.into_inner()).await?,
        ))
    }

    async fn batch_get_users(
        &self,
        request: Request<v1::BatchGetUsersRequest>,
    ) -> Result<Response<v1::BatchGetUsersResponse>, Status> {
        let found = batch_get_users::handle(&self.reads, request.into_inner()).await?;
        Ok(Response::new(v1::BatchGetUsersResponse {
            users: found.users.iter().map(decoded).collect::<Result<_, _>>()?,
            missing_ids: found.missing.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn get_user_by_email(
        &self,
        request: Request<v1::GetUserByEmailRequest>,
    ) -> Result<Response<v1::GetUserByEmailResponse>, Status> {
        let user = get_user_by_email::handle(&self.reads, request.into_inner()).await?;
        Ok(Response::new(v1::GetUserByEmailResponse {
            user: Some(decoded(&user)?),
        }))
    }

    async fn create_user(
        &self,
        _request: Request<v1::CreateUserRequest>,
    ) -> Result<Response<v1::CreateUserResponse>, Status> {
        Err(owned_by("CreateUser", OWNER_OF_WRITES))
    }

    async fn update_user(
        &self,
        _request: Request<v1::UpdateUserRequest>,
    ) -> Result<Response<v1::UpdateUserResponse>, Status> {
        Err(owned_by("UpdateUser", OWNER_OF_WRITES))
    }

    async fn delete_user(
        &self,
        _request: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        Err(owned_by("DeleteUser", OWNER_OF_WRITES))
    }
}
