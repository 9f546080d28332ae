//! Settings both services take, as clap argument groups that each service flattens into its
//! own configuration.

use std::time::Duration;

use clap::{Args, ValueEnum};

mod kafka;

pub use self::kafka::{KafkaArgs, SaslMechanism, SecurityProtocol};

/// How the service uses its database, besides which one (each service has its own URL).
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Most connections each replica's pool opens. Every replica of both services shares
    /// Postgres's max_connections: size it as replicas × pool size per service, plus room
    /// for migrations, replays and operators.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub database_pool_size: u16,

    /// CA certificates (PEM) that the database's certificate must chain to, for sslmode
    /// verify-ca and verify-full (and require, as libpq does). Without it: the Mozilla roots.
    #[arg(long, env = "DATABASE_CA_FILE")]
    pub database_ca_file: Option<std::path::PathBuf>,

    /// Longest a statement may run before Postgres cancels it ("0s": no limit). Bounds what
    /// a stuck query can hold: a connection, locks, a caller.
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub database_statement_timeout: Duration,

    /// Longest a connection may sit idle inside a transaction before Postgres ends the
    /// session ("0s": no limit), so a hung process cannot hold row locks forever.
    #[arg(long, env = "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub database_idle_in_transaction_timeout: Duration,

    /// Whether the service applies its migrations at start, or only checks that they are
    /// applied as written ("false": where the service's role may not change the schema and
    /// `migrate` runs first with a role that may, as the Kubernetes initContainer does).
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,

    /// The longest a migration statement waits for a lock before the migration gives way
    /// (and is tried again), so that it never holds every reader and writer of a table
    /// queued behind it for longer.
    #[arg(long, env = "MIGRATION_LOCK_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub migration_lock_timeout: Duration,

    /// How many times a migration is tried while it keeps giving way to locks.
    #[arg(long, env = "MIGRATION_ATTEMPTS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub migration_attempts: u32,

    /// The role the service runs as, when `migrate` runs as another: granted reading and
    /// writing every table, and reading the record of migrations.
    #[arg(long, env = "MIGRATION_GRANT_TO")]
    pub migration_grant_to: Option<String>,
}

impl DatabaseArgs {
    /// The database at `url`, reached as this configuration says.
    pub fn database(&self, url: &str) -> Result<crate::db::Database, crate::db::DbError> {
        let database = crate::db::Database::new(url, self.database_ca_file.as_deref())?;
        if database.name().is_none() {
            return Err(crate::db::DbError::NoDatabaseName);
        }
        Ok(database)
    }

    pub fn migration_settings(&self) -> crate::migrate::MigrationSettings {
        crate::migrate::MigrationSettings {
            lock_timeout: self.migration_lock_timeout,
            attempts: self.migration_attempts,
            grant_to: self
                .migration_grant_to
                .clone()
                .filter(|role| !role.is_empty()),
        }
    }

    /// What a service does with its schema at start: applies the migrations, or (with
    /// MIGRATE_ON_START=false) checks that they are all applied as written.
    pub async fn schema_at_start(
        &self,
        database: &crate::db::Database,
        migrations: &[crate::migrate::Migration],
        what: &str,
    ) -> Result<(), crate::db::DbError> {
        if self.migrate_on_start {
            crate::migrate::prepare(database, migrations, what, &self.migration_settings()).await
        } else {
            crate::migrate::verify(database, migrations).await
        }
    }

    pub fn session_limits(&self) -> crate::db::SessionLimits {
        crate::db::SessionLimits {
            statement_timeout: self.database_statement_timeout,
            idle_in_transaction_timeout: self.database_idle_in_transaction_timeout,
        }
    }
}

/// How the service logs and traces.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, in tracing's EnvFilter syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info,tokio_postgres=warn")]
    pub log_filter: String,

    /// OTLP (gRPC) endpoint for traces, e.g. http://127.0.0.1:4317. Traces are exported only
    /// when this is set.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What the gRPC server lets callers cost.
#[derive(Debug, Clone, Args)]
pub struct GrpcArgs {
    /// Calls served at once by this process; past it a call is answered UNAVAILABLE at once
    /// instead of waiting (health checks excepted).
    #[arg(long = "grpc-max-in-flight", env = "GRPC_MAX_IN_FLIGHT", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,

    /// Longest a client connection lives: past it the server asks the client to reconnect
    /// (GOAWAY), so callers spread over replicas a scale-out added. Unset: for ever.
    #[arg(long = "grpc-max-connection-age", env = "GRPC_MAX_CONNECTION_AGE", value_parser = parse_duration)]
    pub max_connection_age: Option<Duration>,

    /// How long calls still running on a connection past its age may take to finish.
    #[arg(long = "grpc-max-connection-age-grace", env = "GRPC_MAX_CONNECTION_AGE_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub max_connection_age_grace: Duration,

    /// The gRPC port's certificate chain (PEM): with GRPC_TLS_KEY_FILE, the port serves TLS
    /// only. Read again when it changes.
    #[arg(long = "grpc-tls-cert-file", env = "GRPC_TLS_CERT_FILE")]
    pub tls_cert_file: Option<std::path::PathBuf>,

