//! Malformed gRPC (frames and protobuf no client would send) and junk bytes on the port.

use prost::Message;
use rand::{Rng, RngCore, rngs::StdRng, seq::IndexedRandom};
use shared_proto::v1;
use uuid::Uuid;

use super::*;

pub(super) fn malformed(rng: &mut StdRng, method: &str) -> Case {
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

pub(super) fn varint(mut value: u64) -> Vec<u8> {
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
pub(super) fn oversized_message(method: &str) -> Case {
    let request = v1::CreateUserRequest {
        user: Some(v1::User {
            first_name: "x".repeat(DEFAULT_MESSAGE_LIMIT + 1024),
            ..v1::User::default()
        }),
        password: String::new(),
        request_id: String::new(),
    };
    grpc(
        Kind::Malformed,
        format!("{method}: message over 4 MiB"),
        method,
        frame(&request.encode_to_vec()),
    )
}

pub(super) fn junk_bytes(rng: &mut StdRng) -> Case {
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
