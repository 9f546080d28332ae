//! command-service's settings: flags that also read environment variables, validated before
//! anything binds.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand};
use shared::config::{
    DatabaseArgs, HealthArgs, KafkaArgs, ShutdownArgs, TelemetryArgs, parse_duration,
};

#[derive(Debug, Parser)]
#[command(
    name = "command-service",
    version,
    args_override_self = true,
    about = "The write side of users: CreateUser, UpdateUser and DeleteUser over gRPC, with every change published to Kafka through a transactional outbox."
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
    /// Apply the write database's migrations and exit (e.g. as a Kubernetes Job).
    Migrate,
    /// Exit 0 if the service on HTTP_ADDR is ready, 1 if not: a container health check.
    Healthcheck,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address of the gRPC server.
    #[arg(long, env = "GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// Address of the HTTP server for health checks and metrics.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,

    /// The write database. Created at start when it does not exist.
    /// Checked at start, not here: a parse error would print the URL, password and all.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/users_write",
        hide_env_values = true
    )]
    pub database_url: String,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Password hashes computed at once (each takes ~19 MiB). Defaults to the number of CPUs.
    #[arg(long, env = "PASSWORD_HASH_CONCURRENCY")]
    pub password_hash_concurrency: Option<usize>,

    /// How long a write's request_id is remembered: a request repeated within it with the
    /// same request_id is answered as the first one was, e.g. "24h".
    #[arg(long, env = "REQUEST_ID_RETENTION", default_value = "24h", value_parser = parse_duration)]
    pub request_id_retention: Duration,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub outbox: OutboxArgs,

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

#[derive(Debug, Clone, Args)]
pub struct OutboxArgs {
    /// Outbox rows published per transaction.
    #[arg(long, env = "OUTBOX_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub outbox_batch_size: i64,

    /// How often the relay looks for rows when no notification woke it, e.g. "1s".
    #[arg(long, env = "OUTBOX_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub outbox_poll_interval: Duration,

    /// How long Kafka may take to acknowledge an event before its batch is retried.
    #[arg(long, env = "OUTBOX_PUBLISH_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub outbox_publish_timeout: Duration,

    /// Whether each write also NOTIFYs the relays of every replica (which then LISTEN). Off by
    /// default: the replica that commits a write wakes its own relay in-process, so NOTIFY
    /// only speeds up a takeover by another replica, while the commit-time lock it takes cost
    /// about 30% of the UpdateUser rate (`make bench`).
    #[arg(long, env = "OUTBOX_NOTIFY", default_value_t = false, action = clap::ArgAction::Set)]
    pub outbox_notify: bool,

    /// Most records per producer batch. One record per batch manages only a few hundred
    /// records a second; keep query-service's KAFKA_RESUME_REWIND at least this large while
    /// the broker is tansu.
    #[arg(long, env = "KAFKA_BATCH_NUM_MESSAGES", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub kafka_batch_num_messages: u32,
}

impl Config {
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
        let cli = Cli::try_parse_from(["command-service"]).unwrap();
        assert_eq!(cli.config.grpc_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(cli.config.http_addr.to_string(), "127.0.0.1:8081");
        assert!(!cli.config.outbox.outbox_notify);
    }

    #[test]
    fn bad_values_are_refused_before_anything_starts() {
        assert!(Cli::try_parse_from(["command-service", "--grpc-addr", "nowhere"]).is_err());
        // Checked before anything binds, naming the setting and never showing the URL.
        let no_database =
            Cli::try_parse_from(["command-service", "--database-url", "postgres://u:pw@h"])
                .unwrap();
        let Err(refused) = no_database.config.database() else {
            panic!("a URL without a database passed");
        };
        let refused = refused.to_string();
        assert!(
            refused.contains("DATABASE_URL") && !refused.contains("pw"),
            "{refused}"
        );
        assert!(
            Cli::try_parse_from(["command-service", "--outbox-poll-interval", "soon"]).is_err()
        );
    }
}
