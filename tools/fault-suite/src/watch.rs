//! Watchers that run beside a fault: readiness as an orchestrator polls it, and reads of
//! users that exist, as a client would send them.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rand::seq::IndexedRandom;
use tokio::task::JoinHandle;

use crate::{
    client::{self, UserClient},
    load::Tally,
    probe,
};

#[derive(Debug, Default)]
pub(crate) struct ReadinessLog {
    pub(crate) ready: u64,
    /// Answers other than 200 (or no answer), the first few in full.
    pub(crate) not_ready: u64,
    pub(crate) first_not_ready: Vec<String>,
    /// Ready answers whose body reported the broker as degraded.
    pub(crate) kafka_degraded: u64,
}

/// Polls readiness every `every` until stopped.
pub(crate) struct ReadinessWatch {
    log: Arc<Mutex<ReadinessLog>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl ReadinessWatch {
    pub(crate) fn start(label: &str, http: SocketAddr, every: Duration) -> Self {
        let log = Arc::new(Mutex::new(ReadinessLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (log, stop, label) = (Arc::clone(&log), Arc::clone(&stop), label.to_owned());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let answer = probe::get(http, probe::READINESS).await;
                    {
                        let mut log = log.lock().expect("readiness lock poisoned");
                        match &answer {
                            Ok((200, body)) => {
                                log.ready += 1;
                                if body.contains("\"kafka\":\"degraded") {
                                    log.kafka_degraded += 1;
                                }
                            }
                            other => {
                                log.not_ready += 1;
                                if log.first_not_ready.len() < 3 {
                                    let what = match other {
                                        Ok((status, body)) => format!("{status} {body}"),
                                        Err(error) => format!("{error:#}"),
                                    };
                                    log.first_not_ready.push(format!("{label}: {what}"));
                                }
                            }
                        }
                    }
                    tokio::time::sleep(every).await;
                }
            })
        };
        Self { log, stop, task }
    }

    pub(crate) async fn stop(self) -> ReadinessLog {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        std::mem::take(&mut *self.log.lock().expect("readiness lock poisoned"))
    }
}

/// GetUser on users that exist, every `every`, until stopped.
pub(crate) struct ReadWatch {
    pub(crate) tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl ReadWatch {
    pub(crate) fn start(client: &UserClient, ids: Vec<String>, every: Duration) -> Self {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (tally, stop, mut client) = (Arc::clone(&tally), Arc::clone(&stop), client.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Some(id) = ids.choose(&mut rand::rng()) else {
                        return;
                    };
                    match client::get(&mut client, id, None).await {
                        Ok(_) => tally.ok(),
                        Err(status) => tally.failed(&status),
                    }
                    tokio::time::sleep(every).await;
                }
            })
        };
        Self { tally, stop, task }
    }

    pub(crate) async fn stop(self) -> Arc<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.tally
    }
}

/// Waits until GetUser finds each user at least at `version`; the ids it never found.
pub(crate) async fn wait_projected(
    client: &UserClient,
    ids: &[String],
    version: u64,
    within: Duration,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut missing = Vec::new();
    for id in ids {
        let mut client = client.clone();
        loop {
            if client::get(&mut client, id, Some(version)).await.is_ok() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                missing.push(id.clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    missing
}
