//! For integration tests: a fresh database per test and a clear failure when no broker runs.

use std::{sync::OnceLock, time::Duration};

use opentelemetry_sdk::trace::InMemorySpanExporter;
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    message::{Header, OwnedHeaders, OwnedMessage},
    producer::{FutureProducer, FutureRecord},
    util::Timeout,
};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

use shared::kafka::BrokerProbe;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// What query-service needs set for the development broker (tansu), whose fetches answer only
/// when their wait ends and start only at record batch boundaries; the services' defaults
/// are Apache Kafka's.
pub const DEV_BROKER_ENV: [(&str, &str); 2] =
    [("KAFKA_FETCH_WAIT", "2ms"), ("KAFKA_RESUME_REWIND", "1000")];

/// `DEV_BROKER_ENV` as command-line flags.
pub fn dev_broker_flags() -> Vec<String> {
    vec![
        "--kafka-fetch-wait=2ms".to_owned(),
        "--kafka-resume-rewind=1000".to_owned(),
    ]
}

/// The broker the tests use: `TEST_KAFKA_BROKERS`, else the local default.
pub fn brokers() -> String {
    std::env::var("TEST_KAFKA_BROKERS").unwrap_or_else(|_| DEFAULT_BROKERS.to_owned())
}

/// The test broker as a cluster (plain TCP, no authentication).
pub fn cluster() -> shared::kafka::Cluster {
    shared::kafka::Cluster::plaintext(brokers())
}

/// Fails the test, saying how to start one, when no broker answers. Checked once per binary.
pub fn require_broker() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECKED.get_or_init(|| {
        let brokers = brokers();
        BrokerProbe::new(&shared::kafka::Cluster::plaintext(&brokers))
            .map_err(|error| error.to_string())
            .and_then(|probe| probe.check(Duration::from_secs(5)))
            .map_err(|error| {
                format!(
                    "no Kafka broker answers at {brokers} ({error}). Start one with `make broker` \
                     (installs and starts tansu), or point TEST_KAFKA_BROKERS at a running broker."
                )
            })
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

/// Logs of the services under test, shown for failing tests; `TEST_LOG` filters them
/// (default `warn`). Spans get trace ids as in production and are kept for [`finished_spans`].
pub fn init_tracing() {
    span_exporter();
}

fn span_exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let args = shared::config::TelemetryArgs {
            log_format: shared::config::LogFormat::Text,
            log_filter: std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            otlp_endpoint: None,
        };
        // Leaked on purpose: the subscriber lives as long as the test binary.
        if let Ok(telemetry) = shared::telemetry::init_for_tests(&args, exporter.clone()) {
            std::mem::forget(telemetry);
        }
        exporter
    })
}

/// Every span that has ended so far in this test binary.
pub fn finished_spans() -> Vec<opentelemetry_sdk::trace::SpanData> {
    span_exporter().get_finished_spans().unwrap_or_default()
}

/// A tansu broker of a test's own (in memory, on its own port), so stopping or breaking it
/// disturbs no other test. Stopped when dropped.
pub struct PrivateBroker {
    pub addr: std::net::SocketAddr,
    schemas: Option<std::path::PathBuf>,
    child: Option<std::process::Child>,
}

impl PrivateBroker {
    /// On a free port.
    pub fn start() -> Self {
        Self::start_on(free_port(), None)
    }

