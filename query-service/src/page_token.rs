//! Opaque, signed page tokens for ListUsers' keyset pagination. A token names the last id of
//! a page and is bound to the filter it was issued for; a changed or forged token is refused.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

const FORMAT: u8 = 1;
const FINGERPRINT_LEN: usize = 8;
const MAC_LEN: usize = 16;
const BODY_LEN: usize = 1 + 16 + FINGERPRINT_LEN;

#[derive(Clone)]
pub struct PageTokens {
    key: Hmac<Sha256>,
}

/// Identifies a filter; countries must be sorted and deduplicated. A filter of countries
/// alone has the fingerprint it had before the other conditions existed, so the tokens
/// issued then stay valid.
pub fn fingerprint(
    countries: &[String],
    updated_after: Option<OffsetDateTime>,
    query: Option<&str>,
) -> [u8; FINGERPRINT_LEN] {
    let mut digest = Sha256::new();
    for country in countries {
        digest.update(country.as_bytes());
        digest.update([0]);
    }
    // Country codes are letters: a marker byte below them cannot be mistaken for one.
    if let Some(updated_after) = updated_after {
        digest.update([1]);
        digest.update(updated_after.unix_timestamp_nanos().to_be_bytes());
    }
    if let Some(query) = query {
        digest.update([2]);
        digest.update(query.as_bytes());
    }
    let mut fingerprint = [0; FINGERPRINT_LEN];
    fingerprint.copy_from_slice(&digest.finalize()[..FINGERPRINT_LEN]);
    fingerprint
}

impl PageTokens {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"),
        }
    }

    pub fn issue(&self, filter: [u8; FINGERPRINT_LEN], last_id: Uuid) -> String {
        let mut token = Vec::with_capacity(BODY_LEN + MAC_LEN);
        token.push(FORMAT);
        token.extend_from_slice(last_id.as_bytes());
        token.extend_from_slice(&filter);
        let mac = self.mac(&token);
        token.extend_from_slice(&mac[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The last id of the previous page, if `token` was issued here for this filter.
    pub fn verify(&self, token: &str, filter: [u8; FINGERPRINT_LEN]) -> Result<Uuid, &'static str> {
        const INVALID: &str = "is not a token this service issued";
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| INVALID)?;
        if bytes.len() != BODY_LEN + MAC_LEN || bytes[0] != FORMAT {
            return Err(INVALID);
        }
        let (body, mac) = bytes.split_at(BODY_LEN);
        let mut check = self.key.clone();
        check.update(body);
        check.verify_truncated_left(mac).map_err(|_| INVALID)?;
        if body[17..] != filter {
            return Err("was issued for another filter");
        }
        Uuid::from_slice(&body[1..17]).map_err(|_| INVALID)
    }

    fn mac(&self, body: &[u8]) -> Vec<u8> {
        let mut mac = self.key.clone();
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> PageTokens {
        PageTokens::new(b"a secret of sixteen bytes")
    }

    #[test]
    fn a_token_round_trips_for_its_filter() {
        let filter = fingerprint(&["FR".into(), "GB".into()], None, None);
        let id = Uuid::now_v7();
        assert_eq!(tokens().verify(&tokens().issue(filter, id), filter), Ok(id));
    }

    #[test]
    fn a_token_for_another_filter_is_refused() {
        let token = tokens().issue(fingerprint(&["GB".into()], None, None), Uuid::now_v7());
        let at = OffsetDateTime::UNIX_EPOCH;
        for other in [
            fingerprint(&["FR".into()], None, None),
            fingerprint(&["GB".into()], Some(at), None),
            fingerprint(&["GB".into()], None, Some("ad")),
        ] {
            assert_eq!(
                tokens().verify(&token, other),
                Err("was issued for another filter")
            );
        }
        assert_ne!(
            fingerprint(&[], None, Some("ad")),
            fingerprint(&[], None, Some("ada"))
        );
    }

    #[test]
    fn altered_garbage_and_foreign_tokens_are_refused() {
        let filter = fingerprint(&[], None, None);
        let token = tokens().issue(filter, Uuid::now_v7());
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[5] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(bytes);
        let foreign = PageTokens::new(b"another secret, also long").issue(filter, Uuid::now_v7());
        for token in [
            altered.as_str(),
            "",
            "not base64!",
            "AAAA",
            foreign.as_str(),
        ] {
            assert!(tokens().verify(token, filter).is_err(), "{token}");
        }
    }
}
