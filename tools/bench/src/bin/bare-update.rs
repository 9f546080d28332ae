//! The baseline for UpdateUser: the simplest tonic server doing its work. Per call, on a
//! pooled connection, it reads the user, then in one statement changes the row at the version
//! read and inserts the outbox row carrying the whole user; the committed event then goes to
//! a bare rdkafka producer (acks=all, as the relay sends), and the outbox row is deleted once
//! the broker acknowledges it. No validation, no lease, no metrics, no spans.
//!
//!     bare-update ADDR DATABASE_URL BROKERS TOPIC

#[path = "../baseline_server.rs"]
mod baseline_server;

use std::{sync::Arc, time::Duration};

use deadpool_postgres::{Manager, Pool};
use prost::Message;
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use shared_proto::{timestamp, v1};
use tokio_postgres::NoTls;
use tonic::{Request, Response, Status};

use baseline_server::Serves;

const READ: &str = "SELECT id, first_name, last_name, nickname, email, country, created_at, \
                    updated_at, version FROM users WHERE id = $1";
const CHANGE: &str = "WITH updated AS (
        UPDATE users SET nickname = $2, updated_at = $3, version = version + 1
        WHERE id = $1 AND version = $4
        RETURNING id, version
    )
    INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, payload, occurred_at)
    SELECT gen_random_uuid(), 'user.v1.UserUpdatedEvent', id, version, $5, $3 FROM updated
    RETURNING id";

struct Update {
    pool: Pool,
    producer: FutureProducer,
    topic: Arc<str>,
}

#[tonic::async_trait]
impl Serves for Update {
    async fn update_user(
        &self,
        request: Request<v1::UpdateUserRequest>,
    ) -> Result<Response<v1::UpdateUserResponse>, Status> {
        let asked = request.into_inner().user.unwrap_or_default();
        let id: uuid::Uuid = asked
            .id
            .parse()
            .map_err(|_| Status::invalid_argument("id"))?;
        let unavailable = |error: &dyn std::fmt::Display| Status::unavailable(error.to_string());
        let client = self.pool.get().await.map_err(|e| unavailable(&e))?;
        let read = client
            .prepare_cached(READ)
            .await
            .map_err(|e| unavailable(&e))?;
        let change = client
            .prepare_cached(CHANGE)
            .await
            .map_err(|e| unavailable(&e))?;
        let row = client
            .query_opt(&read, &[&id])
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or_else(|| Status::not_found("user"))?;
        let read_version: i64 = row.get(8);
        let now = time::OffsetDateTime::now_utc();
        let user = v1::User {
            id: asked.id.clone(),
            first_name: row.get(1),
            last_name: row.get(2),
            nickname: asked.nickname,
            email: row.get(4),
            country: row.get(5),
            created_at: Some(timestamp::to_proto(row.get(6))),
            updated_at: Some(timestamp::to_proto(now)),
            version: read_version as u64 + 1,
        };
        let event = v1::UserUpdatedEvent {
            user: Some(user.clone()),
            changed_fields: vec!["nickname".into()],
        }
        .encode_to_vec();
        let outbox_row: i64 = client
            .query_opt(&change, &[&id, &user.nickname, &now, &read_version, &event])
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or_else(|| Status::aborted("changed meanwhile"))?
            .get(0);
        drop(client);
        let (pool, producer, topic) =
            (self.pool.clone(), self.producer.clone(), self.topic.clone());
        tokio::spawn(async move {
            let key = id.to_string();
            let sent = producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&event),
                    Duration::from_secs(30),
                )
                .await;
            if sent.is_ok()
                && let Ok(client) = pool.get().await
            {
                let _ = client
                    .execute("DELETE FROM outbox WHERE id = $1", &[&outbox_row])
                    .await;
            }
        });
        Ok(Response::new(v1::UpdateUserResponse { user: Some(user) }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args.next().expect("ADDR").parse()?;
    let url = args.next().expect("DATABASE_URL");
    let brokers = args.next().expect("BROKERS");
    let topic = args.next().expect("TOPIC");
    let manager = Manager::new(url.parse()?, NoTls);
    let pool = Pool::builder(manager).max_size(16).build()?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "false")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("batch.num.messages", "1000")
        .create()?;
    baseline_server::serve(
        addr,
        Update {
            pool,
            producer,
            topic: topic.into(),
        },
    )
    .await
}
