//! The bad requests: well-formed requests whose values break a rule (each at least one, so
//! none may succeed), malformed gRPC (frames and protobuf no client would send), and junk
//! bytes on the port.

use bytes::Bytes;
use prost::Message;
use rand::{Rng, rngs::StdRng, seq::IndexedRandom};
use shared_proto::v1;
use uuid::Uuid;

use super::raw::{RawRequest, frame};

mod malformed;
mod reads;
mod writes;

use self::{malformed::*, reads::*, writes::*};

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
    let methods = ["GetUser", "ListUsers", "BatchGetUsers", "GetUserByEmail"];
    mix(rng, count, &methods, |rng| match rng.random_range(0..100) {
        0..35 => bad_get(rng, fixtures),
        35..75 => bad_list(rng, fixtures),
        75..87 => bad_batch_get(rng, fixtures),
        87..97 => bad_get_by_email(rng),
        _ => bad_create(rng),
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
