//! Reads: GetUser from the cache and from the view, ListUsers, the cache's memory, and the
//! lookups of `lookups`.
//!
//! The read model is filled straight into the view table: 100,000 users over 50 countries
//! (2,000 in GB, so 40 pages of 50). Ids are md5(n)::uuid, which pgbench can compute too.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use prost::Message;
use shared_proto::v1;
use testkit::{
    broker, database::TestDatabase, ports::free_addr, process::Process,
    service_args::QueryServiceArgs,
};

use super::{client, unique};
use crate::{
    Bench, h2load,
    load::{self, Bodies, Plan, frame},
    pgbench,
    services::{CpuReading, Service},
    table::Row,
};

/// Where a read's CPU goes (process names as /proc has them, at most 15 characters).
const PROCESSES: &[&str] = &["query-service", "postgres", "bench"];

pub(crate) const USERS: usize = 100_000;
const HOT: usize = 1_000;
const COUNTRIES: &str = "ARRAY['GB','FR','DE','ES','IT','NL','BE','SE','NO','DK','FI','IE','PT','PL','CZ','AT','CH','HU','RO','BG','GR','HR','SI','SK','LT','LV','EE','LU','MT','CY','IS','US','CA','MX','BR','AR','CL','CO','PE','JP','KR','CN','IN','AU','NZ','ZA','EG','NG','KE','MA']";
pub(crate) const VIEW_COLUMNS: &str =
    "id, first_name, last_name, nickname, email, country, created_at, updated_at, version, deleted";

