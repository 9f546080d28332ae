//! The read database refuses the projector's writes for a while: another session holds the
//! view in EXCLUSIVE mode (reads pass, writes wait), as a migration gone wrong or a full disk
//! would make writes fail. Reads must go on, the stall must show in `projector_stalled` and
//! in the readiness JSON (readiness itself stays 200), and once the lock goes every change
//! must arrive.

use std::time::{Duration, Instant};

use crate::{
    ledger::Ledger,
    load::{self, StreamPlan, UpdateStream},
    outcome::Recorder,
    pg, probe,
    process::Suite,
    stack::{Options, Stack},
    watch::{self, ReadWatch},
};

/// Longer than the projector's stall bound (30 s) plus a measurement.
const LOCKED: Duration = Duration::from_secs(45);

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let options = Options {
        query: vec!["--database-statement-timeout=2s".to_owned()],
        ..Options::default()
    };
    let stack = Stack::start(&suite, "read-db-locked", options).await?;
    let (writer, reader) = (stack.writer(), stack.reader());
    let ledger = Ledger::default();
    let users = load::create_users(&writer, &ledger, 5, "locked").await?;
    let unprojected = watch::wait_projected(&reader, &users, 1, Duration::from_secs(30)).await;
    anyhow::ensure!(
        unprojected.is_empty(),
        "users never readable before the lock"
    );

    let mut locker = pg::connect(&stack.read_db.url).await?;
    let lock = locker.transaction().await?;
    lock.batch_execute("LOCK TABLE user_views IN EXCLUSIVE MODE")
        .await?;
    rec.say(format!("the view locked against writes for {LOCKED:?}"));
    let locked_at = Instant::now();
    let updates = UpdateStream::start(
        &writer,
        users.clone(),
        &ledger,
        StreamPlan {
            callers: 2,
            pace: Duration::from_millis(100),
            target: None,
        },
    );
    let reads = ReadWatch::start(&reader, users.clone(), Duration::from_millis(100));
    let mut stalled_seen = None;
    let mut degraded_seen = None;
    let mut not_ready = 0;
    while locked_at.elapsed() < LOCKED {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if stalled_seen.is_none()
            && probe::metric(stack.query.http, "projector_stalled", &[]).await? == Some(1.0)
        {
            stalled_seen = Some(locked_at.elapsed());
        }
        let (status, body) = probe::get(stack.query.http, probe::READINESS).await?;
        if status != 200 {
            not_ready += 1;
        }
        if degraded_seen.is_none() && body.contains("\"projector\":\"degraded: stalled") {
            degraded_seen = Some(locked_at.elapsed());
        }
    }
    let errors = probe::metric(stack.query.http, "projector_errors_total", &[]).await?;
    lock.rollback().await?;
    let released_at = Instant::now();
    rec.say("lock released");
    let updates = updates.stop().await;
    let reads = reads.stop().await;

    rec.check(reads.failures() == 0, || {
        format!(
            "reads failed while the view was locked: {}",
            reads.describe_failures()
        )
    });
    rec.check(not_ready == 0, || {
        format!("query-service was not ready {not_ready} times while only its writes failed")
    });
    match stalled_seen {
        Some(after) => rec.note(format!(
            "projector_stalled 1 after {:.0} s; projector_errors_total {}",
            after.as_secs_f64(),
            errors.unwrap_or(0.0)
        )),
        None => rec.fail("projector_stalled never showed the stall"),
    }
    match degraded_seen {
        Some(after) => rec.note(format!(
            "readiness JSON: projector degraded after {:.0} s",
            after.as_secs_f64()
        )),
        None => rec.fail("the readiness JSON never reported the projector as stalled"),
    }
    let (comparison, _) = stack
        .expect_converged(
            &rec,
            &ledger,
            Duration::from_secs(60),
            "after the lock the read model does not match the write model",
        )
        .await?;
    if comparison.agrees() {
        rec.note(format!(
            "read model equal to the write model {:.1} s after the lock went",
            released_at.elapsed().as_secs_f64()
        ));
    }
    rec.load(format!(
        "{} updates OK, {} reads OK while locked",
        updates.oks(),
        reads.oks()
    ));
    rec.injected(format!(
        "LOCK TABLE user_views IN EXCLUSIVE MODE for {LOCKED:?}"
    ));
    rec.bad_inputs("0");
    Ok(())
}
