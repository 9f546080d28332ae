//! The reads real clients batch and search with: BatchGetUsers, GetUserByEmail and ListUsers
//! with a query, each beside its baseline, on the read model `reads` filled (100,000 users,
//! every one cached by then).

use std::sync::Arc;

use bytes::Bytes;
use shared_proto::v1;
use testkit::database::TestDatabase;

use super::reads::{USERS, VIEW_COLUMNS, check};
use crate::{
    Bench,
    load::{self, Bodies, Plan, frame},
    pgbench,
    services::Service,
    table::Row,
};

const BATCH: usize = 50;

pub(crate) async fn run(
    bench: &Bench,
    query: &Service,
    db: &TestDatabase,
    ids: &[String],
) -> anyhow::Result<Vec<Row>> {
    let mut rows = batch_get(bench, query, ids).await?;
    rows.extend(by_email(bench, query, db).await?);
    rows.extend(search(bench, query, db).await?);
    Ok(rows)
}

/// Batches of 50 cached ids against the same users asked one GetUser at a time, both over one
/// connection.
async fn batch_get(bench: &Bench, query: &Service, ids: &[String]) -> anyhow::Result<Vec<Row>> {
    let batches: Vec<Bytes> = ids
        .chunks(BATCH)
        .take(200)
        .map(|chunk| {
            frame(&v1::BatchGetUsersRequest {
                ids: chunk.to_vec(),
                allow_missing: false,
            })
        })
        .collect();
    let singles: Vec<Bytes> = ids
        .iter()
        .take(200 * BATCH)
        .map(|id| {
            frame(&v1::GetUserRequest {
                id: id.clone(),
                min_version: None,
            })
        })
        .collect();
    let plan = |path, bodies| Plan {
        addr: query.grpc,
        path,
        bodies: Bodies::Shared(Arc::new(bodies)),
        connections: 1,
        concurrency: bench.concurrency,
        duration: bench.duration(),
    };
    let batched = load::run(plan("/user.v1.UserService/BatchGetUsers", batches)).await?;
    check(&batched, "BatchGetUsers")?;
    let single = load::run(plan("/user.v1.UserService/GetUser", singles)).await?;
    check(&single, "GetUser, one connection")?;
    let callers = bench.concurrency;
    Ok(vec![
        Row::new(
            bench.figure(&format!(
                "BatchGetUsers, {BATCH} cached ids, one connection, {callers} callers: calls"
            )),
            "—",
        )
        .measured(&batched),
        Row::new(
            bench.figure(&format!(
                "BatchGetUsers, {BATCH} cached ids, one connection, {callers} callers: users"
            )),
            "≥ 10×",
        )
        .rate(batched.rate() * BATCH as f64)
        .against("GetUser, one connection, users", single.rate()),
    ])
}

/// Every address once, so nothing is cached, against pgbench running the same SELECT.
async fn by_email(bench: &Bench, query: &Service, db: &TestDatabase) -> anyhow::Result<Vec<Row>> {
    let bodies: Vec<Bytes> = (1..=USERS)
        .map(|n| {
            frame(&v1::GetUserByEmailRequest {
                email: format!("Ada{n}@Example.com"),
            })
        })
        .collect();
    let found = load::run(Plan {
        addr: query.grpc,
        path: "/user.v1.UserService/GetUserByEmail",
        bodies: Bodies::Once(Arc::new(bodies)),
        connections: 4,
        concurrency: bench.concurrency,
        duration: bench.duration(),
    })
    .await?;
    check(&found, "GetUserByEmail")?;
    let select = pgbench::run(
        &super::plain(&db.url),
        &format!(
            "\\set n random(1, {USERS})\n\
             WITH holders AS MATERIALIZED (SELECT {VIEW_COLUMNS} FROM user_views \
             WHERE NOT deleted AND lower(email) COLLATE \"C\" = lower('Ada' || :n || '@Example.com')) \
             SELECT * FROM holders ORDER BY updated_at DESC LIMIT 1;\n"
        ),
        bench.concurrency,
        bench.seconds,
    )?;
    Ok(vec![
        Row::new(
            bench.figure(&format!(
                "GetUserByEmail, cache cold, {} callers",
                bench.concurrency
            )),
            "≥ 0.5×",
        )
        .measured(&found)
        .against("pgbench, the same SELECT", select.tps),
    ])
}

/// A prefix of four digits' names ("ada1234": 11 users, by first name, nickname and email),
/// a first page of 50, against pgbench running the same SELECT.
async fn search(bench: &Bench, query: &Service, db: &TestDatabase) -> anyhow::Result<Vec<Row>> {
    let bodies: Vec<Bytes> = (1000..10_000)
        .map(|n| {
            frame(&v1::ListUsersRequest {
                filter: Some(v1::UserFilter {
                    countries: Vec::new(),
                    updated_after: None,
                    query: format!("ada{n}"),
                }),
                page_size: 50,
                page_token: String::new(),
            })
        })
        .collect();
    let listed = load::run(Plan {
        addr: query.grpc,
        path: "/user.v1.UserService/ListUsers",
        bodies: Bodies::Shared(Arc::new(bodies)),
        connections: 4,
        concurrency: bench.concurrency,
        duration: bench.duration(),
    })
    .await?;
    check(&listed, "ListUsers with a query")?;
    let column = |name: &str| {
        format!(
            "SELECT id FROM user_views WHERE NOT deleted \
             AND lower({name}) COLLATE \"C\" >= lower('ada' || :n) \
             AND lower({name}) COLLATE \"C\" < lower('ada' || :n) || chr(1114111)"
        )
    };
    let select = pgbench::run(
        &super::plain(&db.url),
        &format!(
            "\\set n random(1000, 9999)\n\
             WITH matches AS MATERIALIZED ({} UNION ALL {} UNION ALL {} UNION ALL {}) \
             SELECT v.* FROM (SELECT DISTINCT id FROM matches ORDER BY id LIMIT 51) AS m \
             CROSS JOIN LATERAL (SELECT {VIEW_COLUMNS} FROM user_views WHERE id = m.id) AS v \
             ORDER BY v.id;\n",
            column("first_name"),
            column("last_name"),
            column("nickname"),
            column("email"),
        ),
        bench.concurrency,
        bench.seconds,
    )?;
    Ok(vec![
        Row::new(
            bench.figure(&format!(
                "ListUsers, query \"ada1234\", 50 a page, {} callers",
                bench.concurrency
            )),
            "≥ 0.5×",
        )
        .measured(&listed)
        .against("pgbench, the same SELECT", select.tps),
    ])
}
