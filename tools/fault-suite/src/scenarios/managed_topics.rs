//! Topics the platform manages: every topic exists before the services start, and both run
//! with KAFKA_MANAGE_TOPICS=false (the right to create topics withheld). Writes must reach the
//! read model as usual, and neither service may create a topic.

use std::time::Duration;

use crate::{
    ledger::Ledger,
    load,
    outcome::Recorder,
    process::Suite,
    stack::{Options, Stack},
    watch,
};

const USERS: usize = 20;

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let forbidden = vec!["--kafka-manage-topics=false".to_owned()];
    let options = Options {
        command: forbidden.clone(),
        query: forbidden,
        topics_first: true,
        ..Options::default()
    };
    let stack = Stack::start(&suite, "managed-topics", options).await?;
    let (writer, reader) = (stack.writer(), stack.reader());
    let ledger = Ledger::default();
    let users = load::create_users(&writer, &ledger, USERS, "managed").await?;
    let unprojected = watch::wait_projected(&reader, &users, 1, Duration::from_secs(30)).await;
    rec.check(unprojected.is_empty(), || {
        format!("users never readable with platform-managed topics: {unprojected:?}")
    });
    stack
        .expect_converged(
            &rec,
            &ledger,
            Duration::from_secs(30),
            "with platform-managed topics the read model does not match the write model",
        )
        .await?;
    for service in [&stack.command, &stack.query] {
        let created = service
            .log_text()
            .lines()
            .filter(|line| line.contains("created topic"))
            .count();
        rec.check(created == 0, || {
            format!(
                "{} created {created} topics though told not to",
                service.label
            )
        });
    }
    rec.load(format!("{USERS} users created and read"));
    rec.injected("KAFKA_MANAGE_TOPICS=false, topics made beforehand");
    rec.bad_inputs("0");
    Ok(())
}