/// query-service on `db`, with topics and a group of its own, and the row's own settings.
pub(super) async fn start_query_service(
    bench: &Bench,
    db: &TestDatabase,
    settings: impl FnOnce(QueryServiceArgs) -> QueryServiceArgs,
) -> anyhow::Result<Service> {
    let args = QueryServiceArgs::new()
        .database_url(&super::plain(&db.url))
        .brokers(&broker::brokers())
        .topic_prefix(&format!("{}.", unique("reads")))
        .consumer_group(&unique("reads"))
        .database_pool_size(bench.concurrency);
    Service::start(bench, settings(args)).await
}

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let db = TestDatabase::create().await;
    let query = start_query_service(bench, &db, |args| {
        args.flag(format!("--cache-capacity={}", USERS * 2))
    })
    .await?;
    let admin = db.client().await;
    admin
        .batch_execute(&format!(
            "INSERT INTO user_views ({VIEW_COLUMNS})
             SELECT md5(n::text)::uuid, 'Ada' || n, 'Lovelace', 'ada' || n, 'ada' || n || '@example.com',
                    ({COUNTRIES})[1 + n % 50], now(), now(), 1, false
             FROM generate_series(1, {USERS}) AS n;
             ANALYZE user_views;"
        ))
        .await?;
    let ids: Vec<String> = admin
        .query(
            &format!("SELECT md5(n::text)::uuid::text FROM generate_series(1, {USERS}) AS n"),
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let get = |id: &String| {
        frame(&v1::GetUserRequest {
            id: id.clone(),
            min_version: None,
        })
    };
    let mut rows = Vec::new();

    // From the view: every id once, so each call misses the cache. The same pass fills the
    // cache for the memory figure.
    let rss_before = query.rss_bytes();
    let cpu_before = CpuReading::now();
    let cold = load::run(Plan {
        addr: query.grpc,
        path: "/user.v1.UserService/GetUser",
        bodies: Bodies::Once(Arc::new(ids.iter().map(get).collect())),
        connections: 4,
        concurrency: bench.concurrency,
        duration: bench.duration(),
    })
    .await?;
    check(&cold, "GetUser from the view")?;
    let cpu_cold = CpuReading::now();
    let select = pgbench::run(
        &super::plain(&db.url),
        &format!(
            "\\set n random(1, {USERS})\nSELECT {VIEW_COLUMNS} FROM user_views WHERE id = md5(:n::text)::uuid;\n"
        ),
        bench.concurrency,
        bench.seconds,
    )?;
    println!(
        "GetUser from the view{}: CPU per call: {}; pgbench per SELECT: {}",
        bench.label,
        cpu_cold.per_call(&cpu_before, PROCESSES, cold.ok as f64),
        CpuReading::now().per_call(&cpu_cold, &[], select.tps * bench.seconds as f64),
    );
    let bare_select = bare_select_server(bench, &db).await?;
    let simplest = load::run(Plan {
        addr: bare_select.grpc,
        path: "/user.v1.UserService/GetUser",
        bodies: Bodies::Once(Arc::new(ids.iter().map(get).collect())),
        connections: 4,
        concurrency: bench.concurrency,
        duration: bench.duration(),
    })
    .await?;
    check(&simplest, "the bare SELECT server")?;
    drop(bare_select);
    let misses = format!(
        "GetUser, cache miss (cold ids), {} callers",
        bench.concurrency
    );
    rows.push(
        Row::new(bench.figure(&misses), "≥ 0.9×")
            .measured(&cold)
            .against(
                "bare tonic server, the same prepared SELECT per call",
                simplest.rate(),
            ),
    );
    rows.push(
        Row::new(bench.figure(&format!("{misses}, against pgbench")), "—")
            .measured(&cold)
            .against("pgbench, the same SELECT", select.tps),
    );
    // The rest of the ids, untimed, so that every user is cached.
    let rest = load::run(Plan {
        addr: query.grpc,
        path: "/user.v1.UserService/GetUser",
        bodies: Bodies::Once(Arc::new(
            ids.iter().skip(cold.ok as usize).map(get).collect(),
        )),
        connections: 4,
        concurrency: bench.concurrency,
        duration: Duration::from_secs(600),
    })
    .await?;
    check(&rest, "GetUser filling the cache")?;
    if let (Some(before), Some(after)) = (rss_before, query.rss_bytes()) {
        let per_user = after.saturating_sub(before) as f64 / USERS as f64;
        rows.push(
            Row::new(
                bench.figure(&format!(
                    "query-service memory per cached user, bytes ({USERS} cached)"
                )),
                "≤ 512",
            )
            .rate(per_user)
            .against(
                "bare moka cache, the same settings and entries",
                bare_cache_per_entry()?,
            ),
        );
    }

    // From the cache: the hot ids, against a bare tonic server answering one fixed response.
    let hot = Arc::new(ids.iter().take(HOT).map(get).collect::<Vec<Bytes>>());
    let answer = client(query.grpc)
        .await?
        .get_user(v1::GetUserRequest {
            id: ids[0].clone(),
            min_version: None,
        })
        .await?
        .into_inner();
    let many = bench.concurrency * 4;
    let cpu_before = query.cpu_time();
    let cached = load::run(Plan {
        addr: query.grpc,
        path: "/user.v1.UserService/GetUser",
        bodies: Bodies::Shared(hot.clone()),
        connections: 4,
        concurrency: many,
        duration: bench.duration(),
    })
    .await?;
    check(&cached, "GetUser from the cache")?;
    if let (Some(before), Some(after)) = (cpu_before, query.cpu_time()) {
        println!(
            "GetUser from the cache{}: query-service used {:.0}% of its core",
            bench.label,
            100.0 * (after - before).as_secs_f64() / cached.elapsed.as_secs_f64()
        );
    }
    let bare = bare_server(bench, &answer).await?;
    let baseline = load::run(Plan {
        addr: bare.grpc,
        path: "/user.v1.UserService/GetUser",
        bodies: Bodies::Shared(hot),
        connections: 4,
        concurrency: many,
        duration: bench.duration(),
    })
    .await?;
    check(&baseline, "the bare server")?;
    rows.push(
        Row::new(
            bench.figure(&format!(
                "GetUser, cache hit, {many} callers, bench's client"
            )),
            "—",
        )
        .measured(&cached)
        .against("bare tonic server, same response", baseline.rate()),
    );
    rows.extend(hits_through_h2load(bench, &query, &bare, &db, &get(&ids[0]), many).await?);
    drop(bare);

    rows.extend(list_users(bench, &query, &db).await?);
    // Binaries from before these methods do not serve them.
    if !bench.before {
        rows.extend(super::lookups::run(bench, &query, &db, &ids).await?);
    }
    Ok(rows)
}

