use std::{future::Future, sync::Arc, time::Duration};

use clap::Parser;
use prost::Message as _;
use shared::kafka;
use shared_proto::v1::{self, user_service_client::UserServiceClient};
use shared_proto::{event_headers, topics::Topics};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use testkit::{
    broker,
    service_args::{CommandServiceArgs, QueryServiceArgs},
};
use uuid::Uuid;

pub use shared::kafka::header;

pub use testkit::{
    database::TestDatabase,
    events::{EventReader, EventWriter},
    grpc::field_violations as violations,
};
pub const PARTITIONS: i32 = 3;

pub fn new_prefix() -> String {
    format!("test-{}.", Uuid::new_v4().simple())
}

/// The command line a test's query-service runs with; a flag in `extra` replaces the
/// default of the same name (a test may reach the database through a proxy, say).
pub fn query_args(
    db: &TestDatabase,
    prefix: &str,
    group: &str,
    extra: &[&str],
) -> QueryServiceArgs {
    QueryServiceArgs::new()
        .any_ports()
        .database_url(&db.url)
        .brokers(&broker::brokers())
        .topic_prefix(prefix)
        .topic_partitions(PARTITIONS)
        .consumer_group(group)
        .health_check_interval("200ms")
        .min_version_timeout("10s")
        .replay_metrics_addr("127.0.0.1:0")
        .dev_broker()
        .flags(extra)
}

pub struct QueryApp {
    pub client: UserServiceClient<Channel>,
    pub http_addr: std::net::SocketAddr,
    pub grpc_addr: std::net::SocketAddr,
    pub db: Arc<TestDatabase>,
    pub topics: Topics,
    pub prefix: String,
    pub group: String,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// query-service on a fresh database and topic prefix.
pub async fn spawn_query() -> QueryApp {
    let db = Arc::new(TestDatabase::create().await);
    let prefix = new_prefix();
    start_query(db, &prefix, &format!("group-{}", Uuid::new_v4()), &[]).await
}

pub async fn start_query(
    db: Arc<TestDatabase>,
    prefix: &str,
    group: &str,
    extra: &[&str],
) -> QueryApp {
    let cli =
        query_service::config::Cli::try_parse_from(query_args(&db, prefix, group, extra).argv())
            .unwrap_or_else(|error| panic!("{error}"));
    let partitions = cli.config.kafka.topic_partitions;
    let app = query_service::app::App::build(cli.config)
        .await
        .unwrap_or_else(|error| panic!("query-service does not start: {error:#}"));
    let grpc_addr = app.grpc_addr();
    let http_addr = app.http_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run(stop.clone()));
    kafka::ensure_topics(
        &shared::kafka::Cluster::plaintext(broker::brokers()),
        &Topics::with_prefix(prefix).events(),
        &shared::kafka::TopicSettings::fixed(partitions, 1),
    )
    .await
    .expect("topics exist");
    QueryApp {
        client: UserServiceClient::connect(format!("http://{grpc_addr}"))
            .await
            .expect("gRPC client"),
        http_addr,
        grpc_addr,
        db,
        topics: Topics::with_prefix(prefix),
        prefix: prefix.to_owned(),
        group: group.to_owned(),
        stop,
        task: Some(task),
    }
}

