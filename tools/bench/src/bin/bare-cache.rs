//! The baseline for query-service's memory per cached user: a bare moka cache built as
//! query-service builds its user cache (capacity, time to live), holding what it holds per
//! user (a version and the user's protobuf encoding, users shaped as the bench's), and
//! nothing else. Prints its resident memory per entry.
//!
//!     bare-cache USERS CAPACITY

use std::{sync::Arc, time::Duration};

use moka::sync::Cache;
use prost::Message;
use shared_proto::v1;
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
    let at = prost_types::Timestamp {
        seconds: 1_700_000_000,
        nanos: 0,
    };
    let cache: Cache<Uuid, (i64, Arc<[u8]>)> = Cache::builder()
        .max_capacity(capacity)
        .time_to_live(Duration::from_secs(300))
        .build();
    let before = rss_bytes();
    for n in 1..=users {
        let id = Uuid::new_v4();
        let user = v1::User {
            id: id.to_string(),
            first_name: format!("Ada{n}"),
            last_name: "Lovelace".into(),
            nickname: format!("ada{n}"),
            email: format!("ada{n}@example.com"),
            country: "GB".into(),
            created_at: Some(at),
            updated_at: Some(at),
            version: 1,
        };
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
