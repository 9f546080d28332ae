//! The bad requests: well-formed requests whose values break a rule (each at least one, so
//! none may succeed), malformed gRPC (frames and protobuf no client would send), and junk
//! bytes on the port.

use bytes::Bytes;
use prost::Message;
use rand::{Rng, RngCore, rngs::StdRng, seq::IndexedRandom};
use shared_proto::v1;
use uuid::Uuid;

use super::raw::{RawRequest, frame};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// Well-formed, with values that break the API's rules: never INTERNAL.
    BadValues,
    /// Not valid gRPC or not valid protobuf.
    Malformed,
    /// Bytes on a fresh connection, not HTTP/2 at all.
    Junk,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::BadValues => "well-formed, bad values",
            Self::Malformed => "malformed",
            Self::Junk => "junk connections",
        }
    }
}

pub(crate) enum Payload {
    Grpc(RawRequest),
    Junk(Vec<u8>),
}

pub(crate) struct Case {
    pub(crate) kind: Kind,
    /// What is wrong with it, e.g. "CreateUser: unknown country".
    pub(crate) label: String,
    pub(crate) payload: Payload,
}

/// What the generators need from the running services.
#[derive(Debug, Clone)]
pub(crate) struct Fixtures {
    /// A user no good call touches, so its version stays 1.
    pub(crate) untouched: String,
    /// A page token the query-service issued for the filter `countries: ["GB"]`.
    pub(crate) page_token: String,
}

const SERVICE: &str = "/user.v1.UserService/";
const GRPC: &str = "application/grpc";
/// gRPC's default limit on a received message, which a larger one must not get past.
const DEFAULT_MESSAGE_LIMIT: usize = 4 * 1024 * 1024;

fn grpc(kind: Kind, label: String, method: &str, body: Bytes) -> Case {
    Case {
        kind,
        label,
        payload: Payload::Grpc(RawRequest {
            path: format!("{SERVICE}{method}"),
            content_type: GRPC,
            body,
        }),
    }
}

fn well_formed(method: &str, what: &str, message: &impl Message) -> Case {
    grpc(
        Kind::BadValues,
        format!("{method}: {what}"),
        method,
        frame(&message.encode_to_vec()),
    )
}

/// `count` requests for command-service, in a random order.
pub(crate) fn for_command(rng: &mut StdRng, count: usize, fixtures: &Fixtures) -> Vec<Case> {
    mix(
        rng,
        count,
        &["CreateUser", "UpdateUser", "DeleteUser"],
        |rng| {
            match rng.random_range(0..100) {
                0..40 => bad_create(rng),
                40..80 => bad_update(rng, fixtures),
                80..97 => bad_delete(rng, fixtures),
                // The other half of the API: UNIMPLEMENTED, naming the owner.
                _ => bad_get(rng, fixtures),
            }
        },
    )
}

/// `count` requests for query-service, in a random order.
pub(crate) fn for_query(rng: &mut StdRng, count: usize, fixtures: &Fixtures) -> Vec<Case> {
    mix(rng, count, &["GetUser", "ListUsers"], |rng| {
        match rng.random_range(0..100) {
            0..45 => bad_get(rng, fixtures),
            45..97 => bad_list(rng, fixtures),
            _ => bad_create(rng),
        }
    })
}

/// About 60% well-formed with bad values, a few junk connections and oversized messages,
/// the rest malformed.
fn mix(
    rng: &mut StdRng,
    count: usize,
    methods: &[&str],
    mut well_formed: impl FnMut(&mut StdRng) -> Case,
) -> Vec<Case> {
    let junk = count / 50;
    let oversized = 4;
    let mut cases: Vec<Case> = (0..junk).map(|_| junk_bytes(rng)).collect();
    cases.extend((0..oversized).map(|_| oversized_message(methods.choose(rng).expect("methods"))));
    while cases.len() < count {
        let case = if rng.random_bool(0.6) {
            well_formed(rng)
        } else {
            let method = *methods.choose(rng).expect("methods");
            malformed(rng, method)
        };
        cases.push(case);
    }
    use rand::seq::SliceRandom;
    cases.shuffle(rng);
    cases
}

fn valid_user(rng: &mut StdRng) -> v1::User {
    v1::User {
        first_name: "Ada".to_owned(),
        last_name: "Lovelace".to_owned(),
        nickname: "ada".to_owned(),
        email: format!("bad-{}@example.com", rng.random::<u64>()),
        country: "GB".to_owned(),
        ..v1::User::default()
    }
}

/// Ids that are no UUID.
fn bad_id(rng: &mut StdRng) -> String {
    let uuid = Uuid::new_v4();
    [
        String::new(),
        "not-a-uuid".to_owned(),
        "1234".to_owned(),
        format!("{{{uuid}}}x"),
        format!("{uuid}0"),
        uuid.simple().to_string()[..20].to_owned(),
        "🙂".repeat(9),
        "x".repeat(5000),
        " ".to_owned(),
    ]
    .choose(rng)
    .expect("choices")
    .clone()
}

