//! Ports for the services and brokers a test or a run starts.

use std::net::{SocketAddr, TcpListener};

/// A loopback address nothing listens on just now. Another process may take it before the
/// caller binds it, as with any port-0 trick; each test's and scenario's ports are its own,
/// so that is rare.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on loopback")
}
