use std::sync::Arc;

use clap::Parser;
use command_service::{app::App, config::Cli, outbox::Relay};
use rdkafka::{Message, message::OwnedMessage};
use shared::kafka;
use shared_proto::topics::Topics;
use shared_proto::v1::{self, user_service_client::UserServiceClient};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

pub use shared::kafka::header;

use testkit::service_args::CommandServiceArgs;
pub use testkit::{
    database::TestDatabase,
    events::EventReader,
    grpc::{field_violations as violations, nickname_update},
};
pub const PARTITIONS: i32 = 3;

pub struct TestApp {
    pub client: UserServiceClient<Channel>,
    pub grpc_addr: std::net::SocketAddr,
    pub http_addr: std::net::SocketAddr,
    pub topics: Topics,
    pub brokers: String,
    pub relay: Arc<Relay>,
    pub db: Arc<TestDatabase>,
    prefix: String,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&testkit::broker::brokers(), &[]).await
}

/// Starts command-service with its own database and topic prefix against `brokers`, with
/// `extra` flags appended to the command line.
pub async fn spawn_app_with(brokers: &str, extra: &[&str]) -> TestApp {
    spawn_app_on(brokers, &new_prefix(), extra).await
}

/// Like [`spawn_app_with`], on the topics of `prefix`.
pub async fn spawn_app_on(brokers: &str, prefix: &str, extra: &[&str]) -> TestApp {
    let db = Arc::new(TestDatabase::create().await);
    start(db, prefix.to_owned(), brokers, extra).await
}

/// Starts command-service on `db`, already prepared as the test needs.
pub async fn spawn_app_on_database(db: Arc<TestDatabase>, extra: &[&str]) -> TestApp {
    start(db, new_prefix(), &testkit::broker::brokers(), extra).await
}

/// A topic prefix of a test's own.
pub fn new_prefix() -> String {
    format!("test-{}.", Uuid::new_v4().simple())
}

async fn start(db: Arc<TestDatabase>, prefix: String, brokers: &str, extra: &[&str]) -> TestApp {
    let args = CommandServiceArgs::new()
        .any_ports()
        .database_url(&db.url)
        .brokers(brokers)
        .topic_prefix(&prefix)
        .topic_partitions(PARTITIONS)
        .outbox_poll_interval("200ms")
        .health_check_interval("200ms")
        .flags(extra);
    let cli = Cli::try_parse_from(args.argv()).unwrap_or_else(|error| panic!("{error}"));
    let app = App::build(cli.config)
        .await
        .unwrap_or_else(|error| panic!("command-service does not start: {error:#}"));
    let grpc_addr = app.grpc_addr();
    let http_addr = app.http_addr();
    let relay = app.relay();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run(stop.clone()));
    let client = UserServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .expect("gRPC client connects");
    TestApp {
        client,
        grpc_addr,
        http_addr,
        topics: Topics::with_prefix(&prefix),
        brokers: brokers.to_owned(),
        relay,
        db,
        prefix,
        stop,
        task: Some(task),
    }
}

impl TestApp {
    /// Another replica on the same database and topics.
    pub async fn replica(&self) -> TestApp {
        start(
            Arc::clone(&self.db),
            self.prefix.clone(),
            &self.brokers,
            &[],
        )
        .await
    }

    /// Stops the service as SIGTERM would and waits for it to exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.take().expect("running").await?
    }

    /// Reads the events of this app's topics from the beginning.
    pub async fn events(&self) -> EventReader {
        kafka::ensure_topics(
            &shared::kafka::Cluster::plaintext(self.brokers.to_owned()),
            &self.topics.events(),
            &shared::kafka::TopicSettings::fixed(PARTITIONS, 1),
        )
        .await
        .expect("topics exist");
        EventReader::new(&self.brokers, &self.topics.events(), PARTITIONS)
    }

    pub async fn create_user(&mut self, email: &str) -> v1::User {
        self.client
            .create_user(create_request(email))
            .await
            .expect("user created")
            .into_inner()
            .user
            .expect("a user in the response")
    }

    /// Sends an UpdateUser that must succeed; the updated user.
    pub async fn update(&mut self, request: v1::UpdateUserRequest) -> v1::User {
        self.client
            .update_user(request)
            .await
            .expect("user updated")
            .into_inner()
            .user
            .expect("a user in the response")
    }

    pub async fn outbox_len(&self) -> i64 {
        let client = self.db.client().await;
        client
            .query_one("SELECT count(*) FROM outbox", &[])
            .await
            .unwrap()
            .get(0)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn create_request(email: &str) -> v1::CreateUserRequest {
    v1::CreateUserRequest {
        user: Some(v1::User {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            nickname: "ada".into(),
            email: email.into(),
            country: "GB".into(),
            ..v1::User::default()
        }),
        password: "correct horse battery staple".into(),
        request_id: String::new(),
    }
}

pub fn unique_email() -> String {
    format!("ada.{}@example.com", Uuid::new_v4().simple())
}

pub fn key(record: &OwnedMessage) -> &str {
    std::str::from_utf8(record.key().expect("a key")).expect("a UTF-8 key")
}

pub fn decode<M: prost::Message + Default>(record: &OwnedMessage) -> M {
    M::decode(record.payload().expect("a payload")).expect("a decodable payload")
}
