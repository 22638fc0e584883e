//! TLS and mutual TLS on the Flight SQL listener, with certificates made for each test: a CA,
//! a server certificate for 127.0.0.1 and localhost, client certificates, and an unrelated CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use kalamdb_server::Server;
use kalamdb_server::config::Config;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::support::{Client, Dir, UNAUTHENTICATED, query_error, render, rows, start, try_query};

const ROOT_PASSWORD: &str = "root-pw-for-tls-tests";

/// A certificate and its private key, in PEM.
struct Pem {
    cert: String,
    key: String,
}

/// The certificates of one test, also written as files into its directory.
struct Pki {
    ca: String,
    server: Pem,
    client: Pem,
    /// A CA the server knows nothing of, and a client certificate it signed.
    other_ca: String,
    other_client: Pem,
    ca_path: PathBuf,
    server_cert_path: PathBuf,
    server_key_path: PathBuf,
    client_key_path: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Pem {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Pem { cert: cert.pem(), key: key.serialize_pem() }
}

impl Pki {
    fn generate(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let ca_issuer = ca("kalamdb test CA");
        let other_issuer = ca("unrelated test CA");
        let pki = Self {
            ca: ca_issuer.pem(),
            server: leaf(&ca_issuer, &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth),
            client: leaf(&ca_issuer, &["pg-kalam-client"], ExtendedKeyUsagePurpose::ClientAuth),
            other_ca: other_issuer.pem(),
            other_client: leaf(&other_issuer, &["stranger"], ExtendedKeyUsagePurpose::ClientAuth),
            ca_path: dir.join("ca.crt"),
            server_cert_path: dir.join("server.crt"),
            server_key_path: dir.join("server.key"),
            client_key_path: dir.join("client.key"),
        };
        for (path, text) in [
            (&pki.ca_path, &pki.ca),
            (&pki.server_cert_path, &pki.server.cert),
            (&pki.server_key_path, &pki.server.key),
            (&pki.client_key_path, &pki.client.key),
        ] {
            std::fs::write(path, text).unwrap();
        }
        pki
    }

    fn tls(&self, config: &mut Config, mutual: bool) {
        config.tls.cert = Some(self.server_cert_path.clone());
        config.tls.key = Some(self.server_key_path.clone());
        config.tls.client_ca = mutual.then(|| self.ca_path.clone());
    }
}

/// A client trusting `ca`, presenting `identity` when given.
fn client_tls(ca: &str, identity: Option<&Pem>) -> ClientTlsConfig {
    let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    match identity {
        Some(pem) => config.identity(Identity::from_pem(&pem.cert, &pem.key)),
        None => config,
    }
}

/// Connects to `host:port`, over TLS when `tls` is given, else in plain text.
async fn connect(host: &str, port: u16, tls: Option<ClientTlsConfig>) -> Result<Client, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://{host}:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| causes(&e))?;
    }
    let channel = endpoint.connect().await.map_err(|e| causes(&e))?;
    Ok(FlightSqlServiceClient::new(channel))
}

/// `SELECT 1` on a new connection: its rows, or why it failed (connecting or querying).
async fn select_one(port: u16, tls: Option<ClientTlsConfig>) -> Result<Vec<String>, String> {
    let mut client = connect("127.0.0.1", port, tls).await?;
    try_query(&mut client, "SELECT 1", None).await.map(|batches| render(&batches))
}

/// An error and its causes (tonic's own message is only "transport error").
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = vec![error.to_string()];
    let mut next = error.source();
    while let Some(e) = next {
        out.push(e.to_string());
        next = e.source();
    }
    out.join(": ")
}