    /// On a free port, validating each topic's records against the protobuf schema
    /// `<topic>.proto` in a directory of its own, if there is one (see [`Self::reject`]).
    pub fn start_with_schemas() -> Self {
        let dir = std::env::temp_dir().join(format!("users-schemas-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a schema directory");
        Self::start_on(free_port(), Some(dir))
    }

    /// On `addr` (e.g. where a stopped one was).
    pub fn start_on(addr: std::net::SocketAddr, schemas: Option<std::path::PathBuf>) -> Self {
        use std::process::{Command, Stdio};

        let binary = std::env::var("TANSU_BIN").unwrap_or_else(|_| "tansu".to_owned());
        let url = format!("tcp://{addr}");
        let mut command = Command::new(&binary);
        command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/", "--silent"])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(dir) = &schemas {
            // tansu resolves a file:// registry against its working directory.
            let name = dir
                .file_name()
                .and_then(|name| name.to_str())
                .expect("a name");
            command
                .current_dir(dir.parent().expect("a parent"))
                .args(["--schema-registry", &format!("file://{name}")]);
        }
        let child = command.spawn().unwrap_or_else(|error| {
            panic!("cannot start `{binary}` (run `make broker` to install it): {error}")
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "tansu did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            addr,
            schemas,
            child: Some(child),
        }
    }

    pub fn brokers(&self) -> String {
        self.addr.to_string()
    }

    /// From now on the broker refuses every record of `topic` (as INVALID_RECORD): its
    /// values must decode as a message they are not.
    pub fn reject(&self, topic: &str) {
        let dir = self.schemas.as_ref().expect("started with schemas");
        std::fs::write(
            dir.join(format!("{topic}.proto")),
            "syntax = \"proto3\";\nmessage Value { int64 user = 1; }\n",
        )
        .expect("write the schema");
    }

    /// Takes back [`Self::reject`].
    pub fn accept(&self, topic: &str) {
        let dir = self.schemas.as_ref().expect("started with schemas");
        std::fs::remove_file(dir.join(format!("{topic}.proto"))).expect("remove the schema");
    }

    /// Sends SIGSTOP (`true`) or SIGCONT (`false`): a broker that hangs, connections open.
    pub fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if paused { "-STOP" } else { "-CONT" };
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.schemas {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// A database of its own, dropped (with its connections) when the value is.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        init_tracing();
        require_broker_on_blocking_thread().await;
        let name = format!("users_test_{}", Uuid::new_v4().simple());
        let url = format!("{SERVER}/{name}");
        let database = shared::db::Database::new(&url, None).expect("a valid URL");
        shared::db::ensure_database(&database)
            .await
            .unwrap_or_else(|error| {
                panic!("cannot create a test database on {SERVER} ({error}); is Postgres running?")
            });
        Self { name, url }
    }

    /// A connection of the test's own, for looking at what the service wrote.
    pub async fn client(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(connection);
        client
    }
}

async fn require_broker_on_blocking_thread() {
    tokio::task::spawn_blocking(require_broker)
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on itself.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) =
                    tokio_postgres::connect(&format!("{SERVER}/postgres"), NoTls)
                        .await
                        .ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// A plain HTTP/1.0 GET, enough for the health and metrics endpoints: (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    try_http_get(addr, path)
        .await
        .unwrap_or_else(|error| panic!("GET {path} from {addr}: {error}"))
}

/// [`http_get`], for a server that may go away meanwhile (a replay that finishes).
pub async fn try_http_get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|error| format!("cannot connect: {error}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .map_err(|error| format!("cannot send the request: {error}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|error| format!("cannot read the response: {error}"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {head}"))?;
    Ok((status, body.to_owned()))
}

/// A consumer of whole topics from their first offset, outside any consumer group.
pub struct EventReader {
    consumer: StreamConsumer,
}

impl EventReader {
    /// Reads from the first offset of each partition.
    pub fn new(brokers: &str, topics: &[&str], partitions: i32) -> Self {
        Self::starting_at(brokers, topics, partitions, Offset::Beginning)
    }

    /// Reads from `start` in each partition (e.g. `Offset::End`: only what comes next).
    pub fn starting_at(brokers: &str, topics: &[&str], partitions: i32, start: Offset) -> Self {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("test-reader-{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("a consumer");
        let mut assignment = TopicPartitionList::new();
        for topic in topics {
            for partition in 0..partitions {
                assignment
                    .add_partition_offset(topic, partition, start)
                    .unwrap();
            }
        }
        consumer.assign(&assignment).expect("assign");
        Self { consumer }
    }

    /// The next `count` records, failing the test when they do not come within `within`.
    pub async fn read(&mut self, count: usize, within: Duration) -> Vec<OwnedMessage> {
        let mut records = Vec::with_capacity(count);
        let deadline = tokio::time::Instant::now() + within;
        while records.len() < count {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => records.push(message.detach()),
                Ok(Err(error)) => panic!("consumer error: {error}"),
                Err(_) => panic!(
                    "only {} of {count} events arrived within {within:?}",
                    records.len()
                ),
            }
        }
        records
    }

    /// The next record, if one arrives within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<OwnedMessage> {
        let received = tokio::time::timeout(within, self.consumer.recv())
            .await
            .ok()?;
        Some(received.expect("a record").detach())
    }

    /// Every record that arrives until none has come for `idle`.
    pub async fn read_available(&mut self, idle: Duration) -> Vec<OwnedMessage> {
        let mut records = Vec::new();
        while let Ok(received) = tokio::time::timeout(idle, self.consumer.recv()).await {
            records.push(received.expect("a record").detach());
        }
        records
    }

    /// Fails when any record arrives within `within`.
    pub async fn expect_nothing(&mut self, within: Duration) {
        if let Ok(Ok(message)) = tokio::time::timeout(within, self.consumer.recv()).await {
            panic!("unexpected event on {}", message.topic());
        }
    }
}

