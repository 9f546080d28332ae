//! One HTTP GET, for the issuer's key set: HTTPS checked against the Mozilla roots, or plain
//! HTTP to loopback (a local issuer, a test).

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Key sets are a few kilobytes; anything this large is not one.
const MAX_BODY: usize = 1024 * 1024;

pub(super) async fn get(url: &str, within: Duration) -> Result<Vec<u8>, String> {
    tokio::time::timeout(within, get_unbounded(url))
        .await
        .map_err(|_| format!("no answer within {within:?}"))?
}

async fn get_unbounded(url: &str) -> Result<Vec<u8>, String> {
    let uri: http::Uri = url.parse().map_err(|_| "not a URL".to_owned())?;
    let host = uri.host().ok_or("the URL names no host")?.to_owned();
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the URL is neither https:// nor http://".to_owned()),
    };
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let address = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let stream = TcpStream::connect((address.as_str(), port))
        .await
        .map_err(|error| format!("cannot connect: {error}"))?;
    let path = uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    let request = http::Request::get(path)
        .header(
            http::header::HOST,
            uri.authority().map_or(host.as_str(), |a| a.as_str()),
        )
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|error| error.to_string())?;
    if tls {
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_config()?));
        let name = rustls::pki_types::ServerName::try_from(address.clone())
            .map_err(|_| "the URL's host is not a valid TLS name".to_owned())?;
        let stream = connector
            .connect(name, stream)
            .await
            .map_err(|error| format!("TLS: {error}"))?;
        exchange(stream, request).await
    } else {
        exchange(stream, request).await
    }
}

async fn exchange<S>(
    stream: S,
    request: http::Request<Empty<bytes::Bytes>>,
) -> Result<Vec<u8>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("HTTP: {error}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("HTTP: {error}"))?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("answered HTTP {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|error| format!("reading the answer: {error}"))?;
    Ok(body.to_bytes().to_vec())
}

fn client_config() -> Result<rustls::ClientConfig, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}
