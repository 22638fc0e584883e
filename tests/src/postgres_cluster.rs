//! A throwaway PostgreSQL 15 cluster for one test, owned by an unprivileged OS user when the
//! harness runs as root (PostgreSQL refuses to run as root).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::scratch::{Scratch, print_log_tail};

/// Starts tried on fresh ports before giving up.
const START_ATTEMPTS: u32 = 3;

/// The unprivileged account that owns clusters when the harness runs as root.
const CLUSTER_OS_USER: &str = "postgres";

pub struct PgCluster {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    as_root: bool,
    // Last: the directory goes after the cluster has stopped.
    dir: Scratch,
}

impl PgCluster {
    pub fn start() -> Self {
        let bin = pg_bindir();
        assert_extension_installed();
        let dir = Scratch::new("pg");
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        let as_root = is_root();
        if as_root {
            run(Command::new("chown").arg("-R").arg(CLUSTER_OS_USER).arg(dir.path()), "chown scratch dir");
        }
        let mut cluster = Self { port: 0, bin, data, log, as_root, dir };
        cluster.pg_command("initdb", |c| {
            c.arg("-D").arg(&cluster.data).args(["-A", "trust", "-U", "postgres"]).args([
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
        });
        // A free port can be taken by another process before PostgreSQL binds it (tests run in
        // parallel): then start again on another one.
        for attempt in 1..=START_ATTEMPTS {
            cluster.port = free_port();
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40 \
                 -c shared_buffers=64MB",
                cluster.port,
                cluster.dir.path().display()
            );
            let output = cluster
                .command("pg_ctl")
                .arg("-D")
                .arg(&cluster.data)
                .arg("-l")
                .arg(&cluster.log)
                .args(["-w", "-t", "60", "-o", &options, "start"])
                .output()
                .expect("run pg_ctl");
            if output.status.success() {
                break;
            }
            let log = std::fs::read_to_string(&cluster.log).unwrap_or_default();
            if attempt == START_ATTEMPTS || !log.contains("could not bind") {
                print_log_tail("PostgreSQL log", &cluster.log);
                panic!("pg_ctl start failed: {}", String::from_utf8_lossy(&output.stdout));
            }
        }
        cluster
    }

    /// A new connection to the `postgres` database as the `postgres` superuser.
    pub fn connect(&self) -> postgres::Client {
        self.connect_to("postgres")
    }

    /// A new connection to database `dbname` as the `postgres` superuser.
    pub fn connect_to(&self, dbname: &str) -> postgres::Client {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname(dbname)
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to PostgreSQL on port {}: {e}", self.port))
    }

    /// A new connection like [`PgCluster::connect`]'s that keeps the messages (NOTICE, INFO)
    /// the server sends it.
    pub fn connect_with_notices(&self) -> (postgres::Client, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = notices.clone();
        let client = postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .notice_callback(move |notice| sink.lock().unwrap().push(notice.message().to_string()))
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to PostgreSQL on port {}: {e}", self.port));
        (client, notices)
    }

    /// A PostgreSQL program, run as the cluster's owner.
    fn command(&self, program: &str) -> Command {
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", CLUSTER_OS_USER, "--"]).arg(self.bin.join(program));
            c
        } else {
            Command::new(self.bin.join(program))
        }
    }

    fn pg_command(&self, program: &str, args: impl FnOnce(&mut Command) -> &mut Command) -> Output {
        let mut command = self.command(program);
        args(&mut command);
        run(&mut command, program)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_log_tail("PostgreSQL log", &self.log);
        }
        let _ = self.command("pg_ctl").arg("-D").arg(&self.data).args(["-m", "immediate", "stop"]).output();
    }
}

fn run(command: &mut Command, what: &str) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.trim_ascii() == b"0").unwrap_or(false)
}

/// `PG_CONFIG` (default: PostgreSQL 15 from Debian) decides which installation is used.
fn pg_config() -> PathBuf {
    std::env::var_os("PG_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/lib/postgresql/15/bin/pg_config".into())
}

fn pg_config_value(flag: &str) -> PathBuf {
    let output = run(Command::new(pg_config()).arg(flag), "pg_config");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn pg_bindir() -> PathBuf {
    pg_config_value("--bindir")
}

/// The extension directory of the PostgreSQL installation the tests use (control files and
/// install scripts).
pub fn extension_dir() -> PathBuf {
    pg_config_value("--sharedir").join("extension")
}

fn assert_extension_installed() {
    let control = extension_dir().join("pg_kalam.control");
    assert!(
        control.exists(),
        "pg_kalam is not installed into this PostgreSQL ({} missing); run scripts/test.sh, which builds and installs it",
        control.display()
    );
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}
