//! A `kalamdb-server` process for one test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::certs::TestCerts;
use crate::http;
use crate::scratch::{Scratch, print_log_tail};

/// How long the server may take to bind its ports.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct KalamServer {
    pub flight_port: u16,
    pub http_port: u16,
    /// Password of `root`, when the server requires credentials.
    pub root_password: Option<String>,
    /// Extra environment of the server process (kept across [`KalamServer::restart`]).
    env: Vec<(String, String)>,
    child: Child,
    log: PathBuf,
    // Last: the directory goes after the process has stopped.
    dir: Scratch,
}

impl KalamServer {
    /// Starts a server on free loopback ports with an empty data directory and waits until it
    /// reports ready. Requests need no credentials.
    pub fn start() -> Self {
        Self::start_in(Scratch::new("kalamdb"), None, Vec::new())
    }

    /// Like [`KalamServer::start`], with `root_password` required of every request.
    pub fn start_with_password(root_password: &str) -> Self {
        Self::start_in(Scratch::new("kalamdb"), Some(root_password.to_string()), Vec::new())
    }

    /// Like [`KalamServer::start`], with extra environment variables (`KALAMDB_*` settings);
    /// they override the harness's own. A `KALAMDB_ROOT_PASSWORD` among them is also used by
    /// [`KalamServer::sql`].
    pub fn start_with_env(extra_env: &[(&str, &str)]) -> Self {
        let env = extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let root_password =
            extra_env.iter().find(|(k, _)| *k == "KALAMDB_ROOT_PASSWORD").map(|(_, v)| v.to_string());
        Self::start_in(Scratch::new("kalamdb"), root_password, env)
    }

    /// Like [`KalamServer::start`], with TLS on the Flight SQL port (server certificate of
    /// `certs`); with `mutual`, clients must also present a certificate signed by `certs.ca_path`.
    /// HTTP ([`KalamServer::sql`]) stays plain.
    pub fn start_tls(certs: &TestCerts, mutual: bool) -> Self {
        let env = certs.server_env(mutual).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        Self::start_in(Scratch::new("kalamdb"), None, env)
    }

    /// Starts the server again on the same data directory (after [`KalamServer::kill`]).
    pub fn restart(self) -> Self {
        let mut this = self;
        this.kill();
        let dir = std::mem::replace(&mut this.dir, Scratch::placeholder());
        let password = this.root_password.take();
        let env = std::mem::take(&mut this.env);
        drop(this);
        Self::start_in(dir, password, env)
    }

    fn start_in(dir: Scratch, root_password: Option<String>, env: Vec<(String, String)>) -> Self {
        let log = dir.path().join("server.log");
        let log_file =
            std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open server log");
        let mut command = Command::new(server_binary());
        if let Some(password) = &root_password {
            command.env("KALAMDB_ROOT_PASSWORD", password);
        }
        let mut child = command
            .env("KALAMDB_SERVER_HOST", "127.0.0.1")
            .env("KALAMDB_FLIGHT_PORT", "0")
            .env("KALAMDB_HTTP_PORT", "0")
            .env("KALAMDB_DATA_DIR", dir.path().join("data"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server_binary().display()));

        // Recorded so that scripts/test.sh can stop the server if this test process is killed.
        std::fs::write(dir.path().join("server.pid"), child.id().to_string()).expect("write server.pid");

        // The ready line: "kalamdb-server ready flight=127.0.0.1:P http=127.0.0.1:Q".
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) if line.starts_with("kalamdb-server ready") => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                print_log_tail("kalamdb-server log", &log);
                panic!("kalamdb-server did not become ready: {other:?}");
            }
        };
        let port_of = |key: &str| -> u16 {
            line.split_whitespace()
                .find_map(|part| part.strip_prefix(key))
                .and_then(|addr| addr.rsplit(':').next())
                .and_then(|port| port.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in ready line {line:?}"))
        };
        let flight_port = port_of("flight=");
        let http_port = port_of("http=");
        Self { flight_port, http_port, root_password, env, child, log, dir }
    }

    /// Runs SQL through `POST /v1/api/sql`; panics unless the server answers success.
    pub fn sql(&self, sql: &str) -> serde_json::Value {
        let (status, body) = self.try_sql(sql);
        assert_eq!(status, 200, "KalamDB SQL failed: {sql}\n{body}");
        body
    }

    /// Runs SQL through `POST /v1/api/sql`, returning the status code and the JSON answer.
    pub fn try_sql(&self, sql: &str) -> (u16, serde_json::Value) {
        let request = serde_json::json!({ "sql": sql }).to_string();
        let headers: Vec<String> = self
            .root_password
            .iter()
            .map(|p| format!("Authorization: Basic {}", base64(&format!("root:{p}"))))
            .collect();
        let (status, body) = http::request(self.http_port, "POST", "/v1/api/sql", &headers, Some(&request))
            .expect("HTTP request to kalamdb-server");
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("non-JSON answer ({e}): {body}"));
        (status, json)
    }

    /// `GET /v1/api/healthcheck`'s JSON answer; panics unless the server answers success.
    pub fn healthcheck(&self) -> serde_json::Value {
        let (status, body) = http::request(self.http_port, "GET", "/v1/api/healthcheck", &[], None)
            .expect("HTTP request to kalamdb-server");
        assert_eq!(status, 200, "healthcheck failed: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("non-JSON answer ({e}): {body}"))
    }

    /// Kills the server now (as a crash would), leaving its data directory in place.
    /// The server's process id (to pause it with SIGSTOP and so simulate a silent network).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for KalamServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_log_tail("kalamdb-server log", &self.log);
        }
        self.kill();
    }
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The server binary: `KALAMDB_SERVER_BIN`, else `kalamdb-server` in the target directory this
/// test binary was built into (`target/<profile>/deps/e2e-*` → `target/<profile>/`).
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KALAMDB_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps layout");
    profile_dir.join("kalamdb-server")
}
