//! Postgres setup: where a database is and how to reach it (TLS as its URL's sslmode asks),
//! the connection pool, and creating the database when it is missing (migrations are in
//! `migrate`).

use std::{
    path::Path,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Socket, error::SqlState};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use crate::db_pool::Pool;
use crate::{
    db_pool::CALL_MARGIN,
    db_tls::{self, TlsError},
};

/// TCP keepalive: idle time before the first probe, the time between probes, and how many
/// go unanswered before the connection is dropped. A peer that vanished (a host that died,
/// a partition) is noticed in about 11 s instead of the system's two hours.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_RETRIES: u32 = 3;
/// Longest sent data may stay unacknowledged before the kernel drops the connection.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid Postgres URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("DATABASE_URL names no database")]
    NoDatabaseName,
    #[error("cannot build the connection pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("migration {version} ({name}) failed after {attempts} attempt(s)")]
    Migration {
        version: i32,
        name: &'static str,
        attempts: u32,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "migration {version} ({name}) was edited after it was applied: the schema is not what \
         it says; restore the migration as it was applied and add a new one instead"
    )]
    MigrationEdited { version: i32, name: &'static str },
    #[error(
        "migration {version} ({name}) is not applied; run this release's `migrate` first (or \
         start with MIGRATE_ON_START=true)"
    )]
    NotMigrated { version: i32, name: &'static str },
}

/// Time limits Postgres enforces on each session of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub statement_timeout: Duration,
    pub idle_in_transaction_timeout: Duration,
}

impl SessionLimits {
    /// No limits: for work that may rightly take long (a replay's merge, migrations).
    pub const NONE: Self = Self {
        statement_timeout: Duration::ZERO,
        idle_in_transaction_timeout: Duration::ZERO,
    };

    /// Sets the limits as session defaults in the connection's startup options, after any
    /// options the URL already has.
    fn apply(&self, config: &mut tokio_postgres::Config) {
        let mut options = config.get_options().unwrap_or_default().to_owned();
        for (name, value) in [
            ("statement_timeout", self.statement_timeout),
            (
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction_timeout,
            ),
        ] {
            if !options.is_empty() {
                options.push(' ');
            }
            options.push_str(&format!("-c {name}={}", value.as_millis()));
        }
        config.options(&options);
    }
}

/// A database and how to reach it: the settings of its URL, and TLS as the URL's sslmode
/// asks (see `db_tls`), checked against `ca_file` when one is given.
#[derive(Clone)]
pub struct Database {
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl Database {
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Self, DbError> {
        let (mode, url) = db_tls::split_ssl_mode(url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(DbError::Url)?;
        if matches!(mode, db_tls::SslMode::Prefer | db_tls::SslMode::Require)
            && ca_file.is_none()
            && !all_local(&config)
        {
            tracing::warn!(
                ?mode,
                "the database is reached beyond this host without checking its certificate: \
                 use sslmode=verify-full (with DATABASE_CA_FILE for a private CA)"
            );
        }
        config
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES)
            .tcp_user_timeout(TCP_USER_TIMEOUT);
        Ok(Self {
            config,
            tls: db_tls::connector(mode, ca_file)?,
        })
    }

    pub fn name(&self) -> Option<&str> {
        self.config.get_dbname()
    }

    /// The same server, another database.
    pub fn sibling(&self, name: &str) -> Self {
        let mut other = self.clone();
        other.config.dbname(name);
        other
    }

    /// A pool of at most `max_size` connections, each under `limits`. Connections open
    /// lazily; one the server closed is dropped at its next checkout, so the pool heals by
    /// itself after Postgres restarts or terminates its sessions. With a statement timeout,
    /// every call through the pool gives up `CALL_MARGIN` after it (see `db_pool`).
    pub fn pool(&self, max_size: usize, limits: SessionLimits) -> Result<Pool, DbError> {
        let mut config = self.config.clone();
        limits.apply(&mut config);
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &self.tls {
            None => Manager::from_config(config, NoTls, manager_config),
            Some(tls) => Manager::from_config(config, tls.clone(), manager_config),
        };
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()?;
        let call_limit =
            (!limits.statement_timeout.is_zero()).then(|| limits.statement_timeout + CALL_MARGIN);
        Ok(Pool::new(pool, call_limit))
    }

    /// One connection outside any pool, driven on a background task.
    pub async fn connect(&self) -> Result<Client, DbError> {
        let (client, connection) = self.connect_raw().await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "postgres connection closed");
            }
        });
        Ok(client)
    }

    /// One connection whose messages (notifications) the caller reads.
    pub async fn connect_raw(&self) -> Result<(Client, RawConnection), tokio_postgres::Error> {
        Ok(match &self.tls {
            None => {
                let (client, connection) = self.config.connect(NoTls).await?;
                (client, RawConnection(Box::new(connection)))
            }
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                (client, RawConnection(Box::new(connection)))
            }
        })
    }
}

/// Whether every host of `config` is this machine (a Unix socket or a loopback address).
fn all_local(config: &tokio_postgres::Config) -> bool {
    config.get_hosts().iter().all(|host| match host {
        tokio_postgres::config::Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(_) => true,
    })
}

/// A connection over plain TCP or TLS; as a future, it runs until closed.
pub struct RawConnection(Box<dyn ReadsMessages>);

trait ReadsMessages: Send {
    fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AsyncMessage, tokio_postgres::Error>>>;
}

impl<T> ReadsMessages for Connection<Socket, T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AsyncMessage, tokio_postgres::Error>>> {
        Connection::poll_message(self, cx)
    }
}

impl RawConnection {
    /// The next notification or notice, once the connection has one.
    pub fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<AsyncMessage, tokio_postgres::Error>>> {
        self.0.poll_message(cx)
    }
}

impl std::future::Future for RawConnection {
    type Output = Result<(), tokio_postgres::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match this.0.poll_message(cx) {
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Creates the database when it does not exist yet, through the `postgres` maintenance
/// database of the same server. Lets a developer machine, CI and each test start from
/// nothing.
pub async fn ensure_database(database: &Database) -> Result<(), DbError> {
    let name = database.name().ok_or(DbError::NoDatabaseName)?.to_owned();
    match database.connect_raw().await {
        Ok(_) => return Ok(()),
        Err(error) if error.code() != Some(&SqlState::INVALID_CATALOG_NAME) => {
            return Err(error.into());
        }
        Err(_) => {}
    }
    let client = database.sibling("postgres").connect().await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match client
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await
    {
        Ok(()) => Ok(()),
        // Another replica or test created it first.
        Err(error) if error.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Whether the error is a unique violation of the named constraint or index.
pub fn is_unique_violation(error: &tokio_postgres::Error, constraint: &str) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
        && error
            .as_db_error()
            .and_then(|db| db.constraint())
            .is_some_and(|name| name == constraint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_limits_follow_the_options_of_the_url() {
        let mut config: tokio_postgres::Config = "postgres://u@h/db?options=-c%20search_path%3Dx"
            .parse()
            .unwrap();
        SessionLimits {
            statement_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_millis(1500),
        }
        .apply(&mut config);
        assert_eq!(
            config.get_options(),
            Some(
                "-c search_path=x -c statement_timeout=10000 -c idle_in_transaction_session_timeout=1500"
            )
        );
    }
}
