//! The services as real processes: started from their binaries with a log file each, probed
//! over HTTP, killed with SIGKILL and started again on the same ports.

use std::{net::SocketAddr, path::PathBuf, process::ExitStatus, time::Duration};

use crate::probe;
use anyhow::{Context, bail};
use testkit::{
    ports::free_addr,
    process::{Launch, Process},
    service_args::{Binary, DEV_BROKER_ENV, ServiceArgs},
};

/// How long a service may take to be ready, at its first start or after a kill.
const READY_WITHIN: Duration = Duration::from_secs(60);

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

    /// One of the binaries, isolated from this environment, set for the development broker.
    pub(crate) fn launch<S: Binary>(&self, args: &ServiceArgs<S>) -> Launch {
        Launch::new(self.bin_dir.join(S::NAME))
            .isolated()
            .env("RUST_BACKTRACE", "1")
            .envs(DEV_BROKER_ENV)
            .service(args)
    }
}

/// One service process, restartable with the same command line.
pub(crate) struct Service {
    pub(crate) label: String,
    pub(crate) grpc: SocketAddr,
    pub(crate) http: SocketAddr,
    process: Process,
}

impl Service {
    /// Starts the service with `args` on free ports and waits until it is ready.
    pub(crate) async fn start<S: Binary>(
        suite: &Suite,
        label: String,
        args: ServiceArgs<S>,
    ) -> anyhow::Result<Self> {
        let (grpc, http) = (free_addr(), free_addr());
        let args = args.grpc_addr(grpc).http_addr(http);
        let log = suite
            .log_dir
            .join(format!("{}.log", label.replace('/', "-")));
        let process = Process::spawn(label.clone(), suite.launch(&args), Some(log))?;
        let mut service = Self {
            label,
            grpc,
            http,
            process,
        };
        service.wait_ready(READY_WITHIN).await?;
        Ok(service)
    }

    /// The flags it runs with.
    pub(crate) fn args(&self) -> &[String] {
        self.process.launch().arg_list()
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub(crate) fn starts(&self) -> u32 {
        self.process.starts()
    }

    /// Whether the process runs; a process that exited is reported with its status.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.process.exited()
    }

    /// Until readiness answers 200, failing early if the process exits.
    pub(crate) async fn wait_ready(&mut self, within: Duration) -> anyhow::Result<Duration> {
        self.process
            .wait_ready(self.http, within, probe::LIMIT)
            .await
    }

    /// SIGKILL, as the kernel's OOM killer or a lost node would stop it: no shutdown path runs.
    pub(crate) async fn kill9(&mut self) -> anyhow::Result<()> {
        self.process.kill().await
    }

    /// Starts the same command line again and waits until it is ready.
    pub(crate) async fn restart(&mut self) -> anyhow::Result<Duration> {
        self.process.restart()?;
        self.wait_ready(READY_WITHIN).await
    }

    pub(crate) fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// Lines of the log that tell of a panic, at most a few.
    pub(crate) fn panics(&self) -> Vec<String> {
        self.process.panics()
    }
}
