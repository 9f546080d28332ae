//! 50 concurrent CreateUser calls with one email (in varying case, since emails are unique
//! case-insensitively): exactly one OK, the rest ALREADY_EXISTS, one user in each model.

use std::{collections::BTreeMap, time::Duration};

use futures::future::join_all;
use uuid::Uuid;

use crate::{
    client,
    ledger::Ledger,
    models,
    outcome::Recorder,
    pg,
    process::Suite,
    stack::{Options, Stack},
};

const CALLS: usize = 50;

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let stack = Stack::start(&suite, "one-email", Options::default()).await?;
    let writer = stack.writer();
    let email = client::unique_email("same");
    let calls = (0..CALLS).map(|index| {
        let mut writer = writer.clone();
        let email = if index % 2 == 0 {
            email.clone()
        } else {
            email.to_uppercase()
        };
        async move { client::create(&mut writer, &email).await }
    });
    let answers = join_all(calls).await;

    let ledger = Ledger::default();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for answer in &answers {
        match answer {
            Ok(user) => {
                ledger.ack(user);
                *codes.entry("Ok".to_owned()).or_default() += 1;
            }
            Err(status) => *codes.entry(format!("{:?}", status.code())).or_default() += 1,
        }
    }
    let oks = codes.get("Ok").copied().unwrap_or(0);
    let taken = codes.get("AlreadyExists").copied().unwrap_or(0);
    rec.note(format!("answers by code: {codes:?}"));
    rec.check(oks == 1, || {
        format!("{oks} of {CALLS} calls were OK, expected exactly 1")
    });
    rec.check(taken == CALLS - 1, || {
        format!(
            "{taken} of {CALLS} calls answered ALREADY_EXISTS, expected {}; all: {codes:?}",
            CALLS - 1
        )
    });

    let write_db = pg::connect(&stack.write_db.url).await?;
    let rows: i64 = write_db
        .query_one(
            "SELECT count(*) FROM users WHERE lower(email) = lower($1)",
            &[&email],
        )
        .await?
        .get(0);
    rec.check(rows == 1, || {
        format!("the write model holds {rows} users with the email")
    });
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
    let created: Vec<Uuid> = ledger.snapshot().keys().copied().collect();
    rec.load(format!(
        "{CALLS} concurrent creates: {oks} OK, {taken} ALREADY_EXISTS"
    ));
    rec.injected(format!("{CALLS} racing creates of one email"));
    rec.bad_inputs(format!("{}", CALLS - 1));
    if created.len() > 1 {
        rec.note(format!("users created: {created:?}"));
    }
    Ok(())
}
