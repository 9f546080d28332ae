//! The services' HTTP side as an orchestrator sees it: readiness and metrics, each GET
//! bounded in time, since a service under a fault may accept a connection and never answer.

use std::{net::SocketAddr, time::Duration};

use anyhow::bail;
use testkit::metrics::{parse_metrics, sample, sum};

pub(crate) use testkit::http::READINESS;

/// How long one GET may take.
pub(crate) const LIMIT: Duration = Duration::from_secs(3);

/// A plain HTTP/1.0 GET: (status, body).
pub(crate) async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    testkit::http::get_within(addr, path, LIMIT)
        .await
        .map_err(anyhow::Error::msg)
}

/// The value of one sample on `/metrics` (`None` while the series has no sample yet).
pub(crate) async fn metric(
    addr: SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
) -> anyhow::Result<Option<f64>> {
    Ok(sample(&metrics(addr).await?, name, labels))
}

/// The sum of every sample of `name` whose labels include `labels`.
pub(crate) async fn metric_sum(
    addr: SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
) -> anyhow::Result<f64> {
    Ok(sum(&metrics(addr).await?, name, labels))
}

async fn metrics(addr: SocketAddr) -> anyhow::Result<Vec<testkit::metrics::Sample>> {
    let (status, body) = get(addr, "/metrics").await?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    Ok(parse_metrics(&body))
}
