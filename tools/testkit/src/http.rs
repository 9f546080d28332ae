//! Plain HTTP/1.0 GETs of the services' health and metrics endpoints: enough for them, and
//! no client whose own pooling or retries could hide how a service answers.

use std::{net::SocketAddr, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What an orchestrator asks before sending a service traffic.
pub const READINESS: &str = "/health-check/readiness";

/// A GET that must succeed: (status, body).
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_get(addr, path)
        .await
        .unwrap_or_else(|error| panic!("GET {path} from {addr}: {error}"))
}

/// [`get`], for a server that may go away meanwhile (a replay that finishes, a service that
/// is not up yet).
pub async fn try_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|error| format!("cannot connect: {error}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .map_err(|error| format!("cannot send the request: {error}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|error| format!("cannot read the response: {error}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {head}"))?;
    Ok((status, body.to_owned()))
}

/// [`try_get`] bounded in time, since a service under a fault may accept a connection and
/// never answer.
pub async fn get_within(
    addr: SocketAddr,
    path: &str,
    limit: Duration,
) -> Result<(u16, String), String> {
    tokio::time::timeout(limit, try_get(addr, path))
        .await
        .map_err(|_| format!("GET {path} on {addr}: no answer within {limit:?}"))?
}
