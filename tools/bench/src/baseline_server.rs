//! What the baseline servers of `bin/` share: `user.v1.UserService` with the one method each
//! serves and the others UNIMPLEMENTED, on the HTTP/2 settings the services use.
//! Included by each of them (`#[path]`), as binaries share no library here.

use std::net::SocketAddr;

use shared_proto::v1::{
    self,
    user_service_server::{UserService, UserServiceServer},
};
use tonic::{
    Request, Response, Status,
    transport::{Server, server::TcpIncoming},
};

/// The methods a baseline may serve; each answers UNIMPLEMENTED unless the baseline says
/// otherwise.
#[tonic::async_trait]
pub(crate) trait Serves: Send + Sync + 'static {
    async fn get_user(
        &self,
        _request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::GetUserResponse>, Status> {
        Err(unserved())
    }

    async fn update_user(
        &self,
        _request: Request<v1::UpdateUserRequest>,
    ) -> Result<Response<v1::UpdateUserResponse>, Status> {
        Err(unserved())
    }
}

fn unserved() -> Status {
    Status::unimplemented("not served by this baseline")
}

struct Baseline<S>(S);

#[tonic::async_trait]
impl<S: Serves> UserService for Baseline<S> {
    async fn get_user(
        &self,
        request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::GetUserResponse>, Status> {
        self.0.get_user(request).await
    }

    async fn update_user(
        &self,
        request: Request<v1::UpdateUserRequest>,
    ) -> Result<Response<v1::UpdateUserResponse>, Status> {
        self.0.update_user(request).await
    }

    async fn list_users(
        &self,
        _request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        Err(unserved())
    }

    async fn batch_get_users(
        &self,
        _request: Request<v1::BatchGetUsersRequest>,
    ) -> Result<Response<v1::BatchGetUsersResponse>, Status> {
        Err(unserved())
    }

    async fn get_user_by_email(
        &self,
        _request: Request<v1::GetUserByEmailRequest>,
    ) -> Result<Response<v1::GetUserByEmailResponse>, Status> {
        Err(unserved())
    }

    async fn create_user(
        &self,
        _request: Request<v1::CreateUserRequest>,
    ) -> Result<Response<v1::CreateUserResponse>, Status> {
        Err(unserved())
    }

    async fn delete_user(
        &self,
        _request: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        Err(unserved())
    }
}

/// Serves `baseline` on `addr` until the process is killed: HTTP/2 keepalive every 30 s and
/// TCP_NODELAY, as the services' servers have them.
pub(crate) async fn serve(addr: SocketAddr, baseline: impl Serves) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_service(UserServiceServer::new(Baseline(baseline)))
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await?;
    Ok(())
}
