//! Read-your-writes calls whose deadlines pass at once: GetUser of fresh ids with
//! `min_version`, sent with `grpc-timeout: 1n` and a few milliseconds, against a
//! query-service with a pool of 3 connections. Each caller leaves while its look at the view
//! is under way; afterwards reads, projection and readiness must all work as before.

use std::time::{Duration, Instant};

use prost::Message as _;
use shared_proto::v1;
use uuid::Uuid;

use super::bad_requests::raw::{Answer, RawGrpc, RawRequest, frame};
use crate::{
    client,
    ledger::Ledger,
    load,
    outcome::Recorder,
    probe,
    process::Suite,
    stack::{Options, Stack},
    watch,
};

const CALLERS: usize = 40;
const DEADLINES: [&str; 3] = ["1n", "1m", "5m"];

pub(crate) async fn run(suite: Suite, rec: Recorder) -> anyhow::Result<()> {
    let options = Options {
        query: vec!["--database-pool-size=3".to_owned()],
        ..Options::default()
    };
    let stack = Stack::start(&suite, "tiny-deadlines", options).await?;
    let (writer, reader) = (stack.writer(), stack.reader());
    let ledger = Ledger::default();
    let before = load::create_users(&writer, &ledger, 1, "deadline").await?;
    let unprojected = watch::wait_projected(&reader, &before, 1, Duration::from_secs(30)).await;
    anyhow::ensure!(
        unprojected.is_empty(),
        "the first user never became readable"
    );

    rec.say(format!(
        "{CALLERS} GetUser calls with min_version for each deadline {DEADLINES:?}"
    ));
    let mut answers = std::collections::BTreeMap::<String, u64>::new();
    for deadline in DEADLINES {
        let calls: Vec<_> = (0..CALLERS)
            .map(|_| {
                let addr = stack.query.grpc;
                tokio::spawn(async move {
                    let request = RawRequest {
                        path: "/user.v1.UserService/GetUser".to_owned(),
                        content_type: "application/grpc",
                        body: frame(
                            &v1::GetUserRequest {
                                id: Uuid::now_v7().to_string(),
                                min_version: Some(1),
                            }
                            .encode_to_vec(),
                        ),
                    };
                    RawGrpc::new(addr)
                        .call_with(&request, &[("grpc-timeout", deadline)])
                        .await
                })
            })
            .collect();
        for call in calls {
            let answer = call.await?;
            *answers
                .entry(format!("{deadline}: {}", answer.label()))
                .or_default() += 1;
            if let Answer::Grpc(tonic::Code::Internal) = answer {
                rec.fail("a call with a short deadline answered INTERNAL");
            }
        }
    }
    rec.note(format!("answers: {answers:?}"));

    // What the callers left behind must not stand in anyone's way.
    let after = Instant::now();
    let mut reads = reader.clone();
    let list = client::with_retries(Duration::from_secs(10), || {
        let mut reads = reads.clone();
        async move {
            reads
                .list_users(v1::ListUsersRequest {
                    filter: None,
                    page_size: 10,
                    page_token: String::new(),
                })
                .await
        }
    })
    .await;
    rec.check(list.is_ok(), || {
        format!("ListUsers fails after the short deadlines: {list:?}")
    });
    let unknown = client::get(&mut reads, &Uuid::now_v7().to_string(), None).await;
    rec.check(
        matches!(&unknown, Err(status) if status.code() == tonic::Code::NotFound),
        || format!("GetUser of an unknown id does not answer NOT_FOUND: {unknown:?}"),
    );
    let created = load::create_users(&writer, &ledger, 3, "deadline").await?;
    let unprojected = watch::wait_projected(&reader, &created, 1, Duration::from_secs(30)).await;
    rec.check(unprojected.is_empty(), || {
        format!("users created after the short deadlines never became readable: {unprojected:?}")
    });
    let (status, body) = probe::get(stack.query.http, probe::READINESS).await?;
    rec.check(status == 200, || {
        format!("query-service not ready after the short deadlines: {status} {body}")
    });
    rec.note(format!(
        "reads, projection and readiness checked {:.1} s after the calls",
        after.elapsed().as_secs_f64()
    ));
    rec.load(format!(
        "{} GetUser calls with min_version, then reads and writes",
        CALLERS * DEADLINES.len()
    ));
    rec.injected(format!("grpc-timeout {}", DEADLINES.join(", ")));
    rec.bad_inputs("0");
    Ok(())
}
