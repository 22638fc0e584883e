//! End-to-end harness: every test gets a real `kalamdb-server` and a real PostgreSQL 15
//! cluster with pg_kalam installed, both on free loopback ports with their own directories,
//! and both torn down when the [`TestEnv`] is dropped — also when the test fails or panics.
//!
//! ```ignore
//! let env = TestEnv::start();
//! env.kalam_sql("CREATE TABLE app.t (id BIGINT)");
//! let mut pg = env.pg_with_server();   // CREATE EXTENSION + CREATE SERVER kalam_server
//! pg.batch_execute("CREATE FOREIGN TABLE app.t (id bigint) SERVER kalam_server").unwrap();
//! ```
//!
//! Prerequisites (installed by `scripts/test.sh`): PostgreSQL 15 with the freshly built
//! extension, and the `kalamdb-server` binary next to the test binary's target directory (or
//! named by `KALAMDB_SERVER_BIN`).

mod certs;
mod http;
mod kalamdb;
mod postgres_cluster;
mod scratch;

pub use certs::TestCerts;
pub use kalamdb::KalamServer;
pub use postgres_cluster::PgCluster;

/// One test's world: a KalamDB server and a PostgreSQL cluster.
pub struct TestEnv {
    // Field order is drop order: PostgreSQL (a client of the server) stops first.
    pub pg: PgCluster,
    pub kalam: KalamServer,
}

impl TestEnv {
    pub fn start() -> Self {
        let kalam = KalamServer::start();
        let pg = PgCluster::start();
        Self { pg, kalam }
    }

    /// Like [`TestEnv::start`], with a server that requires credentials (`root` / `root_password`).
    pub fn start_with_password(root_password: &str) -> Self {
        let kalam = KalamServer::start_with_password(root_password);
        let pg = PgCluster::start();
        Self { pg, kalam }
    }

    /// Like [`TestEnv::start`], with TLS on the server's Flight SQL port (see
    /// [`KalamServer::start_tls`]); [`TestEnv::pg_with_server`] does not set TLS options.
    pub fn start_tls(certs: &TestCerts, mutual: bool) -> Self {
        let kalam = KalamServer::start_tls(certs, mutual);
        let pg = PgCluster::start();
        Self { pg, kalam }
    }

    /// A connection to the cluster's `postgres` database.
    pub fn pg(&self) -> postgres::Client {
        self.pg.connect()
    }

    /// A connection to the cluster's `postgres` database that keeps the messages it receives.
    pub fn pg_with_notices(&self) -> (postgres::Client, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        self.pg.connect_with_notices()
    }

    /// A connection where pg_kalam is created and `kalam_server` points at this test's server.
    pub fn pg_with_server(&self) -> postgres::Client {
        let mut client = self.pg();
        client
            .batch_execute(&format!(
                "CREATE EXTENSION pg_kalam;
                 CREATE SERVER kalam_server FOREIGN DATA WRAPPER pg_kalam
                     OPTIONS (host '127.0.0.1', port '{}');",
                self.kalam.flight_port
            ))
            .expect("create extension and server");
        client
    }

    /// Runs SQL on the KalamDB server through its HTTP API; panics unless it succeeds.
    pub fn kalam_sql(&self, sql: &str) -> serde_json::Value {
        self.kalam.sql(sql)
    }
}

/// A query's rows (simple protocol), each as its values' text joined by `|` (NULL as `NULL`),
/// in the order the server sent them; or its error's SQLSTATE.
pub fn query_text(pg: &mut postgres::Client, sql: &str) -> Result<Vec<String>, String> {
    let messages = pg
        .simple_query(sql)
        .map_err(|e| e.as_db_error().map(|d| d.code().code().to_string()).unwrap_or_else(|| e.to_string()))?;
    Ok(messages
        .into_iter()
        .filter_map(|message| match message {
            postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect())
}

/// Asserts that `result` is an error whose message contains every one of `needles`, and
/// returns the full error (message, detail, hint) for further checks.
pub fn expect_pg_error<T: std::fmt::Debug>(result: Result<T, postgres::Error>, needles: &[&str]) -> PgError {
    let error = match result {
        Ok(value) => panic!("expected an error containing {needles:?}, got Ok({value:?})"),
        Err(e) => PgError::from(e),
    };
    for needle in needles {
        assert!(error.message.contains(needle), "error {error:?} does not contain {needle:?}");
    }
    error
}

/// The parts of a PostgreSQL error a test looks at.
#[derive(Debug)]
pub struct PgError {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl From<postgres::Error> for PgError {
    fn from(e: postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => PgError {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                hint: db.hint().map(str::to_string),
            },
            None => PgError { code: String::new(), message: e.to_string(), detail: None, hint: None },
        }
    }
}

pub use postgres_cluster::{extension_dir, free_port};

/// This package's directory in the checkout running the tests (cargo and nextest set it for
/// each test process): a build directory shared by two checkouts may hold this code compiled
/// in the other one.
pub fn package_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
}

/// The plan of `query` (`EXPLAIN (VERBOSE, COSTS OFF)`, headed by the query), checked against
/// the golden file `tests/e2e/explain/<name>.out`: `Err` says how they differ. With
/// `KALAM_UPDATE_GOLDEN=1` the file is rewritten instead.
pub fn golden_plan(pg: &mut postgres::Client, name: &str, query: &str) -> Result<String, String> {
    let plan = query_text(pg, &format!("EXPLAIN (VERBOSE, COSTS OFF) {query}"))
        .unwrap_or_else(|code| panic!("{name}: EXPLAIN failed: {code}"));
    let actual = format!("-- {query}\n{}\n", plan.join("\n"));
    let path = format!("{}/e2e/explain/{name}.out", package_dir());
    if std::env::var("KALAM_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &actual).unwrap();
        return Ok(actual);
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| format!("(no file {path})\n"));
    if expected == actual { Ok(actual) } else { Err(format!("expected:\n{expected}actual:\n{actual}")) }
}
