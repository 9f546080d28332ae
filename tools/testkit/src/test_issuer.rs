//! A token issuer for tests: signing keys generated for the test (ES256 with ring, RS256
//! with the openssl command), their JWK Set served over HTTP on loopback, and real access
//! tokens signed with them, well-formed or broken on purpose.

use std::{
    net::SocketAddr,
    sync::{Arc, RwLock},
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://issuer.test.users/";
pub const AUDIENCE: &str = "users";

/// One signing key: how to sign with it and its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    pub jwk: Value,
}

impl SigningKey {
    pub fn es256(kid: &str) -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("an EC key");
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &SystemRandom::new(),
        )
        .expect("a readable EC key");
        // The public key is the uncompressed point: 0x04, then x and y.
        let point = pair.public_key().as_ref();
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
            }),
        }
    }

    /// A 2048-bit RSA key, made by the openssl command (ring cannot make RSA keys).
    pub fn rs256(kid: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("users-rsa-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let pem = dir.join("key.pem");
        let run = crate::test_certs::openssl;
        let pem_path = pem.to_str().expect("a UTF-8 path");
        run(&["genrsa", "-traditional", "-out", pem_path, "2048"]);
        let der = run(&["rsa", "-in", pem_path, "-traditional", "-outform", "DER"]);
        let modulus =
            String::from_utf8(run(&["rsa", "-in", pem_path, "-noout", "-modulus"])).expect("text");
        let modulus = modulus.trim().trim_start_matches("Modulus=");
        let n: Vec<u8> = (0..modulus.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&modulus[at..at + 2], 16).expect("hex"))
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(&der),
            jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": B64.encode(n), "e": B64.encode([1, 0, 1]),
            }),
        }
    }
}

/// The issuer: its keys, published at `jwks_url`.
pub struct TestIssuer {
    pub es256: SigningKey,
    pub rs256: SigningKey,
    published: Arc<RwLock<Vec<Value>>>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl TestIssuer {
    pub async fn start() -> Self {
        let (es256, rs256) = (SigningKey::es256("es-1"), SigningKey::rs256("rs-1"));
        let published = Arc::new(RwLock::new(vec![es256.jwk.clone(), rs256.jwk.clone()]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the key set");
        let addr = listener.local_addr().expect("an address");
        let router = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get({
                let published = Arc::clone(&published);
                move || {
                    let keys = published.read().expect("keys lock poisoned").clone();
                    async move { axum::Json(json!({ "keys": keys })) }
                }
            }),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            es256,
            rs256,
            published,
            addr,
            server,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// The flags that make a service trust this issuer.
    pub fn service_args(&self) -> Vec<String> {
        vec![
            "--auth-mode=jwt".to_owned(),
            format!("--auth-jwks={}", self.jwks_url()),
            format!("--auth-issuer={ISSUER}"),
            format!("--auth-audience={AUDIENCE}"),
        ]
    }

    /// Publishes `keys` instead of the current ones (a rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.published.write().expect("keys lock poisoned") =
            keys.iter().map(|key| key.jwk.clone()).collect();
    }

    /// Stops answering for the key set.
    pub fn go_away(&self) {
        self.server.abort();
    }

    /// A valid token for `sub` with `scope` (space separated), signed with ES256.
    pub fn token(&self, sub: &str, scope: &str) -> String {
        sign(&self.es256, &claims(sub, scope))
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The claims of a valid token, for a test to change.
pub fn claims(sub: &str, scope: &str) -> Value {
    let now = unix_now();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "scope": scope,
        "iat": now, "nbf": now, "exp": now + 600,
    })
}

pub fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(key.algorithm);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("a signed token")
}

/// A token that claims no signature at all (`alg: none`).
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let header = json!({ "alg": "none", "typ": "JWT", "kid": kid });
    format!(
        "{}.{}.",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

/// A token "signed" with HMAC-SHA256 keyed by the text of a public JWK: what an attacker
/// who read the key set can make (algorithm confusion).
pub fn hmac_with_public_key(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    let secret = EncodingKey::from_secret(key.jwk.to_string().as_bytes());
    jsonwebtoken::encode(&header, claims, &secret).expect("an HMAC token")
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A call's answer as a code and a message (empty when OK), for tables of refusals.
pub fn code_of<T>(answer: Result<T, tonic::Status>) -> (tonic::Code, String) {
    match answer {
        Ok(_) => (tonic::Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}

/// `message` as a request bearing `token`, if any.
pub fn bearing<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("a header value"),
        );
    }
    request
}

/// Every way a token can be wrong, with a name: none, garbage, expired, not yet valid, from
/// another issuer, for another audience, signed by an unknown key, unsigned (`alg: none`),
/// HMAC keyed by a public key; each answers UNAUTHENTICATED.
pub fn bad_tokens(issuer: &TestIssuer, scope: &str) -> Vec<(&'static str, Option<String>)> {
    let now = unix_now();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = claims("mallory", scope);
        change(&mut claims);
        claims
    };
    vec![
        ("no token", None),
        ("garbage", Some("not-a-jwt".to_owned())),
        (
            "expired",
            Some(sign(
                &issuer.es256,
                &with(&|c| {
                    c["exp"] = json!(now - 600);
                    c["nbf"] = json!(now - 1200);
                }),
            )),
        ),
        (
            "not valid yet",
            Some(sign(&issuer.es256, &with(&|c| c["nbf"] = json!(now + 600)))),
        ),
        (
            "wrong issuer",
            Some(sign(
                &issuer.es256,
                &with(&|c| c["iss"] = json!("https://elsewhere.test/")),
            )),
        ),
        (
            "wrong audience",
            Some(sign(
                &issuer.es256,
                &with(&|c| c["aud"] = json!("another-service")),
            )),
        ),
        (
            "unknown key",
            Some(sign(&SigningKey::es256("unknown"), &with(&|_| {}))),
        ),
        (
            "alg none",
            Some(unsigned(&issuer.es256.kid, &with(&|_| {}))),
        ),
        (
            "HMAC keyed by the public key",
            Some(hmac_with_public_key(&issuer.rs256, &with(&|_| {}))),
        ),
    ]
}
