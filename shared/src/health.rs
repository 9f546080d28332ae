//! Readiness: dependency checks run on a timer (never on the probe's request path), a
//! draining switch for shutdown, and the same state mirrored to the gRPC health service.
//!
//! A check is either required (the pod cannot serve its own calls without it: readiness
//! fails) or informational (a dependency the pod works around, such as the broker behind the
//! outbox: reported as degraded, never a 503). Every check is also a gauge, so an operator
//! sees a degraded dependency without reading the JSON.

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

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// The body of `/health-check/readiness`: the status, and per check `ok`, `failing: …`
/// (a required check) or `degraded: …` (an informational one).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    pub status: Status,
    pub checks: BTreeMap<&'static str, String>,
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

/// Whether readiness depends on a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Readiness fails while the check fails.
    Required,
    /// A failure is reported as degraded; readiness does not change.
    Informational,
}

/// The last result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    pub need: Need,
    pub error: Option<String>,
}

impl CheckOutcome {
    fn describe(&self) -> String {
        match (&self.error, self.need) {
            (None, _) => "ok".to_owned(),
            (Some(error), Need::Required) => format!("failing: {error}"),
            (Some(error), Need::Informational) => format!("degraded: {error}"),
        }
    }

    fn blocks_readiness(&self) -> bool {
        self.error.is_some() && self.need == Need::Required
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabel {
    dependency: &'static str,
}

/// Cheap to clone; every clone sees the same state.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    checks: RwLock<Vec<(&'static str, Need, Check)>>,
    last: RwLock<BTreeMap<&'static str, CheckOutcome>>,
    draining: AtomicBool,
    grpc: HealthReporter,
    grpc_services: Vec<&'static str>,
    up: Family<DependencyLabel, Gauge>,
}

impl Health {
    /// `grpc_services` are the gRPC service names whose status follows readiness. Registers
    /// `dependency_up{dependency}`: 1 while a check passes, 0 while it fails.
    pub fn new(
        grpc: HealthReporter,
        grpc_services: Vec<&'static str>,
        registry: &mut Registry,
    ) -> Self {
        let up = Family::<DependencyLabel, Gauge>::default();
        registry.register(
            "dependency_up",
            "Whether the last check of a dependency passed (1) or failed (0)",
            up.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                checks: RwLock::new(Vec::new()),
                last: RwLock::new(BTreeMap::new()),
                draining: AtomicBool::new(false),
                grpc,
                grpc_services,
                up,
            }),
        }
    }

    pub fn add_check<F, Fut>(&self, name: &'static str, need: Need, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check: Check = Arc::new(move || Box::pin(check()));
        self.inner
            .checks
            .write()
            .expect("health lock poisoned")
            .push((name, need, check));
    }

    pub fn report(&self) -> Report {
        let last = self
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
        } else if last.len() < registered {
            Status::Starting
        } else if last.values().any(CheckOutcome::blocks_readiness) {
            Status::Failing
        } else {
            Status::Ready
        };
        let checks = last
            .iter()
            .map(|(name, outcome)| (*name, outcome.describe()))
            .collect();
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
            futures::future::join_all(checks.into_iter().map(|(name, need, check)| async move {
                let error = match tokio::time::timeout(timeout, check()).await {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error),
                    Err(_) => Some(format!("no answer within {timeout:?}")),
                };
                (name, CheckOutcome { need, error })
            }))
            .await;
        {
            let mut last = self.inner.last.write().expect("health lock poisoned");
            for (name, outcome) in outcomes {
                let was_failing = last
                    .get(name)
                    .is_some_and(|previous| previous.error.is_some());
                match &outcome.error {
                    Some(error) if !was_failing => {
                        tracing::warn!(check = name, %error, "health check failing");
                    }
                    None if was_failing => tracing::info!(check = name, "health check recovered"),
                    _ => {}
                }
                self.inner
                    .up
                    .get_or_create(&DependencyLabel { dependency: name })
                    .set(i64::from(outcome.error.is_none()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn health(registry: &mut Registry) -> Health {
        let (reporter, _service) = tonic_health::server::health_reporter();
        Health::new(reporter, vec!["user.v1.UserService"], registry)
    }

    #[tokio::test]
    async fn a_failing_informational_check_is_degraded_and_leaves_the_pod_ready() {
        let mut registry = Registry::default();
        let health = health(&mut registry);
        health.add_check("postgres", Need::Required, || async { Ok(()) });
        health.add_check("kafka", Need::Informational, || async {
            Err("broker did not answer".to_owned())
        });
        assert_eq!(health.report().status, Status::Starting);

        health.run_checks(Duration::from_secs(1)).await;
        let report = health.report();
        assert_eq!(report.status, Status::Ready);
        assert_eq!(report.checks["postgres"], "ok");
        assert_eq!(report.checks["kafka"], "degraded: broker did not answer");

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("dependency_up{dependency=\"kafka\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("dependency_up{dependency=\"postgres\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_failing_or_hung_required_check_fails_readiness() {
        let health = health(&mut Registry::default());
        health.add_check("postgres", Need::Required, || async {
            std::future::pending::<Result<(), String>>().await
        });
        health.run_checks(Duration::from_millis(20)).await;
        let report = health.report();
        assert_eq!(report.status, Status::Failing);
        assert!(report.checks["postgres"].starts_with("failing: no answer within"));
    }

    #[tokio::test]
    async fn draining_wins_over_every_check() {
        let health = health(&mut Registry::default());
        health.add_check("postgres", Need::Required, || async { Ok(()) });
        health.run_checks(Duration::from_secs(1)).await;
        health.start_draining().await;
        assert_eq!(health.report().status, Status::Draining);
    }
}