fn bad_create(rng: &mut StdRng) -> Case {
    let mut request = v1::CreateUserRequest {
        user: Some(valid_user(rng)),
        password: "correct horse battery".to_owned(),
    };
    // A NUL passes many validators and then fails in Postgres: rarer, since a request that
    // passes validation costs a password hash.
    if rng.random_bool(0.01) {
        let user = request.user.as_mut().expect("a user");
        user.first_name = "Ada\0".to_owned();
        return well_formed("CreateUser", "NUL in first_name", &request);
    }
    let mut broken = Vec::new();
    for _ in 0..rng.random_range(1..=2) {
        let user = request.user.as_mut().expect("a user");
        let what = match rng.random_range(0..18) {
            0 => {
                user.first_name = String::new();
                "empty first_name"
            }
            1 => {
                user.last_name = "   ".to_owned();
                "blank last_name"
            }
            2 => {
                user.first_name = "x".repeat(101);
                "first_name over 100"
            }
            3 => {
                user.nickname = "has space".to_owned();
                "nickname with a space"
            }
            4 => {
                user.nickname = "n".repeat(51);
                "nickname over 50"
            }
            5 => {
                user.email = "plain.example.com".to_owned();
                "email without @"
            }
            6 => {
                user.email = "a@".to_owned();
                "email without domain"
            }
            7 => {
                user.email = "@example.com".to_owned();
                "email without local part"
            }
            8 => {
                user.email = "a b@example.com".to_owned();
                "email with a space"
            }
            9 => {
                user.email = String::new();
                "empty email"
            }
            10 => {
                user.email = format!("{}@example.com", "x".repeat(300));
                "email over 254"
            }
            11 => {
                user.country = "ZZ".to_owned();
                "unknown country"
            }
            12 => {
                user.country = "gb".to_owned();
                "lower-case country"
            }
            13 => {
                user.country = "GBR".to_owned();
                "three-letter country"
            }
            14 => {
                request.password = String::new();
                "empty password"
            }
            15 => {
                request.password = "short".to_owned();
                "short password"
            }
            16 => {
                request.password = "p".repeat(129);
                "password over 128"
            }
            _ => {
                request.user = None;
                "no user"
            }
        };
        broken.push(what);
        if request.user.is_none() {
            break;
        }
    }
    well_formed("CreateUser", &broken.join(", "), &request)
}

fn bad_update(rng: &mut StdRng, fixtures: &Fixtures) -> Case {
    let mut request = v1::UpdateUserRequest {
        user: Some(v1::User {
            id: fixtures.untouched.clone(),
            nickname: "valid".to_owned(),
            ..v1::User::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["nickname".to_owned()],
        }),
        password: String::new(),
        expected_version: None,
    };
    let mask = |paths: &[&str]| {
        Some(prost_types::FieldMask {
            paths: paths.iter().map(|path| (*path).to_owned()).collect(),
        })
    };
    let user = request.user.as_mut().expect("a user");
    let what = match rng.random_range(0..20) {
        0 => {
            user.id = bad_id(rng);
            "bad id"
        }
        1 => {
            user.id = Uuid::new_v4().to_string();
            "unknown id"
        }
        2 => {
            request.update_mask = None;
            "no mask"
        }
        3 => {
            request.update_mask = mask(&[]);
            "empty mask"
        }
        4 => {
            request.update_mask = mask(&[["id", "version", "created_at", "updated_at"]
                .choose(rng)
                .expect("choices")]);
            "output-only field in mask"
        }
        5 => {
            request.update_mask = mask(&["bogus"]);
            "unknown field in mask"
        }
        6 => {
            request.update_mask = mask(&["nickname", "nickname"]);
            "field twice in mask"
        }
        7 => {
            request.update_mask = mask(&[""]);
            "empty path in mask"
        }
        8 => {
            request.update_mask = mask(&["user.bogus", "nickname.x"]);
            "nested paths in mask"
        }
        9 => {
            user.first_name = String::new();
            request.update_mask = mask(&["first_name"]);
            "empty first_name"
        }
        10 => {
            user.email = "bad".to_owned();
            request.update_mask = mask(&["email"]);
            "bad email"
        }
        11 => {
            user.country = "XX".to_owned();
            request.update_mask = mask(&["country"]);
            "unknown country"
        }
        12 => {
            request.password = "short".to_owned();
            request.update_mask = mask(&["password"]);
            "short password"
        }
        13 => {
            request.update_mask = mask(&["password"]);
            "password in mask, none given"
        }
        14 => {
            user.nickname = "bad nick!".to_owned();
            "bad nickname"
        }
        15 => {
            user.last_name = "y".repeat(101);
            request.update_mask = mask(&["last_name", "nickname"]);
            "last_name over 100"
        }
        16 => {
            request.user = None;
            "no user"
        }
        _ => {
            // The untouched user is at version 1: every one of these is stale.
            request.expected_version = Some(
                *[0, 2, 2_000_000, 1 << 63, u64::MAX]
                    .choose(rng)
                    .expect("choices"),
            );
            "wrong expected_version"
        }
    };
    well_formed("UpdateUser", what, &request)
}