impl QueryApp {
    /// Stops the service as SIGTERM would and waits for it to exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.take().expect("running").await?
    }

    pub async fn get(&mut self, id: &str) -> Result<v1::User, tonic::Status> {
        self.client
            .get_user(v1::GetUserRequest {
                id: id.to_owned(),
                min_version: None,
            })
            .await
            .map(|response| response.into_inner().user.expect("a user"))
    }

    /// Waits until GetUser answers `id` at `version` (or, with `None`, NOT_FOUND as deleted).
    /// The view must hold it too: GetUser may answer from the cache, which the event stream
    /// fills before the projector commits the row ListUsers reads.
    pub async fn wait_for(&mut self, id: &str, version: Option<u64>) -> Option<v1::User> {
        let uuid = Uuid::parse_str(id).expect("a UUID");
        let db = self.db.client().await;
        eventually(
            &format!("view row {id} at version {version:?}"),
            Duration::from_secs(30),
            || {
                let db = &db;
                async move {
                    let row = db
                        .query_opt(
                            "SELECT version, deleted FROM user_views WHERE id = $1",
                            &[&uuid],
                        )
                        .await
                        .ok()
                        .flatten()?;
                    let (at, deleted): (i64, bool) = (row.get(0), row.get(1));
                    match version {
                        Some(version) => (at as u64 == version && !deleted).then_some(()),
                        None => deleted.then_some(()),
                    }
                }
            },
        )
        .await;
        eventually(
            &format!("user {id} at version {version:?}"),
            Duration::from_secs(30),
            || {
                let mut client = self.client.clone();
                let id = id.to_owned();
                async move {
                    match client
                        .get_user(v1::GetUserRequest {
                            id,
                            min_version: None,
                        })
                        .await
                    {
                        Ok(response) => {
                            let user = response.into_inner().user.expect("a user");
                            (Some(user.version) == version).then_some(Some(user))
                        }
                        Err(status)
                            if status.code() == tonic::Code::NotFound && version.is_none() =>
                        {
                            Some(None)
                        }
                        Err(_) => None,
                    }
                }
            },
        )
        .await
    }

    /// Every page of ListUsers for `filter`, following the page tokens, `pause` apart.
    pub async fn list_pages(
        &mut self,
        filter: v1::UserFilter,
        page_size: i32,
        pause: Duration,
    ) -> Vec<Vec<v1::User>> {
        let mut pages = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .client
                .list_users(v1::ListUsersRequest {
                    filter: Some(filter.clone()),
                    page_size,
                    page_token,
                })
                .await
                .expect("a page")
                .into_inner();
            pages.push(page.users);
            page_token = page.next_page_token;
            if page_token.is_empty() {
                return pages;
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Every row of the view, live or tombstone, in id order.
    pub async fn view_rows(&self) -> Vec<(Uuid, i64, bool, String)> {
        self.db
            .client()
            .await
            .query(
                "SELECT id, version, deleted, first_name FROM user_views ORDER BY id",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
            .collect()
    }
}

impl Drop for QueryApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// command-service and query-service on one topic prefix, each with its own database.
pub struct System {
    pub commands: UserServiceClient<Channel>,
    pub query: QueryApp,
    command_stop: CancellationToken,
    _command_db: TestDatabase,
}

impl Drop for System {
    fn drop(&mut self) {
        self.command_stop.cancel();
    }
}

pub async fn spawn_system(query_extra: &[&str]) -> System {
    let prefix = new_prefix();
    let command_db = TestDatabase::create().await;
    let args = CommandServiceArgs::new()
        .any_ports()
        .database_url(&command_db.url)
        .brokers(&broker::brokers())
        .topic_prefix(&prefix)
        .topic_partitions(PARTITIONS);
    let cli = command_service::config::Cli::try_parse_from(args.argv())
        .unwrap_or_else(|error| panic!("{error}"));
    let app = command_service::app::App::build(cli.config)
        .await
        .unwrap_or_else(|error| panic!("command-service does not start: {error:#}"));
    let addr = app.grpc_addr();
    let command_stop = CancellationToken::new();
    tokio::spawn(app.run(command_stop.clone()));
    let query_db = Arc::new(TestDatabase::create().await);
    let query = start_query(
        query_db,
        &prefix,
        &format!("group-{}", Uuid::new_v4()),
        query_extra,
    )
    .await;
    System {
        commands: UserServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("gRPC client"),
        query,
        command_stop,
        _command_db: command_db,
    }
}

impl System {
    pub async fn create(&mut self, first_name: &str, country: &str) -> v1::User {
        self.commands
            .create_user(v1::CreateUserRequest {
                user: Some(v1::User {
                    first_name: first_name.into(),
                    last_name: "Lovelace".into(),
                    email: format!("{}@example.com", Uuid::new_v4().simple()),
                    country: country.into(),
                    ..v1::User::default()
                }),
                password: "correct horse battery staple".into(),
                request_id: String::new(),
            })
            .await
            .expect("user created")
            .into_inner()
            .user
            .expect("a user")
    }
}

/// Polls `check` until it gives a value, failing the test after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A user as the command side would publish it.
pub fn user(id: Uuid, version: u64, first_name: &str, country: &str) -> v1::User {
    let at = prost_types::Timestamp {
        seconds: 1_700_000_000 + version as i64,
        nanos: 0,
    };
    v1::User {
        id: id.to_string(),
        first_name: first_name.into(),
        last_name: "Lovelace".into(),
        nickname: String::new(),
        email: format!("{id}@example.com"),
        country: country.into(),
        created_at: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        updated_at: Some(at),
        version,
    }
}

/// Produces the event of one change straight onto the app's topics.
pub async fn publish(writer: &EventWriter, topics: &Topics, kind: &str, user: &v1::User) {
    let (topic, payload, event_type) = match kind {
        "created" => (
            &topics.created,
            v1::UserCreatedEvent {
                user: Some(user.clone()),
            }
            .encode_to_vec(),
            event_headers::USER_CREATED,
        ),
        "updated" => (
            &topics.updated,
            v1::UserUpdatedEvent {
                user: Some(user.clone()),
                changed_fields: vec!["first_name".into()],
            }
            .encode_to_vec(),
            event_headers::USER_UPDATED,
        ),
        "deleted" => (
            &topics.deleted,
            v1::UserDeletedEvent {
                user: Some(user.clone()),
                deleted_at: user.updated_at,
            }
            .encode_to_vec(),
            event_headers::USER_DELETED,
        ),
        other => panic!("no such event kind {other}"),
    };
    let version = user.version.to_string();
    writer
        .send(
            topic,
            &user.id,
            &payload,
            &[
                (event_headers::EVENT_TYPE, event_type),
                (event_headers::VERSION, &version),
            ],
        )
        .await;
}
