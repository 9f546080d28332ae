//! query-service's settings: flags that also read environment variables, validated before
//! anything binds.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand};
use shared::config::{
    DatabaseArgs, HealthArgs, KafkaArgs, ShutdownArgs, TelemetryArgs, parse_duration,
};

#[derive(Debug, Parser)]
#[command(
    name = "query-service",
    version,
    args_override_self = true,
    about = "The read side of users: GetUser and ListUsers from a read model projected from Kafka."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// Apply migrations, then serve (the default).
    Serve,
    /// Apply the read database's migrations and exit (e.g. as a Kubernetes Job).
    Migrate,
    /// Exit 0 if the service on HTTP_ADDR is ready, 1 if not: a container health check.
    Healthcheck,
    /// Rebuild the read model from the earliest offsets into a shadow table, then swap it
    /// in, while running replicas keep serving.
    Replay,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address of the gRPC server.
    #[arg(long, env = "GRPC_ADDR", default_value = "127.0.0.1:50052")]
    pub grpc_addr: SocketAddr,

    /// Address of the HTTP server for health checks and metrics.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8082")]
    pub http_addr: SocketAddr,

    /// The read database. Created at start when it does not exist.
    /// Checked at start, not here: a parse error would print the URL, password and all.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/users_read",
        hide_env_values = true
    )]
    pub database_url: String,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Consumer group of the projector; replicas in one group share the partitions.
    #[arg(
        long = "kafka-consumer-group",
        env = "KAFKA_CONSUMER_GROUP",
        default_value = "query-service"
    )]
    pub consumer_group: String,

    /// On being assigned a partition, the projector resumes this many records before the
    /// group's committed offset. Re-projecting is harmless (the version guard drops what the
    /// view has), and a rewind at least as large as the producers' records per batch
    /// (command-service's KAFKA_BATCH_NUM_MESSAGES) keeps a broker that fetches only from
    /// batch starts (tansu) from skipping the rest of a partly committed batch: set 1000
    /// there. The default suits Apache Kafka, which fetches from any offset.
    #[arg(long = "kafka-resume-rewind", env = "KAFKA_RESUME_REWIND", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..=1_000_000))]
    pub resume_rewind: i64,

    /// Longest a fetch of the projector, the cache feed or a replay waits at the broker for
    /// new records. Apache Kafka answers a fetch as soon as a record arrives, so the default
    /// costs no latency there and saves idle fetches. tansu answers only when the wait ends:
    /// set 2ms there, for about 8 ms from commit to readable at 500 writes/s (100ms: about
    /// 90 ms), at about 14% of a core of tansu's per idle replica.
    #[arg(long = "kafka-fetch-wait", env = "KAFKA_FETCH_WAIT", default_value = "100ms", value_parser = parse_duration)]
    pub fetch_wait: Duration,

    /// Users kept in each replica's cache.
    #[arg(long, env = "CACHE_CAPACITY", default_value_t = 100_000)]
    pub cache_capacity: u64,

    /// How long a cached user may be served before it is read again.
    #[arg(long, env = "CACHE_TTL", default_value = "5m", value_parser = parse_duration)]
    pub cache_ttl: Duration,

    /// How long a ListUsers page may be answered again from memory ("0s": never). A page is
    /// also dropped as soon as this replica sees any user change.
    #[arg(long, env = "LIST_CACHE_TTL", default_value = "1s", value_parser = parse_duration)]
    pub list_cache_ttl: Duration,

    /// Where `replay` serves its progress as Prometheus metrics (/metrics) while it runs.
    #[arg(long, env = "REPLAY_METRICS_ADDR", default_value = "127.0.0.1:9095")]
    pub replay_metrics_addr: SocketAddr,

    /// How long a deleted user's tombstone stays in the read model; longer than any event
    /// can arrive late. Events older than a purged tombstone create no rows.
    #[arg(long, env = "TOMBSTONE_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub tombstone_retention: Duration,

    /// How often tombstones past TOMBSTONE_RETENTION are purged (the first time one interval
    /// after start).
    #[arg(long, env = "TOMBSTONE_PURGE_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub tombstone_purge_interval: Duration,

    /// How long GetUser waits for `min_version` before answering UNAVAILABLE.
    #[arg(long, env = "MIN_VERSION_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub min_version_timeout: Duration,

    /// Secret that signs page tokens, the same on every replica (at least 16 bytes).
    /// Required when GRPC_ADDR is not loopback; on loopback a development secret is used.
    #[arg(long, env = "PAGE_TOKEN_SECRET", hide_env_values = true)]
    pub page_token_secret: Option<String>,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    #[command(flatten)]
    pub health: HealthArgs,

    #[command(flatten)]
    pub auth: shared::config::AuthArgs,

    #[command(flatten)]
    pub grpc: shared::config::GrpcArgs,

    #[command(flatten)]
    pub shutdown: ShutdownArgs,
}

/// Signs page tokens where no secret is set: only on loopback, where no one else can call.
const DEVELOPMENT_PAGE_TOKEN_SECRET: &str = "local-development-page-token-secret";

impl Config {
    /// The page token secret, refused (without being shown) when too short, and required
    /// beyond loopback.
    pub fn page_token_secret(&self) -> Result<&str, String> {
        match &self.page_token_secret {
            Some(secret) if secret.len() >= 16 => Ok(secret),
            Some(_) => Err("PAGE_TOKEN_SECRET must be at least 16 bytes".to_owned()),
            None if self.grpc_addr.ip().is_loopback() => Ok(DEVELOPMENT_PAGE_TOKEN_SECRET),
            None => Err(format!(
                "PAGE_TOKEN_SECRET is required: GRPC_ADDR {} is not loopback",
                self.grpc_addr
            )),
        }
    }

    /// The database of `DATABASE_URL`, reached as the database settings say.
    pub fn database(&self) -> Result<shared::db::Database, shared::db::DbError> {
        self.database.database(&self.database_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_on_a_developer_machine() {
        let cli = Cli::try_parse_from(["query-service"]).unwrap();
        assert_eq!(cli.config.grpc_addr.to_string(), "127.0.0.1:50052");
        assert_eq!(cli.config.http_addr.to_string(), "127.0.0.1:8082");
        assert!(cli.config.database_url.ends_with("/users_read"));
    }

    #[test]
    fn bad_values_are_refused_before_anything_starts() {
        let short = Cli::try_parse_from(["query-service", "--page-token-secret", "short"]).unwrap();
        let refused = short.config.page_token_secret().unwrap_err();
        assert!(!refused.contains("short"), "{refused}");
        assert!(Cli::try_parse_from(["query-service", "--cache-ttl", "forever"]).is_err());
    }

    #[test]
    fn beyond_loopback_a_page_token_secret_must_be_set() {
        let exposed =
            Cli::try_parse_from(["query-service", "--grpc-addr", "0.0.0.0:50052"]).unwrap();
        assert!(exposed.config.page_token_secret().is_err());
        let local = Cli::try_parse_from(["query-service"]).unwrap();
        assert!(local.config.page_token_secret().is_ok());
    }
}
