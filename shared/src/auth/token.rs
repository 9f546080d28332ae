//! Checking one access token: signed by a key of the issuer's set with an asymmetric
//! algorithm, for this audience, by this issuer, within its lifetime; then what it grants.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind, jwk::KeyAlgorithm};
use moka::sync::Cache;
use serde::Deserialize;

use super::{Caller, KeySet, Scope};

/// The algorithms a token may be signed with. No `none`, and no HMAC: an HMAC "signed" with
/// the issuer's public key would otherwise pass as that key's (algorithm confusion).
const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Tokens already checked, so a caller's every call does not verify a signature again.
const CHECKED_TOKENS: u64 = 10_000;

#[derive(Debug, Clone)]
pub struct VerifierSettings {
    pub issuer: String,
    pub audience: String,
    /// Allowed clock skew for `exp` and `nbf`.
    pub leeway: Duration,
}

/// A token that passed, and what it grants.
#[derive(Debug, Clone)]
pub struct Verified {
    pub caller: Caller,
    read: bool,
    write: bool,
    expires_at: u64,
}

impl Verified {
    pub fn grants(&self, scope: Scope) -> bool {
        match scope {
            Scope::Read => self.read,
            Scope::Write => self.write,
        }
    }
}

/// Why a token was refused; the message names the reason, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("the issuer's keys are not loaded yet; retry later")]
    KeysUnavailable,
}

pub struct Verifier {
    keys: Arc<KeySet>,
    settings: VerifierSettings,
    checked: Cache<String, Arc<Verified>>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<serde_json::Value>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    azp: Option<String>,
}

impl Verifier {
    pub fn new(keys: Arc<KeySet>, settings: VerifierSettings) -> Self {
        Self {
            keys,
            settings,
            checked: Cache::builder()
                .max_capacity(CHECKED_TOKENS)
                .time_to_live(Duration::from_secs(300))
                .build(),
        }
    }

    pub fn keys(&self) -> &Arc<KeySet> {
        &self.keys
    }

    pub async fn verify(&self, token: &str) -> Result<Arc<Verified>, Refusal> {
        let now = unix_now();
        if let Some(verified) = self.checked.get(token)
            && verified.expires_at + self.settings.leeway.as_secs() > now
        {
            return Ok(verified);
        }
        let refuse = |reason: &str| Refusal::Unauthenticated(reason.to_owned());
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| refuse("the bearer token is not a well-formed JWT"))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(refuse(
                "the token's algorithm is not accepted (RS*, PS* or ES* only)",
            ));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| refuse("the token names no signing key (kid)"))?;
        if !self.keys.loaded() {
            // Perhaps the issuer was down at start: one more try before refusing.
            let _ = self.keys.refresh().await;
            if !self.keys.loaded() {
                return Err(Refusal::KeysUnavailable);
            }
        }
        let key =
            self.keys.get(kid).await.ok_or_else(|| {
                refuse("the token is signed with a key the issuer does not publish")
            })?;
        if let Some(pinned) = key.algorithm
            && !same_algorithm(pinned, header.alg)
        {
            return Err(refuse("the token's algorithm is not its key's"));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway.as_secs();
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|error| {
                refuse(match error.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                    ErrorKind::InvalidIssuer => "the token is from another issuer",
                    ErrorKind::InvalidAudience => "the token is for another audience",
                    ErrorKind::InvalidSignature => "the token's signature does not verify",
                    ErrorKind::InvalidAlgorithm => "the token's algorithm is not its key's",
                    ErrorKind::MissingRequiredClaim(_) => {
                        "the token lacks a required claim (exp, iss, aud, sub)"
                    }
                    _ => "the bearer token is invalid",
                })
            })?
            .claims;
        let verified = Arc::new(verified(claims));
        self.checked.insert(token.to_owned(), Arc::clone(&verified));
        Ok(verified)
    }
}

fn verified(claims: Claims) -> Verified {
    let mut scopes: Vec<String> = claims
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    match claims.scp {
        Some(serde_json::Value::Array(values)) => scopes.extend(
            values
                .iter()
                .filter_map(|value| value.as_str().map(str::to_owned)),
        ),
        Some(serde_json::Value::String(value)) => {
            scopes.extend(value.split_whitespace().map(str::to_owned))
        }
        _ => {}
    }
    let has = |scope: Scope| scopes.iter().any(|granted| granted == scope.name());
    // A client-credentials token's subject is the client itself.
    let service = [&claims.client_id, &claims.azp]
        .iter()
        .any(|client| client.as_deref() == Some(claims.sub.as_str()));
    Verified {
        read: has(Scope::Read),
        write: has(Scope::Write),
        expires_at: claims.exp,
        caller: Caller {
            id: Some(claims.sub),
            kind: if service { "service_account" } else { "user" },
        },
    }
}

fn same_algorithm(pinned: KeyAlgorithm, alg: Algorithm) -> bool {
    format!("{pinned:?}") == format!("{alg:?}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
