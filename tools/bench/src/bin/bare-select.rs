//! The baseline for GetUser from the view: the simplest tonic server that answers GetUser
//! by running the same prepared SELECT through tokio-postgres per call, on a few
//! connections that carry many calls each (tokio-postgres pipelines them), with nothing
//! around it (no cache, no metrics, no spans).
//!
//!     bare-select ADDR DATABASE_URL

use std::sync::atomic::{AtomicUsize, Ordering};

use shared_proto::{
    timestamp,
    v1::{
        self,
        user_service_server::{UserService, UserServiceServer},
    },
};
use tokio_postgres::{Client, NoTls, Statement};
use tonic::{Request, Response, Status, transport::Server};

/// As many as query-service's miss lanes.
const CONNECTIONS: usize = 2;

struct Select {
    clients: Vec<(Client, Statement)>,
    next: AtomicUsize,
}

#[tonic::async_trait]
impl UserService for Select {
    async fn get_user(
        &self,
        request: Request<v1::GetUserRequest>,
    ) -> Result<Response<v1::GetUserResponse>, Status> {
        let id: uuid::Uuid = request
            .get_ref()
            .id
            .parse()
            .map_err(|_| Status::invalid_argument("id"))?;
        let (client, select) =
            &self.clients[self.next.fetch_add(1, Ordering::Relaxed) % CONNECTIONS];
        let row = client
            .query_opt(select, &[&id])
            .await
            .map_err(|error| Status::unavailable(error.to_string()))?
            .filter(|row| !row.get::<_, bool>(9))
            .ok_or_else(|| Status::not_found("user"))?;
        Ok(Response::new(v1::GetUserResponse {
            user: Some(v1::User {
                id: row.get::<_, uuid::Uuid>(0).to_string(),
                first_name: row.get(1),
                last_name: row.get(2),
                nickname: row.get(3),
                email: row.get(4),
                country: row.get(5),
                created_at: Some(timestamp::to_proto(row.get(6))),
                updated_at: Some(timestamp::to_proto(row.get(7))),
                version: row.get::<_, i64>(8) as u64,
            }),
        }))
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
    let url = args.next().expect("DATABASE_URL");
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
        tokio::spawn(connection);
        let select = client
            .prepare(
                "SELECT id, first_name, last_name, nickname, email, country, created_at, \
                 updated_at, version, deleted FROM user_views WHERE id = $1",
            )
            .await?;
        clients.push((client, select));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_service(UserServiceServer::new(Select {
            clients,
            next: AtomicUsize::new(0),
        }))
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await?;
    Ok(())
}
