//! 10,000 generated bad requests at both services: well-formed requests with bad values,
//! malformed gRPC (wrong wire types, invalid UTF-8, truncated or oversized frames) and junk
//! bytes on the gRPC port. No panic, no INTERNAL for a well-formed request, and a good call
//! answered throughout.

mod cases;
pub(crate) mod raw;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rand::{SeedableRng, rngs::StdRng};
use shared_proto::v1;
use tokio::task::JoinHandle;

use self::{
    cases::{Case, Fixtures, Kind, Payload},
    raw::{Answer, RawGrpc},
};
use crate::{
    client::{self, UserClient},
    ledger::Ledger,
    load::{self, Tally},
    models,
    outcome::{Recorder, thousands},
    pg,
    process::Suite,
    stack::{Options, Stack},
    watch,
};

const PER_SERVICE: usize = 5000;
const CALLERS_PER_SERVICE: usize = 16;

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let mut stack = Stack::start(
        &suite,
        "bad-requests",
        Options {
            // Calls that wait for a version that never comes end sooner.
            query: vec!["--min-version-timeout=300ms".to_owned()],
            ..Options::default()
        },
    )
    .await?;
    let (writer, reader) = (stack.writer(), stack.reader());
    let ledger = Ledger::default();
    let users = load::create_users(&writer, &ledger, 3, "bad").await?;
    let unprojected = watch::wait_projected(&reader, &users, 1, Duration::from_secs(30)).await;
    anyhow::ensure!(
        unprojected.is_empty(),
        "users never reached the read model: {unprojected:?}"
    );
    let page = reader
        .clone()
        .list_users(v1::ListUsersRequest {
            filter: Some(v1::UserFilter {
                countries: vec!["GB".to_owned()],
                updated_after: None,
                query: String::new(),
            }),
            page_size: 1,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    anyhow::ensure!(
        !page.next_page_token.is_empty(),
        "ListUsers issued no page token"
    );
    let fixtures = Fixtures {
        untouched: users[1].clone(),
        page_token: page.next_page_token,
    };

    let seed: u64 = rand::random();
    let mut rng = StdRng::seed_from_u64(seed);
    let command_cases = cases::for_command(&mut rng, PER_SERVICE, &fixtures);
    let query_cases = cases::for_query(&mut rng, PER_SERVICE, &fixtures);
    rec.say(format!(
        "sending {} bad requests (seed {seed})",
        command_cases.len() + query_cases.len()
    ));
    let good = GoodCalls::start(&writer, &reader, &users[0], &ledger);
    let (command, query) = tokio::join!(
        send_all(stack.command.grpc, command_cases),
        send_all(stack.query.grpc, query_cases)
    );
    let good = good.stop().await;

    let mut bad_inputs = BTreeMap::new();
    for (service, tally) in [("command-service", &command), ("query-service", &query)] {
        for ((kind, _), count) in &tally.counts {
            *bad_inputs.entry(*kind).or_insert(0u64) += count;
        }
        judge(&rec, service, tally);
    }
    let total: u64 = bad_inputs.values().sum();
    rec.check(total >= 10_000, || {
        format!("only {total} bad requests were sent")
    });

    rec.check(good.failures() == 0, || {
        format!(
            "good calls failed during the bad requests: {}",
            good.describe_failures()
        )
    });
    for service in [&mut stack.command, &mut stack.query] {
        let exited = service.exited();
        rec.check(exited.is_none(), || {
            format!("{} exited: {exited:?}", service.label)
        });
        let panics = service.panics();
        rec.check(panics.is_empty(), || {
            format!("{} panicked: {panics:?}", service.label)
        });
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
    // None of them may have changed the user they aimed at.
    let untouched = models::write_model(&write_db)
        .await?
        .get(&fixtures.untouched.parse()?)
        .map(|row| row.version);
    rec.check(untouched == Some(1), || {
        format!("the user the bad requests aimed at is now at {untouched:?}, not version 1")
    });

    rec.load(format!(
        "{} good calls OK, {} failed, alongside",
        thousands(good.oks()),
        good.failures()
    ));
    rec.injected("junk, malformed and invalid calls");
    rec.bad_inputs(format!(
        "{} ({})",
        thousands(total),
        bad_inputs
            .iter()
            .map(|(kind, count)| format!("{} {}", thousands(*count), kind.name()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

/// Answers by kind of request and by answer, with examples of what drew each answer.
#[derive(Debug, Default)]
struct Answers {
    counts: BTreeMap<(Kind, String), u64>,
    /// Per (kind, answer): what drew it, with counts.
    causes: BTreeMap<(Kind, String), BTreeMap<String, u64>>,
    /// How the answers that were no status looked, a few.
    broken: Vec<String>,
}

impl Answers {
    fn add(&mut self, case: &Case, answer: &Answer) {
        let key = (case.kind, answer.label());
        *self.counts.entry(key.clone()).or_default() += 1;
        *self
            .causes
            .entry(key)
            .or_default()
            .entry(case.label.clone())
            .or_default() += 1;
        if let Answer::Broken(error) = answer
            && self.broken.len() < 3
            && case.kind != Kind::Junk
        {
            self.broken.push(format!("{}: {error}", case.label));
        }
    }

    fn merge(&mut self, other: Self) {
        for (key, count) in other.counts {
            *self.counts.entry(key).or_default() += count;
        }
        for (key, causes) in other.causes {
            let mine = self.causes.entry(key).or_default();
            for (label, count) in causes {
                *mine.entry(label).or_default() += count;
            }
        }
        self.broken.extend(other.broken);
        self.broken.truncate(3);
    }

    /// What drew an answer, across methods, most frequent first.
    fn causes(&self, kind: Kind, answer: &str) -> String {
        let mut by_cause: BTreeMap<&str, u64> = BTreeMap::new();
        for (label, count) in self
            .causes
            .get(&(kind, answer.to_owned()))
            .into_iter()
            .flatten()
        {
            let cause = label
                .split_once(": ")
                .map_or(label.as_str(), |(_, what)| what);
            *by_cause.entry(cause).or_default() += count;
        }
        let mut sorted: Vec<(&str, u64)> = by_cause.into_iter().collect();
        sorted.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        sorted
            .iter()
            .map(|(cause, count)| format!("{cause} ×{count}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What a well-formed request must never get, and what a malformed one should not.
fn judge(rec: &Recorder, service: &str, answers: &Answers) {
    for kind in [Kind::BadValues, Kind::Malformed, Kind::Junk] {
        let by_answer: Vec<String> = answers
            .counts
            .iter()
            .filter(|((of, _), _)| *of == kind)
            .map(|((_, answer), count)| format!("{answer} {count}"))
            .collect();
        if !by_answer.is_empty() {
            rec.note(format!(
                "{service}, {}: {}",
                kind.name(),
                by_answer.join(", ")
            ));
        }
    }
    for ((kind, answer), count) in &answers.counts {
        let causes = answers.causes(*kind, answer);
        match kind {
            Kind::BadValues if answer == "Internal" || answer == "Unknown" || !is_grpc_code(answer) => {
                rec.fail(format!(
                    "{service}: {count} well-formed requests with bad values answered {answer}: {causes}"
                ));
            }
            Kind::BadValues if answer == "Ok" => rec.finding(format!(
                "{service}: {count} requests with values the API's rules forbid were accepted: {causes}"
            )),
            Kind::Malformed if answer == "Internal" || answer == "Unknown" => {
                rec.finding(format!(
                    "{service}: {count} malformed requests answered {answer} (a client's error, INVALID_ARGUMENT expected): {causes}"
                ));
            }
            Kind::Malformed if answer.starts_with("no answer") => rec.finding(format!(
                "{service}: {count} malformed requests got no answer: {causes}"
            )),
            // Protobuf ignores unknown fields, so some random bytes make a valid request.
            Kind::Malformed if answer == "Ok" => rec.note(format!(
                "{service}: {count} malformed requests answered OK: {causes}"
            )),
            _ => {}
        }
    }
    if !answers.broken.is_empty() {
        rec.note(format!(
            "{service}: connections closed on: {}",
            answers.broken.join("; ")
        ));
    }
}

/// Whether an answer's label is a gRPC status code (`Ok`, `InvalidArgument`, ...), rather
/// than a bare HTTP status, a reset, a closed connection or silence.
fn is_grpc_code(label: &str) -> bool {
    label.starts_with(|first: char| first.is_ascii_uppercase()) && !label.starts_with("HTTP")
}

/// Sends every case from several callers at once, each on a connection of its own.
async fn send_all(addr: SocketAddr, cases: Vec<Case>) -> Answers {
    let mut shares: Vec<Vec<Case>> = (0..CALLERS_PER_SERVICE).map(|_| Vec::new()).collect();
    for (index, case) in cases.into_iter().enumerate() {
        shares[index % CALLERS_PER_SERVICE].push(case);
    }
    let callers: Vec<JoinHandle<Answers>> = shares
        .into_iter()
        .map(|share| {
            tokio::spawn(async move {
                let mut answers = Answers::default();
                let mut connection = RawGrpc::new(addr);
                for case in &share {
                    let answer = match &case.payload {
                        Payload::Grpc(request) => connection.call(request).await,
                        Payload::Junk(bytes) => raw::junk(addr, bytes).await,
                    };
                    answers.add(case, &answer);
                }
                answers
            })
        })
        .collect();
    let mut all = Answers::default();
    for caller in callers {
        if let Ok(answers) = caller.await {
            all.merge(answers);
        }
    }
    all
}

/// A good write and a good read every 50 ms, each of which must succeed.
struct GoodCalls {
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl GoodCalls {
    fn start(writer: &UserClient, reader: &UserClient, id: &str, ledger: &Ledger) -> Self {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (tally, stop) = (Arc::clone(&tally), Arc::clone(&stop));
            let (mut writer, mut reader) = (writer.clone(), reader.clone());
            let (id, ledger) = (id.to_owned(), ledger.clone());
            tokio::spawn(async move {
                let mut sequence = 0;
                while !stop.load(Ordering::Relaxed) {
                    sequence += 1;
                    match client::update_nickname(&mut writer, &id, &format!("good{sequence}"))
                        .await
                    {
                        Ok(user) => {
                            ledger.ack(&user);
                            tally.ok();
                        }
                        Err(status) => tally.failed(&status),
                    }
                    match client::get(&mut reader, &id, None).await {
                        Ok(_) => tally.ok(),
                        Err(status) => tally.failed(&status),
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
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
