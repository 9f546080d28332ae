//! Scaling out: two query-service replicas behind one address against one, each held to the
//! same CPU limit, as a Kubernetes Deployment with a CPU limit per pod and a Service in front
//! would run them. The limit is a CFS quota (a cgroup per replica, as the kubelet makes); the
//! address is a kube-proxy-style DNAT rule in iptables' `nat` table that spreads new
//! connections over the replicas. Both replicas share the server's core and h2load keeps its
//! own, so the two runs give the load generator the same cores; the replicas' limits add up
//! to less than that core, so what the second replica adds is its own share.
//!
//! Needs root, the cgroup `cpu` controller and iptables; the part is skipped without them.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use shared_proto::v1;
use testkit::{broker, database::TestDatabase, ports::free_addr, service_args::QueryServiceArgs};

use super::{
    client,
    reads::{VIEW_COLUMNS, h2load_checked},
    unique,
};
use crate::{Bench, h2load, load::frame, services::Service, table::Row};

/// Each replica's limit, in millicores as a pod spec writes it.
const REPLICA_MILLICORES: u64 = 400;
const CFS_PERIOD_US: u64 = 100_000;

pub(crate) async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    if let Err(missing) = Cgroup::supported().and_then(|_| Front::supported()) {
        println!("scaling{}: skipped ({missing:#})", bench.label);
        return Ok(Vec::new());
    }
    h2load::ensure()?;
    let db = TestDatabase::create().await;
    // Replicas of one Deployment: one database, one set of topics, one consumer group.
    let prefix = format!("{}.", unique("scaling"));
    let group = unique("scaling");
    let args = || {
        QueryServiceArgs::new()
            .database_url(&super::plain(&db.url))
            .brokers(&broker::brokers())
            .topic_prefix(&prefix)
            .consumer_group(&group)
            .database_pool_size(bench.concurrency)
    };
    let replicas = [
        Service::start(bench, args()).await?,
        Service::start(bench, args()).await?,
    ];
    // The view is there once the replicas have migrated it.
    let id = uuid::Uuid::now_v7();
    db.client()
        .await
        .execute(
            &format!(
                "INSERT INTO user_views ({VIEW_COLUMNS}) \
                 VALUES ($1, 'Ada', 'Lovelace', 'ada', 'ada@example.com', 'GB', now(), now(), 1, false)"
            ),
            &[&id],
        )
        .await?;
    let request = v1::GetUserRequest {
        id: id.to_string(),
        min_version: None,
    };
    let mut limits = Vec::new();
    for (n, replica) in replicas.iter().enumerate() {
        // Cached in each replica before anything is timed.
        client(replica.grpc)
            .await?
            .get_user(request.clone())
            .await
            .context("GetUser on a replica")?;
        limits.push(Cgroup::limited(
            &format!("{}-{n}", unique("replica")),
            REPLICA_MILLICORES,
            replica.pid(),
        )?);
    }
    let body = frame(&request);
    let many = bench.concurrency * 4;
    let one = Front::new(&[replicas[0].grpc])?;
    let alone = h2load_checked(
        one.addr,
        &replicas[..1].iter().collect::<Vec<_>>(),
        &body,
        many,
        bench.duration(),
    )
    .await?;
    drop(one);
    let both = Front::new(&[replicas[0].grpc, replicas[1].grpc])?;
    let together = h2load_checked(
        both.addr,
        &replicas.iter().collect::<Vec<_>>(),
        &body,
        many,
        bench.duration(),
    )
    .await?;
    drop(both);
    for (replicas, result) in [(1, alone), (2, together)] {
        println!(
            "scaling{}: {replicas} replica(s) of {REPLICA_MILLICORES}m each behind one address: {:.0}/s (h2load used {:.0}% of its core)",
            bench.label,
            result.rate(),
            100.0 * result.busy
        );
    }
    drop(limits);
    Ok(vec![
        Row::new(
            bench.figure(&format!(
                "GetUser, cache hit, two replicas of {REPLICA_MILLICORES}m behind one address, {many} callers (h2load)"
            )),
            "≥ 1.8×",
        )
        .rate(together.rate())
        .against(
            format!("one replica of {REPLICA_MILLICORES}m behind the same kind of address"),
            alone.rate(),
        ),
    ])
}

