//! The broker the tests use, a clear failure when none runs, and brokers of a test's own.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::OnceLock,
    time::{Duration, Instant},
};

use shared::kafka::BrokerProbe;
use uuid::Uuid;

use crate::{
    ports::free_addr,
    process::{Launch, Process},
};

const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

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

/// A tansu broker of a test's own (in memory, on its own port), so stopping or breaking it
/// disturbs no other test. Stopped when dropped.
pub struct PrivateBroker {
    pub addr: SocketAddr,
    schemas: Option<PathBuf>,
    process: Option<Process>,
}

impl PrivateBroker {
    /// On a free port.
    pub fn start() -> Self {
        Self::start_on(free_addr(), None)
    }

    /// On a free port, validating each topic's records against the protobuf schema
    /// `<topic>.proto` in a directory of its own, if there is one (see [`Self::reject`]).
    pub fn start_with_schemas() -> Self {
        let dir = std::env::temp_dir().join(format!("users-schemas-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a schema directory");
        Self::start_on(free_addr(), Some(dir))
    }

    /// On `addr` (e.g. where a stopped one was).
    pub fn start_on(addr: SocketAddr, schemas: Option<PathBuf>) -> Self {
        let binary = std::env::var("TANSU_BIN").unwrap_or_else(|_| "tansu".to_owned());
        let url = format!("tcp://{addr}");
        let mut launch = Launch::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/", "--silent"])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        if let Some(dir) = &schemas {
            // tansu resolves a file:// registry against its working directory.
            let name = dir
                .file_name()
                .and_then(|name| name.to_str())
                .expect("a name");
            launch = launch
                .current_dir(dir.parent().expect("a parent"))
                .args(["--schema-registry", &format!("file://{name}")]);
        }
        let process = Process::spawn("tansu", launch, None).unwrap_or_else(|error| {
            panic!("cannot start `{binary}` (run `make broker` to install it): {error:#}")
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            addr,
            schemas,
            process: Some(process),
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
        let signal = if paused { "-STOP" } else { "-CONT" };
        self.process
            .as_ref()
            .expect("running")
            .signal(signal)
            .unwrap_or_else(|error| panic!("{error:#}"));
    }

    pub fn stop(&mut self) {
        self.process.take();
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
