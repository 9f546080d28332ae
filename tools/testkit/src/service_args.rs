//! The command lines the services start with, in-process (through their `Cli`) or as
//! processes, said in one place so that a renamed flag is renamed for every test, the bench
//! and the fault suite at once.

use std::{fmt::Display, marker::PhantomData};

/// A service binary whose command line [`ServiceArgs`] builds.
pub trait Binary {
    /// The binary's name, as cargo builds it (and `argv[0]` for its `Cli`).
    const NAME: &'static str;
}

#[derive(Debug, Clone, Copy)]
pub enum CommandService {}

impl Binary for CommandService {
    const NAME: &'static str = "command-service";
}

#[derive(Debug, Clone, Copy)]
pub enum QueryService {}

impl Binary for QueryService {
    const NAME: &'static str = "query-service";
}

pub type CommandServiceArgs = ServiceArgs<CommandService>;
pub type QueryServiceArgs = ServiceArgs<QueryService>;

/// What query-service needs set for the development broker (tansu), whose fetches answer only
/// when their wait ends and start only at record batch boundaries; the services' defaults
/// are Apache Kafka's. As environment, a binary that predates these flags ignores them.
pub const DEV_BROKER_ENV: [(&str, &str); 2] =
    [("KAFKA_FETCH_WAIT", "2ms"), ("KAFKA_RESUME_REWIND", "1000")];

/// A service's flags and environment, builder style. Setting a flag again replaces it in
/// place, so a caller's flag overrides a default of the same name.
#[derive(Debug, Clone)]
pub struct ServiceArgs<S> {
    flags: Vec<String>,
    env: Vec<(String, String)>,
    service: PhantomData<S>,
}

impl<S: Binary> Default for ServiceArgs<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Binary> ServiceArgs<S> {
    /// No flags: the service's own defaults.
    pub fn new() -> Self {
        Self {
            flags: Vec::new(),
            env: Vec::new(),
            service: PhantomData,
        }
    }

    /// `--name=value` or `--name`, replacing an earlier flag of that name.
    pub fn flag(mut self, flag: impl Into<String>) -> Self {
        let flag = flag.into();
        match self
            .flags
            .iter_mut()
            .find(|set| flag_name(set) == flag_name(&flag))
        {
            Some(set) => *set = flag,
            None => self.flags.push(flag),
        }
        self
    }

    pub fn flags(self, flags: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        flags
            .into_iter()
            .fold(self, |args, flag| args.flag(flag.as_ref()))
    }

    pub fn grpc_addr(self, addr: impl Display) -> Self {
        self.flag(format!("--grpc-addr={addr}"))
    }

    pub fn http_addr(self, addr: impl Display) -> Self {
        self.flag(format!("--http-addr={addr}"))
    }

    /// Both ports left to the system, for a service run in-process, which reports where it
    /// bound.
    pub fn any_ports(self) -> Self {
        self.grpc_addr("127.0.0.1:0").http_addr("127.0.0.1:0")
    }

    pub fn database_url(self, url: &str) -> Self {
        self.flag(format!("--database-url={url}"))
    }

    pub fn database_pool_size(self, size: usize) -> Self {
        self.flag(format!("--database-pool-size={size}"))
    }

    pub fn brokers(self, brokers: &str) -> Self {
        self.flag(format!("--kafka-brokers={brokers}"))
    }

    pub fn topic_prefix(self, prefix: &str) -> Self {
        self.flag(format!("--kafka-topic-prefix={prefix}"))
    }

    pub fn topic_partitions(self, partitions: i32) -> Self {
        self.flag(format!("--kafka-topic-partitions={partitions}"))
    }

    pub fn health_check_interval(self, interval: &str) -> Self {
        self.flag(format!("--health-check-interval={interval}"))
    }

    /// The log filter, as RUST_LOG: what a process of the service logs.
    pub fn log_filter(mut self, filter: &str) -> Self {
        self.env.retain(|(name, _)| name != "RUST_LOG");
        self.env.push(("RUST_LOG".to_owned(), filter.to_owned()));
        self
    }

    /// The value of the flag `name` (e.g. `--kafka-consumer-group`), if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|flag| flag_name(flag) == name)
            .and_then(|flag| flag.split_once('=').map(|(_, value)| value))
    }

    /// The flags, for a process of the service.
    pub fn args(&self) -> &[String] {
        &self.flags
    }

    /// The binary's name and the flags, for the service's `Cli::try_parse_from`.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(S::NAME.to_owned())
            .chain(self.flags.iter().cloned())
            .collect()
    }

    /// The environment a process of the service gets on top of what it inherits.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }
}

impl ServiceArgs<CommandService> {
    pub fn outbox_poll_interval(self, interval: &str) -> Self {
        self.flag(format!("--outbox-poll-interval={interval}"))
    }

    pub fn outbox_notify(self, notify: bool) -> Self {
        self.flag(format!("--outbox-notify={notify}"))
    }

    pub fn shutdown_grace(self, grace: &str) -> Self {
        self.flag(format!("--shutdown-grace={grace}"))
    }
}

impl ServiceArgs<QueryService> {
    pub fn consumer_group(self, group: &str) -> Self {
        self.flag(format!("--kafka-consumer-group={group}"))
    }

    pub fn min_version_timeout(self, timeout: &str) -> Self {
        self.flag(format!("--min-version-timeout={timeout}"))
    }

    pub fn replay_metrics_addr(self, addr: impl Display) -> Self {
        self.flag(format!("--replay-metrics-addr={addr}"))
    }

    /// [`DEV_BROKER_ENV`] as flags, for a service run in-process, which reads the test
    /// binary's own environment.
    pub fn dev_broker(self) -> Self {
        DEV_BROKER_ENV.iter().fold(self, |args, (name, value)| {
            args.flag(format!(
                "--{}={value}",
                name.to_lowercase().replace('_', "-")
            ))
        })
    }
}

/// `--name` of `--name=value`.
fn flag_name(flag: &str) -> &str {
    flag.split_once('=').map_or(flag, |(name, _)| name)
}
