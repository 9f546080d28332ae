//! The gRPC server's gate: every call but health's shows a token that grants what its method
//! needs, or is answered at once (UNAUTHENTICATED, PERMISSION_DENIED naming the scope,
//! UNAVAILABLE while the issuer's keys are not loaded). The caller then rides in the
//! request's extensions (see `Caller::of`).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use futures::future::Either;
use tonic::{
    Status,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};
use tower::{Layer, Service};

use super::{
    Auth, Caller,
    policy::{Needs, required_scope},
    token::Refusal,
};

#[derive(Clone)]
pub struct AuthLayer {
    auth: Auth,
}

impl AuthLayer {
    pub fn new(auth: Auth) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    auth: Auth,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Authenticated<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    /// Calls that need no token go straight through; only a token's check is boxed.
    type Future =
        Either<S::Future, Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let needs = required_scope(request.uri().path());
        let verifier = match (&self.auth, needs) {
            (Auth::Open, _) | (_, Needs::Nothing) => {
                let caller = certified_caller(&request).unwrap_or(Caller::UNAUTHENTICATED);
                request.extensions_mut().insert(caller);
                return Either::Left(self.inner.call(request));
            }
            (Auth::Jwt(verifier), _) => std::sync::Arc::clone(verifier),
        };
        let token = bearer(request.headers());
        // The ready service goes with this call; a clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(async move {
            let Some(token) = token else {
                return Ok(Status::unauthenticated(
                    "a bearer token is required (authorization: Bearer <JWT>)",
                )
                .into_http());
            };
            let verified = match verifier.verify(&token).await {
                Ok(verified) => verified,
                Err(Refusal::KeysUnavailable) => {
                    return Ok(
                        Status::unavailable(Refusal::KeysUnavailable.to_string()).into_http()
                    );
                }
                Err(refusal) => return Ok(Status::unauthenticated(refusal.to_string()).into_http()),
            };
            if let Needs::Scope(scope) = needs
                && !verified.grants(scope)
            {
                return Ok(Status::permission_denied(format!(
                    "the token does not grant the scope {}",
                    scope.name()
                ))
                .into_http());
            }
            request.extensions_mut().insert(verified.caller.clone());
            inner.call(request).await
        }))
    }
}

/// Under mutual TLS, the client certificate's first DNS name: who calls where the mesh or
/// the certificate, not a token, says so. The certificate was verified in the handshake.
fn certified_caller<B>(request: &http::Request<B>) -> Option<Caller> {
    let info = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()?;
    let certs = info.peer_certs()?;
    let leaf = webpki::EndEntityCert::try_from(certs.first()?).ok()?;
    let name = leaf.valid_dns_names().next()?.to_owned();
    Some(Caller {
        id: Some(name),
        kind: "service_account",
    })
}

/// The bearer token of an `authorization` header, if well-formed.
fn bearer(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}
