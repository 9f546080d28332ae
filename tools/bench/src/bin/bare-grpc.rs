//! The baseline for GetUser from the cache: a bare tonic server on the same runtime and
//! server settings as the services, answering every GetUser with one fixed response and
//! nothing around it (no metrics, no spans, no cache).
//!
//!     bare-grpc ADDR RESPONSE_HEX

use prost::Message;
use shared_proto::v1::{
    self,
    user_service_server::{UserService, UserServiceServer},
};
use tonic::{Request, Response, Status, transport::Server};

struct Fixed(v1::GetUserResponse);

#[tonic::async_trait]
impl UserService for Fixed {
    async fn get_user(
        &self,
        _request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::GetUserResponse>, Status> {
        Ok(Response::new(self.0.clone()))
    }

    async fn list_users(
        &self,
        _request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn batch_get_users(
        &self,
        _request: Request<v1::BatchGetUsersRequest>,
    ) -> Result<Response<v1::BatchGetUsersResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn get_user_by_email(
        &self,
        _request: Request<v1::GetUserByEmailRequest>,
    ) -> Result<Response<v1::GetUserByEmailResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn create_user(
        &self,
        _request: Request<v1::CreateUserRequest>,
    ) -> Result<Response<v1::CreateUserResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn update_user(
        &self,
        _request: Request<v1::UpdateUserRequest>,
    ) -> Result<Response<v1::UpdateUserResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }

    async fn delete_user(
        &self,
        _request: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        Err(Status::unimplemented("baseline"))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args.next().expect("ADDR").parse()?;
    let hex = args.next().expect("RESPONSE_HEX");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16))
        .collect::<Result<_, _>>()?;
    let response = v1::GetUserResponse::decode(bytes.as_slice())?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_service(UserServiceServer::new(Fixed(response)))
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await?;
    Ok(())
}
