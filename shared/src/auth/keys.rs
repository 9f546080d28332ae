//! The issuer's signing keys (a JWK Set), fetched at start and refreshed: periodically, and
//! when a token names a key not seen yet (at most every `UNKNOWN_KEY_REFRESH`), so a key
//! rotation needs no restart. A refresh that fails keeps the keys of the last one that
//! worked.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    DecodingKey,
    jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm},
};
use tokio_util::sync::CancellationToken;

/// Least time between two refreshes asked for by unknown keys.
const UNKNOWN_KEY_REFRESH: Duration = Duration::from_secs(30);
const FETCH_WITHIN: Duration = Duration::from_secs(5);

/// Where the key set is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Url(String),
    File(PathBuf),
}

impl KeySource {
    /// An `https://` URL, an `http://` URL on loopback, or a file path.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.starts_with("https://") {
            return Ok(Self::Url(value.to_owned()));
        }
        if let Some(rest) = value.strip_prefix("http://") {
            let host = rest.split(['/', '?']).next().unwrap_or_default();
            let host = match host.rsplit_once(':') {
                Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
                _ => host,
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            return if loopback {
                Ok(Self::Url(value.to_owned()))
            } else {
                Err(
                    "AUTH_JWKS over plain http:// is allowed on loopback only; use https://"
                        .to_owned(),
                )
            };
        }
        if value.contains("://") {
            return Err("AUTH_JWKS is neither an https:// URL nor a file path".to_owned());
        }
        Ok(Self::File(PathBuf::from(value)))
    }
}

/// One signing key and the algorithm its JWK pins, if any.
pub(super) struct Key {
    pub(super) decoding: DecodingKey,
    pub(super) algorithm: Option<KeyAlgorithm>,
}

pub struct KeySet {
    source: KeySource,
    refresh_every: Duration,
    keys: RwLock<Arc<HashMap<String, Arc<Key>>>>,
    last_attempt: Mutex<Option<Instant>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl KeySet {
    /// Keys from `source`, fetched again every `refresh_every` once `spawn_refresh` runs.
    pub fn new(source: KeySource, refresh_every: Duration) -> Self {
        Self {
            source,
            refresh_every,
            keys: RwLock::default(),
            last_attempt: Mutex::default(),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether any key is known.
    pub fn loaded(&self) -> bool {
        !self.keys.read().expect("keys lock poisoned").is_empty()
    }

    /// Fetches the set again; on failure the keys known so far stay.
    pub async fn refresh(&self) -> Result<usize, String> {
        let _one_at_a_time = self.refreshing.lock().await;
        *self.last_attempt.lock().expect("attempt lock poisoned") = Some(Instant::now());
        let text = match &self.source {
            KeySource::Url(url) => super::fetch::get(url, FETCH_WITHIN).await?,
            // A few kilobytes from a mounted Secret or ConfigMap.
            KeySource::File(path) => std::fs::read(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?,
        };
        let set: JwkSet =
            serde_json::from_slice(&text).map_err(|error| format!("not a JWK Set: {error}"))?;
        let keys = usable_keys(&set);
        if keys.is_empty() {
            return Err("the JWK Set holds no usable signing key".to_owned());
        }
        let count = keys.len();
        *self.keys.write().expect("keys lock poisoned") = Arc::new(keys);
        Ok(count)
    }

    /// The key `kid`; a key not known yet makes the set be fetched again first, unless that
    /// was tried within `UNKNOWN_KEY_REFRESH`.
    pub(super) async fn get(&self, kid: &str) -> Option<Arc<Key>> {
        if let Some(key) = self.known(kid) {
            return Some(key);
        }
        let recently = self
            .last_attempt
            .lock()
            .expect("attempt lock poisoned")
            .is_some_and(|at| at.elapsed() < UNKNOWN_KEY_REFRESH);
        if !recently && let Err(error) = self.refresh().await {
            tracing::warn!(%error, "cannot refresh the issuer's keys; keeping the last ones");
        }
        self.known(kid)
    }

    fn known(&self, kid: &str) -> Option<Arc<Key>> {
        self.keys
            .read()
            .expect("keys lock poisoned")
            .get(kid)
            .cloned()
    }

    /// Refreshes every `refresh_every` until `shutdown`, sooner while no key is known.
    pub fn spawn_refresh(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let wait = if self.loaded() {
                    self.refresh_every
                } else {
                    Duration::from_secs(2)
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                match self.refresh().await {
                    Ok(count) => tracing::debug!(count, "issuer's keys refreshed"),
                    Err(error) => {
                        tracing::warn!(%error, "cannot refresh the issuer's keys; keeping the last ones")
                    }
                }
            }
        })
    }
}

/// The set's asymmetric keys with an id. Symmetric (`oct`) keys are left out: an HMAC
/// secret in a published key set would let anyone sign.
fn usable_keys(set: &JwkSet) -> HashMap<String, Arc<Key>> {
    set.keys
        .iter()
        .filter(|jwk| !matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)))
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let decoding = DecodingKey::from_jwk(jwk).ok()?;
            Some((
                kid,
                Arc::new(Key {
                    decoding,
                    algorithm: jwk.common.key_algorithm,
                }),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sets_come_over_https_from_loopback_over_http_or_from_a_file() {
        assert!(matches!(
            KeySource::parse("https://issuer.example/jwks.json"),
            Ok(KeySource::Url(_))
        ));
        for loopback in [
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9/k",
        ] {
            assert!(
                matches!(KeySource::parse(loopback), Ok(KeySource::Url(_))),
                "{loopback}"
            );
        }
        assert!(KeySource::parse("http://issuer.example/jwks").is_err());
        assert!(KeySource::parse("http://127.0.0.1.evil.example/jwks").is_err());
        assert!(KeySource::parse("ftp://x/y").is_err());
        assert_eq!(
            KeySource::parse("/etc/users/jwks.json"),
            Ok(KeySource::File("/etc/users/jwks.json".into()))
        );
    }
}
