//! The suite's own Postgres sessions: to look at what the services wrote, and to cut the
//! services' connections. They carry an application name of their own, so a fault aimed at
//! the services spares the suite's sessions.

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

const APPLICATION: &str = "fault-suite";
const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

pub(crate) async fn connect(database_url: &str) -> anyhow::Result<Client> {
    let separator = if database_url.contains('?') { '&' } else { '?' };
    let url = format!("{database_url}{separator}application_name={APPLICATION}");
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .with_context(|| format!("cannot connect to {database_url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Terminates every session on `databases` but the suite's own; how many it ended. Only
/// the named databases: other tests share this server.
pub(crate) async fn terminate_backends(databases: &[&str]) -> anyhow::Result<u64> {
    let admin = connect(&format!("{SERVER}/postgres")).await?;
    let databases: Vec<String> = databases.iter().map(|name| (*name).to_owned()).collect();
    let row = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = ANY($1) AND application_name <> $2 AND pid <> pg_backend_pid()",
            &[&databases, &APPLICATION],
        )
        .await
        .context("pg_terminate_backend")?;
    Ok(row.get::<_, i64>(0) as u64)
}
