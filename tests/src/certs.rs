//! Certificates for TLS tests, made at test time: a CA, a server certificate for `127.0.0.1`
//! and `localhost`, a client certificate signed by the CA, and an unrelated CA with a client
//! certificate of its own (what must be refused).
//!
//! ```ignore
//! let certs = TestCerts::new();
//! let kalam = KalamServer::start_tls(&certs, true);   // mutual TLS: client_ca = certs.ca_path
//! // pg_kalam options: the CA to trust is certs.ca_path, the client identity
//! // certs.client_cert_path / certs.client_key_path.
//!
//! // TLS and a root password:
//! let mut env = certs.server_env(false);
//! env.push(("KALAMDB_ROOT_PASSWORD", "pw".to_string()));
//! let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
//! let kalam = KalamServer::start_with_env(&env);
//! ```
//!
//! The files are readable by every OS user (a PostgreSQL backend runs as `postgres` when the
//! harness runs as root); they are test keys and protect nothing.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::scratch::Scratch;

/// A CA, certificates it signed, and an unrelated CA, in PEM and as files in `dir`.
pub struct TestCerts {
    /// Where the files are.
    pub dir: PathBuf,
    /// The CA that signed the server and client certificates (`ca.crt`).
    pub ca_pem: String,
    pub ca_path: PathBuf,
    /// The server's certificate, for `127.0.0.1` and `localhost` (`server.crt`, `server.key`).
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub server_cert_path: PathBuf,
    pub server_key_path: PathBuf,
    /// A client certificate signed by the CA (`client.crt`, `client.key`).
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub client_cert_path: PathBuf,
    pub client_key_path: PathBuf,
    /// A CA unrelated to the server (`other-ca.crt`): trusting it must fail the handshake.
    pub other_ca_pem: String,
    pub other_ca_path: PathBuf,
    /// A client certificate signed by the unrelated CA (`other-client.crt`, `other-client.key`):
    /// a server requiring client certificates of `ca` must refuse it.
    pub other_client_cert_pem: String,
    pub other_client_key_pem: String,
    pub other_client_cert_path: PathBuf,
    pub other_client_key_path: PathBuf,
    // The directory is removed with the certificates when [`TestCerts::new`] made it.
    _scratch: Option<Scratch>,
}

impl TestCerts {
    /// Generates fresh certificates into a scratch directory removed when this is dropped.
    pub fn new() -> Self {
        let scratch = Scratch::new("certs");
        let mut certs = Self::generate(scratch.path());
        certs._scratch = Some(scratch);
        certs
    }

    /// Generates fresh certificates and writes them into `dir` (created if missing, kept after).
    pub fn generate(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let ca = new_ca("pg_kalam test CA");
        let other_ca = new_ca("unrelated test CA");
        let (server_cert_pem, server_key_pem) =
            leaf(&ca, &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert_pem, client_key_pem) =
            leaf(&ca, &["pg-kalam-client"], ExtendedKeyUsagePurpose::ClientAuth);
        let (other_client_cert_pem, other_client_key_pem) =
            leaf(&other_ca, &["stranger"], ExtendedKeyUsagePurpose::ClientAuth);
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        };
        Self {
            dir: dir.to_path_buf(),
            ca_path: write("ca.crt", &ca.pem()),
            ca_pem: ca.pem(),
            server_cert_path: write("server.crt", &server_cert_pem),
            server_key_path: write("server.key", &server_key_pem),
            server_cert_pem,
            server_key_pem,
            client_cert_path: write("client.crt", &client_cert_pem),
            client_key_path: write("client.key", &client_key_pem),
            client_cert_pem,
            client_key_pem,
            other_ca_path: write("other-ca.crt", &other_ca.pem()),
            other_ca_pem: other_ca.pem(),
            other_client_cert_path: write("other-client.crt", &other_client_cert_pem),
            other_client_key_path: write("other-client.key", &other_client_key_pem),
            other_client_cert_pem,
            other_client_key_pem,
            _scratch: None,
        }
    }

    /// The `KALAMDB_TLS_*` variables that serve these certificates; with `mutual`, clients must
    /// present a certificate signed by the CA.
    pub fn server_env(&self, mutual: bool) -> Vec<(&'static str, String)> {
        let path = |p: &Path| p.display().to_string();
        let mut env = vec![
            ("KALAMDB_TLS_CERT", path(&self.server_cert_path)),
            ("KALAMDB_TLS_KEY", path(&self.server_key_path)),
        ];
        if mutual {
            env.push(("KALAMDB_TLS_CLIENT_CA", path(&self.ca_path)));
        }
        env
    }
}

impl Default for TestCerts {
    fn default() -> Self {
        Self::new()
    }
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA certificate")
}

/// A certificate for `names` (the first is also its common name) signed by `issuer`, and its
/// key: (certificate PEM, key PEM).
fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("certificate parameters");
    params.distinguished_name.push(DnType::CommonName, names[0].as_str());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("certificate");
    (cert.pem(), key.serialize_pem())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use super::*;
    use crate::KalamServer;

    /// Whether the Flight SQL port answers an HTTP/2 connection preface in plain text with a TLS
    /// alert record (content type 21), as a TLS-only listener does.
    fn answers_plain_text_with_tls_alert(port: u16) -> bool {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the Flight SQL port");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").unwrap();
        let mut first = [0u8; 1];
        stream.read_exact(&mut first).expect("an answer");
        first[0] == 21
    }

    // Goal: the certificates are PEM files where they say, and a kalamdb-server started with
    // them (mutual TLS) becomes ready and still answers plain HTTP. Needs the server binary
    // (see `KalamServer`).
    #[test]
    fn certificates_serve_a_tls_kalamdb_server() {
        let certs = TestCerts::new();
        for (path, pem, kind) in [
            (&certs.ca_path, &certs.ca_pem, "CERTIFICATE"),
            (&certs.server_cert_path, &certs.server_cert_pem, "CERTIFICATE"),
            (&certs.server_key_path, &certs.server_key_pem, "PRIVATE KEY"),
            (&certs.client_cert_path, &certs.client_cert_pem, "CERTIFICATE"),
            (&certs.client_key_path, &certs.client_key_pem, "PRIVATE KEY"),
            (&certs.other_ca_path, &certs.other_ca_pem, "CERTIFICATE"),
            (&certs.other_client_cert_path, &certs.other_client_cert_pem, "CERTIFICATE"),
            (&certs.other_client_key_path, &certs.other_client_key_pem, "PRIVATE KEY"),
        ] {
            assert!(path.starts_with(&certs.dir), "{}", path.display());
            assert_eq!(&std::fs::read_to_string(path).unwrap(), pem);
            assert!(pem.starts_with(&format!("-----BEGIN {kind}-----")), "{}", path.display());
        }
        assert_ne!(certs.ca_pem, certs.other_ca_pem);

        let plain = KalamServer::start();
        assert!(!answers_plain_text_with_tls_alert(plain.flight_port));
        drop(plain);
        let kalam = KalamServer::start_tls(&certs, true);
        assert!(answers_plain_text_with_tls_alert(kalam.flight_port));
        assert_eq!(kalam.sql("SELECT 1 AS one")["status"], "success");
        let kalam = kalam.restart();
        assert!(answers_plain_text_with_tls_alert(kalam.flight_port), "TLS is kept across a restart");
        let dir = certs.dir.clone();
        drop(kalam);
        drop(certs);
        assert!(!dir.exists(), "the scratch directory goes with the certificates");
    }
}
