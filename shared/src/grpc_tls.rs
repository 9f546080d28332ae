//! TLS on the gRPC port: HTTP/2 over ALPN, and mutual TLS when a client CA is given. The
//! files are read again when they change (cert-manager rotates them), without a restart:
//! each new connection is accepted with the newest configuration, and connections already
//! open keep theirs, so no call is dropped.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// How often the files are looked at for changes.
const WATCH_EVERY: Duration = Duration::from_secs(5);
/// Longest a client may take over its handshake.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(10);

/// Where the server's certificate, key and (for mutual TLS) client CA are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

pub struct GrpcTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    seen: Mutex<Vec<Option<SystemTime>>>,
}

impl GrpcTls {
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, String> {
        let config = build(&files)?;
        Ok(Arc::new(Self {
            seen: Mutex::new(stamps(&files)),
            files,
            current: RwLock::new(Arc::new(config)),
        }))
    }

    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.current.read().expect("tls lock poisoned")))
    }

    /// Reads the files again if any changed; a set that does not load is logged and the
    /// configuration in use kept.
    pub fn reload_if_changed(&self) {
        let now = stamps(&self.files);
        let mut seen = self.seen.lock().expect("tls stamps lock poisoned");
        if *seen == now {
            return;
        }
        match build(&self.files) {
            Ok(config) => {
                *self.current.write().expect("tls lock poisoned") = Arc::new(config);
                *seen = now;
                tracing::info!("gRPC TLS certificate reloaded");
            }
            Err(error) => {
                tracing::warn!(%error, "cannot reload the gRPC TLS files; keeping the ones in use")
            }
        }
    }

    /// Looks for changes every `WATCH_EVERY` until `shutdown`.
    pub fn spawn_watch(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(WATCH_EVERY) => self.reload_if_changed(),
                }
            }
        })
    }

    /// The connections of `listener`, each once its handshake is done; handshakes run
    /// apart, so a slow or silent client holds up no one.
    pub fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
    ) -> ReceiverStream<Result<TlsStream<TcpStream>, io::Error>> {
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = sender.closed() => return,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, "cannot accept a gRPC connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, sender) = (self.acceptor(), sender.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_WITHIN, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = sender.send(Ok(stream)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake took too long"),
                    }
                });
            }
        });
        ReceiverStream::new(receiver)
    }
}

fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|path| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
    })
    .collect()
}

fn build(files: &TlsFiles) -> Result<ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots.add(cert).map_err(|error| {
                    format!("GRPC_TLS_CLIENT_CA_FILE {}: {error}", ca.display())
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| format!("GRPC_TLS_CLIENT_CA_FILE {}: {error}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certificates(&files.cert)?, private_key(&files.key)?)
        .map_err(|error| format!("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE: {error}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text =
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut text.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|error| format!("{}: {error}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let text =
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    rustls_pemfile::private_key(&mut text.as_slice())
        .map_err(|error| format!("{}: {error}", path.display()))?
        .ok_or_else(|| format!("{} holds no PEM private key", path.display()))
}