/// A cgroup holding one process to a CPU quota, removed when dropped.
struct Cgroup {
    dir: PathBuf,
    /// Where its processes go back to.
    root: PathBuf,
}

impl Cgroup {
    /// cgroup v1's `cpu` hierarchy, or v2's unified one with the `cpu` controller.
    fn root() -> anyhow::Result<(PathBuf, bool)> {
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        if v1.join("cpu.cfs_quota_us").exists() {
            return Ok((v1.to_owned(), true));
        }
        let v2 = Path::new("/sys/fs/cgroup");
        let controllers =
            std::fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "cpu") {
            return Ok((v2.to_owned(), false));
        }
        bail!("no cgroup cpu controller")
    }

    fn supported() -> anyhow::Result<()> {
        let (root, _) = Self::root()?;
        let probe = root.join(unique("probe"));
        std::fs::create_dir(&probe).context("cannot make a cgroup (needs root)")?;
        std::fs::remove_dir(&probe)?;
        Ok(())
    }

    fn limited(name: &str, millicores: u64, pid: u32) -> anyhow::Result<Self> {
        let (root, v1) = Self::root()?;
        let dir = root.join(name);
        std::fs::create_dir(&dir)?;
        let cgroup = Self { dir, root };
        let quota = millicores * CFS_PERIOD_US / 1000;
        if v1 {
            std::fs::write(
                cgroup.dir.join("cpu.cfs_period_us"),
                CFS_PERIOD_US.to_string(),
            )?;
            std::fs::write(cgroup.dir.join("cpu.cfs_quota_us"), quota.to_string())?;
        } else {
            std::fs::write(cgroup.root.join("cgroup.subtree_control"), "+cpu")?;
            std::fs::write(
                cgroup.dir.join("cpu.max"),
                format!("{quota} {CFS_PERIOD_US}"),
            )?;
        }
        // cgroup.procs moves every thread of the process.
        std::fs::write(cgroup.dir.join("cgroup.procs"), pid.to_string())?;
        Ok(cgroup)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.split_whitespace() {
                let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// One loopback address whose new connections iptables spreads over `backends` in turn, as
/// kube-proxy does for a Service; the rules go when dropped.
struct Front {
    addr: SocketAddr,
    rules: Vec<Vec<String>>,
}

impl Front {
    fn supported() -> anyhow::Result<()> {
        iptables(&["-t", "nat", "-S", "OUTPUT"])
            .context("iptables' nat table (needs root and iptables)")
    }

    fn new(backends: &[SocketAddr]) -> anyhow::Result<Self> {
        let addr = free_addr();
        let mut front = Self {
            addr,
            rules: Vec::new(),
        };
        for (n, backend) in backends.iter().enumerate() {
            let mut rule: Vec<String> = [
                "-t",
                "nat",
                "OUTPUT",
                "-p",
                "tcp",
                "-d",
                &addr.ip().to_string(),
                "--dport",
                &addr.port().to_string(),
            ]
            .map(str::to_owned)
            .to_vec();
            // Of the connections the earlier rules left, every (backends - n)th comes here.
            let left = backends.len() - n;
            if left > 1 {
                rule.extend(
                    [
                        "-m",
                        "statistic",
                        "--mode",
                        "nth",
                        "--every",
                        &left.to_string(),
                        "--packet",
                        "0",
                    ]
                    .map(str::to_owned),
                );
            }
            rule.extend(
                ["-j", "DNAT", "--to-destination", &backend.to_string()].map(str::to_owned),
            );
            let mut append = rule.clone();
            append.insert(2, "-A".to_owned());
            iptables(&append.iter().map(String::as_str).collect::<Vec<_>>())?;
            front.rules.push(rule);
        }
        Ok(front)
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        for rule in &self.rules {
            let mut delete = rule.clone();
            delete.insert(2, "-D".to_owned());
            let _ = iptables(&delete.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}

fn iptables(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("iptables")
        .args(args)
        .output()
        .context("iptables")?;
    if !output.status.success() {
        bail!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
