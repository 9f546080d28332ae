//! The broker hangs (SIGSTOP, its connections left open) for 20 s while writes go on. Every
//! write must answer OK (the outbox absorbs the outage), both services must stay ready and
//! reads of existing users must keep working; after SIGCONT every write must reach the read
//! model.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    client,
    ledger::Ledger,
    load::{self, StreamPlan, Tally, UpdateStream},
    outcome::{Recorder, thousands},
    process::Suite,
    stack::{Options, Stack},
    watch::{self, ReadWatch, ReadinessWatch},
};

const HANG: Duration = Duration::from_secs(20);
const QUIET_BEFORE_HANG: Duration = Duration::from_millis(3_500);

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let stack = Stack::start(&suite, "broker-hang", Options::default()).await?;
    let (writer, reader) = (stack.writer(), stack.reader());
    let ledger = Ledger::default();
    let users = load::create_users(&writer, &ledger, 5, "hang").await?;
    let unprojected = watch::wait_projected(&reader, &users, 1, Duration::from_secs(30)).await;
    anyhow::ensure!(
        unprojected.is_empty(),
        "users created before the fault never reached the read model: {unprojected:?}"
    );
    // Quiet first, so that the hang catches the consumer's heartbeat in flight rather than
    // its offset commits: the broker then wakes to a member whose session ran out while it
    // slept, which is the case that once left the projector's group with no assignment.
    tokio::time::sleep(QUIET_BEFORE_HANG).await;

    rec.say(format!("SIGSTOP to the broker for {HANG:?}"));
    stack.broker.pause(true);
    let hung_at = Instant::now();
    let updates = UpdateStream::start(
        &writer,
        users.clone(),
        &ledger,
        StreamPlan {
            callers: 4,
            pace: Duration::from_millis(20),
            target: None,
        },
    );
    let creates = CreateStream::start(&writer, &ledger, Duration::from_millis(500));
    let reads = ReadWatch::start(&reader, users.clone(), Duration::from_millis(50));
    let every = Duration::from_millis(200);
    let command_ready = ReadinessWatch::start("command-service", stack.command.http, every);
    let query_ready = ReadinessWatch::start("query-service", stack.query.http, every);

    tokio::time::sleep(HANG.saturating_sub(hung_at.elapsed())).await;
    let updates = updates.stop().await;
    let creates = creates.stop().await;
    let reads = reads.stop().await;
    let command_ready = command_ready.stop().await;
    let query_ready = query_ready.stop().await;
    stack.broker.pause(false);
    rec.say("SIGCONT to the broker");

    let writes_ok = updates.oks() + creates.oks();
    let writes_failed = updates.failures() + creates.failures();
    rec.check(writes_failed == 0, || {
        format!(
            "{writes_failed} writes failed while the broker hung: updates {}; creates {}",
            updates.describe_failures(),
            creates.describe_failures()
        )
    });
    rec.note(format!(
        "{} updates and {} creates OK; {} ABORTED updates retried",
        updates.oks(),
        creates.oks(),
        updates.retries()
    ));
    rec.check(reads.failures() == 0, || {
        format!(
            "{} reads of existing users failed while the broker hung: {}",
            reads.failures(),
            reads.describe_failures()
        )
    });
    for (name, log) in [
        ("command-service", &command_ready),
        ("query-service", &query_ready),
    ] {
        rec.check(log.not_ready == 0, || {
            format!(
                "{name} was not ready {} of {} times while the broker hung: {:?}",
                log.not_ready,
                log.not_ready + log.ready,
                log.first_not_ready
            )
        });
        rec.note(format!(
            "{name}: readiness 200 ×{}, of which {} reported kafka degraded",
            log.ready, log.kafka_degraded
        ));
    }
    // Proves the hang was felt: a broker check that never failed means the fault missed.
    rec.check(
        command_ready.kafka_degraded > 0 && query_ready.kafka_degraded > 0,
        || {
            "readiness never reported the hung broker as degraded: the fault was not felt"
                .to_owned()
        },
    );

    let (comparison, took) = stack
        .expect_converged(
            &rec,
            &ledger,
            Duration::from_secs(90),
            "after SIGCONT the read model does not match the write model",
        )
        .await?;
    if comparison.agrees() {
        rec.note(format!(
            "read model equal to the write model {:.1} s after SIGCONT",
            took.as_secs_f64()
        ));
    }
    rec.load(format!(
        "{} writes OK, {writes_failed} failed; {} reads OK, {} failed; ready {}/{}",
        thousands(writes_ok),
        thousands(reads.oks()),
        reads.failures(),
        command_ready.ready + query_ready.ready,
        command_ready.ready + query_ready.ready + command_ready.not_ready + query_ready.not_ready
    ));
    rec.injected("SIGSTOP 20 s, SIGCONT");
    rec.bad_inputs("0");
    Ok(())
}

/// CreateUser every `every`: new users while the broker hangs.
struct CreateStream {
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl CreateStream {
    fn start(client: &client::UserClient, ledger: &Ledger, every: Duration) -> Self {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (tally, stop) = (Arc::clone(&tally), Arc::clone(&stop));
            let (mut client, ledger) = (client.clone(), ledger.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match client::create(&mut client, &client::unique_email("hang")).await {
                        Ok(user) => {
                            ledger.ack(&user);
                            tally.ok();
                        }
                        Err(status) => tally.failed(&status),
                    }
                    tokio::time::sleep(every).await;
                }
            })
        };
        Self { tally, stop, task }
    }

    async fn stop(self) -> Arc<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.tally
    }
}