fn bad_delete(rng: &mut StdRng, fixtures: &Fixtures) -> Case {
    let (what, request) = match rng.random_range(0..3) {
        0 => (
            "bad id",
            v1::DeleteUserRequest {
                id: bad_id(rng),
                expected_version: None,
            },
        ),
        1 => (
            "unknown id",
            v1::DeleteUserRequest {
                id: Uuid::now_v7().to_string(),
                expected_version: None,
            },
        ),
        _ => (
            "wrong expected_version",
            v1::DeleteUserRequest {
                id: fixtures.untouched.clone(),
                expected_version: Some(
                    *[0, 2, 2_000_000, 1 << 63, u64::MAX]
                        .choose(rng)
                        .expect("choices"),
                ),
            },
        ),
    };
    well_formed("DeleteUser", what, &request)
}

fn bad_get(rng: &mut StdRng, fixtures: &Fixtures) -> Case {
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

fn bad_list(rng: &mut StdRng, fixtures: &Fixtures) -> Case {
    let mut request = v1::ListUsersRequest {
        filter: Some(v1::UserFilter {
            countries: vec!["GB".to_owned()],
        }),
        page_size: 10,
        page_token: String::new(),
    };
    let filter = |countries: &[&str]| {
        Some(v1::UserFilter {
            countries: countries.iter().map(|code| (*code).to_owned()).collect(),
        })
    };
    let what = match rng.random_range(0..15) {
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
        _ => {
            let mut random = vec![0; rng.random_range(1..64)];
            rng.fill_bytes(&mut random);
            request.page_token = base64_url(&random);
            "random page_token"
        }
    };
    well_formed("ListUsers", what, &request)
}

fn base64_url(bytes: &[u8]) -> String {
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

fn malformed(rng: &mut StdRng, method: &str) -> Case {
    let (what, body, content_type, path): (&str, Vec<u8>, &'static str, Option<String>) =
        match rng.random_range(0..16) {
            0 => {
                // Field 1 is a string or a message in every request; here it is a number.
                let mut message = vec![0x08];
                message.extend(varint(rng.random()));
                ("field 1 as a varint", framed(&message), GRPC, None)
            }
            1 => {
                let mut message = vec![0x09];
                message.extend(rng.random::<u64>().to_le_bytes());
                ("field 1 as fixed64", framed(&message), GRPC, None)
            }
            2 => (
                // A user whose first_name (field 2) is a number.
                "nested field as a varint",
                framed(&[0x0a, 0x02, 0x10, 0x01]),
                GRPC,
                None,
            ),
            3 => (
                "invalid UTF-8 in a string",
                framed(&invalid_utf8(rng)),
                GRPC,
                None,
            ),
            4 => {
                let mut random = vec![0; rng.random_range(1..200)];
                rng.fill_bytes(&mut random);
                ("random bytes as the message", framed(&random), GRPC, None)
            }
            5 => {
                let message = v1::GetUserRequest {
                    id: Uuid::new_v4().to_string(),
                    min_version: None,
                }
                .encode_to_vec();
                let mut body = frame(&message).to_vec();
                body.truncate(body.len() - rng.random_range(1..message.len()));
                ("truncated frame", body, GRPC, None)
            }
            6 => {
                let length = rng.random_range(1..5);
                ("truncated frame header", vec![0; length], GRPC, None)
            }
            7 => {
                let mut body = framed(&[0x0a, 0x01, b'x']);
                body[0] = 1;
                ("compressed flag without grpc-encoding", body, GRPC, None)
            }
            8 => {
                let mut body = vec![0, 0xff, 0xff, 0xff, 0xff];
                body.extend([0x0a, 0x01, b'x']);
                ("frame declaring 4 GiB", body, GRPC, None)
            }
            9 => (
                "JSON body",
                br#"{"id": "x", "user": {"email": "a@b.c"}}"#.to_vec(),
                "application/json",
                None,
            ),
            10 => (
                "unknown method",
                framed(&[0x0a, 0x01, b'x']),
                GRPC,
                Some(
                    ["/user.v1.UserService/RenameUser", "/nope.v1.Nope/Call", "/"]
                        .choose(rng)
                        .expect("choices")
                        .to_string(),
                ),
            ),
            11 => ("no message", Vec::new(), GRPC, None),
            12 => {
                let mut body = framed(&[0x0a, 0x01, b'x']);
                body.extend(framed(&[0x0a, 0x01, b'y']));
                ("two messages in a unary call", body, GRPC, None)
            }
            13 => {
                let mut body = framed(&[0x0a, 0x01, b'x']);
                body.extend([0x00, 0x00, 0x13]);
                ("trailing bytes after the message", body, GRPC, None)
            }
            14 => {
                let mut message = vec![0x10];
                message.extend([0xff; 11]);
                ("overlong varint", framed(&message), GRPC, None)
            }
            _ => (
                "length-delimited field past the end",
                framed(&[0x0a, 0x7f, b'a']),
                GRPC,
                None,
            ),
        };
    Case {
        kind: Kind::Malformed,
        label: format!("{method}: {what}"),
        payload: Payload::Grpc(RawRequest {
            path: path.unwrap_or_else(|| format!("{SERVICE}{method}")),
            content_type,
            body: body.into(),
        }),
    }
}

fn framed(message: &[u8]) -> Vec<u8> {
    frame(message).to_vec()
}

fn varint(mut value: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            bytes.push(low);
            return bytes;
        }
        bytes.push(low | 0x80);
    }
}

/// A message whose string field holds bytes that are not UTF-8: an id, a nested user's
/// name, a page token or a mask path.
fn invalid_utf8(rng: &mut StdRng) -> Vec<u8> {
    let bad: &[u8] = [
        &[0xff, 0xfe, 0xfd][..],
        &[0xc3, 0x28],
        &[0xed, 0xa0, 0x80],
        &[0xc0, 0x80],
        &[0xf8, 0x88, 0x80, 0x80, 0x80],
    ]
    .choose(rng)
    .expect("choices");
    let string = |field: u8| {
        let mut bytes = vec![field << 3 | 2, bad.len() as u8];
        bytes.extend(bad);
        bytes
    };
    match rng.random_range(0..4) {
        0 => string(1),
        1 => {
            let inner = string(2);
            let mut bytes = vec![0x0a, inner.len() as u8];
            bytes.extend(inner);
            bytes
        }
        2 => string(3),
        _ => {
            let inner = string(1);
            let mut bytes = vec![0x12, inner.len() as u8];
            bytes.extend(inner);
            bytes
        }
    }
}

/// A CreateUser over the size limit.
fn oversized_message(method: &str) -> Case {
    let request = v1::CreateUserRequest {
        user: Some(v1::User {
            first_name: "x".repeat(DEFAULT_MESSAGE_LIMIT + 1024),
            ..v1::User::default()
        }),
        password: String::new(),
    };
    grpc(
        Kind::Malformed,
        format!("{method}: message over 4 MiB"),
        method,
        frame(&request.encode_to_vec()),
    )
}

fn junk_bytes(rng: &mut StdRng) -> Case {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut random = vec![0; rng.random_range(1..2048)];
    rng.fill_bytes(&mut random);
    let (what, bytes) = match rng.random_range(0..4) {
        0 => ("random bytes", random),
        1 => {
            let mut bytes = PREFACE.to_vec();
            bytes.extend(random);
            ("HTTP/2 preface, then random frames", bytes)
        }
        2 => {
            let mut bytes = PREFACE.to_vec();
            // A SETTINGS frame claiming 16 MiB of payload.
            bytes.extend([0xff, 0xff, 0xff, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00]);
            bytes.extend(random);
            ("HTTP/2 frame with an absurd length", bytes)
        }
        _ => (
            "HTTP/1.1 request",
            b"GET /user.v1.UserService/GetUser HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
    };
    Case {
        kind: Kind::Junk,
        label: what.to_owned(),
        payload: Payload::Junk(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_url_matches_the_alphabet_without_padding() {
        assert_eq!(base64_url(b"f"), "Zg");
        assert_eq!(base64_url(b"fo"), "Zm8");
        assert_eq!(base64_url(b"foo"), "Zm9v");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn varints_encode_seven_bits_at_a_time() {
        assert_eq!(varint(1), [1]);
        assert_eq!(varint(300), [0xac, 0x02]);
    }

    #[test]
    fn a_mix_has_the_size_asked_for() {
        use rand::SeedableRng;
        let fixtures = Fixtures {
            untouched: Uuid::now_v7().to_string(),
            page_token: "AQ".to_owned(),
        };
        let mut rng = StdRng::seed_from_u64(7);
        let cases = for_query(&mut rng, 500, &fixtures);
        assert_eq!(cases.len(), 500);
        assert!(cases.iter().any(|case| case.kind == Kind::Junk));
        assert!(cases.iter().any(|case| case.kind == Kind::Malformed));
        assert!(cases.iter().any(|case| case.kind == Kind::BadValues));
    }
}
