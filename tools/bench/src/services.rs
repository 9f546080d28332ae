//! The services under test, as separate processes pinned to the server's core, started from
//! the release binaries beside this one (or from `BENCH_BIN_DIR`).

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use testkit::{
    ports::free_addr,
    process::{Launch, Process},
    service_args::{Binary, DEV_BROKER_ENV, ServiceArgs},
};

use crate::Bench;

/// Where the server side runs and where the load generator runs.
#[derive(Debug, Clone)]
pub(crate) struct Cores {
    pub(crate) server: Option<String>,
}

impl Cores {
    /// With two cores or more: the server on core 0, this process (the load generator,
    /// pgbench) on the rest. With one, nothing is pinned.
    pub(crate) fn split() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores < 2 {
            return Self { server: None };
        }
        let rest = format!("1-{}", cores - 1);
        // Children inherit this: pgbench and the bare consumer run beside the generator.
        let pinned = Command::new("taskset")
            .args(["-a", "-cp", &rest, &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        Self {
            server: pinned.then(|| "0".to_owned()),
        }
    }

    /// `binary` on the server's core, set for the development broker.
    pub(crate) fn launch(&self, binary: &Path) -> Launch {
        let launch = match &self.server {
            Some(core) => Launch::new("taskset")
                .args(["-c", core])
                .arg(binary.display().to_string()),
            None => Launch::new(binary),
        };
        launch.envs(DEV_BROKER_ENV)
    }

    pub(crate) fn describe(&self) -> String {
        match &self.server {
            Some(core) => format!("server processes on core {core}, load generator on the others"),
            None => "one core, or taskset missing: nothing pinned".to_owned(),
        }
    }
}

pub(crate) fn binary(name: &str, dir: Option<&PathBuf>) -> PathBuf {
    let dir = dir.cloned().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
            .unwrap_or_default()
    });
    dir.join(name)
}

/// A service process; killed when dropped.
pub(crate) struct Service {
    pub(crate) grpc: SocketAddr,
    http: SocketAddr,
    process: Process,
}

impl Service {
    /// Starts the service with `args` (plus its addresses) on the server core and waits
    /// until readiness answers 200.
    pub(crate) async fn start<S: Binary>(
        bench: &Bench,
        args: ServiceArgs<S>,
    ) -> anyhow::Result<Self> {
        let (grpc, http) = (free_addr(), free_addr());
        let binary = bench.binary(S::NAME);
        let log = std::env::temp_dir().join(format!("users-bench-{}-{}.log", S::NAME, grpc.port()));
        let mut args = args.grpc_addr(grpc).http_addr(http);
        if !args.env().iter().any(|(name, _)| name == "RUST_LOG") {
            args = args.log_filter(
                &std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".to_owned()),
            );
        }
        let launch = bench
            .cores
            .launch(&binary)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .service(&args);
        let mut process = Process::spawn(binary.display().to_string(), launch, Some(log))?;
        process
            .wait_ready(http, Duration::from_secs(60), Duration::from_secs(1))
            .await?;
        Ok(Self {
            grpc,
            http,
            process,
        })
    }

    /// The samples on /metrics.
    async fn samples(&self) -> anyhow::Result<Vec<testkit::metrics::Sample>> {
        let (_, text) = testkit::http::try_get(self.http, "/metrics")
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(testkit::metrics::parse_metrics(&text))
    }

    /// The median and 99th percentile (upper bucket bounds, ms) of the histogram `name` on
    /// /metrics, e.g. to tell which stage a latency is spent in.
    pub(crate) async fn histogram_ms(&self, name: &str) -> Option<(f64, f64)> {
        let buckets: Vec<(f64, f64)> = self
            .samples()
            .await
            .ok()?
            .into_iter()
            .filter(|sample| sample.name == format!("{name}_bucket"))
            .filter_map(|sample| {
                let le = sample.labels.get("le")?;
                Some((le.parse().unwrap_or(f64::INFINITY), sample.value))
            })
            .collect();
        let total = buckets.last()?.1;
        let at = |q: f64| {
            buckets
                .iter()
                .find(|(_, count)| *count >= total * q)
                .map(|(le, _)| le * 1000.0)
        };
        Some((at(0.5)?, at(0.99)?))
    }

    /// The sum of the samples of counter `name` on /metrics with `labels`.
    pub(crate) async fn counter(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        Ok(testkit::metrics::sum(&self.samples().await?, name, labels))
    }

    /// Resident memory, from /proc.
    pub(crate) fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// CPU time the process has used (user + system).
    pub(crate) fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        let after_name = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_millis(ticks * 10))
    }

    pub(crate) fn pid(&self) -> u32 {
        // Through taskset, which execs the binary in place: the same pid.
        self.process.pid().expect("running")
    }
}

/// CPU time used so far: every core's busy time (/proc/stat), and each live process's own.
pub(crate) struct CpuReading {
    machine: Duration,
    processes: HashMap<u32, (String, Duration)>,
}

impl CpuReading {
    pub(crate) fn now() -> Self {
        let mut processes = HashMap::new();
        for process in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = process.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(process.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            let ticks = |at: usize| {
                fields
                    .get(at)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let used = Duration::from_millis((ticks(11) + ticks(12)) * 10);
            processes.insert(pid, (stat[open + 1..close].to_owned(), used));
        }
        Self {
            machine: machine_busy(),
            processes,
        }
    }

    /// Time spent since `before`: `machine` first (which also holds processes that have ended
    /// since, such as pgbench's backends), then, per name, the processes still alive whose
    /// name starts with it (/proc keeps 15 characters of a name).
    fn spent_since(&self, before: &Self, names: &[&str]) -> Vec<(String, Duration)> {
        let mut spent = vec![(
            "machine".to_owned(),
            self.machine.saturating_sub(before.machine),
        )];
        for name in names {
            let used = self
                .processes
                .iter()
                .filter(|(_, (comm, _))| comm.starts_with(name))
                .map(|(pid, (_, used))| {
                    let earlier = before.processes.get(pid).map_or(Duration::ZERO, |p| p.1);
                    used.saturating_sub(earlier)
                })
                .sum();
            spent.push(((*name).to_owned(), used));
        }
        spent
    }

    /// Where the CPU went since `before`, in µs per call.
    pub(crate) fn per_call(&self, before: &Self, names: &[&str], calls: f64) -> String {
        show(self.spent_since(before, names), |spent| {
            format!("{:.0} µs", spent.as_secs_f64() * 1e6 / calls.max(1.0))
        })
    }

    /// Where the CPU went since `before`, in % of one core.
    pub(crate) fn share(&self, before: &Self, names: &[&str], elapsed: Duration) -> String {
        show(self.spent_since(before, names), |spent| {
            format!(
                "{:.0}%",
                100.0 * spent.as_secs_f64() / elapsed.as_secs_f64()
            )
        })
    }
}

fn show(spent: Vec<(String, Duration)>, unit: impl Fn(Duration) -> String) -> String {
    spent
        .into_iter()
        .map(|(name, spent)| format!("{name} {}", unit(spent)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Busy time of every core so far: user, nice, system, irq, softirq and steal.
fn machine_busy() -> Duration {
    let ticks: u64 = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let line = stat.lines().next()?.to_owned();
            let fields: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|field| field.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            Some(
                [0, 1, 2, 5, 6, 7]
                    .iter()
                    .filter_map(|at| fields.get(*at))
                    .sum(),
            )
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}