// Goal: with a certificate and key, the Flight SQL listener speaks TLS: a client trusting the
// CA queries (by address and by name), a plain-text client and a client trusting another CA
// are refused, and the server keeps serving after refusing them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_clients_that_trust_its_ca() {
    let dir = Dir::new("tls");
    let pki = Pki::generate(&dir.0.join("certs"));
    let server = start(&dir.0.join("data"), |c| pki.tls(c, false)).await;

    assert_eq!(select_one(server.port, Some(client_tls(&pki.ca, None))).await.unwrap(), ["1"]);
    let by_name = client_tls(&pki.ca, None).domain_name("localhost");
    assert_eq!(select_one(server.port, Some(by_name)).await.unwrap(), ["1"]);
    // Without client_ca no certificate is asked for; one offered anyway does no harm.
    assert_eq!(select_one(server.port, Some(client_tls(&pki.ca, Some(&pki.client)))).await.unwrap(), ["1"]);

    select_one(server.port, None).await.expect_err("a plain-text client must be refused");
    let err = select_one(server.port, Some(client_tls(&pki.other_ca, None))).await.unwrap_err();
    assert!(err.contains("invalid peer certificate: UnknownIssuer"), "{err}");
    // The certificate names 127.0.0.1 and localhost, nothing else.
    let wrong_name = client_tls(&pki.ca, None).domain_name("kalamdb.example");
    let err = select_one(server.port, Some(wrong_name)).await.unwrap_err();
    assert!(err.contains("certificate not valid for name \"kalamdb.example\""), "{err}");

    let mut client = connect("127.0.0.1", server.port, Some(client_tls(&pki.ca, None))).await.unwrap();
    assert_eq!(rows(&mut client, "SELECT 'still serving'").await, ["still serving"]);
    server.stop().await;
}

// Goal: with client_ca, only clients presenting a certificate signed by that CA get in (no
// certificate, or one signed by another CA, is refused); the certificate admits the connection
// but does not log in: with a root password, requests still need credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_certificates_of_the_client_ca() {
    let dir = Dir::new("mtls");
    let pki = Pki::generate(&dir.0.join("certs"));
    let server = start(&dir.0.join("data"), |c| {
        pki.tls(c, true);
        c.auth.root_password = Some(ROOT_PASSWORD.into());
    })
    .await;

    // Admitted, these would be refused for want of credentials: TLS refuses them first. How the
    // refusal reads depends on when the server's alert arrives (during the handshake, or as a
    // broken connection when the first request goes out).
    for (client, tls) in [
        ("without a certificate", Some(client_tls(&pki.ca, None))),
        ("with a certificate of another CA", Some(client_tls(&pki.ca, Some(&pki.other_client)))),
        ("in plain text", None),
    ] {
        let err = select_one(server.port, tls).await.expect_err(client);
        assert!(!err.contains(UNAUTHENTICATED), "a client {client} reached the service: {err}");
    }

    let mut client =
        connect("127.0.0.1", server.port, Some(client_tls(&pki.ca, Some(&pki.client)))).await.unwrap();
    let err = query_error(&mut client, "SELECT 1").await;
    assert!(err.contains(UNAUTHENTICATED), "{err}");
    client.handshake("root", ROOT_PASSWORD).await.unwrap();
    assert_eq!(rows(&mut client, "SELECT 1").await, ["1"]);
    server.stop().await;
}

// Goal: TLS files that do not work together stop the start with an error naming the keys and
// paths (never a file's contents), before the data directory is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_files_stop_the_start() {
    let dir = Dir::new("tls_bad");
    let pki = Pki::generate(&dir.0.join("certs"));
    let data_dir = dir.0.join("data");
    let bind = |tweak: &dyn Fn(&mut Config)| {
        let mut config = Config::default();
        config.server.flight_port = 0;
        config.server.http_port = 0;
        config.server.data_dir = data_dir.clone();
        pki.tls(&mut config, false);
        tweak(&mut config);
        async move { Server::bind(config).await.err().expect("bind must fail") }
    };

    // The client's key with the server's certificate.
    let err = bind(&|c| c.tls.key = Some(pki.client_key_path.clone())).await;
    assert!(err.contains("cannot set up TLS"), "{err}");
    assert!(err.contains(&pki.server_cert_path.display().to_string()), "{err}");
    assert!(err.contains(&pki.client_key_path.display().to_string()), "{err}");
    assert!(err.contains("check that the key belongs"), "{err}");
    let key_body = pki.client.key.lines().nth(1).unwrap();
    assert!(!err.contains(key_body), "the key leaked: {err}");

    let missing = dir.0.join("certs/none.crt");
    let err = bind(&|c| c.tls.client_ca = Some(missing.clone())).await;
    assert!(err.contains("cannot read tls.client_ca") && err.contains("none.crt"), "{err}");
    let err = bind(&|c| c.tls.key = None).await;
    assert!(err.contains("without tls.key"), "{err}");
    assert!(!data_dir.exists(), "a start refused for its TLS files must not touch the data directory");
}