    /// The private key (PEM) of GRPC_TLS_CERT_FILE.
    #[arg(long = "grpc-tls-key-file", env = "GRPC_TLS_KEY_FILE")]
    pub tls_key_file: Option<std::path::PathBuf>,

    /// CA certificates (PEM) that clients' certificates must chain to: mutual TLS.
    #[arg(long = "grpc-tls-client-ca-file", env = "GRPC_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<std::path::PathBuf>,
}

impl GrpcArgs {
    /// The gRPC port's TLS, if asked for; refused when a file is missing or unreadable.
    pub fn tls(&self) -> Result<Option<std::sync::Arc<crate::grpc_tls::GrpcTls>>, String> {
        // An empty value (an overlay turning TLS off) is no value.
        let set = |path: &Option<std::path::PathBuf>| {
            path.clone().filter(|path| !path.as_os_str().is_empty())
        };
        let client_ca = set(&self.tls_client_ca_file);
        match (set(&self.tls_cert_file), set(&self.tls_key_file)) {
            (None, None) if client_ca.is_some() => Err(
                "GRPC_TLS_CLIENT_CA_FILE needs GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE".to_owned(),
            ),
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => crate::grpc_tls::GrpcTls::load(crate::grpc_tls::TlsFiles {
                cert,
                key,
                client_ca,
            })
            .map(Some),
            _ => Err("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE go together".to_owned()),
        }
    }
}

/// How callers are authenticated (README, Security).
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// `jwt`: every call but health's needs a bearer token (an OAuth 2.0 / OIDC access
    /// token) signed by AUTH_JWKS's keys, from AUTH_ISSUER, for AUTH_AUDIENCE. `none`: no
    /// check, where a mesh or gateway authenticates. Unset: allowed on a loopback GRPC_ADDR
    /// only, without authentication.
    #[arg(long = "auth-mode", env = "AUTH_MODE", value_enum)]
    pub mode: Option<crate::auth::AuthMode>,

    /// The issuer's JWK Set: an https:// URL, an http:// URL on loopback, or a file path.
    #[arg(long = "auth-jwks", env = "AUTH_JWKS")]
    pub jwks: Option<String>,

    /// The `iss` every token must carry.
    #[arg(long = "auth-issuer", env = "AUTH_ISSUER")]
    pub issuer: Option<String>,

    /// The `aud` every token must include.
    #[arg(long = "auth-audience", env = "AUTH_AUDIENCE")]
    pub audience: Option<String>,

    /// How often the JWK Set is fetched again (also when a token names an unknown key).
    #[arg(long = "auth-jwks-refresh", env = "AUTH_JWKS_REFRESH", default_value = "5m", value_parser = parse_duration)]
    pub jwks_refresh: Duration,
}

impl AuthArgs {
    /// The authentication these settings ask for, refused when incomplete or when the
    /// service would be exposed without any. Fetches the key set once (a failure is logged
    /// and retried in the background: calls answer UNAVAILABLE until keys arrive).
    pub async fn resolve(
        &self,
        grpc_addr: std::net::SocketAddr,
    ) -> Result<crate::auth::Auth, String> {
        use crate::auth::{Auth, AuthMode, KeySet, KeySource, Verifier, VerifierSettings};
        crate::auth::check_exposure(self.mode, grpc_addr)?;
        match self.mode {
            None | Some(AuthMode::None) => Ok(Auth::Open),
            Some(AuthMode::Jwt) => {
                let need = |value: &Option<String>, name: &str| {
                    value
                        .clone()
                        .filter(|value| !value.is_empty())
                        .ok_or_else(|| format!("AUTH_MODE=jwt needs {name}"))
                };
                let source = KeySource::parse(&need(&self.jwks, "AUTH_JWKS")?)?;
                let keys = std::sync::Arc::new(KeySet::new(source, self.jwks_refresh));
                if let Err(error) = keys.refresh().await {
                    tracing::error!(%error, "cannot load the issuer's keys yet; calls answer UNAVAILABLE until they load");
                }
                Ok(Auth::Jwt(std::sync::Arc::new(Verifier::new(
                    keys,
                    VerifierSettings {
                        issuer: need(&self.issuer, "AUTH_ISSUER")?,
                        audience: need(&self.audience, "AUTH_AUDIENCE")?,
                        leeway: Duration::from_secs(30),
                    },
                ))))
            }
        }
    }
}

/// How often readiness checks run and how long each may take.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Interval between readiness checks of Postgres and Kafka, e.g. "5s".
    #[arg(long, env = "HEALTH_CHECK_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub health_check_interval: Duration,

    /// How long one readiness check may take before it counts as failed.
    #[arg(long, env = "HEALTH_CHECK_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub health_check_timeout: Duration,
}

/// How long in-flight work may take to finish after SIGTERM.
#[derive(Debug, Clone, Args)]
pub struct ShutdownArgs {
    /// Grace period for in-flight calls and background work on shutdown, e.g. "20s".
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

/// Parses durations written as a number with a unit: "250ms", "5s", "2m".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (use ms, s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        "h" => Ok(Duration::from_secs(number * 3600)),
        "d" => Ok(Duration::from_secs(number * 86_400)),
        _ => Err(format!("`{unit}` is not a unit (use ms, s, m, h or d)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
    }

    #[test]
    fn durations_without_a_known_unit_are_refused() {
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("s").is_err());
    }
}
