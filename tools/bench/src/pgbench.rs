//! pgbench running a script of our own: the database's own rate for the work a call does.

use std::process::Command;

use anyhow::Context;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Pgbench {
    pub(crate) tps: f64,
}

/// Runs `script` on `clients` connections for `seconds`, prepared statements, one thread.
pub(crate) fn run(
    database_url: &str,
    script: &str,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Pgbench> {
    run_with(database_url, script, clients, seconds, &[])
}

/// The same, held to `per_second` transactions (a load beside a measurement, not one).
pub(crate) fn run_paced(
    database_url: &str,
    script: &str,
    clients: usize,
    seconds: u64,
    per_second: f64,
) -> anyhow::Result<Pgbench> {
    let rate = format!("{:.0}", per_second.max(1.0));
    run_with(database_url, script, clients, seconds, &["-R", &rate])
}

fn run_with(
    database_url: &str,
    script: &str,
    clients: usize,
    seconds: u64,
    extra: &[&str],
) -> anyhow::Result<Pgbench> {
    let path = std::env::temp_dir().join(format!("users-bench-{}.sql", uuid::Uuid::new_v4()));
    std::fs::write(&path, script)?;
    let output = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-j", "1"])
        .args(["-c", &clients.to_string(), "-T", &seconds.to_string()])
        .args(extra)
        .arg("-f")
        .arg(&path)
        .arg(database_url)
        .output()
        .context("pgbench runs (Debian: postgresql-client)")?;
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&output.stdout);
    let number = |prefix: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<f64>().ok())
    };
    let tps = number("tps = ").with_context(|| {
        format!(
            "pgbench printed no tps:\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok(Pgbench { tps })
}
