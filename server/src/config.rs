//! Server configuration: `server.toml` (every key documented in `server.example.toml`), then
//! `KALAMDB_*` environment overrides. Unknown keys are rejected so a typo never goes unnoticed.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use kalam_flight::protocol::{DEFAULT_FLIGHT_PORT, DEFAULT_HTTP_PORT, MESSAGE_BYTES_MAX};
use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerSection,
    pub auth: AuthSection,
    pub limits: LimitsSection,
    pub tls: TlsSection,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Address both listeners bind. Loopback by default: exposing the server is a decision.
    pub host: IpAddr,
    /// 0 picks a free port; the chosen ports are printed on the ready line.
    pub http_port: u16,
    pub flight_port: u16,
    pub data_dir: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// Secret that signs the HS256 JWTs accepted as Bearer tokens; the secret itself is also
    /// accepted as a static Bearer token with system rights.
    pub jwt_secret: Option<String>,
    /// Password of the bootstrapped `root` account. When set, every request needs credentials;
    /// when not, requests without credentials act as root.
    pub root_password: Option<String>,
    /// Lease of a session token; each use renews it.
    pub session_lease_secs: u64,
    /// Open sessions at most.
    pub sessions_max: usize,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self { jwt_secret: None, root_password: None, session_lease_secs: 3600, sessions_max: 10_000 }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest gRPC message accepted or sent.
    pub message_bytes_max: usize,
    /// Rows per record batch produced by the query engine.
    pub batch_rows: usize,
    /// Rows the HTTP SQL endpoint returns at most (it answers in one JSON document).
    pub http_result_rows_max: usize,
    /// Bytes of uncommitted rows one transaction (or one ingest) may hold.
    pub write_bytes_max: usize,
    /// Open Flight SQL transactions and prepared statements at most (each).
    pub handles_max: usize,
}

/// TLS of the Flight SQL listener (the HTTP listener stays plain HTTP). Off unless `cert` and
/// `key` are set: then the listener speaks TLS only, so plain-text clients are refused.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain the server presents, its own certificate first.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// PEM bundle of the CAs that sign client certificates. When set, every client must present
    /// a certificate signed by one of them (mutual TLS). It admits the connection only: the
    /// account still comes from the credentials of each request.
    pub client_ca: Option<PathBuf>,
}

/// The PEM files of a [`TlsSection`], read. Not `Debug`: it holds a private key.
pub struct TlsFiles {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub client_ca: Option<Vec<u8>>,
}

impl TlsSection {
    /// Whether TLS is on; an error for a combination that cannot work.
    pub fn enabled(&self) -> Result<bool, String> {
        match (&self.cert, &self.key) {
            (Some(_), Some(_)) => Ok(true),
            (Some(_), None) => Err("tls.cert (KALAMDB_TLS_CERT) is set without tls.key (KALAMDB_TLS_KEY); \
                 TLS needs both, the certificate chain and its private key"
                .into()),
            (None, Some(_)) => Err("tls.key (KALAMDB_TLS_KEY) is set without tls.cert (KALAMDB_TLS_CERT); \
                 TLS needs both, the certificate chain and its private key"
                .into()),
            (None, None) if self.client_ca.is_some() => {
                Err("tls.client_ca (KALAMDB_TLS_CLIENT_CA) needs tls.cert and tls.key: client certificates \
                 are asked for during a TLS handshake, so the server needs its own certificate first"
                    .into())
            }
            (None, None) => Ok(false),
        }
    }

    /// Reads the configured files; `None` when TLS is off. Errors name the key and the path,
    /// never what a file holds.
    pub fn read(&self) -> Result<Option<TlsFiles>, String> {
        self.enabled()?;
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else { return Ok(None) };
        Ok(Some(TlsFiles {
            cert: read_pem("tls.cert", cert, Pem::Certificates)?,
            key: read_pem("tls.key", key, Pem::PrivateKey)?,
            client_ca: match &self.client_ca {
                Some(path) => Some(read_pem("tls.client_ca", path, Pem::Certificates)?),
                None => None,
            },
        }))
    }
}

/// What a PEM file of [`TlsSection`] must hold.
#[derive(Clone, Copy)]
enum Pem {
    Certificates,
    PrivateKey,
}

