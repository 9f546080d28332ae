//! Safe retries (AIP-155): a write marked with a request_id records its answer in the
//! transaction of its change, and the same request sent again within the retention gets
//! that answer back, changing and publishing nothing. Records older than the retention are
//! purged; a request_id used again after that is a new request.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Transaction};
use prost::Message;
use sha2::{Digest, Sha256};
use shared::{auth::Caller, db::Pool, db_failure::DbFailure, grpc_error::FieldViolations};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::CommandError;

/// Records deleted per statement, so a purge never holds the table for long.
const PURGE_CHUNK: i64 = 10_000;

/// A request_id as sent: empty (none), or a UUID.
pub fn parse(text: &str) -> Result<Option<Uuid>, &'static str> {
    if text.is_empty() {
        return Ok(None);
    }
    Uuid::try_parse(text)
        .map(Some)
        .map_err(|_| "must be a UUID (or empty)")
}

/// A request that carries a request_id, and what tells it from another request.
#[derive(Debug, Clone)]
pub struct Marked {
    id: Uuid,
    method: &'static str,
    fingerprint: [u8; 32],
}

impl Marked {
    /// `request` with its request_id and password cleared: a retry with another password is
    /// the same request (a password is never compared, nor kept in any form but its hash).
    pub fn new(id: Uuid, method: &'static str, request: &impl Message) -> Self {
        Self {
            id,
            method,
            fingerprint: Sha256::digest(request.encode_to_vec()).into(),
        }
    }

    /// The same request from another caller is another request: a request_id someone else
    /// used answers them nothing of the first caller's.
    pub fn by(self, caller: &Caller) -> Self {
        let mut digest = Sha256::new();
        digest.update(self.fingerprint);
        digest.update(caller.kind.as_bytes());
        digest.update([0]);
        digest.update(caller.id.as_deref().unwrap_or_default().as_bytes());
        Self {
            fingerprint: digest.finalize().into(),
            ..self
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RequestIds {
    retention: Duration,
}

impl RequestIds {
    pub fn new(retention: Duration) -> Self {
        Self { retention }
    }

    fn retention_secs(&self) -> f64 {
        self.retention.as_secs_f64()
    }

    /// The answer a request already got, if any: lets a retry skip the work its transaction
    /// would do after [`Self::claim`] (a password hash, say).
    pub async fn answered<R: Message + Default>(
        &self,
        pool: &Pool,
        marked: &Marked,
    ) -> Result<Option<R>, CommandError> {
        pool.run(async |client| self.recorded(&*client, marked).await)
            .await
    }

    /// Takes the request_id for this request in `tx`, or returns the answer the request got
    /// before. A concurrent request with the same request_id is waited for.
    pub async fn claim<R: Message + Default>(
        &self,
        tx: &Transaction<'_>,
        marked: &Marked,
    ) -> Result<Option<R>, CommandError> {
        let claim = tx.prepare_cached(include_str!("claim.sql")).await?;
        let taken = tx
            .query_opt(
                &claim,
                &[
                    &marked.id,
                    &marked.method,
                    &marked.fingerprint.as_slice(),
                    &[0u8; 0].as_slice(),
                    &self.retention_secs(),
                ],
            )
            .await?;
        if taken.is_some() {
            return Ok(None);
        }
        match self.recorded(tx, marked).await? {
            Some(answer) => Ok(Some(answer)),
            // Expired between the two statements: the caller's retry takes it over.
            None => Err(CommandError::RequestIdExpired(marked.id)),
        }
    }

    /// Records the answer of a request that took its request_id, in the same transaction.
    pub async fn answer(
        &self,
        tx: &Transaction<'_>,
        marked: &Marked,
        response: &impl Message,
    ) -> Result<(), CommandError> {
        let answer = tx.prepare_cached(include_str!("answer.sql")).await?;
        tx.execute(&answer, &[&marked.id, &response.encode_to_vec()])
            .await?;
        Ok(())
    }

    async fn recorded<R: Message + Default>(
        &self,
        client: &impl GenericClient,
        marked: &Marked,
    ) -> Result<Option<R>, CommandError> {
        let select = client.prepare_cached(include_str!("answered.sql")).await?;
        let Some(row) = client
            .query_opt(&select, &[&marked.id, &self.retention_secs()])
            .await?
        else {
            return Ok(None);
        };
        let (method, fingerprint, response): (String, Vec<u8>, Vec<u8>) =
            (row.get(0), row.get(1), row.get(2));
        if method != marked.method || fingerprint != marked.fingerprint {
            let mut violations = FieldViolations::new();
            violations.add(
                "request_id",
                "was used for another request; pick a new one for each request",
            );
            return Err(violations.into());
        }
        R::decode(response.as_slice()).map(Some).map_err(|error| {
            CommandError::Corrupt(format!(
                "the answer recorded for request_id {} does not decode: {error}",
                marked.id
            ))
        })
    }

    /// Deletes the records past the retention; returns how many went.
    pub async fn purge(&self, pool: &Pool) -> Result<u64, DbFailure> {
        let mut purged = 0;
        loop {
            let count: i64 = pool
                .run(async |client| {
                    let purge = client.prepare_cached(include_str!("purge.sql")).await?;
                    let row = client
                        .query_one(&purge, &[&self.retention_secs(), &PURGE_CHUNK])
                        .await?;
                    Ok::<_, DbFailure>(row.get(0))
                })
                .await?;
            purged += count as u64;
            if count < PURGE_CHUNK {
                return Ok(purged);
            }
        }
    }

    /// Purges until `shutdown`, as often as the retention or once an hour, whichever is
    /// sooner; every replica takes part.
    pub async fn purge_every(self, pool: Pool, shutdown: CancellationToken) {
        let interval = self.retention.min(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            match self.purge(&pool).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "request ids past their retention purged"),
                Err(error) => {
                    tracing::warn!(%error, "cannot purge request ids; trying again later")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use shared_proto::v1::DeleteUserRequest;

    use super::*;

    #[test]
    fn a_request_id_is_empty_or_a_uuid() {
        assert_eq!(parse(""), Ok(None));
        let id = Uuid::new_v4();
        assert_eq!(parse(&id.to_string()), Ok(Some(id)));
        assert!(parse("retry-1").is_err());
    }

    #[test]
    fn requests_that_differ_have_other_fingerprints() {
        let id = Uuid::new_v4();
        let request = |version| DeleteUserRequest {
            id: id.to_string(),
            expected_version: version,
            request_id: String::new(),
        };
        let one = Marked::new(id, "DeleteUser", &request(Some(1)));
        assert_eq!(
            one.fingerprint,
            Marked::new(id, "DeleteUser", &request(Some(1))).fingerprint
        );
        assert_ne!(
            one.fingerprint,
            Marked::new(id, "DeleteUser", &request(Some(2))).fingerprint
        );
        let caller = |id: &str| Caller {
            id: Some(id.to_owned()),
            kind: "user",
        };
        let ada = one.clone().by(&caller("ada"));
        assert_eq!(ada.fingerprint, one.clone().by(&caller("ada")).fingerprint);
        assert_ne!(ada.fingerprint, one.by(&caller("grace")).fingerprint);
    }
}
