//! Load held through a fault: a stream of UpdateUser calls from several callers over a set
//! of users, every OK recorded in the ledger, every failure counted by status code.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use rand::seq::IndexedRandom;
use tokio::task::JoinHandle;

use crate::{
    client::{self, UserClient},
    ledger::Ledger,
};

/// Counts of calls by outcome, with the first message seen for each failing code.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    ok: AtomicU64,
    retried: AtomicU64,
    failed: Mutex<BTreeMap<String, (u64, String)>>,
}

impl Tally {
    /// An ABORTED call that was sent again, as the status asks.
    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retries(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    pub(crate) fn ok(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, status: &tonic::Status) {
        let mut failed = self.failed.lock().expect("tally lock poisoned");
        let entry = failed
            .entry(format!("{:?}", status.code()))
            .or_insert_with(|| (0, status.message().to_owned()));
        entry.0 += 1;
    }

    pub(crate) fn oks(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failed
            .lock()
            .expect("tally lock poisoned")
            .values()
            .map(|(count, _)| count)
            .sum()
    }

    /// `Unavailable ×3 ("…"), Internal ×1 ("…")`, or `none`.
    pub(crate) fn describe_failures(&self) -> String {
        let failed = self.failed.lock().expect("tally lock poisoned");
        if failed.is_empty() {
            return "none".to_owned();
        }
        failed
            .iter()
            .map(|(code, (count, message))| format!("{code} ×{count} (first: {message:?})"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Failures with a code other than `allowed`.
    pub(crate) fn failures_other_than(&self, allowed: &[tonic::Code]) -> Vec<String> {
        let allowed: Vec<String> = allowed.iter().map(|code| format!("{code:?}")).collect();
        self.failed
            .lock()
            .expect("tally lock poisoned")
            .iter()
            .filter(|(code, _)| !allowed.contains(code))
            .map(|(code, (count, message))| format!("{code} ×{count} (first: {message:?})"))
            .collect()
    }
}

/// Creates `count` users, each retried while the service is unavailable; their ids.
pub(crate) async fn create_users(
    client: &UserClient,
    ledger: &Ledger,
    count: usize,
    tag: &str,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let email = client::unique_email(tag);
        let user = client::with_retries(Duration::from_secs(20), || {
            let mut client = client.clone();
            let email = email.clone();
            async move { client::create(&mut client, &email).await }
        })
        .await
        .map_err(|status| anyhow::anyhow!("CreateUser failed: {status}"))?;
        ledger.ack(&user);
        ids.push(user.id);
    }
    Ok(ids)
}

/// Calls sent at once to one user may be ABORTED ("being changed by other calls; retry"):
/// a client retries those, as the status asks; up to a bound, since a user that stays
/// contended is a failure worth seeing.
pub(crate) async fn update_retrying(
    client: &mut UserClient,
    id: &str,
    nickname: &str,
    tally: &Tally,
) -> Result<shared_proto::v1::User, tonic::Status> {
    let mut attempt = 0;
    loop {
        match client::update_nickname(client, id, nickname).await {
            Err(status) if status.code() == tonic::Code::Aborted && attempt < ABORTED_RETRIES => {
                attempt += 1;
                tally.retried();
                tokio::time::sleep(Duration::from_millis(rand::random_range(1..=10) * attempt))
                    .await;
            }
            answer => return answer,
        }
    }
}

const ABORTED_RETRIES: u64 = 10;

/// Callers updating nicknames of randomly chosen users until stopped or, with a target,
/// until that many updates were acknowledged.
pub(crate) struct UpdateStream {
    pub(crate) tally: Arc<Tally>,
    users: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

pub(crate) struct StreamPlan {
    pub(crate) callers: usize,
    /// Pause after each call, per caller (zero: as fast as answered).
    pub(crate) pace: Duration,
    /// Stop once this many updates were acknowledged.
    pub(crate) target: Option<u64>,
}

impl UpdateStream {
    pub(crate) fn start(
        client: &UserClient,
        users: Vec<String>,
        ledger: &Ledger,
        plan: StreamPlan,
    ) -> Self {
        let tally = Arc::new(Tally::default());
        let users = Arc::new(Mutex::new(users));
        let stop = Arc::new(AtomicBool::new(false));
        let sequence = Arc::new(AtomicU64::new(0));
        let workers = (0..plan.callers)
            .map(|_| {
                let (mut client, ledger) = (client.clone(), ledger.clone());
                let (tally, users, stop, sequence) = (
                    Arc::clone(&tally),
                    Arc::clone(&users),
                    Arc::clone(&stop),
                    Arc::clone(&sequence),
                );
                let (pace, target) = (plan.pace, plan.target);
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed)
                        && target.is_none_or(|target| tally.oks() < target)
                    {
                        let Some(id) = users
                            .lock()
                            .expect("users lock poisoned")
                            .choose(&mut rand::rng())
                            .cloned()
                        else {
                            break;
                        };
                        let nickname = format!("n{}", sequence.fetch_add(1, Ordering::Relaxed));
                        match update_retrying(&mut client, &id, &nickname, &tally).await {
                            Ok(user) => {
                                ledger.ack(&user);
                                tally.ok();
                                if !pace.is_zero() {
                                    tokio::time::sleep(pace).await;
                                }
                            }
                            Err(status) => {
                                tally.failed(&status);
                                // A service that is down answers at once; do not spin on it.
                                tokio::time::sleep(Duration::from_millis(50).max(pace)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Self {
            tally,
            users,
            stop,
            workers,
        }
    }

    pub(crate) fn add(&self, id: String) {
        self.users.lock().expect("users lock poisoned").push(id);
    }

    /// Takes a user out of the stream (e.g. before deleting it); calls already sent to it
    /// may still land.
    pub(crate) fn remove(&self, id: &str) {
        self.users
            .lock()
            .expect("users lock poisoned")
            .retain(|user| user != id);
    }

    /// Waits for every caller to finish its current call.
    pub(crate) async fn stop(self) -> Arc<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            let _ = worker.await;
        }
        self.tally
    }

    /// Whether every caller is done (the target reached).
    pub(crate) fn finished(&self) -> bool {
        self.workers.iter().all(JoinHandle::is_finished)
    }
}
