//! TLS to Postgres as libpq's `sslmode` asks for it, with rustls:
//!
//! | sslmode | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | no | — |
//! | `prefer` (the default) | when the server offers it | only with a CA file |
//! | `require` | yes | only with a CA file (as libpq does with a root certificate) |
//! | `verify-ca` | yes | chain, against the CA file (required: the public roots with no name check would trust any public certificate) |
//! | `verify-full` | yes | chain and host name |
//!
//! tokio-postgres knows only the first three modes, so the verifying ones are handed to it as
//! `require` and checked here.

use std::{path::Path, sync::Arc};

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio_postgres_rustls::MakeRustlsConnect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("sslmode `{0}` is not one of disable, prefer, require, verify-ca, verify-full")]
    Mode(String),
    #[error("cannot read the CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error(
        "sslmode=verify-ca needs DATABASE_CA_FILE: against the public roots, with no name \
         check, any publicly trusted certificate would pass (libpq refuses it too)"
    )]
    VerifyCaWithoutCa,
}

/// The URL's sslmode, and the URL as tokio-postgres can parse it.
pub fn split_ssl_mode(url: &str) -> Result<(SslMode, String), TlsError> {
    let Some(at) = url.find("sslmode=") else {
        return Ok((SslMode::Prefer, url.to_owned()));
    };
    let value_at = at + "sslmode=".len();
    let value: String = url[value_at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let mode = match value.as_str() {
        "disable" => SslMode::Disable,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        _ => return Err(TlsError::Mode(value)),
    };
    let handed_on = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => "require",
        _ => value.as_str(),
    };
    let url = format!(
        "{}{handed_on}{}",
        &url[..value_at],
        &url[value_at + value.len()..]
    );
    Ok((mode, url))
}

/// The connector for `mode`, or `None` for `disable`.
pub fn connector(
    mode: SslMode,
    ca_file: Option<&Path>,
) -> Result<Option<MakeRustlsConnect>, TlsError> {
    if mode == SslMode::Disable {
        return Ok(None);
    }
    if mode == SslMode::VerifyCa && ca_file.is_none() {
        return Err(TlsError::VerifyCaWithoutCa);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(roots(ca_file)?);
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|error| rustls::Error::General(error.to_string()))?;
    let checked: Arc<dyn ServerCertVerifier> = if mode == SslMode::VerifyFull {
        verifier
    } else {
        Arc::new(Lenient {
            full: verifier,
            check_chain: mode == SslMode::VerifyCa || ca_file.is_some(),
        })
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(checked)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let Some(path) = ca_file else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let unreadable = |reason: String| TlsError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|error| unreadable(error.to_string()))?;
    for certificate in rustls_pemfile::certs(&mut pem.as_slice()) {
        let certificate = certificate.map_err(|error| unreadable(error.to_string()))?;
        roots
            .add(certificate)
            .map_err(|error| unreadable(error.to_string()))?;
    }
    if roots.is_empty() {
        return Err(unreadable("it holds no PEM certificate".to_owned()));
    }
    Ok(roots)
}

/// A verifier that checks less than the full one, for the modes that ask for less: the chain
/// alone (verify-ca, and prefer or require with a CA file), or nothing (prefer and require
/// without one, as libpq has them). The handshake's signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    full: Arc<WebPkiServerVerifier>,
    check_chain: bool,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.check_chain {
            return Ok(ServerCertVerified::assertion());
        }
        match self.full.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.full.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.full.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.full.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifying_modes_reach_tokio_postgres_as_require() {
        let (mode, url) = split_ssl_mode("postgres://u@h/db?sslmode=verify-full&x=1").unwrap();
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(url, "postgres://u@h/db?sslmode=require&x=1");
        let (mode, url) = split_ssl_mode("host=h dbname=db sslmode=verify-ca").unwrap();
        assert_eq!(
            (mode, url.as_str()),
            (SslMode::VerifyCa, "host=h dbname=db sslmode=require")
        );
        let (mode, url) = split_ssl_mode("postgres://u@h/db").unwrap();
        assert_eq!((mode, url.as_str()), (SslMode::Prefer, "postgres://u@h/db"));
        assert!(split_ssl_mode("postgres://u@h/db?sslmode=maybe").is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_with_its_path() {
        let path =
            std::env::temp_dir().join(format!("users-empty-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&path, "not a certificate").unwrap();
        let Err(error) = connector(SslMode::VerifyFull, Some(&path)) else {
            panic!("a CA file without certificates was taken");
        };
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
        let _ = std::fs::remove_file(path);
        assert!(connector(SslMode::VerifyFull, Some(Path::new("/nonexistent.pem"))).is_err());
    }
}