/// Reads a PEM file and checks that it holds a block of the expected kind, so that a file of the
/// wrong kind (DER, the key where the certificate belongs) is named instead of failing later
/// with a TLS library's generic message.
fn read_pem(key: &str, path: &Path, kind: Pem) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read {key} {}: {e}; check the path and that kalamdb-server may read it",
            path.display()
        )
    })?;
    let holds = |text: &str| bytes.windows(text.len()).any(|w| w == text.as_bytes());
    // PKCS#8 encrypted, or the legacy OpenSSL encryption of PKCS#1/SEC1 keys.
    if matches!(kind, Pem::PrivateKey)
        && (holds("ENCRYPTED PRIVATE KEY-----") || holds("Proc-Type: 4,ENCRYPTED"))
    {
        return Err(format!(
            "{key} {} is encrypted, which is not supported; store it decrypted (`openssl pkey -in KEY -out \
             PLAIN`) and protect it with file permissions",
            path.display()
        ));
    }
    let (marker, what) = match kind {
        Pem::Certificates => {
            ("-----BEGIN CERTIFICATE-----", "PEM certificate (a \"-----BEGIN CERTIFICATE-----\" block)")
        }
        // Also "RSA PRIVATE KEY" (PKCS#1) and "EC PRIVATE KEY" (SEC1).
        Pem::PrivateKey => ("PRIVATE KEY-----", "PEM private key (a \"-----BEGIN PRIVATE KEY-----\" block)"),
    };
    if !holds(marker) {
        return Err(format!("{key} {} holds no {what}; give it in PEM", path.display()));
    }
    Ok(bytes)
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            http_port: DEFAULT_HTTP_PORT,
            flight_port: DEFAULT_FLIGHT_PORT,
            data_dir: PathBuf::from("./data"),
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            message_bytes_max: MESSAGE_BYTES_MAX,
            batch_rows: 8192,
            http_result_rows_max: 100_000,
            write_bytes_max: 4 << 30,
            handles_max: 1024,
        }
    }
}