/// Produces records as the relay would, or as a misbehaving producer might.
pub struct EventWriter {
    producer: FutureProducer,
}

impl EventWriter {
    pub fn new(brokers: &str) -> Self {
        Self {
            producer: ClientConfig::new()
                .set("bootstrap.servers", brokers)
                // Batches of several records when sends overlap, as the relay makes them.
                .set("batch.num.messages", "1000")
                .set("linger.ms", "5")
                .create()
                .expect("a producer"),
        }
    }

    /// Sends a record and waits for the broker to acknowledge it.
    pub async fn send(&self, topic: &str, key: &str, payload: &[u8], headers: &[(&str, &str)]) {
        let mut owned = OwnedHeaders::new();
        for (key, value) in headers {
            owned = owned.insert(Header {
                key,
                value: Some(*value),
            });
        }
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(owned);
        self.producer
            .send(record, Timeout::After(Duration::from_secs(20)))
            .await
            .unwrap_or_else(|(error, _)| panic!("cannot produce to {topic}: {error}"));
    }
}

/// An UpdateUser of the nickname alone; every call with a new one makes a new version.
pub fn nickname_update(id: &str, nickname: &str) -> shared_proto::v1::UpdateUserRequest {
    shared_proto::v1::UpdateUserRequest {
        user: Some(shared_proto::v1::User {
            id: id.to_owned(),
            nickname: nickname.to_owned(),
            ..shared_proto::v1::User::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["nickname".to_owned()],
        }),
        password: String::new(),
        expected_version: None,
    }
}

/// One sample of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the samples of a Prometheus / OpenMetrics text exposition (no escapes inside
/// label values beyond `\"`, which the services never emit).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in `{line}`"));
        let value = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in `{line}`"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                rest.strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in `{line}`")),
            ),
            None => (series, ""),
        };
        let mut parsed = std::collections::BTreeMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (key, after) = rest
                .split_once("=\"")
                .unwrap_or_else(|| panic!("bad label in `{line}`"));
            let end = after
                .find('"')
                .unwrap_or_else(|| panic!("unterminated label in `{line}`"));
            parsed.insert(
                key.trim_start_matches(',').to_owned(),
                after[..end].to_owned(),
            );
            rest = after[end + 1..].trim_start_matches(',');
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels: parsed,
            value,
        });
    }
    samples
}

/// The value of the sample named `name` whose labels include every pair of `labels`.
pub fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
        })
        .map(|sample| sample.value)
}

/// The `google.rpc.BadRequest` field violations a client sees in a status.
pub fn field_violations(status: &tonic::Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| {
            bad.field_violations
                .into_iter()
                .map(|violation| (violation.field, violation.description))
                .collect()
        })
        .unwrap_or_default()
}
