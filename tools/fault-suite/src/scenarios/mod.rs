//! The scenarios, one module each, and how one is run: in a task of its own, bounded in
//! time, with a panic or an error recorded as a failure rather than ending the suite.

mod bad_requests;
mod broker_hang;
mod catch_up_purge;
mod concurrent_replays;
mod kill9;
mod managed_topics;
mod one_email;
mod poison;
mod postgres_drop;
mod read_db_locked;
mod shuffled_replay;
mod sick_topic;
mod silent_postgres;
mod tiny_deadlines;

use std::{future::Future, pin::Pin, time::Duration};

use crate::{
    outcome::{Outcome, Recorder},
    process::Suite,
};

type Run = fn(Suite, Recorder) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) fault: &'static str,
    /// The scenario is stopped and failed past this.
    pub(crate) limit: Duration,
    pub(crate) run: Run,
}

pub(crate) fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "broker-hang",
            fault: "broker hung (SIGSTOP) 20 s",
            limit: Duration::from_secs(150),
            run: |suite, rec| Box::pin(broker_hang::run(suite, rec)),
        },
        Scenario {
            name: "postgres-drop",
            fault: "Postgres drops every connection",
            limit: Duration::from_secs(120),
            run: |suite, rec| Box::pin(postgres_drop::run(suite, rec)),
        },
        Scenario {
            name: "silent-postgres",
            fault: "every open Postgres connection goes silent",
            limit: Duration::from_secs(180),
            run: |suite, rec| Box::pin(silent_postgres::run(suite, rec)),
        },
        Scenario {
            name: "tiny-deadlines",
            fault: "120 GetUser calls whose deadlines pass at once",
            limit: Duration::from_secs(120),
            run: |suite, rec| Box::pin(tiny_deadlines::run(suite, rec)),
        },
        Scenario {
            name: "catch-up-purge",
            fault: "a new read model catches up past the tombstone retention",
            limit: Duration::from_secs(240),
            run: |suite, rec| Box::pin(catch_up_purge::run(suite, rec)),
        },
        Scenario {
            name: "read-db-locked",
            fault: "the read database refuses the projector's writes for 45 s",
            limit: Duration::from_secs(180),
            run: |suite, rec| Box::pin(read_db_locked::run(suite, rec)),
        },
        Scenario {
            name: "managed-topics",
            fault: "topics made beforehand, the services forbidden to create any",
            limit: Duration::from_secs(120),
            run: |suite, rec| Box::pin(managed_topics::run(suite, rec)),
        },
        Scenario {
            name: "kill9",
            fault: "kill -9 of both services mid-stream",
            limit: Duration::from_secs(300),
            run: |suite, rec| Box::pin(kill9::run(suite, rec)),
        },
        Scenario {
            name: "sick-topic",
            fault: "one topic refuses its records",
            limit: Duration::from_secs(150),
            run: |suite, rec| Box::pin(sick_topic::run(suite, rec)),
        },
        Scenario {
            name: "shuffled-replay",
            fault: "events duplicated and shuffled",
            limit: Duration::from_secs(180),
            run: |suite, rec| Box::pin(shuffled_replay::run(suite, rec)),
        },
        Scenario {
            name: "poison",
            fault: "poison records and a poison outbox row",
            limit: Duration::from_secs(120),
            run: |suite, rec| Box::pin(poison::run(suite, rec)),
        },
        Scenario {
            name: "two-replays",
            fault: "two replays started together",
            limit: Duration::from_secs(240),
            run: |suite, rec| Box::pin(concurrent_replays::run(suite, rec)),
        },
        Scenario {
            name: "bad-requests",
            fault: "10,000 bad requests",
            limit: Duration::from_secs(240),
            run: |suite, rec| Box::pin(bad_requests::run(suite, rec)),
        },
        Scenario {
            name: "one-email",
            fault: "50 concurrent creates, one email",
            limit: Duration::from_secs(90),
            run: |suite, rec| Box::pin(one_email::run(suite, rec)),
        },
    ]
}

pub(crate) async fn run(scenario: &Scenario, suite: &Suite) -> Outcome {
    let rec = Recorder::new(scenario.name, scenario.fault);
    rec.say("starting");
    let mut task = tokio::spawn((scenario.run)(suite.clone(), rec.clone()));
    match tokio::time::timeout(scenario.limit, &mut task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => rec.fail(format!("{error:#}")),
        Ok(Err(join)) if join.is_panic() => {
            let panic = join.into_panic();
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                .unwrap_or_else(|| "a panic".to_owned());
            rec.fail(format!("the scenario panicked: {message}"));
        }
        Ok(Err(join)) => rec.fail(format!("the scenario's task failed: {join}")),
        Err(_) => {
            // Aborting drops the scenario's processes, broker and databases.
            task.abort();
            let _ = task.await;
            rec.fail(format!("did not finish within {:?}", scenario.limit));
        }
    }
    let outcome = rec.finish();
    rec.say(if outcome.passed() { "passed" } else { "FAILED" });
    outcome
}