/// GetUser of one cached id driven by h2load, against query-service as the bench runs it
/// (`RUST_LOG=warn`), as production runs it (`RUST_LOG=info`, `LOG_FORMAT=json`), and the
/// bare server; h2load's own ceiling beside each.
async fn hits_through_h2load(
    bench: &Bench,
    query: &Service,
    bare: &BareServer,
    db: &TestDatabase,
    request: &Bytes,
    many: usize,
) -> anyhow::Result<Vec<Row>> {
    h2load::ensure()?;
    let logged = start_query_service(bench, db, |args| {
        args.log_filter("info").flag("--log-format=json")
    })
    .await?;
    // The id is cached in both services before they are timed.
    let id = v1::GetUserRequest::decode(&request[5..])?;
    for service in [query, &logged] {
        client(service.grpc).await?.get_user(id.clone()).await?;
    }
    let duration = bench.duration();
    let quiet = h2load_checked(query.grpc, &[query], request, many, duration).await?;
    let production = h2load_checked(logged.grpc, &[&logged], request, many, duration).await?;
    let baseline = h2load_checked(bare.grpc, &[], request, many, duration).await?;
    for (what, result) in [
        ("query-service", quiet),
        ("query-service, RUST_LOG=info", production),
        ("bare server", baseline),
    ] {
        println!(
            "h2load against {what}{}: {:.0}/s using {:.0}% of its core: its ceiling about {:.0}/s",
            bench.label,
            result.rate(),
            100.0 * result.busy,
            result.ceiling()
        );
    }
    let against = format!(
        "bare tonic server, same bytes (h2load's ceiling ≈ {:.0}/s)",
        baseline.ceiling()
    );
    Ok(vec![
        Row::new(
            bench.figure(&format!("GetUser, cache hit, {many} callers (h2load)")),
            "≥ 0.95×",
        )
        .rate(quiet.rate())
        .against(against.clone(), baseline.rate()),
        Row::new(
            bench.figure("same, RUST_LOG=info and LOG_FORMAT=json (h2load)"),
            "≥ 0.9×",
        )
        .rate(production.rate())
        .against(against, baseline.rate()),
    ])
}

/// bin/bare-cache's resident bytes per entry, for as many users as the memory row caches.
fn bare_cache_per_entry() -> anyhow::Result<f64> {
    let output = std::process::Command::new(crate::services::binary("bare-cache", None))
        .args([USERS.to_string(), (USERS * 2).to_string()])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "bare-cache failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.split_whitespace().next().unwrap_or_default().parse()?)
}

/// One h2load run of GetUser against `addr`, refused when any call failed or when the
/// services behind it (`counted`, if any) counted fewer OK answers than h2load counted
/// replies.
pub(super) async fn h2load_checked(
    addr: std::net::SocketAddr,
    counted: &[&Service],
    request: &Bytes,
    many: usize,
    duration: Duration,
) -> anyhow::Result<h2load::H2Load> {
    let ok_answers = async || -> anyhow::Result<f64> {
        let mut total = 0.0;
        for service in counted {
            total += service
                .counter(
                    "grpc_server_handled_total",
                    &[("grpc_method", "GetUser"), ("grpc_code", "OK")],
                )
                .await?;
        }
        Ok(total)
    };
    let before = ok_answers().await?;
    let request = request.clone();
    let result = tokio::task::spawn_blocking(move || {
        h2load::run(
            addr,
            "/user.v1.UserService/GetUser",
            &request,
            4,
            many,
            duration,
        )
    })
    .await??;
    if result.failed > 0 {
        anyhow::bail!("h2load: {} calls failed", result.failed);
    }
    let answered = ok_answers().await? - before;
    if !counted.is_empty() && answered < result.succeeded as f64 {
        anyhow::bail!(
            "h2load counted {} replies, the service only {answered} OK answers",
            result.succeeded
        );
    }
    Ok(result)
}

