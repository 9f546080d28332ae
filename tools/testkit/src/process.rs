//! Programs as processes of their own (the services' binaries, a broker, a bare server): a
//! command line, a log file, a wait until they answer, signals, and a kill when dropped.

use std::{
    fs::OpenOptions,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};

use crate::service_args::{Binary, ServiceArgs};

/// What to start: a program, its arguments, its environment and where it runs.
#[derive(Debug, Clone)]
pub struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    env_removed: Vec<String>,
    isolated: bool,
    dir: Option<PathBuf>,
}

impl Launch {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_removed: Vec::new(),
            isolated: false,
            dir: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn envs(
        mut self,
        vars: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        self.env.extend(
            vars.into_iter()
                .map(|(name, value)| (name.into(), value.into())),
        );
        self
    }

    /// Leaves `name` out of what the program inherits.
    pub fn env_remove(mut self, name: impl Into<String>) -> Self {
        self.env_removed.push(name.into());
        self
    }

    /// Nothing from this process's environment but PATH, so that a developer's
    /// KAFKA_BROKERS or DATABASE_URL cannot point a service at shared things.
    pub fn isolated(mut self) -> Self {
        self.isolated = true;
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// A service's flags and environment, after what is there already.
    pub fn service<S: Binary>(self, args: &ServiceArgs<S>) -> Self {
        self.args(args.args().iter().cloned())
            .envs(args.env().iter().cloned())
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    pub fn arg_list(&self) -> &[String] {
        &self.args
    }

    /// The command, reading nothing on stdin, its output left for the caller to direct.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args).stdin(Stdio::null());
        if self.isolated {
            command
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        }
        for name in &self.env_removed {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }
}

/// A started [`Launch`], restartable with the same command line; killed when dropped.
#[derive(Debug)]
pub struct Process {
    label: String,
    launch: Launch,
    /// Where stdout and stderr go; discarded when `None`.
    log: Option<PathBuf>,
    child: Option<Child>,
    starts: u32,
}

impl Process {
    /// Starts `launch`, its output written to `log` (emptied first) or discarded.
    pub fn spawn(
        label: impl Into<String>,
        launch: Launch,
        log: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let mut process = Self {
            label: label.into(),
            launch,
            log,
            child: None,
            starts: 0,
        };
        process.start(true)?;
        Ok(process)
    }

    /// Starts the same command line again (after [`Self::kill`], say), its output added to
    /// the same log.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.start(false)
    }

    fn start(&mut self, fresh_log: bool) -> anyhow::Result<()> {
        self.reap();
        let mut command = self.launch.command();
        match &self.log {
            Some(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(!fresh_log)
                    .truncate(fresh_log)
                    .open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                command.stdout(file.try_clone()?).stderr(file);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = command.spawn().with_context(|| {
            format!(
                "cannot start {} ({})",
                self.label,
                self.launch.program.display()
            )
        })?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn launch(&self) -> &Launch {
        &self.launch
    }

    /// How many times the command line has been started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// `None` once killed.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status, once the process has exited on its own.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Polls `check` every `every` until it gives a value, failing early when the process
    /// exits and after `within`.
    pub async fn wait_for<T, F, Fut>(
        &mut self,
        what: &str,
        within: Duration,
        every: Duration,
        mut check: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                bail!(
                    "{} exited ({status}) before {what}; {}",
                    self.label,
                    self.log_ending()
                );
            }
            if let Some(value) = check().await {
                return Ok(value);
            }
            if started.elapsed() > within {
                bail!(
                    "{}: no {what} within {within:?}; {}",
                    self.label,
                    self.log_ending()
                );
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Until readiness on `http` answers 200, each GET given `probe_limit`: how long that
    /// took.
    pub async fn wait_ready(
        &mut self,
        http: SocketAddr,
        within: Duration,
        probe_limit: Duration,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.wait_for(
            "readiness",
            within,
            Duration::from_millis(100),
            || async move {
                let answer =
                    crate::http::get_within(http, crate::http::READINESS, probe_limit).await;
                matches!(answer, Ok((200, _))).then_some(())
            },
        )
        .await?;
        Ok(started.elapsed())
    }

    /// Until the process exits, for at most `within`: its status, or `None` while it runs.
    pub async fn wait_exit(&mut self, within: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().context("not running")?;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal`, as `kill` names it ("-TERM", "-STOP", "-CONT").
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.pid().context("not running")?.to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .context("cannot run kill")?;
        ensure!(status.success(), "kill {signal} {pid} failed");
        Ok(())
    }

    /// SIGKILL, as the kernel's OOM killer or a lost node would stop it: no shutdown path
    /// runs.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("not running")?;
        child.kill()?;
        while child.try_wait()?.is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Kills the process, if it runs, and waits for it to go.
    fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// Everything the process has written so far.
    pub fn log_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|path| std::fs::read(path).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Lines of the log that tell of a panic, at most a few.
    pub fn panics(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|line| line.contains("panicked"))
            .take(5)
            .map(str::to_owned)
            .collect()
    }

    fn log_ending(&self) -> String {
        match &self.log {
            Some(path) => format!("its log ({}) ends:\n{}", path.display(), self.log_tail(15)),
            None => "its output was discarded".to_owned(),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.reap();
    }
}
