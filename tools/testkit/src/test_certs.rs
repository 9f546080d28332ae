//! Certificates for tests, made by the openssl command: a CA of the test's own, a server
//! certificate for localhost and 127.0.0.1, and client certificates, as PEM files in a
//! temporary folder removed on drop.

use std::path::{Path, PathBuf};

pub struct TestCa {
    pub dir: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, in a folder of its own.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("users-ca-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let ca = Self { dir };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &ca.path("ca.key"),
            "-out",
            &ca.path("ca.crt"),
        ]);
        ca
    }

    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A certificate signed by this CA for `common_name` with the subject alternative
    /// names `san` (e.g. `DNS:localhost,IP:127.0.0.1`): the (certificate, key) files.
    pub fn issue(&self, file: &str, common_name: &str, san: &str) -> (PathBuf, PathBuf) {
        let (key, csr, cert, ext) = (
            self.path(&format!("{file}.key")),
            self.path(&format!("{file}.csr")),
            self.path(&format!("{file}.crt")),
            self.path(&format!("{file}.ext")),
        );
        std::fs::write(&ext, format!("subjectAltName={san}\n")).expect("an extensions file");
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={common_name}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &self.path("ca.crt"),
            "-CAkey",
            &self.path("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ]);
        (PathBuf::from(cert), PathBuf::from(key))
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        self.issue("server", "localhost", "DNS:localhost,IP:127.0.0.1")
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }
}

/// Runs the openssl command with `args`, failing the test when it fails; what it printed.
pub(crate) fn openssl(args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `path`'s text.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("a PEM file")
}
