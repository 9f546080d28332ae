//! TLS on the gRPC port: HTTP/2 over TLS, mutual TLS with a client CA, and certificates
//! taken up again when their files change.

use std::{path::Path, time::Duration};

use shared_proto::event_headers;
use shared_proto::v1::{self, user_service_client::UserServiceClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::helpers::*;
use testkit::{
    broker,
    test_certs::{TestCa, read},
};

async fn tls_client(
    addr: std::net::SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<UserServiceClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(ca)))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(read(cert), read(key)));
    }
    let channel = Channel::from_shared(format!("https://localhost:{}", addr.port()))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(UserServiceClient::new(channel))
}

/// A call that needs no user: a GetUser, which command-service answers UNIMPLEMENTED.
async fn answers(client: &mut UserServiceClient<Channel>) -> bool {
    match client
        .get_user(v1::GetUserRequest {
            id: uuid::Uuid::now_v7().to_string(),
            min_version: None,
        })
        .await
    {
        Ok(_) => true,
        Err(status) => status.code() == tonic::Code::Unimplemented,
    }
}

#[tokio::test]
async fn the_grpc_port_serves_tls_and_takes_a_renewed_certificate_without_a_restart() {
    let ca = TestCa::new("grpc-ca");
    let (cert, key) = ca.server();
    let args = [
        format!("--grpc-tls-cert-file={}", cert.display()),
        format!("--grpc-tls-key-file={}", key.display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let app = spawn_app_with(&broker::brokers(), &args).await;

    let mut client = tls_client(app.grpc_addr, &ca.cert_file(), None)
        .await
        .unwrap();
    assert!(answers(&mut client).await);
    let mut plain = UserServiceClient::connect(format!("http://{}", app.grpc_addr))
        .await
        .unwrap();
    assert!(!answers(&mut plain).await, "plain HTTP/2 is refused");

    // cert-manager renews from another CA: new connections get the new certificate.
    let renewed = TestCa::new("renewed-ca");
    let (new_cert, new_key) = renewed.server();
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut fresh) = tls_client(app.grpc_addr, &renewed.cert_file(), None).await
            && answers(&mut fresh).await
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate never served"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        answers(&mut client).await,
        "a connection made before goes on"
    );
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_its_certificates_get_in() {
    let ca = TestCa::new("grpc-ca");
    let (cert, key) = ca.server();
    let clients = TestCa::new("clients-ca");
    let (client_cert, client_key) = clients.issue("client", "reader", "DNS:reader.test");
    let args = [
        format!("--grpc-tls-cert-file={}", cert.display()),
        format!("--grpc-tls-key-file={}", key.display()),
        format!(
            "--grpc-tls-client-ca-file={}",
            clients.cert_file().display()
        ),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let app = spawn_app_with(&broker::brokers(), &args).await;

    let anonymous = tls_client(app.grpc_addr, &ca.cert_file(), None).await;
    let refused = match anonymous {
        Err(_) => true,
        Ok(mut client) => !answers(&mut client).await,
    };
    assert!(refused, "a client without a certificate got in");
    let stranger = ca.issue("stranger", "stranger", "DNS:stranger.test");
    let strange = tls_client(
        app.grpc_addr,
        &ca.cert_file(),
        Some((&stranger.0, &stranger.1)),
    )
    .await;
    let refused = match strange {
        Err(_) => true,
        Ok(mut client) => !answers(&mut client).await,
    };
    assert!(refused, "a certificate of another CA got in");
    let mut known = tls_client(
        app.grpc_addr,
        &ca.cert_file(),
        Some((&client_cert, &client_key)),
    )
    .await
    .unwrap();
    assert!(answers(&mut known).await);

    // The certificate names the caller of what it changes.
    let mut events = app.events().await;
    known
        .create_user(create_request(&unique_email()))
        .await
        .expect("created over mutual TLS");
    let record = events.read(1, Duration::from_secs(20)).await.remove(0);
    assert_eq!(
        header(&record, event_headers::CE_AUTHID),
        Some("reader.test")
    );
    assert_eq!(
        header(&record, event_headers::CE_AUTHTYPE),
        Some("service_account")
    );
}
