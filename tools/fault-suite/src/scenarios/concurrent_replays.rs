//! Two replays started together on one read database and topic prefix, while the live
//! query-service serves and writes go on: one must complete (exit 0), the other must refuse
//! with a clear message and exit non-zero, and the model must be complete afterwards.

use std::{process::ExitStatus, time::Duration};

use testkit::{database::TestDatabase, process::Process, service_args::QueryServiceArgs};

use crate::{
    client,
    ledger::Ledger,
    load::{self, StreamPlan, UpdateStream},
    models,
    outcome::{Recorder, thousands},
    pg,
    process::Suite,
    stack::{Options, Stack},
};

const UPDATES: u64 = 3000;
const REPLAY_LIMIT: Duration = Duration::from_secs(120);
/// Words a refusal that says another replay is running would use.
const REFUSAL_WORDS: [&str; 5] = ["already", "another", "in progress", "running", "lock"];

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let stack = Stack::start(&suite, "two-replays", Options::default()).await?;
    let (writer, reader) = (stack.writer(), stack.reader());
    let ledger = Ledger::default();
    let users = load::create_users(&writer, &ledger, 5, "replay").await?;
    // Enough events that a replay takes a while, so the two overlap.
    let stream = UpdateStream::start(
        &writer,
        users.clone(),
        &ledger,
        StreamPlan {
            callers: 8,
            pace: Duration::ZERO,
            target: Some(UPDATES),
        },
    );
    while !stream.finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stream.stop().await;
    let write_db = pg::connect(&stack.write_db.url).await?;
    let read_db = pg::connect(&stack.read_db.url).await?;
    let (before, _) = models::converge(
        &write_db,
        &read_db,
        &ledger.snapshot(),
        Duration::from_secs(60),
    )
    .await?;
    anyhow::ensure!(
        before.agrees(),
        "the read model never matched the write model before the replays: {}",
        before.summary()
    );

    let events = ledger.writes();
    // Writes go on during the replays: the swap must merge them in.
    let during = UpdateStream::start(
        &writer,
        users.clone(),
        &ledger,
        StreamPlan {
            callers: 2,
            pace: Duration::from_millis(20),
            target: None,
        },
    );
    let args = QueryServiceArgs::new().flags(stack.query.args());
    let mut replays = Vec::new();
    for index in 1..=2 {
        let log = suite
            .log_dir
            .join(format!("two-replays-replay-{index}.log"));
        let launch = suite.launch(&args).arg("replay");
        replays.push(Process::spawn(
            format!("replay {index}"),
            launch,
            Some(log),
        )?);
    }
    rec.say("two replays started");
    let mut results: Vec<(Option<ExitStatus>, String)> = Vec::new();
    for mut replay in replays {
        let status = replay.wait_exit(REPLAY_LIMIT).await?;
        results.push((status, replay.log_text()));
    }
    let writes_during = during.stop().await;

    let describe = |(status, log): &(Option<ExitStatus>, String)| -> String {
        let last = log
            .lines()
            .rev()
            .find(|line| {
                line.contains("ERROR") || line.contains("WARN") || line.contains("replayed")
            })
            .unwrap_or("(no log line)");
        match status {
            Some(status) => format!("{status}: {}", last.trim()),
            None => format!("still running after {REPLAY_LIMIT:?}: {}", last.trim()),
        }
    };
    let completed = results
        .iter()
        .filter(|(status, _)| status.is_some_and(|status| status.success()))
        .count();
    let refused: Vec<&(Option<ExitStatus>, String)> = results
        .iter()
        .filter(|(status, _)| status.is_some_and(|status| !status.success()))
        .collect();
    for (index, result) in results.iter().enumerate() {
        rec.note(format!("replay {}: {}", index + 1, describe(result)));
    }
    rec.check(completed == 1 && refused.len() == 1, || {
        format!(
            "expected one replay to complete and one to refuse; {completed} exited 0 and {} exited non-zero ({})",
            refused.len(),
            results.iter().map(describe).collect::<Vec<_>>().join(" / ")
        )
    });
    if let [refusal] = refused.as_slice() {
        let said = refusal.1.to_lowercase();
        rec.check(
            said.contains("replay") && REFUSAL_WORDS.iter().any(|word| said.contains(word)),
            || {
                format!(
                    "the refusing replay does not say that another replay is running: {}",
                    describe(refusal)
                )
            },
        );
    }

    let (after, took) = models::expect_converged(
        &rec,
        &write_db,
        &read_db,
        &ledger,
        Duration::from_secs(60),
        "after the replays the read model does not match the write model",
    )
    .await?;
    if after.agrees() {
        rec.note(format!(
            "read model complete {:.1} s after the replays ended",
            took.as_secs_f64()
        ));
    }
    let shadow: Option<String> = read_db
        .query_one("SELECT to_regclass('user_views_shadow')::text", &[])
        .await?
        .get(0);
    rec.check(shadow.is_none(), || {
        "a shadow table was left behind after the replays".to_owned()
    });
    let served = client::get(&mut reader.clone(), &users[0], None).await;
    rec.check(served.is_ok(), || {
        format!("GetUser fails after the replays: {:?}", served.err())
    });
    rec.check(writes_during.failures() == 0, || {
        format!(
            "writes failed during the replays: {}",
            writes_during.describe_failures()
        )
    });
    lone_replay(&suite, &stack, &ledger, &rec).await?;
    rec.load(format!(
        "{} writes before, {} during the replays",
        thousands(events),
        thousands(writes_during.oks())
    ));
    rec.injected("2 × query-service replay at once");
    rec.bad_inputs("0");
    Ok(())
}

/// A replay into an empty read database, with no live replica whose table the swap could
/// merge in: the topics alone must give the whole model. Not what this scenario checks, so
/// a shortfall is a finding.
async fn lone_replay(
    suite: &Suite,
    stack: &Stack,
    ledger: &Ledger,
    rec: &Recorder,
) -> anyhow::Result<()> {
    let empty = TestDatabase::create().await;
    let args = QueryServiceArgs::new()
        .flags(stack.query.args())
        .database_url(&empty.url);
    let log = suite.log_dir.join("two-replays-lone-replay.log");
    let launch = suite.launch(&args).arg("replay");
    let mut replay = Process::spawn("lone replay", launch, Some(log))?;
    let Ok(Some(status)) = replay.wait_exit(REPLAY_LIMIT).await else {
        rec.finding(format!(
            "a replay into an empty database did not finish within {REPLAY_LIMIT:?}"
        ));
        return Ok(());
    };
    if !status.success() {
        rec.finding(format!(
            "a replay into an empty database failed ({status}): {}",
            replay.log_text().lines().last().unwrap_or("")
        ));
        return Ok(());
    }
    let write_db = pg::connect(&stack.write_db.url).await?;
    let replayed = pg::connect(&empty.url).await?;
    let comparison = models::compare(
        &models::write_model(&write_db).await?,
        &models::read_model(&replayed).await?,
        &ledger.snapshot(),
    );
    if comparison.agrees() {
        rec.note("a replay into an empty database rebuilt the whole model from the topics");
    } else {
        rec.finding(format!(
            "a replay into an empty database (no live table to merge) rebuilt an incomplete model, {} acknowledged versions short: {}",
            comparison.lost,
            comparison.summary()
        ));
    }
    Ok(())
}
