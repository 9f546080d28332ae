//! The rate rows' load generator: nghttp2's h2load, a C HTTP/2 client that outpaces the
//! services on one core where this crate's own client (`load`) does not. It checks HTTP
//! statuses only, so each row also checks the server's own count of OK answers.

use std::{net::SocketAddr, path::PathBuf, process::Command, time::Duration};

use anyhow::{Context, bail};
use bytes::Bytes;

/// h2load's result: calls answered with HTTP 200 per second, and the CPU it used.
#[derive(Debug, Clone, Copy)]
pub(crate) struct H2Load {
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) elapsed: Duration,
    /// Of its one core, 0 to 1.
    pub(crate) busy: f64,
}

impl H2Load {
    pub(crate) fn rate(&self) -> f64 {
        self.succeeded as f64 / self.elapsed.as_secs_f64()
    }

    /// What h2load could drive were the server free: its rate over the share of its core it
    /// needed for it.
    pub(crate) fn ceiling(&self) -> f64 {
        self.rate() / self.busy.max(0.01)
    }
}

/// Installs Debian's nghttp2-client when h2load is missing (the bench runs as root on CI).
pub(crate) fn ensure() -> anyhow::Result<()> {
    if Command::new("h2load").arg("--version").output().is_ok() {
        return Ok(());
    }
    println!("installing h2load (Debian's nghttp2-client)");
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-qq", "nghttp2-client"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("apt-get")?;
    if !installed.success() {
        bail!(
            "h2load is missing and apt-get could not install nghttp2-client: install it and run again"
        );
    }
    Ok(())
}

/// `concurrency` streams over `connections` connections, each call POSTing `frame` (one
/// gRPC message) to `path`, for `duration` after one second of warm-up.
pub(crate) fn run(
    addr: SocketAddr,
    path: &str,
    frame: &Bytes,
    connections: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<H2Load> {
    let body = body_file(frame)?;
    // Children waited for before (pgbench) count in the same total.
    let cpu_before = children_cpu();
    let started = std::time::Instant::now();
    let output = Command::new("h2load")
        .args(["-t", "1", "-c", &connections.to_string()])
        .args(["-m", &(concurrency / connections).max(1).to_string()])
        .args([
            "-D",
            &duration.as_secs().max(1).to_string(),
            "--warm-up-time=1",
        ])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .arg("-d")
        .arg(&body)
        .arg(format!("http://{addr}{path}"))
        .output()
        .context("h2load")?;
    let wall = started.elapsed();
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "h2load failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut result = parse(&text).with_context(|| format!("h2load's output: {text}"))?;
    // Its user and system time, as the kernel counted them for the finished child.
    result.busy = ((children_cpu() - cpu_before) / wall.as_secs_f64()).min(1.0);
    Ok(result)
}

fn body_file(frame: &Bytes) -> anyhow::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("users-bench-h2load-{}.bin", std::process::id()));
    std::fs::write(&path, frame)?;
    Ok(path)
}

/// From `finished in 5.00s, …` and `requests: N total, N started, N done, S succeeded, F failed, …`.
fn parse(text: &str) -> anyhow::Result<H2Load> {
    let seconds: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("finished in "))
        .and_then(|rest| rest.split('s').next())
        .context("no `finished in`")?
        .parse()?;
    let requests = text
        .lines()
        .find_map(|line| line.strip_prefix("requests: "))
        .context("no `requests:`")?;
    let count = |what: &str| -> anyhow::Result<u64> {
        requests
            .split(", ")
            .find_map(|part| part.strip_suffix(what))
            .context(what.to_owned())?
            .split_whitespace()
            .last()
            .context(what.to_owned())?
            .parse()
            .map_err(Into::into)
    };
    Ok(H2Load {
        succeeded: count(" succeeded")?,
        failed: count(" failed")? + count(" errored")? + count(" timeout")?,
        elapsed: Duration::from_secs_f64(seconds),
        busy: 1.0,
    })
}

/// CPU seconds used so far by this process's children that have been waited for.
fn children_cpu() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            // cutime and cstime, fields 16 and 17 of stat (13 and 14 after the name), in
            // ticks of 10 ms.
            let ticks = |at: usize| fields.get(at)?.parse::<f64>().ok();
            Some((ticks(13)? + ticks(14)?) / 100.0)
        })
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_h2loads_summary() {
        let text = "finished in 5.00s, 95123.40 req/s, 10.22MB/s\n\
                    requests: 475617 total, 475617 started, 475617 done, 475600 succeeded, 17 failed, 0 errored, 0 timeout\n";
        let result = parse(text).unwrap();
        assert_eq!((result.succeeded, result.failed), (475600, 17));
        assert_eq!(result.elapsed, Duration::from_secs(5));
    }
}
