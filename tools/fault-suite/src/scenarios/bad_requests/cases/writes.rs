//! Well-formed writes whose values break a rule.

use rand::{Rng, rngs::StdRng, seq::IndexedRandom};
use shared_proto::v1;
use uuid::Uuid;

use super::*;

pub(super) fn bad_create(rng: &mut StdRng) -> Case {
    let mut request = v1::CreateUserRequest {
        user: Some(valid_user(rng)),
        password: "correct horse battery".to_owned(),
        request_id: String::new(),
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

pub(super) fn bad_update(rng: &mut StdRng, fixtures: &Fixtures) -> Case {
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
        request_id: String::new(),
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

pub(super) fn bad_delete(rng: &mut StdRng, fixtures: &Fixtures) -> Case {
    let (what, request) = match rng.random_range(0..3) {
        0 => (
            "bad id",
            v1::DeleteUserRequest {
                id: bad_id(rng),
                expected_version: None,
                request_id: String::new(),
            },
        ),
        1 => (
            "unknown id",
            v1::DeleteUserRequest {
                id: Uuid::now_v7().to_string(),
                expected_version: None,
                request_id: String::new(),
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
                request_id: String::new(),
            },
        ),
    };
    well_formed("DeleteUser", what, &request)
}
