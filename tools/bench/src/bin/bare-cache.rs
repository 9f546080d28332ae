//! The baseline for query-service's memory per cached user: a bare moka cache built as
//! query-service builds its user cache (capacity, time to live), holding what it holds per
//! user (a version and the user's protobuf encoding, users shaped as the bench's), and
//! nothing else. Prints its resident memory per entry.
//!
//!     bare-cache USERS CAPACITY

use std::{sync::Arc, time::Duration};

#[path = "../sample_user.rs"]
mod sample_user;

use moka::sync::Cache;
use prost::Message;
use uuid::Uuid;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(users), Some(capacity)) = (
        args.next().and_then(|n| n.parse::<u64>().ok()),
        args.next().and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: bare-cache USERS CAPACITY");
        std::process::exit(2);
    };
    let cache: Cache<Uuid, (i64, Arc<[u8]>)> = Cache::builder()
        .max_capacity(capacity)
        .time_to_live(Duration::from_secs(300))
        .build();
    let before = rss_bytes();
    for n in 1..=users {
        let id = Uuid::new_v4();
        let user = sample_user::ada(n, id);
        cache.insert(id, (1, user.encode_to_vec().into()));
    }
    cache.run_pending_tasks();
    let after = rss_bytes();
    println!(
        "{:.0} {}",
        after.saturating_sub(before) as f64 / users as f64,
        cache.entry_count()
    );
}
