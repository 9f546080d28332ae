//! argon2id hashing on blocking threads, a bounded number at a time: each hash takes ~19 MiB
//! and tens of milliseconds of CPU, so it must neither stall the async runtime nor let a
//! burst of sign-ups start hundreds of hashes at once.
//!
//! Each running hash's memory is kept for the next one. Allocated per hash on whichever
//! blocking thread runs it, those 19 MiB came from a different malloc arena each time, to be
//! zeroed and faulted in again: a third as much CPU again as the hash itself.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use argon2::{
    Argon2, Block, Params,
    password_hash::{Output, PasswordHash, SaltString, errors::Error as PhcError},
};
use password_hash::rand_core::OsRng;
use tokio::sync::Semaphore;

use crate::domain::Password;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2 failed: {0}")]
    Argon2(String),
    #[error("the hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the hasher is shut down")]
    Closed,
    #[error("{0} password hashes are already waiting")]
    Busy(usize),
}

/// Hashes that may wait for a turn per hash running: past that, a call is answered at once
/// (UNAVAILABLE) instead of queueing, so a flood of sign-ups cannot build a queue that only
/// timeouts would empty. A waiting call holds no memory of the hash's; at ~40 ms a hash, the
/// last in the room waits about 1.3 s.
const WAITING_PER_RUNNING: usize = 32;

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Argon2 memory of the hashes that ran, at most one per permit.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

/// Counts a caller as waiting for as long as it is.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHasher {
    /// At most `concurrency` hashes run at once; up to `WAITING_PER_RUNNING` times as many
    /// wait their turn.
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            memory: Arc::default(),
            waiting: Arc::default(),
            max_waiting: concurrency * WAITING_PER_RUNNING,
        }
    }

    /// The argon2id PHC string of `password` (OWASP parameters: 19 MiB, 2 passes, 1 lane).
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(HashError::Busy(self.max_waiting));
                }
                let _waiting = Waiting(&self.waiting);
                Arc::clone(&self.permits)
                    .acquire_owned()
                    .await
                    .map_err(|_| HashError::Closed)?
            }
        };
        // The permit lives as long as the hash, not the call: a cancelled call leaves its
        // hash running, and it still counts against the limit.
        let memory = Arc::clone(&self.memory);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut blocks = memory
                .lock()
                .ok()
                .and_then(|mut kept| kept.pop())
                .unwrap_or_default();
            let hash = hash_now(&password, &mut blocks);
            if let Ok(mut kept) = memory.lock() {
                kept.push(blocks);
            }
            hash
        })
        .await?
    }
}

/// The PHC string of `password` under a fresh salt, hashed in `blocks` (sized here). What
/// `blocks` held before does not matter: argon2 writes every block before it reads it.
fn hash_now(password: &Password, blocks: &mut Vec<Block>) -> Result<String, HashError> {
    let argon2 = Argon2::default();
    let params = argon2.params();
    blocks.resize(params.block_count(), Block::default());
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let phc = |error: PhcError| HashError::Argon2(error.to_string());
    let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(phc)?;
    let output = Output::init_with(
        params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN),
        |out| {
            argon2
                .hash_password_into_with_memory(
                    password.expose().as_bytes(),
                    raw_salt,
                    out,
                    &mut blocks[..],
                )
                .map_err(PhcError::from)
        },
    )
    .map_err(phc)?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(argon2::Version::V0x13.into()),
        params: params.try_into().map_err(phc)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use argon2::PasswordVerifier;

    use super::*;

    #[tokio::test]
    async fn past_the_waiting_room_a_hash_is_refused_at_once() {
        let hasher = PasswordHasher::new(1);
        let password = Password::parse("correct horse battery").unwrap();
        let calls: Vec<_> = (0..40).map(|_| hasher.hash(password.clone())).collect();
        let answers = futures::future::join_all(calls).await;
        let busy = answers
            .iter()
            .filter(|answer| matches!(answer, Err(HashError::Busy(_))))
            .count();
        let hashed = answers.iter().filter(|answer| answer.is_ok()).count();
        assert_eq!(
            hashed,
            1 + WAITING_PER_RUNNING,
            "one running, the room full"
        );
        assert_eq!(busy, 40 - hashed);
    }

    #[tokio::test]
    async fn a_hash_in_reused_memory_verifies_like_one_in_fresh_memory() {
        let hasher = PasswordHasher::new(1);
        let first = hasher
            .hash(Password::parse("correct horse battery").unwrap())
            .await
            .unwrap();
        let second = hasher
            .hash(Password::parse("another horse battery").unwrap())
            .await
            .unwrap();
        assert_eq!(
            hasher.memory.lock().unwrap().len(),
            1,
            "the memory was kept"
        );
        for (hash, password) in [
            (&first, "correct horse battery"),
            (&second, "another horse battery"),
        ] {
            let parsed = PasswordHash::new(hash).unwrap();
            assert!(
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            );
        }
        // The same as the crate's own hashing gives for that salt.
        let parsed = PasswordHash::new(&second).unwrap();
        let again = argon2::PasswordHasher::hash_password(
            &Argon2::default(),
            b"another horse battery",
            parsed.salt.unwrap(),
        )
        .unwrap();
        assert_eq!(again.to_string(), second);
    }

    #[tokio::test]
    async fn hashes_are_salted_argon2id_that_verify() {
        let hasher = PasswordHasher::new(2);
        let password = Password::parse("correct horse battery").unwrap();
        let first = hasher.hash(password.clone()).await.unwrap();
        let second = hasher.hash(password).await.unwrap();
        assert!(first.starts_with("$argon2id$"));
        assert_ne!(first, second, "each hash has its own salt");
        let parsed = PasswordHash::new(&first).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong horse battery", &parsed)
                .is_err()
        );
    }
}
