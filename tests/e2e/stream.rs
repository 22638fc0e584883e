//! The scan as a stream: cancel and statement_timeout mid-scan, a server that dies or goes
//! silent, bounded memory, a query that reads no column, tuning options and EXPLAIN ANALYZE.

use std::time::{Duration, Instant};

use kalam_e2e::{TestEnv, expect_pg_error};

/// A view that streams rows for minutes: 10 billion generated rows.
fn create_endless(env: &TestEnv) {
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql("CREATE VIEW app.endless AS SELECT value AS id, 'payload-' || CAST(value AS VARCHAR) AS body FROM generate_series(1, 10000000000)");
    env.kalam_sql("CREATE TABLE app.small (id BIGINT)");
    env.kalam_sql("INSERT INTO app.small VALUES (1), (2), (3)");
}

/// Reads every row with its text: a scan of zero-width rows (count(*)) would let the HTTP/2
/// window hold hundreds of millions of rows, which the backend must count through before it can
/// see what happened after them.
const ENDLESS_SCAN: &str = "SELECT count(body) FROM app.endless";

fn connect(env: &TestEnv, server_options: &str) -> postgres::Client {
    let mut pg = env.pg();
    pg.batch_execute(&format!(
        "CREATE EXTENSION pg_kalam;
         CREATE SERVER k FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '{}'{server_options});
         CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.endless (id bigint, body text) SERVER k;
         CREATE FOREIGN TABLE app.small (id bigint) SERVER k;",
        env.kalam.flight_port
    ))
    .unwrap();
    pg
}

fn backend_works(pg: &mut postgres::Client) {
    let n: i64 = pg.query_one("SELECT count(*) FROM app.small", &[]).unwrap().get(0);
    assert_eq!(n, 3);
}

// Goal: statement_timeout and a query cancel stop a scan that is streaming rows within a
// second, and the same backend then runs the next query.
#[test]
fn timeout_and_cancel_stop_a_streaming_scan() {
    let env = TestEnv::start();
    create_endless(&env);
    let mut pg = connect(&env, "");
    pg.batch_execute("SET statement_timeout = '700ms'").unwrap();
    let started = Instant::now();
    let e = expect_pg_error(pg.query(ENDLESS_SCAN, &[]), &["statement timeout"]);
    assert_eq!(e.code, "57014", "{e:?}");
    assert!(started.elapsed() < Duration::from_millis(1700), "took {:?}", started.elapsed());
    pg.batch_execute("SET statement_timeout = 0").unwrap();
    backend_works(&mut pg);

    let pid: i32 = pg.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let mut other = env.pg();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        let cancelled_at = Instant::now();
        let ok: bool = other.query_one("SELECT pg_cancel_backend($1)", &[&pid]).unwrap().get(0);
        assert!(ok);
        cancelled_at
    });
    let e = expect_pg_error(pg.query(ENDLESS_SCAN, &[]), &["canceling statement"]);
    let cancelled_at = canceller.join().unwrap();
    assert_eq!(e.code, "57014", "{e:?}");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(1),
        "stopped {:?} after the cancel",
        cancelled_at.elapsed()
    );
    backend_works(&mut pg);
}

// Goal: a server killed mid-scan is a clear connection error at once, and once the server is
// back the same backend connects again.
#[test]
fn server_killed_mid_scan() {
    let mut env = TestEnv::start();
    create_endless(&env);
    let mut pg = connect(&env, ", timeout '10000'");
    backend_works(&mut pg);
    let pid = env.kalam.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        // SAFETY: signals the test's own child process.
        unsafe { libc_kill(pid as i32, 9) };
        Instant::now()
    });
    let e = expect_pg_error(
        pg.query(ENDLESS_SCAN, &[]),
        &["the connection to the KalamDB server at 127.0.0.1", "broke while reading a result"],
    );
    let killed_at = killer.join().unwrap();
    assert_eq!(e.code, "08006", "{e:?}");
    assert!(killed_at.elapsed() < Duration::from_secs(2), "noticed {:?} after the kill", killed_at.elapsed());
    // The server comes back on another port: after ALTER SERVER the backend's cached
    // connection (made with the old options) is replaced by a new one.
    env.kalam = env.kalam.restart();
    pg.batch_execute(&format!("ALTER SERVER k OPTIONS (SET port '{}')", env.kalam.flight_port)).unwrap();
    backend_works(&mut pg);
}

// Goal: a server that stops answering mid-scan (a silent network) is an error within the
// server's timeout option.
#[test]
fn silent_server_times_out() {
    let env = TestEnv::start();
    create_endless(&env);
    let mut pg = connect(&env, ", timeout '1500'");
    backend_works(&mut pg);
    let pid = env.kalam.pid() as i32;
    let pauser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: signals the test's own child process (SIGSTOP).
        unsafe { libc_kill(pid, 19) };
    });
    let started = Instant::now();
    let e = expect_pg_error(pg.query(ENDLESS_SCAN, &[]), &["did not answer within 1500 ms"]);
    pauser.join().unwrap();
    // SAFETY: SIGCONT to the same child, so it can be shut down.
    unsafe { libc_kill(pid, 18) };
    assert_eq!(e.code, "08006", "{e:?}");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(500 + 1500 + 1500), "took {elapsed:?}");
    backend_works(&mut pg);
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

