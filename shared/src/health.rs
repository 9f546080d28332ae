//! Readiness: dependency checks run on a timer (never on the probe's request path), a
//! draining switch for shutdown, and the same state mirrored to the gRPC health service.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// The body of `/health-check/readiness`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    pub status: Status,
    pub checks: BTreeMap<&'static str, CheckOutcome>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No check has completed yet.
    Starting,
    Ready,
    Failing,
    /// Shutting down: no new work should be sent here.
    Draining,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckOutcome {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Cheap to clone; every clone sees the same state.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    checks: RwLock<Vec<(&'static str, Check)>>,
    last: RwLock<BTreeMap<&'static str, CheckOutcome>>,
    draining: AtomicBool,
    grpc: HealthReporter,
    grpc_services: Vec<&'static str>,
}

impl Health {
    /// `grpc_services` are the gRPC service names whose status follows readiness.
    pub fn new(grpc: HealthReporter, grpc_services: Vec<&'static str>) -> Self {
        Self {
            inner: Arc::new(Inner {
                checks: RwLock::new(Vec::new()),
                last: RwLock::new(BTreeMap::new()),
                draining: AtomicBool::new(false),
                grpc,
                grpc_services,
            }),
        }
    }

    pub fn add_check<F, Fut>(&self, name: &'static str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: Check = Arc::new(move || Box::pin(check()));
        self.inner
            .checks
            .write()
            .expect("health lock poisoned")
            .push((name, check));
    }

    pub fn report(&self) -> Report {
        let checks = self
            .inner
            .last
            .read()
            .expect("health lock poisoned")
            .clone();
        let registered = self
            .inner
            .checks
            .read()
            .expect("health lock poisoned")
            .len();
        let status = if self.inner.draining.load(Ordering::SeqCst) {
            Status::Draining
        } else if checks.len() < registered {
            Status::Starting
        } else if checks.values().all(|outcome| outcome.ok) {
            Status::Ready
        } else {
            Status::Failing
        };
        Report { status, checks }
    }

    pub fn is_ready(&self) -> bool {
        self.report().status == Status::Ready
    }

    /// Readiness and gRPC health turn NOT_SERVING at once and stay so.
    pub async fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
        self.publish_grpc_status().await;
    }

    /// Runs every check once, each bounded by `timeout`, and records the outcomes.
    pub async fn run_checks(&self, timeout: Duration) {
        let checks = self
            .inner
            .checks
            .read()
            .expect("health lock poisoned")
            .clone();
        let outcomes =
            futures::future::join_all(checks.into_iter().map(|(name, check)| async move {
                let outcome = match tokio::time::timeout(timeout, check()).await {
                    Ok(Ok(())) => CheckOutcome {
                        ok: true,
                        error: None,
                    },
                    Ok(Err(error)) => CheckOutcome {
                        ok: false,
                        error: Some(error),
                    },
                    Err(_) => CheckOutcome {
                        ok: false,
                        error: Some(format!("no answer within {timeout:?}")),
                    },
                };
                (name, outcome)
            }))
            .await;
        {
            let mut last = self.inner.last.write().expect("health lock poisoned");
            for (name, outcome) in outcomes {
                if let Some(error) = &outcome.error {
                    if last.get(name).is_none_or(|previous| previous.ok) {
                        tracing::warn!(check = name, %error, "health check failing");
                    }
                } else if last.get(name).is_some_and(|previous| !previous.ok) {
                    tracing::info!(check = name, "health check recovered");
                }
                last.insert(name, outcome);
            }
        }
        self.publish_grpc_status().await;
    }

    /// Runs the checks every `interval` until `shutdown` is cancelled.
    pub fn spawn(
        &self,
        interval: Duration,
        timeout: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let health = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = ticker.tick() => health.run_checks(timeout).await,
                }
            }
        })
    }

    async fn publish_grpc_status(&self) {
        let status = if self.is_ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        // The empty name is the server as a whole, which is what most probes ask for.
        self.inner.grpc.set_service_status("", status).await;
        for service in &self.inner.grpc_services {
            self.inner.grpc.set_service_status(*service, status).await;
        }
    }
}
