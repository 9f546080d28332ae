//! What the tests of both services, the fault suite and the bench share: real Postgres
//! databases and broker topics of their own, and real peers to test against (a proxy that
//! silences connections, a token issuer, a certificate authority).

pub mod test_certs;
pub mod test_issuer;
pub mod test_proxy;
pub mod test_support;
