//! Well-formed reads whose values break a rule.

use rand::{Rng, RngCore, rngs::StdRng, seq::IndexedRandom};
use shared_proto::v1;
use uuid::Uuid;

use super::*;

pub(super) fn bad_get(rng: &mut StdRng, fixtures: &Fixtures) -> Case {
    let (what, request) = match rng.random_range(0..50) {
        0..25 => (
            "bad id",
            v1::GetUserRequest {
                id: bad_id(rng),
                min_version: None,
            },
        ),
        25..49 => (
            "unknown id",
            v1::GetUserRequest {
                id: Uuid::now_v7().to_string(),
                min_version: None,
            },
        ),
        // Waits for a version that never comes: rare, as each holds a call open.
        _ => (
            "unreachable min_version",
            v1::GetUserRequest {
                id: fixtures.untouched.clone(),
                min_version: Some(*[1 << 63, u64::MAX].choose(rng).expect("choices")),
            },
        ),
    };
    well_formed("GetUser", what, &request)
}

pub(super) fn bad_list(rng: &mut StdRng, fixtures: &Fixtures) -> Case {
    let mut request = v1::ListUsersRequest {
        filter: Some(v1::UserFilter {
            countries: vec!["GB".to_owned()],
            updated_after: None,
            query: String::new(),
        }),
        page_size: 10,
        page_token: String::new(),
    };
    let filter = |countries: &[&str]| {
        Some(v1::UserFilter {
            countries: countries.iter().map(|code| (*code).to_owned()).collect(),
            updated_after: None,
            query: String::new(),
        })
    };
    let what = match rng.random_range(0..19) {
        0 => {
            request.page_size = *[-1, -100, i32::MIN].choose(rng).expect("choices");
            "negative page_size"
        }
        1 => {
            request.filter = filter(&["XX"]);
            "unknown country"
        }
        2 => {
            request.filter = filter(&["gb", "FR"]);
            "lower-case country"
        }
        3 => {
            request.filter = filter(&["", "GB"]);
            "empty country"
        }
        4 => {
            request.filter = filter(&["GBR"]);
            "three-letter country"
        }
        5 => {
            request.filter = filter(&["GB"; 51]);
            "51 countries"
        }
        6 => {
            request.page_token = "not base64!!".to_owned();
            "page_token not base64"
        }
        7 => {
            let mut forged = vec![1u8];
            forged.extend((0..40).map(|_| rng.random::<u8>()));
            request.page_token = base64_url(&forged);
            "forged page_token"
        }
        8 => {
            request.page_token = flip_one(rng, &fixtures.page_token);
            "tampered page_token"
        }
        9 => {
            request.page_token = fixtures.page_token.clone();
            request.filter = filter(&["FR"]);
            "page_token of another filter"
        }
        10 => {
            request.page_token = "A".repeat(10_000);
            "huge page_token"
        }
        11 => {
            request.page_token = "é🙂\u{7f}".to_owned();
            "non-ASCII page_token"
        }
        // An error that quoted these whole would pass the 16 KiB of headers a client takes.
        12 => {
            request.filter = filter(&[&"X".repeat(5_000)]);
            "a 5,000-character country"
        }
        13 => {
            let long = "Y".repeat(2_000);
            request.filter = filter(&[long.as_str(); 50]);
            "50 countries of 2,000 characters"
        }
        14 => {
            request.filter = Some(v1::UserFilter {
                query: "a".to_owned(),
                ..v1::UserFilter::default()
            });
            "a one-character query"
        }
        15 => {
            request.filter = Some(v1::UserFilter {
                query: ["ad\u{0}", "ad\u{1b}[2J", &"q".repeat(5_000)]
                    .choose(rng)
                    .expect("choices")
                    .to_string(),
                ..v1::UserFilter::default()
            });
            "a query with control characters or of 5,000"
        }
        16 => {
            let (seconds, nanos) = *[(i64::MAX, 0), (i64::MIN, 0), (0, -1), (0, 1_000_000_000)]
                .choose(rng)
                .expect("choices");
            request.filter = Some(v1::UserFilter {
                updated_after: Some(prost_types::Timestamp { seconds, nanos }),
                ..v1::UserFilter::default()
            });
            "updated_after out of range"
        }
        17 => {
            request.page_token = fixtures.page_token.clone();
            request.filter = Some(v1::UserFilter {
                query: "ada".to_owned(),
                ..v1::UserFilter::default()
            });
            "page_token of a filter without a query"
        }
        _ => {
            let mut random = vec![0; rng.random_range(1..64)];
            rng.fill_bytes(&mut random);
            request.page_token = base64_url(&random);
            "random page_token"
        }
    };
    well_formed("ListUsers", what, &request)
}

pub(super) fn bad_batch_get(rng: &mut StdRng, fixtures: &Fixtures) -> Case {
    let ids =
        |count: usize| -> Vec<String> { (0..count).map(|_| Uuid::now_v7().to_string()).collect() };
    let (what, request) = match rng.random_range(0..4) {
        0 => {
            let mut asked = ids(5);
            let at = rng.random_range(0..asked.len());
            asked[at] = bad_id(rng);
            (
                "a malformed id",
                v1::BatchGetUsersRequest {
                    ids: asked,
                    allow_missing: true,
                },
            )
        }
        1 => (
            "1,001 ids",
            v1::BatchGetUsersRequest {
                ids: ids(1_001),
                allow_missing: true,
            },
        ),
        2 => {
            let mut asked = ids(3);
            asked.push(fixtures.untouched.clone());
            (
                "unknown ids",
                v1::BatchGetUsersRequest {
                    ids: asked,
                    allow_missing: false,
                },
            )
        }
        _ => (
            "1,000 unknown ids",
            v1::BatchGetUsersRequest {
                ids: ids(1_000),
                allow_missing: false,
            },
        ),
    };
    well_formed("BatchGetUsers", what, &request)
}

pub(super) fn bad_get_by_email(rng: &mut StdRng) -> Case {
    let email = [
        String::new(),
        "not an address".to_owned(),
        "Ada <ada@example.com>".to_owned(),
        format!("{}@example.com", "a".repeat(300)),
        "ada@[127.0.0.1]".to_owned(),
        format!("nobody.{}@example.com", Uuid::now_v7().simple()),
    ]
    .choose(rng)
    .expect("choices")
    .clone();
    let what = if email.starts_with("nobody.") {
        "an address nobody holds"
    } else {
        "not an address"
    };
    well_formed("GetUserByEmail", what, &v1::GetUserByEmailRequest { email })
}

pub(super) fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut text = String::with_capacity(bytes.len() * 4 / 3 + 4);
    for chunk in bytes.chunks(3) {
        let buffer = chunk.iter().enumerate().fold(0u32, |acc, (index, byte)| {
            acc | u32::from(*byte) << (16 - 8 * index)
        });
        for index in 0..=chunk.len() {
            text.push(ALPHABET[(buffer >> (18 - 6 * index) & 63) as usize] as char);
        }
    }
    text
}

/// The token with one character changed to another of the alphabet.
fn flip_one(rng: &mut StdRng, token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    if chars.is_empty() {
        return "A".to_owned();
    }
    let at = rng.random_range(0..chars.len());
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}