/// ListUsers, 50 a page, one country: first pages, later pages, and one caller's latency.
async fn list_users(bench: &Bench, query: &Service, db: &TestDatabase) -> anyhow::Result<Vec<Row>> {
    let filter = Some(v1::UserFilter {
        countries: vec!["GB".into()],
        updated_after: None,
        query: String::new(),
    });
    let first = v1::ListUsersRequest {
        filter: filter.clone(),
        page_size: 50,
        page_token: String::new(),
    };
    // The tokens of every later page, from one walk.
    let mut client = client(query.grpc).await?;
    let mut later = Vec::new();
    let mut token = client
        .list_users(first.clone())
        .await?
        .into_inner()
        .next_page_token;
    while !token.is_empty() {
        later.push(frame(&v1::ListUsersRequest {
            page_token: token.clone(),
            ..first.clone()
        }));
        token = client
            .list_users(v1::ListUsersRequest {
                page_token: token,
                ..first.clone()
            })
            .await?
            .into_inner()
            .next_page_token;
    }
    let pages = later.len();
    let admin = db.client().await;
    admin
        .batch_execute(
            "CREATE TABLE bench_pages AS
             SELECT (n / 50)::int AS p, id AS after
             FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
                   FROM user_views WHERE country = 'GB' AND NOT deleted) AS t
             WHERE n % 50 = 0;
             ALTER TABLE bench_pages ADD PRIMARY KEY (p);",
        )
        .await?;
    let page_sql = |after: &str| {
        format!(
            "SELECT v.* FROM unnest(ARRAY['GB']::text[]) AS c(code) CROSS JOIN LATERAL \
             (SELECT {VIEW_COLUMNS} FROM user_views WHERE NOT deleted AND country = c.code{after} \
             ORDER BY id LIMIT 51) v ORDER BY v.id LIMIT 51;\n"
        )
    };

    let mut rows = Vec::new();
    let mut first_page_tps = f64::NAN;
    for (what, bodies, script) in [
        ("first page", vec![frame(&first)], page_sql("")),
        (
            "later pages",
            later,
            format!(
                "\\set p random(1, {pages})\n{}",
                page_sql(" AND id > (SELECT after FROM bench_pages WHERE p = :p)")
            ),
        ),
    ] {
        let bodies = Arc::new(bodies);
        let listed = load::run(Plan {
            addr: query.grpc,
            path: "/user.v1.UserService/ListUsers",
            bodies: Bodies::Shared(bodies),
            connections: 4,
            concurrency: bench.concurrency,
            duration: bench.duration(),
        })
        .await?;
        check(&listed, "ListUsers")?;
        let select = pgbench::run(
            &super::plain(&db.url),
            &script,
            bench.concurrency,
            bench.seconds,
        )?;
        if what == "first page" {
            first_page_tps = select.tps;
        }
        rows.push(
            Row::new(
                bench.figure(&format!(
                    "ListUsers, 50 a page, one country, {what}, {} callers",
                    bench.concurrency
                )),
                "≥ 1.0×",
            )
            .measured(&listed)
            .against("pgbench, the same SELECT", select.tps),
        );
    }
    // The same first page from a replica that answers every page from the view.
    let uncached = start_query_service(bench, db, |args| args.flag("--list-cache-ttl=0s")).await;
    // Binaries from before the page cache know no such setting.
    if let Ok(uncached) = uncached {
        let cpu_before = CpuReading::now();
        let listed = load::run(Plan {
            addr: uncached.grpc,
            path: "/user.v1.UserService/ListUsers",
            bodies: Bodies::Shared(Arc::new(vec![frame(&first)])),
            connections: 4,
            concurrency: bench.concurrency,
            duration: bench.duration(),
        })
        .await?;
        check(&listed, "ListUsers without the page cache")?;
        println!(
            "ListUsers without the page cache{}: CPU per call: {}",
            bench.label,
            CpuReading::now().per_call(&cpu_before, PROCESSES, listed.ok as f64),
        );
        rows.push(
            Row::new(
                bench.figure(&format!(
                    "ListUsers, first page, page cache off (LIST_CACHE_TTL=0s), {} callers",
                    bench.concurrency
                )),
                "—",
            )
            .measured(&listed)
            .against("pgbench, the same SELECT", first_page_tps),
        );
    }
    let alone = load::run(Plan {
        addr: query.grpc,
        path: "/user.v1.UserService/ListUsers",
        bodies: Bodies::Shared(Arc::new(vec![frame(&first)])),
        connections: 1,
        concurrency: 1,
        duration: bench.duration().min(Duration::from_secs(3)),
    })
    .await?;
    check(&alone, "ListUsers, one caller")?;
    let select = pgbench::run(
        &super::plain(&db.url),
        &page_sql(""),
        1,
        bench.seconds.min(3),
    )?;
    rows.push(
        Row::new(
            bench.figure("ListUsers, first page, one caller"),
            "p50 ≤ 2 ms",
        )
        .measured(&alone)
        .against("pgbench, the same SELECT, one client", select.tps),
    );
    Ok(rows)
}

