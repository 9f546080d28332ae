//! One scenario's world: a broker of its own, a write and a read database of its own, its
//! own topic prefix and consumer group, and both services as processes on free ports.

use std::time::Duration;

use anyhow::Context;
use shared::kafka;
use shared_proto::topics::Topics;

use testkit::{
    broker::PrivateBroker,
    database::TestDatabase,
    service_args::{CommandServiceArgs, QueryServiceArgs, ServiceArgs},
    test_proxy::FreezingProxy,
};
use uuid::Uuid;

use crate::{
    client::{self, UserClient},
    ledger::Ledger,
    models,
    outcome::Recorder,
    pg,
    process::{Service, Suite},
};

pub(crate) const PARTITIONS: i32 = 3;

/// Extra flags for either service, and whether the broker can be told to refuse a topic.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    pub(crate) schemas: bool,
    pub(crate) command: Vec<String>,
    pub(crate) query: Vec<String>,
    /// Each service reaches its database through a proxy that can silence its connections.
    pub(crate) proxied_databases: bool,
    /// Every topic the services use (the dead-letter topic too) exists before they start,
    /// as where the platform manages topics.
    pub(crate) topics_first: bool,
}

/// The proxies between each service and its database.
pub(crate) struct DatabaseProxies {
    pub(crate) write: FreezingProxy,
    pub(crate) read: FreezingProxy,
}

/// Fields drop in order: the services stop before their databases are dropped.
pub(crate) struct Stack {
    pub(crate) command: Service,
    pub(crate) query: Service,
    pub(crate) proxies: Option<DatabaseProxies>,
    pub(crate) write_db: TestDatabase,
    pub(crate) read_db: TestDatabase,
    pub(crate) broker: PrivateBroker,
    pub(crate) prefix: String,
    pub(crate) topics: Topics,
}

impl Stack {
    pub(crate) async fn start(suite: &Suite, name: &str, options: Options) -> anyhow::Result<Self> {
        let schemas = options.schemas;
        let broker = tokio::task::spawn_blocking(move || {
            if schemas {
                PrivateBroker::start_with_schemas()
            } else {
                PrivateBroker::start()
            }
        })
        .await
        .context("cannot start a broker")?;
        let write_db = TestDatabase::create().await;
        let read_db = TestDatabase::create().await;
        let prefix = new_prefix();
        let brokers = broker.brokers();
        if options.topics_first {
            ensure_topics(&brokers, &prefix).await?;
            let topics = Topics::with_prefix(&prefix);
            kafka::ensure_topics(
                &shared::kafka::Cluster::plaintext(brokers.clone()),
                &[&topics.dead_letter],
                &shared::kafka::TopicSettings::fixed(PARTITIONS, 1),
            )
            .await
            .context("cannot create the dead-letter topic")?;
        }
        let proxies = if options.proxied_databases {
            let postgres = "127.0.0.1:5432".parse().expect("an address");
            Some(DatabaseProxies {
                write: FreezingProxy::start(postgres).await,
                read: FreezingProxy::start(postgres).await,
            })
        } else {
            None
        };
        let (write_url, read_url) = match &proxies {
            Some(proxies) => (
                proxies.write.postgres_url(&write_db.url),
                proxies.read.postgres_url(&read_db.url),
            ),
            None => (write_db.url.clone(), read_db.url.clone()),
        };

        let args = common_args(CommandServiceArgs::new(), &write_url, &brokers, &prefix)
            .outbox_poll_interval("200ms")
            .health_check_interval("200ms")
            .flags(options.command);
        let command = Service::start(suite, format!("{name}/command-service"), args).await?;

        let query = start_query(
            suite,
            &format!("{name}/query-service"),
            &read_url,
            &brokers,
            &prefix,
            options.query,
        )
        .await?;

        ensure_topics(&brokers, &prefix).await?;
        Ok(Self {
            command,
            query,
            proxies,
            write_db,
            read_db,
            broker,
            topics: Topics::with_prefix(&prefix),
            prefix,
        })
    }

    pub(crate) fn brokers(&self) -> String {
        self.broker.brokers()
    }

    /// The projector's consumer group.
    pub(crate) fn query_group(&self) -> Option<String> {
        QueryServiceArgs::new()
            .flags(self.query.args())
            .get("--kafka-consumer-group")
            .map(str::to_owned)
    }

    pub(crate) fn writer(&self) -> UserClient {
        client::connect(self.command.grpc)
    }

    pub(crate) fn reader(&self) -> UserClient {
        client::connect(self.query.grpc)
    }

    /// [`models::expect_converged`] on this stack's write and read databases.
    pub(crate) async fn expect_converged(
        &self,
        rec: &Recorder,
        ledger: &Ledger,
        within: Duration,
        failure: &str,
    ) -> anyhow::Result<(models::Comparison, Duration)> {
        let write_db = pg::connect(&self.write_db.url).await?;
        let read_db = pg::connect(&self.read_db.url).await?;
        models::expect_converged(rec, &write_db, &read_db, ledger, within, failure).await
    }
}

/// A topic prefix of a scenario's own.
pub(crate) fn new_prefix() -> String {
    format!("faults-{}.", Uuid::new_v4().simple())
}

fn common_args<S: testkit::service_args::Binary>(
    args: ServiceArgs<S>,
    database_url: &str,
    brokers: &str,
    prefix: &str,
) -> ServiceArgs<S> {
    args.database_url(database_url)
        .brokers(brokers)
        .topic_prefix(prefix)
        .topic_partitions(PARTITIONS)
}

/// query-service on the read database at `read_url` and the topics of `prefix`, in a
/// consumer group of its own.
pub(crate) async fn start_query(
    suite: &Suite,
    label: &str,
    read_url: &str,
    brokers: &str,
    prefix: &str,
    extra: Vec<String>,
) -> anyhow::Result<Service> {
    let args = common_args(QueryServiceArgs::new(), read_url, brokers, prefix)
        .consumer_group(&format!("faults-{}", Uuid::new_v4().simple()))
        .health_check_interval("200ms")
        .flags(extra);
    Service::start(suite, label.to_owned(), args).await
}

/// The event topics of `prefix`, created if missing (the dead-letter topic is left to the
/// service, whose job it is).
pub(crate) async fn ensure_topics(brokers: &str, prefix: &str) -> anyhow::Result<()> {
    let topics = Topics::with_prefix(prefix);
    let created = tokio::time::timeout(
        Duration::from_secs(30),
        kafka::ensure_topics(
            &shared::kafka::Cluster::plaintext(brokers.to_owned()),
            &topics.events(),
            &shared::kafka::TopicSettings::fixed(PARTITIONS, 1),
        ),
    )
    .await
    .context("creating topics took over 30 s")?;
    created.context("cannot create the topics")
}
