//! Postgres drops every connection of both services (pg_terminate_backend on their two
//! databases, nothing else). Within 10 s calls must succeed again, with no restart: writes,
//! reads that reach the read database, readiness, and the projector's writes to the view.
//! While they recover, calls may fail, but only with a code a client retries.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::{
    client::UserClient,
    ledger::Ledger,
    load::{self, StreamPlan, Tally, UpdateStream},
    models,
    outcome::{Recorder, thousands},
    pg, probe,
    process::Suite,
    stack::{Options, Stack},
    watch::{self, ReadWatch},
};

const ROUNDS: usize = 3;
const RECOVERY_LIMIT: Duration = Duration::from_secs(10);
/// Codes a client retries on its own; a dropped connection must surface as one of these.
const RETRYABLE: [Code; 2] = [Code::Unavailable, Code::Aborted];

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let mut stack = Stack::start(&suite, "postgres-drop", Options::default()).await?;
    let (writer, reader) = (stack.writer(), stack.reader());
    let ledger = Ledger::default();
    let users = load::create_users(&writer, &ledger, 3, "pgdrop").await?;
    let unprojected = watch::wait_projected(&reader, &users, 1, Duration::from_secs(30)).await;
    anyhow::ensure!(
        unprojected.is_empty(),
        "users created before the fault never reached the read model: {unprojected:?}"
    );
    let pids = (stack.command.pid(), stack.query.pid());
    let databases = [stack.write_db.name.as_str(), stack.read_db.name.as_str()];

    // Load in the background, so the cut finds connections busy in transactions.
    let stream = UpdateStream::start(
        &writer,
        users.clone(),
        &ledger,
        StreamPlan {
            callers: 8,
            pace: Duration::from_millis(5),
            target: None,
        },
    );
    let reads = ReadWatch::start(&reader, users.clone(), Duration::from_millis(5));
    let tally = Tally::default();
    let mut terminated = 0;
    let mut slowest = Duration::ZERO;
    let mut sequence = 0;
    for round in 1..=ROUNDS {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let view_before = view_progress(&stack).await?;
        let ended = pg::terminate_backends(&databases).await?;
        terminated += ended;
        let cut_at = Instant::now();
        rec.say(format!("round {round}: terminated {ended} backends"));
        let mut pending = Recovery {
            view_before,
            ..Recovery::default()
        };
        while !pending.done() && cut_at.elapsed() < RECOVERY_LIMIT + Duration::from_secs(5) {
            sequence += 1;
            pending
                .probe(&writer, &reader, &stack, &users, &ledger, &tally, sequence)
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = pending.recovered_at(cut_at);
        match took {
            Some(took) => {
                slowest = slowest.max(took);
                rec.note(format!(
                    "round {round}: {ended} backends terminated; writes after {:.2} s, reads after {:.2} s, readiness after {:.2} s, projection after {:.2} s",
                    secs(pending.write, cut_at),
                    secs(pending.read, cut_at),
                    secs(pending.ready, cut_at),
                    secs(pending.projected, cut_at)
                ));
                rec.check(took <= RECOVERY_LIMIT, || {
                    format!(
                        "round {round}: calls succeeded again only after {:.2} s (limit {RECOVERY_LIMIT:?})",
                        took.as_secs_f64()
                    )
                });
            }
            None => rec.fail(format!(
                "round {round}: not recovered {:?} after the connections were dropped: write {}, read {}, readiness {}, projection {}",
                cut_at.elapsed(),
                pending.write.is_some(),
                pending.read.is_some(),
                pending.ready.is_some(),
                pending.projected.is_some()
            )),
        }
    }

    let stream = stream.stop().await;
    let reads = reads.stop().await;
    rec.check(
        stack.command.exited().is_none() && stack.query.exited().is_none(),
        || "a service exited after its connections were dropped".to_owned(),
    );
    rec.check(
        (stack.command.pid(), stack.query.pid()) == pids && stack.command.starts() == 1,
        || "a service was restarted".to_owned(),
    );
    for (what, tally) in [
        ("probes", &tally),
        ("background writes", &stream),
        ("background reads", &reads),
    ] {
        let wrong = tally.failures_other_than(&RETRYABLE);
        rec.check(wrong.is_empty(), || {
            format!(
                "{what} failed with codes a client does not retry while the pools healed: {}",
                wrong.join(", ")
            )
        });
        rec.note(format!(
            "{what}: {} OK ({} ABORTED retried); failed: {}",
            tally.oks(),
            tally.retries(),
            tally.describe_failures()
        ));
    }

    let write_db = pg::connect(&stack.write_db.url).await?;
    let read_db = pg::connect(&stack.read_db.url).await?;
    models::expect_converged(
        &rec,
        &write_db,
        &read_db,
        &ledger,
        Duration::from_secs(30),
        "the read model does not match the write model",
    )
    .await?;
    let calls = [&tally, &stream, &reads];
    rec.load(format!(
        "{} calls, {} failed while healing; slowest recovery {:.2} s",
        thousands(
            calls
                .iter()
                .map(|tally| tally.oks() + tally.failures())
                .sum()
        ),
        calls.iter().map(|tally| tally.failures()).sum::<u64>(),
        slowest.as_secs_f64()
    ));
    rec.injected(format!(
        "{ROUNDS} × pg_terminate_backend ({terminated} backends), 0 restarts"
    ));
    rec.bad_inputs("0");
    Ok(())
}