async fn bare_server(bench: &Bench, answer: &v1::GetUserResponse) -> anyhow::Result<BareServer> {
    let addr = free_addr();
    let hex: String = answer
        .encode_to_vec()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    // Topics of its own for its idle consumers, made as query-service makes its own.
    let topics = shared_proto::topics::Topics::with_prefix(&format!("{}.", unique("bare")));
    shared::kafka::ensure_topics(
        &shared::kafka::Cluster::plaintext(broker::brokers()),
        &topics.events(),
        &shared::kafka::TopicSettings::fixed(3, 1),
    )
    .await?;
    let binary = crate::services::binary("bare-grpc", None);
    let launch = bench
        .cores
        .launch(&binary)
        .arg(addr.to_string())
        .arg(hex)
        .arg(broker::brokers())
        .args(topics.events());
    BareServer::spawn("the bare server", addr, launch).await
}

/// The simplest server answering GetUser from the view (bin/bare-select.rs), on `db`.
async fn bare_select_server(bench: &Bench, db: &TestDatabase) -> anyhow::Result<BareServer> {
    let addr = free_addr();
    let binary = crate::services::binary("bare-select", None);
    let launch = bench
        .cores
        .launch(&binary)
        .arg(addr.to_string())
        .arg(super::plain(&db.url));
    BareServer::spawn("the bare SELECT server", addr, launch).await
}

pub(super) struct BareServer {
    pub(super) grpc: std::net::SocketAddr,
    /// Killed when the server is dropped.
    _process: Process,
}

impl BareServer {
    /// Starts `launch`, a baseline server of bin/, and waits for its port.
    pub(super) async fn spawn(
        what: &str,
        addr: std::net::SocketAddr,
        launch: testkit::process::Launch,
    ) -> anyhow::Result<Self> {
        let log = std::env::temp_dir().join(format!(
            "users-bench-{}-{}.log",
            what.replace(' ', "-"),
            addr.port()
        ));
        let mut process = Process::spawn(what, launch, Some(log))?;
        process
            .wait_for(
                "listening port",
                Duration::from_secs(5),
                Duration::from_millis(50),
                || async move { tokio::net::TcpStream::connect(addr).await.ok().map(drop) },
            )
            .await?;
        Ok(Self {
            grpc: addr,
            _process: process,
        })
    }
}

/// Every call must have been a gRPC OK.
pub(crate) fn check(load: &load::Load, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        load.failed == 0 && load.ok > 0,
        "{what}: {} calls failed, {} succeeded; first failure: {:?}",
        load.failed,
        load.ok,
        load.first_failure
    );
    Ok(())
}
