//! The services reach a Postgres that requires TLS and check its certificate as sslmode
//! says. The local cluster runs with ssl=on and a self-signed certificate; the role
//! users_tls may connect over TLS only (scripts/postgres.sh).

use clap::Parser;
use command_service::{app::App, config::Cli};
use testkit::service_args::CommandServiceArgs;

use crate::helpers::*;

/// A database owned by users_tls, and the server's certificate (its own CA).
async fn tls_only_database() -> (TestDatabase, String) {
    let db = TestDatabase::create().await;
    let admin = db.client().await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" OWNER TO users_tls",
            db.name
        ))
        .await
        .unwrap_or_else(|error| {
            panic!("no role users_tls ({error}); `bash scripts/postgres.sh` makes it")
        });
    let certificate: String = admin
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    (db, certificate)
}

fn url(db: &TestDatabase, host: &str, sslmode: &str) -> String {
    format!(
        "postgres://users_tls@{host}:5432/{}?hostaddr=127.0.0.1&sslmode={sslmode}",
        db.name
    )
}

async fn build(database_url: &str, extra: &[&str]) -> anyhow::Result<App> {
    let args = CommandServiceArgs::new()
        .any_ports()
        .database_url(database_url)
        .brokers(&testkit::broker::brokers())
        .topic_prefix(&new_prefix())
        .flags(extra);
    App::build(Cli::try_parse_from(args.argv())?.config).await
}

#[tokio::test]
async fn the_service_writes_through_verified_tls_to_a_postgres_that_requires_it() {
    let (db, certificate) = tls_only_database().await;

    // Without TLS the server refuses.
    let Err(plain) = build(&url(&db, "127.0.0.1", "disable"), &[]).await else {
        panic!("a plaintext connection was accepted");
    };
    assert!(format!("{plain:#}").contains("no encryption"), "{plain:#}");

    // verify-full: the chain leads to the CA file and the certificate names localhost.
    let verified = url(&db, "localhost", "verify-full");
    let ca_file = format!("--database-ca-file={certificate}");
    let app = build(&verified, &[&ca_file])
        .await
        .expect("starts over TLS");
    let addr = app.grpc_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(app.run(stop.clone()));
    let mut client =
        shared_proto::v1::user_service_client::UserServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
    client
        .create_user(create_request(&unique_email()))
        .await
        .expect("a write over TLS");
    let encrypted: bool = db
        .client()
        .await
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.usename = 'users_tls' AND a.datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "every session of the service is encrypted");
    stop.cancel();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_certificate_the_service_cannot_verify_is_refused() {
    let (db, certificate) = tls_only_database().await;
    let ca_file = format!("--database-ca-file={certificate}");

    // The certificate names localhost, not 127.0.0.1: verify-full refuses, verify-ca takes it.
    let Err(wrong_name) = build(&url(&db, "127.0.0.1", "verify-full"), &[&ca_file]).await else {
        panic!("a certificate for another name was taken");
    };
    assert!(
        format!("{wrong_name:#}").contains("not valid for name"),
        "{wrong_name:#}"
    );
    build(&url(&db, "127.0.0.1", "verify-ca"), &[&ca_file])
        .await
        .expect("verify-ca does not check the name");

    // Against the public roots, a self-signed certificate does not verify.
    let Err(unknown) = build(&url(&db, "localhost", "verify-full"), &[]).await else {
        panic!("a self-signed certificate was taken without its CA");
    };
    assert!(
        format!("{unknown:#}").contains("UnknownIssuer"),
        "{unknown:#}"
    );
}