impl Config {
    /// Reads `path` if given, then applies environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        config.apply_env(|key| std::env::var(key).ok())?;
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        fn parse<T: std::str::FromStr>(key: &str, value: String) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e| format!("invalid {key}={value:?}: {e}"))
        }
        if let Some(v) = get("KALAMDB_SERVER_HOST") {
            self.server.host = parse("KALAMDB_SERVER_HOST", v)?;
        }
        if let Some(v) = get("KALAMDB_HTTP_PORT") {
            self.server.http_port = parse("KALAMDB_HTTP_PORT", v)?;
        }
        if let Some(v) = get("KALAMDB_FLIGHT_PORT") {
            self.server.flight_port = parse("KALAMDB_FLIGHT_PORT", v)?;
        }
        if let Some(v) = get("KALAMDB_DATA_DIR") {
            self.server.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("KALAMDB_JWT_SECRET") {
            self.auth.jwt_secret = Some(v);
        }
        if let Some(v) = get("KALAMDB_ROOT_PASSWORD") {
            self.auth.root_password = Some(v);
        }
        if let Some(v) = get("KALAMDB_SESSION_LEASE_SECS") {
            self.auth.session_lease_secs = parse("KALAMDB_SESSION_LEASE_SECS", v)?;
        }
        if let Some(v) = get("KALAMDB_TLS_CERT") {
            self.tls.cert = Some(PathBuf::from(v));
        }
        if let Some(v) = get("KALAMDB_TLS_KEY") {
            self.tls.key = Some(PathBuf::from(v));
        }
        if let Some(v) = get("KALAMDB_TLS_CLIENT_CA") {
            self.tls.client_ca = Some(PathBuf::from(v));
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), String> {
        if self.limits.batch_rows == 0 {
            return Err("limits.batch_rows must be at least 1".into());
        }
        if self.limits.message_bytes_max < 1024 * 1024 {
            return Err("limits.message_bytes_max must be at least 1 MiB".into());
        }
        if self.auth.session_lease_secs == 0 {
            return Err("auth.session_lease_secs must be at least 1".into());
        }
        if self.limits.write_bytes_max < 1024 * 1024 {
            return Err("limits.write_bytes_max must be at least 1 MiB".into());
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.len() < 32
        {
            return Err(
                "the JWT secret (auth.jwt_secret / KALAMDB_JWT_SECRET) must be at least 32 characters".into(),
            );
        }
        // The files themselves are read when the server binds (`TlsSection::read`).
        self.tls.enabled()?;
        Ok(())
    }

    pub fn flight_addr(&self) -> SocketAddr {
        SocketAddr::new(self.server.host, self.server.flight_port)
    }

    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.server.host, self.server.http_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: environment variables override the file, and bad values are rejected with their name.
    #[test]
    fn env_overrides_and_rejects_bad_values() {
        let mut config: Config = toml::from_str("[server]\nflight_port = 1234\n").unwrap();
        let env = |k: &str| match k {
            "KALAMDB_HTTP_PORT" => Some("3000".to_string()),
            "KALAMDB_DATA_DIR" => Some("/tmp/x".to_string()),
            _ => None,
        };
        config.apply_env(env).unwrap();
        assert_eq!(config.server.flight_port, 1234);
        assert_eq!(config.server.http_port, 3000);
        assert_eq!(config.server.data_dir, PathBuf::from("/tmp/x"));

        let err =
            config.apply_env(|k| (k == "KALAMDB_FLIGHT_PORT").then(|| "70000".to_string())).unwrap_err();
        assert!(err.contains("KALAMDB_FLIGHT_PORT"), "{err}");
    }

    // Goal: a misspelled key is an error, not silently ignored.
    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Config>("[server]\nflight_prot = 1\n").unwrap_err().to_string();
        assert!(err.contains("flight_prot"), "{err}");
    }

    // Goal: TLS keys are set from the environment too; certificate and key come together, and
    // client certificates need TLS; each refusal names the keys to set.
    #[test]
    fn tls_needs_cert_and_key_together() {
        let mut config = Config::default();
        let env = |k: &str| match k {
            "KALAMDB_TLS_CERT" => Some("/etc/k/server.crt".to_string()),
            "KALAMDB_TLS_KEY" => Some("/etc/k/server.key".to_string()),
            "KALAMDB_TLS_CLIENT_CA" => Some("/etc/k/ca.crt".to_string()),
            _ => None,
        };
        config.apply_env(env).unwrap();
        assert_eq!(config.tls.cert.as_deref(), Some(Path::new("/etc/k/server.crt")));
        assert_eq!(config.tls.key.as_deref(), Some(Path::new("/etc/k/server.key")));
        assert_eq!(config.tls.client_ca.as_deref(), Some(Path::new("/etc/k/ca.crt")));
        config.validate().unwrap();
        assert!(!Config::default().tls.enabled().unwrap());

        let cases = [
            ("[tls]\ncert = \"a.crt\"\n", ["tls.cert", "without tls.key", "KALAMDB_TLS_KEY"]),
            ("[tls]\nkey = \"a.key\"\n", ["tls.key", "without tls.cert", "KALAMDB_TLS_CERT"]),
            (
                "[tls]\nclient_ca = \"ca.crt\"\n",
                ["tls.client_ca", "needs tls.cert and tls.key", "KALAMDB_TLS_CLIENT_CA"],
            ),
            (
                "[tls]\ncert = \"a.crt\"\nclient_ca = \"ca.crt\"\n",
                ["tls.cert", "without tls.key", "KALAMDB_TLS_KEY"],
            ),
        ];
        for (toml_text, needles) in cases {
            let config: Config = toml::from_str(toml_text).unwrap();
            let err = config.validate().unwrap_err();
            for needle in needles {
                assert!(err.contains(needle), "{toml_text:?}: {err}");
            }
            // The server reads the files through the same check.
            assert_eq!(config.tls.read().err(), Some(err));
        }
        let err = toml::from_str::<Config>("[tls]\nca = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `ca`"), "{err}");
    }

    // Goal: a TLS file that cannot be read, or is not PEM of the right kind, is an error naming
    // its key and path, never repeating what the file holds.
    #[test]
    fn tls_files_are_read_with_errors_naming_key_and_path() {
        let dir = std::env::temp_dir().join(format!("kalamdb_config_tls_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("server.crt");
        let key = dir.join("server.key");
        let ca = dir.join("ca.crt");
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n").unwrap();
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n").unwrap();
        let tls = |cert: &Path, key: &Path, client_ca: Option<&Path>| TlsSection {
            cert: Some(cert.to_path_buf()),
            key: Some(key.to_path_buf()),
            client_ca: client_ca.map(Path::to_path_buf),
        };

        let files = tls(&cert, &key, Some(&ca)).read().unwrap().unwrap();
        assert!(files.cert.starts_with(b"-----BEGIN CERTIFICATE-----"));
        assert!(files.key.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        assert!(files.client_ca.unwrap().ends_with(b"-----END CERTIFICATE-----\n"));
        assert!(tls(&cert, &key, None).read().unwrap().unwrap().client_ca.is_none());
        assert!(TlsSection::default().read().unwrap().is_none());

        let missing = dir.join("missing.key");
        let err = tls(&cert, &missing, None).read().err().unwrap();
        assert!(err.contains("cannot read tls.key") && err.contains(&missing.display().to_string()), "{err}");
        let err = tls(&cert, &key, Some(&missing)).read().err().unwrap();
        assert!(err.contains("cannot read tls.client_ca"), "{err}");

        // The key where the certificate belongs, and a certificate where the key belongs.
        let err = tls(&key, &key, None).read().err().unwrap();
        assert!(err.contains("tls.cert") && err.contains("holds no PEM certificate"), "{err}");
        assert!(!err.contains("MIIE"), "the key leaked: {err}");
        let err = tls(&cert, &cert, None).read().err().unwrap();
        assert!(err.contains("tls.key") && err.contains("holds no PEM private key"), "{err}");
        let err = tls(&cert, &key, Some(&key)).read().err().unwrap();
        assert!(err.contains("tls.client_ca") && err.contains("holds no PEM certificate"), "{err}");

        let encrypted = dir.join("encrypted.key");
        std::fs::write(
            &encrypted,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = tls(&cert, &encrypted, None).read().err().unwrap();
        assert!(err.contains("tls.key") && err.contains("encrypted") && !err.contains("MIIF"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // Goal: the example file documents a configuration that actually parses.
    #[test]
    fn example_config_parses() {
        let text = include_str!("../server.example.toml");
        let config: Config = toml::from_str(text).unwrap();
        assert_eq!(config.server.flight_port, DEFAULT_FLIGHT_PORT);
        assert_eq!(config.server.http_port, DEFAULT_HTTP_PORT);
        assert!(!config.tls.enabled().unwrap(), "the example leaves TLS off");
    }
}
