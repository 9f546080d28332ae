//! The services' HTTP side as an orchestrator sees it: readiness and metrics, each GET
//! bounded in time, since a service under a fault may accept a connection and never answer.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, bail};
use testkit::test_support::{parse_metrics, sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const READINESS: &str = "/health-check/readiness";
const LIMIT: Duration = Duration::from_secs(3);

/// A plain HTTP/1.0 GET: (status, body).
pub(crate) async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    tokio::time::timeout(LIMIT, async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        let response = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("not an HTTP response: {head}"))?;
        Ok((status, body.to_owned()))
    })
    .await
    .with_context(|| format!("GET {path} on {addr}: no answer within {LIMIT:?}"))?
}

/// The value of one sample on `/metrics` (`None` while the series has no sample yet).
pub(crate) async fn metric(
    addr: SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
) -> anyhow::Result<Option<f64>> {
    let (status, body) = get(addr, "/metrics").await?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    Ok(sample(&parse_metrics(&body), name, labels))
}

/// The sum of every sample of `name` whose labels include `labels`.
pub(crate) async fn metric_sum(
    addr: SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
) -> anyhow::Result<f64> {
    let (status, body) = get(addr, "/metrics").await?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    Ok(parse_metrics(&body)
        .iter()
        .filter(|sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(*value))
        })
        .map(|sample| sample.value)
        .sum())
}
