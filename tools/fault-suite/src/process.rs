//! The services as real processes: started from their binaries with a log file each, probed
//! over HTTP, killed with SIGKILL and started again on the same ports.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::probe;

/// Where the binaries are and where their logs go, for every scenario of a run.
#[derive(Debug, Clone)]
pub(crate) struct Suite {
    pub(crate) bin_dir: PathBuf,
    pub(crate) log_dir: PathBuf,
}

impl Suite {
    /// The services' binaries sit beside this one in the target directory (`cargo build
    /// --bins` puts them there); `FAULT_SUITE_BIN_DIR` points elsewhere.
    pub(crate) fn locate() -> anyhow::Result<Self> {
        let bin_dir = match std::env::var_os("FAULT_SUITE_BIN_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => std::env::current_exe()?
                .parent()
                .context("the suite's binary has no directory")?
                .to_owned(),
        };
        for binary in ["command-service", "query-service"] {
            if !bin_dir.join(binary).is_file() {
                bail!(
                    "no {binary} in {} (build it: cargo build --bins -p command-service -p query-service)",
                    bin_dir.display()
                );
            }
        }
        let log_dir =
            std::env::temp_dir().join(format!("fault-suite-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&log_dir)?;
        Ok(Self { bin_dir, log_dir })
    }

    pub(crate) fn binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// A command for one of the binaries with nothing from this environment but PATH, so a
    /// developer's KAFKA_BROKERS or DATABASE_URL cannot point a service at shared things.
    pub(crate) fn command(
        &self,
        binary: &str,
        args: &[String],
        log: &Path,
    ) -> anyhow::Result<Command> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let mut command = Command::new(self.binary(binary));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_BACKTRACE", "1")
            .envs(testkit::test_support::DEV_BROKER_ENV)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        Ok(command)
    }
}

/// A free port on loopback; another process may take it before us, as with any port 0 trick,
/// but each scenario's ports are its own.
pub(crate) fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on loopback")
}

/// One service process, restartable with the same command line.
pub(crate) struct Service {
    pub(crate) label: String,
    binary: &'static str,
    args: Vec<String>,
    pub(crate) grpc: SocketAddr,
    pub(crate) http: SocketAddr,
    log: PathBuf,
    suite: Suite,
    child: Option<Child>,
    pub(crate) starts: u32,
}

impl Service {
    /// Starts `binary` with `args` (which must include `grpc` and `http`) and waits until it
    /// is ready.
    pub(crate) async fn start(
        suite: &Suite,
        label: String,
        binary: &'static str,
        args: Vec<String>,
        grpc: SocketAddr,
        http: SocketAddr,
    ) -> anyhow::Result<Self> {
        let log = suite
            .log_dir
            .join(format!("{}.log", label.replace('/', "-")));
        let mut service = Self {
            label,
            binary,
            args,
            grpc,
            http,
            log,
            suite: suite.clone(),
            child: None,
            starts: 0,
        };
        service.spawn()?;
        service.wait_ready(Duration::from_secs(60)).await?;
        Ok(service)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut command = self.suite.command(self.binary, &self.args, &self.log)?;
        command.kill_on_drop(true);
        self.child = Some(
            command
                .spawn()
                .with_context(|| format!("cannot start {}", self.label))?,
        );
        self.starts += 1;
        Ok(())
    }

    pub(crate) fn args(&self) -> &[String] {
        &self.args
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether the process runs; a process that exited is reported with its status.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        match self.child.as_mut() {
            Some(child) => child.try_wait().ok().flatten(),
            None => None,
        }
    }

    /// Until readiness answers 200, failing early if the process exits.
    pub(crate) async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                bail!(
                    "{} exited ({status}) before it was ready; its log ends:\n{}",
                    self.label,
                    self.log_tail(15)
                );
            }
            if let Ok((200, _)) = probe::get(self.http, probe::READINESS).await {
                return Ok(started.elapsed());
            }
            if started.elapsed() > within {
                bail!(
                    "{} not ready within {within:?}; its log ends:\n{}",
                    self.label,
                    self.log_tail(15)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL, as the kernel's OOM killer or a lost node would stop it: no shutdown path runs.
    pub(crate) async fn kill9(&mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("not running")?;
        child.start_kill()?;
        child.wait().await?;
        Ok(())
    }

    /// Starts the same command line again and waits until it is ready.
    pub(crate) async fn restart(&mut self) -> anyhow::Result<Duration> {
        self.spawn()?;
        self.wait_ready(Duration::from_secs(60)).await
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Lines of the log that tell of a panic, at most a few.
    pub(crate) fn panics(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|line| line.contains("panicked"))
            .take(5)
            .map(str::to_owned)
            .collect()
    }

    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}
