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

    // Goal: the example file documents a configuration that actually parses.
    #[test]
    fn example_config_parses() {
        let text = include_str!("../server.example.toml");
        let config: Config = toml::from_str(text).unwrap();
        assert_eq!(config.server.flight_port, DEFAULT_FLIGHT_PORT);
        assert_eq!(config.server.http_port, DEFAULT_HTTP_PORT);
    }
}
