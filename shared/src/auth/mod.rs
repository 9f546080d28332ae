//! Who may call what. Callers present an OAuth 2.0 / OIDC access token (`authorization:
//! Bearer <JWT>`), checked against the issuer's key set (see `keys`, `token`); each method
//! needs a scope (`users.read`, `users.write`), and the caller's identity travels with the
//! call to the log line and the event of the change it makes.

mod fetch;
mod keys;
mod layer;
mod policy;
mod token;

use std::{net::SocketAddr, sync::Arc};

pub use self::{
    keys::{KeySet, KeySource},
    layer::AuthLayer,
    policy::{Scope, required_scope},
    token::{Verifier, VerifierSettings},
};

/// Who made a call: the token's subject, or no one where calls are not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`; `None` when unauthenticated.
    pub id: Option<String>,
    /// What kind of principal it is, as CloudEvents' auth context names it: `user`,
    /// `service_account`, `unauthenticated`.
    pub kind: &'static str,
}

impl Caller {
    pub const UNAUTHENTICATED: Self = Self {
        id: None,
        kind: "unauthenticated",
    };

    /// The caller a request carries (the auth layer puts it there), unauthenticated if none.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        request
            .extensions()
            .get::<Self>()
            .cloned()
            .unwrap_or(Self::UNAUTHENTICATED)
    }
}

/// How calls are authenticated, as the settings (`AUTH_*`) resolved it.
#[derive(Clone)]
pub enum Auth {
    Jwt(Arc<Verifier>),
    /// Every call is let through: on loopback with nothing configured, or `AUTH_MODE=none`
    /// where a mesh or gateway authenticates.
    Open,
}

impl Auth {
    /// Keeps the issuer's keys fresh until `shutdown`; nothing to do when calls are open.
    pub fn spawn_refresh(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        match self {
            Self::Jwt(verifier) => Some(Arc::clone(verifier.keys()).spawn_refresh(shutdown)),
            Self::Open => None,
        }
    }
}

/// The settings' mode, before it meets the gRPC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    Jwt,
    None,
}

/// Whether a service with `mode` may serve on `grpc_addr`: with no mode set, only on
/// loopback (and then open, with a warning), as Redis's protected mode does.
pub fn check_exposure(mode: Option<AuthMode>, grpc_addr: SocketAddr) -> Result<(), String> {
    match mode {
        Some(_) => Ok(()),
        None if grpc_addr.ip().is_loopback() => {
            tracing::warn!(
                %grpc_addr,
                "no AUTH_MODE set: serving without authentication on loopback only"
            );
            Ok(())
        }
        None => Err(format!(
            "GRPC_ADDR {grpc_addr} is not loopback and no AUTH_MODE is set: set AUTH_MODE=jwt \
             (with AUTH_JWKS, AUTH_ISSUER and AUTH_AUDIENCE), or AUTH_MODE=none where a mesh or \
             gateway authenticates every call"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_nothing_configured_only_loopback_may_serve() {
        let loopback: SocketAddr = "127.0.0.1:50051".parse().unwrap();
        let exposed: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        assert!(check_exposure(None, loopback).is_ok());
        assert!(check_exposure(None, "[::1]:1".parse().unwrap()).is_ok());
        let refused = check_exposure(None, exposed).unwrap_err();
        assert!(refused.contains("AUTH_MODE"), "{refused}");
        assert!(check_exposure(Some(AuthMode::None), exposed).is_ok());
        assert!(check_exposure(Some(AuthMode::Jwt), exposed).is_ok());
    }
}
