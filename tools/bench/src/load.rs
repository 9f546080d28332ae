//! A gRPC load generator on raw HTTP/2: pre-encoded requests, many streams over a few
//! connections, and every reply checked for `grpc-status: 0`, not only HTTP 200.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use bytes::Bytes;
use h2::client::SendRequest;
use prost::Message;
use tokio::net::TcpStream;

/// What a run did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Load {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) first_failure: Option<String>,
    pub(crate) latencies: Vec<Duration>,
    pub(crate) elapsed: Duration,
}

impl Load {
    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(crate) fn percentile_ms(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        sorted
            .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }

    fn merge(&mut self, other: Load) {
        self.ok += other.ok;
        self.failed += other.failed;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
        self.latencies.extend(other.latencies);
    }
}

/// One gRPC request body: the 5-byte frame header, then the message.
pub(crate) fn frame<M: Message>(message: &M) -> Bytes {
    let encoded = message.encode_to_vec();
    let mut framed = Vec::with_capacity(encoded.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    framed.extend_from_slice(&encoded);
    Bytes::from(framed)
}

/// Which body each call sends.
#[derive(Clone)]
pub(crate) enum Bodies {
    /// Every caller takes the next body in turn, round and round.
    Shared(Arc<Vec<Bytes>>),
    /// Every caller takes the next body in turn, each once; callers stop when all are sent.
    Once(Arc<Vec<Bytes>>),
    /// Caller `c` cycles through list `c` (as pgbench's clients each keep to their row).
    PerCaller(Arc<Vec<Vec<Bytes>>>),
}

/// How to load a method.
pub(crate) struct Plan {
    pub(crate) addr: SocketAddr,
    /// e.g. `/user.v1.UserService/GetUser`.
    pub(crate) path: &'static str,
    pub(crate) bodies: Bodies,
    pub(crate) connections: usize,
    /// Calls in flight at once, over all connections.
    pub(crate) concurrency: usize,
    /// How long to run (`Bodies::Once` may stop sooner).
    pub(crate) duration: Duration,
}

/// Runs `plan`: `concurrency` callers, each sending its next call when the last answered.
pub(crate) async fn run(plan: Plan) -> anyhow::Result<Load> {
    let mut senders = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections.max(1) {
        senders.push(connect(plan.addr).await?);
    }
    let uri: http::Uri = format!("http://{}{}", plan.addr, plan.path).parse()?;
    let running = Arc::new(AtomicBool::new(true));
    let next_body = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let callers: Vec<_> = (0..plan.concurrency)
        .map(|caller| {
            let sender = senders[caller % senders.len()].clone();
            let (running, next_body, bodies, uri) = (
                running.clone(),
                next_body.clone(),
                plan.bodies.clone(),
                uri.clone(),
            );
            tokio::spawn(async move {
                let mut load = Load::default();
                let mut own_turn = 0;
                while running.load(Ordering::Relaxed) {
                    let body = match &bodies {
                        Bodies::Shared(all) => {
                            all[next_body.fetch_add(1, Ordering::Relaxed) % all.len()].clone()
                        }
                        Bodies::Once(all) => {
                            match all.get(next_body.fetch_add(1, Ordering::Relaxed)) {
                                Some(body) => body.clone(),
                                None => break,
                            }
                        }
                        Bodies::PerCaller(lists) => {
                            let list = &lists[caller % lists.len()];
                            own_turn += 1;
                            list[own_turn % list.len()].clone()
                        }
                    };
                    let at = Instant::now();
                    match call(sender.clone(), &uri, body).await {
                        Ok(()) => {
                            load.ok += 1;
                            load.latencies.push(at.elapsed());
                        }
                        Err(error) => {
                            load.failed += 1;
                            load.first_failure.get_or_insert(format!("{error:#}"));
                        }
                    }
                }
                load
            })
        })
        .collect();
    let all_done = futures::future::join_all(callers);
    tokio::pin!(all_done);
    let finished = tokio::select! {
        finished = &mut all_done => finished,
        _ = tokio::time::sleep(plan.duration) => {
            running.store(false, Ordering::Relaxed);
            all_done.await
        }
    };
    let elapsed = started.elapsed();
    let mut total = Load::default();
    for caller in finished {
        total.merge(caller?);
    }
    total.elapsed = elapsed;
    Ok(total)
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Bytes>> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (sender, connection) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 24)
        .handshake(tcp)
        .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn call(sender: SendRequest<Bytes>, uri: &http::Uri, body: Bytes) -> anyhow::Result<()> {
    let request = http::Request::post(uri.clone())
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    let mut sender = sender.ready().await?;
    let (response, mut stream) = sender.send_request(request, false)?;
    stream.send_data(body, true)?;
    let response = response.await?;
    anyhow::ensure!(response.status() == 200, "HTTP {}", response.status());
    // A trailers-only answer (an error) carries its status in the headers.
    if let Some(status) = response.headers().get("grpc-status") {
        anyhow::ensure!(status == "0", "grpc-status {status:?}");
        return Ok(());
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await?.context("no trailers")?;
    let status = trailers.get("grpc-status").context("no grpc-status")?;
    anyhow::ensure!(
        status == "0",
        "grpc-status {status:?}: {:?}",
        trailers.get("grpc-message")
    );
    Ok(())
}
