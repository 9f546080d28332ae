//! The baseline for GetUser from the view: the simplest tonic server that answers GetUser
//! by running the same prepared SELECT through tokio-postgres per call, on a few
//! connections that carry many calls each (tokio-postgres pipelines them), with nothing
//! around it (no cache, no metrics, no spans).
//!
//!     bare-select ADDR DATABASE_URL

#[path = "../baseline_server.rs"]
mod baseline_server;

use std::sync::atomic::{AtomicUsize, Ordering};

use shared_proto::{timestamp, v1};
use tokio_postgres::{Client, NoTls, Statement};
use tonic::{Request, Response, Status};

use baseline_server::Serves;

/// As many as query-service's miss lanes.
const CONNECTIONS: usize = 2;

struct Select {
    clients: Vec<(Client, Statement)>,
    next: AtomicUsize,
}

#[tonic::async_trait]
impl Serves for Select {
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
    baseline_server::serve(
        addr,
        Select {
            clients,
            next: AtomicUsize::new(0),
        },
    )
    .await
}
