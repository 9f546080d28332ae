//! A fresh Postgres database per test, so that no test sees another's rows.

use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

use crate::{broker::require_broker, spans::init_tracing};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

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
