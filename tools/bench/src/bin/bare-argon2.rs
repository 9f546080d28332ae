//! The baseline for CreateUser: argon2id with the service's parameters (the argon2 crate's
//! defaults, which command-service's hasher uses), hashing one password after another on
//! THREADS threads for SECONDS, then printing the hashes per second. The bench runs it on
//! the server's core, where command-service hashes.
//!
//!     bare-argon2 THREADS SECONDS

use std::time::{Duration, Instant};

use argon2::{
    Argon2,
    password_hash::{PasswordHasher as _, SaltString},
};
use password_hash::rand_core::OsRng;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(threads), Some(seconds)) = (
        args.next().and_then(|n| n.parse::<usize>().ok()),
        args.next().and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: bare-argon2 THREADS SECONDS");
        std::process::exit(2);
    };
    let duration = Duration::from_secs(seconds);
    let started = Instant::now();
    let hashers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            std::thread::spawn(move || {
                let mut hashes = 0u64;
                while started.elapsed() < duration {
                    let salt = SaltString::generate(&mut OsRng);
                    Argon2::default()
                        .hash_password(b"correct horse battery staple", &salt)
                        .expect("a hash");
                    hashes += 1;
                }
                hashes
            })
        })
        .collect();
    let hashes: u64 = hashers.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    println!("{:.2}", hashes as f64 / started.elapsed().as_secs_f64());
}
