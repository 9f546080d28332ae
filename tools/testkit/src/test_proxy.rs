//! A TCP proxy for tests that can make every connection open so far go silent: bytes are
//! still read from both ends (so each end's kernel sees them acknowledged) but none is
//! passed on, and nothing is closed. That is what a failover that moved an address, or a
//! partition behind a stateful middlebox, looks like to both ends. Connections opened after
//! the freeze pass as usual.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
};

pub struct FreezingProxy {
    addr: SocketAddr,
    /// Connections numbered below this are frozen.
    frozen_below: Arc<AtomicU64>,
    opened: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FreezingProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let addr = listener.local_addr().expect("proxy address");
        let frozen_below = Arc::new(AtomicU64::new(0));
        let opened = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (frozen_below, opened) = (Arc::clone(&frozen_below), Arc::clone(&opened));
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let number = opened.fetch_add(1, Ordering::SeqCst);
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        continue;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    for (from, to) in [(client_read, server_write), (server_read, client_write)] {
                        tokio::spawn(pump(from, to, number, Arc::clone(&frozen_below)));
                    }
                }
            }
        });
        Self {
            addr,
            frozen_below,
            opened,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` (a postgres:// URL) with its host and port replaced by the proxy's.
    pub fn postgres_url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let user = authority
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"))
            .unwrap_or_default();
        format!("{scheme}://{user}{}/{path}", self.addr)
    }

    /// Freezes every connection opened so far; returns how many there were.
    pub fn freeze_open_connections(&self) -> u64 {
        let opened = self.opened.load(Ordering::SeqCst);
        self.frozen_below.store(opened, Ordering::SeqCst);
        opened
    }

    /// Connections the proxy accepted so far.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::SeqCst)
    }
}

impl Drop for FreezingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    number: u64,
    frozen_below: Arc<AtomicU64>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if number < frozen_below.load(Ordering::SeqCst) {
            // Swallowed; the writer half stays open, so the far end hears nothing at all.
            continue;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    if number < frozen_below.load(Ordering::SeqCst) {
        // A frozen connection is never closed by the proxy: keep the half alive.
        std::future::pending::<()>().await;
    }
}