fn secs(at: Option<Instant>, from: Instant) -> f64 {
    at.map_or(f64::NAN, |at| at.duration_since(from).as_secs_f64())
}

/// When each kind of call first succeeded after the cut.
#[derive(Debug, Default)]
struct Recovery {
    write: Option<Instant>,
    read: Option<Instant>,
    ready: Option<Instant>,
    projected: Option<Instant>,
    /// The view's progress just before the cut.
    view_before: i64,
}

/// The sum of the view's versions: it grows whenever the projector commits a change.
async fn view_progress(stack: &Stack) -> anyhow::Result<i64> {
    let read_db = pg::connect(&stack.read_db.url).await?;
    Ok(read_db
        .query_one(
            "SELECT coalesce(sum(version), 0)::bigint FROM user_views",
            &[],
        )
        .await?
        .get(0))
}

impl Recovery {
    fn done(&self) -> bool {
        self.write.is_some()
            && self.read.is_some()
            && self.ready.is_some()
            && self.projected.is_some()
    }

    fn recovered_at(&self, cut_at: Instant) -> Option<Duration> {
        [self.write, self.read, self.ready, self.projected]
            .into_iter()
            .map(|at| at.map(|at| at.duration_since(cut_at)))
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().max())
    }

    #[allow(clippy::too_many_arguments)]
    async fn probe(
        &mut self,
        writer: &UserClient,
        reader: &UserClient,
        stack: &Stack,
        users: &[String],
        ledger: &Ledger,
        tally: &Tally,
        sequence: usize,
    ) {
        let id = &users[sequence % users.len()];
        match load::update_retrying(&mut writer.clone(), id, &format!("pg{sequence}"), tally).await
        {
            Ok(user) => {
                ledger.ack(&user);
                tally.ok();
                self.write.get_or_insert_with(Instant::now);
            }
            Err(status) => tally.failed(&status),
        }
        // ListUsers always reads the database; GetUser might be answered from the cache.
        let listed = reader
            .clone()
            .list_users(shared_proto::v1::ListUsersRequest {
                filter: None,
                page_size: 10,
                page_token: String::new(),
            })
            .await;
        match listed {
            Ok(_) => {
                tally.ok();
                self.read.get_or_insert_with(Instant::now);
            }
            Err(status) => tally.failed(&status),
        }
        if self.ready.is_none() {
            let command = probe::get(stack.command.http, probe::READINESS).await;
            let query = probe::get(stack.query.http, probe::READINESS).await;
            if matches!((command, query), (Ok((200, _)), Ok((200, _)))) {
                self.ready = Some(Instant::now());
            }
        }
        // The projector committed to the view since the cut: its pool healed too.
        if self.projected.is_none()
            && view_progress(stack)
                .await
                .is_ok_and(|progress| progress > self.view_before)
        {
            self.projected = Some(Instant::now());
        }
    }
}
