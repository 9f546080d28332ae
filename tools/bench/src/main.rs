//! `make bench`: every figure of both services beside its baseline, measured in one run on
//! one machine, printed as one table.
//!
//! The services run as their release binaries in processes of their own, pinned to core 0;
//! this process (the load generator) and what it starts (pgbench, a bare consumer) run on
//! the other cores. Postgres and the broker are shared by both sides, as they would be.
//!
//! Settings: BENCH_SECONDS (per measurement, default 5), BENCH_CONCURRENCY (default 16),
//! BENCH_REPLAY_EVENTS (default 50,000), BENCH_BIN_DIR (the binaries to measure, default:
//! beside this one), BENCH_BEFORE_BIN_DIR (if set, every row is measured again with the
//! binaries found there, marked "before").

mod h2load;
mod load;
mod pgbench;
mod rows;
mod sample_user;
mod services;
mod table;

use std::{path::PathBuf, time::Duration};

use services::Cores;

/// What every row needs.
#[derive(Debug, Clone)]
pub(crate) struct Bench {
    pub(crate) cores: Cores,
    pub(crate) seconds: u64,
    pub(crate) concurrency: usize,
    pub(crate) replay_events: usize,
    pub(crate) bin_dir: Option<PathBuf>,
    /// Added to each figure's name ("", or " (before)").
    pub(crate) label: String,
    /// Measuring the binaries of BENCH_BEFORE_BIN_DIR.
    pub(crate) before: bool,
    /// The parts to measure (BENCH_ONLY, comma separated: reads, scaling, visibility,
    /// replay, writes); all when empty.
    pub(crate) only: Vec<String>,
}

impl Bench {
    pub(crate) fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    pub(crate) fn binary(&self, name: &str) -> PathBuf {
        services::binary(name, self.bin_dir.as_ref())
    }

    pub(crate) fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|wanted| wanted == part)
    }

    pub(crate) fn figure(&self, name: &str) -> String {
        format!("{name}{}", self.label)
    }
}

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    testkit::broker::require_broker();
    let machine = machine();
    let cores = Cores::split();
    let bench = Bench {
        cores,
        seconds: setting("BENCH_SECONDS", 5),
        concurrency: setting("BENCH_CONCURRENCY", 16),
        replay_events: setting("BENCH_REPLAY_EVENTS", 50_000),
        bin_dir: std::env::var_os("BENCH_BIN_DIR").map(PathBuf::from),
        label: String::new(),
        before: false,
        only: std::env::var("BENCH_ONLY")
            .map(|only| only.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    println!(
        "users benchmarks: {} s per measurement, {} callers unless a row says otherwise; {}; {}",
        bench.seconds,
        bench.concurrency,
        machine,
        bench.cores.describe()
    );

    let mut runs = vec![bench.clone()];
    if let Some(before) = std::env::var_os("BENCH_BEFORE_BIN_DIR") {
        runs.push(Bench {
            bin_dir: Some(PathBuf::from(before)),
            label: " (before)".to_owned(),
            before: true,
            ..bench.clone()
        });
    }
    let mut rows = Vec::new();
    for run in runs.iter().filter(|run| run.wants("reads")) {
        eprintln!("reads{}...", run.label);
        rows.extend(rows::reads::run(run).await?);
    }
    for run in runs.iter().filter(|run| run.wants("scaling")) {
        eprintln!("scaling{}...", run.label);
        rows.extend(rows::scaling::run(run).await?);
    }
    for run in runs.iter().filter(|run| run.wants("visibility")) {
        eprintln!("visibility{}...", run.label);
        rows.extend(rows::visibility::run(run).await?);
    }
    for run in runs.iter().filter(|run| run.wants("replay")) {
        eprintln!("replay{}...", run.label);
        rows.extend(rows::replay::run(run).await?);
    }
    for run in runs.iter().filter(|run| run.wants("writes")) {
        eprintln!("writes{}...", run.label);
        rows.extend(rows::writes::run(run).await?);
    }
    table::print(&rows);
    Ok(())
}

/// The machine, as /proc tells it.
fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cores} × {model}")
}