/// Peak resident memory of a PostgreSQL backend, in kB, read by the backend itself.
fn backend_peak_kb(pg: &mut postgres::Client) -> i64 {
    let status: String = pg.query_one("SELECT pg_read_file('/proc/self/status')", &[]).unwrap().get(0);
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

// Goal: a scan of far more data than the prefetch queue holds keeps the backend's memory flat:
// 400 MB of rows go through a backend whose peak grows by less than 64 MB.
#[test]
fn memory_stays_bounded_on_a_large_scan() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql(
        "CREATE VIEW app.wide AS SELECT value AS id, repeat('x', 800) AS body FROM generate_series(1, 500000)",
    );
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE FOREIGN TABLE wide (id bigint, body text) SERVER kalam_server
             OPTIONS (namespace 'app', table 'wide', prefetch_batches '2')",
    )
    .unwrap();
    // Warm up: the connection, the I/O thread and the first batches.
    pg.query_one("SELECT count(*) FROM (SELECT * FROM wide LIMIT 10000 OFFSET 0) w WHERE w IS NOT NULL", &[])
        .unwrap();
    let before = backend_peak_kb(&mut pg);
    let row = pg
        .query_one(
            "SELECT count(*), sum(length(body)) FROM (SELECT * FROM wide OFFSET 0) w WHERE w IS NOT NULL",
            &[],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (500_000, 400_000_000));
    let grown_kb = backend_peak_kb(&mut pg) - before;
    assert!(grown_kb < 64 * 1024, "peak grew by {grown_kb} kB while scanning 400 MB");
}

// Goal: a count(*) PostgreSQL computes fetches no column (EXPLAIN shows it) and counts right
// (a plain count(*) runs on the server); small conversion batches give the same answers;
// EXPLAIN ANALYZE reports the remote side.
#[test]
fn count_star_tuning_and_explain_analyze() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql("CREATE TABLE app.t (id BIGINT, v DOUBLE, s VARCHAR)");
    env.kalam_sql("INSERT INTO app.t SELECT value, CAST(value AS DOUBLE) / 2, 's' || CAST(value AS VARCHAR) FROM generate_series(1, 30000)");
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE FOREIGN TABLE t (id bigint, v double precision, s text) SERVER kalam_server
             OPTIONS (namespace 'app', table 't');
         CREATE FOREIGN TABLE t_small (id bigint, v double precision, s text) SERVER kalam_server
             OPTIONS (namespace 'app', table 't', scan_batch_rows '100', prefetch_batches '1');",
    )
    .unwrap();
    let explain = |pg: &mut postgres::Client, sql: &str| -> Vec<String> {
        pg.query(&format!("EXPLAIN (VERBOSE, COSTS OFF) {sql}"), &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let pushed = explain(&mut pg, "SELECT count(*) FROM t");
    assert!(
        pushed.iter().any(|l| l.contains(r#"Remote SQL: SELECT count(*) AS a0 FROM "app"."t""#)),
        "{pushed:#?}"
    );
    // A volatile WHERE stays local, and so does the count over it.
    let plan = explain(&mut pg, "SELECT count(*) FROM t WHERE random() >= 0");
    assert!(plan.iter().any(|l| l.contains(r#"Remote SQL: SELECT FROM "app"."t""#)), "{plan:#?}");
    assert!(plan.iter().any(|l| l.contains("Columns Fetched: (none)")), "{plan:#?}");
    for table in ["t", "t_small"] {
        let row = pg
            .query_one(
                &format!("SELECT count(*), sum(id)::bigint, sum(v), count(DISTINCT s) FROM {table}"),
                &[],
            )
            .unwrap();
        let got = (row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, f64>(2), row.get::<_, i64>(3));
        assert_eq!(got, (30_000, 450_015_000, 225_007_500.0, 30_000), "{table}");
        for sql in [
            format!("SELECT count(*) FROM {table}"),
            format!("SELECT count(*) FROM {table} WHERE random() >= 0"),
        ] {
            let n: i64 = pg.query_one(&sql, &[]).unwrap().get(0);
            assert_eq!(n, 30_000, "{sql}");
        }
    }
    let plan: Vec<String> = pg
        .query("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT sum(v) FROM t_small", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let text = plan.join("\n");
    assert!(text.contains("Remote Rows: 30000"), "{text}");
    assert!(text.contains("Remote Batches: "), "{text}");
    assert!(text.contains("Remote Wait Time: ") && text.contains("Convert Time: "), "{text}");
    // What came over the wire: 30,000 doubles are 240,000 bytes, plus message headers.
    let bytes: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Remote Bytes: ")?.parse().ok())
        .unwrap_or_else(|| panic!("no Remote Bytes in {text}"));
    assert!((240_000..300_000).contains(&bytes), "{text}");
}
