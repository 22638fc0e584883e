//! Writes that fail part way: the server killed before COMMIT, a cancelled INSERT ... SELECT,
//! concurrent writers to one table (and two transactions changing the same row).

use std::time::{Duration, Instant};

use kalam_e2e::{TestEnv, expect_pg_error};

fn rows(pg: &mut postgres::Client, sql: &str) -> Vec<String> {
    kalam_e2e::query_text(pg, sql).unwrap_or_else(|code| panic!("{sql}: {code}"))
}

fn fixture(env: &TestEnv) -> postgres::Client {
    env.kalam_sql("CREATE NAMESPACE app");
    env.kalam_sql("CREATE TABLE app.k (id BIGINT PRIMARY KEY, name TEXT)");
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.k (id bigint, name text) SERVER kalam_server;
         INSERT INTO app.k SELECT g, 'name ' || g FROM generate_series(1, 100) g;",
    )
    .unwrap();
    pg
}

// Goal: a server that dies between the writes and COMMIT makes COMMIT fail with a connection
// error (the transaction is rolled back in PostgreSQL), and the restarted server holds nothing
// of the transaction; the session goes on writing once the server is back.
#[test]
fn server_killed_before_commit_keeps_nothing() {
    let mut env = TestEnv::start();
    let mut pg = fixture(&env);
    pg.batch_execute(
        "BEGIN;
         INSERT INTO app.k SELECT g, 'lost' FROM generate_series(1000, 1999) g;
         UPDATE app.k SET name = 'lost' WHERE id = 1;
         DELETE FROM app.k WHERE id = 2;",
    )
    .unwrap();
    env.kalam.kill();
    let error = expect_pg_error(pg.batch_execute("COMMIT"), &["KalamDB server"]);
    // Either the commit could not be sent (the server was not reached: nothing committed) or
    // the connection broke under it (whether it committed is unknown, so PostgreSQL says so).
    match error.code.as_str() {
        "HV00N" => assert!(error.message.contains("not running or unreachable"), "{error:?}"),
        "08007" => assert!(error.message.contains("unknown"), "{error:?}"),
        _ => panic!("a connection error: {error:?}"),
    }
    assert_eq!(rows(&mut pg, "SELECT 1"), ["1"], "the session is healthy");

    env.kalam = env.kalam.restart();
    pg.batch_execute(&format!("ALTER SERVER kalam_server OPTIONS (SET port '{}')", env.kalam.flight_port))
        .unwrap();
    assert_eq!(rows(&mut pg, "SELECT count(*), min(id), max(id) FROM app.k"), ["100|1|100"]);
    assert_eq!(rows(&mut pg, "SELECT name FROM app.k WHERE id IN (1, 2) ORDER BY id"), ["name 1", "name 2"]);
    pg.batch_execute("INSERT INTO app.k VALUES (101, 'after')").unwrap();
    assert_eq!(rows(&mut pg, "SELECT name FROM app.k WHERE id = 101"), ["after"]);
}

// Goal: a cancelled INSERT ... SELECT, batches of it sent already, leaves no row behind (its
// statement and its transaction are rolled back on the server) and the backend goes on.
#[test]
fn cancelled_insert_select_leaves_nothing() {
    let env = TestEnv::start();
    let mut pg = fixture(&env);
    pg.batch_execute("ALTER SERVER kalam_server OPTIONS (ADD insert_batch_rows '2000')").unwrap();
    let pid: i32 = pg.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let mut other = env.pg();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let ok: bool = other.query_one("SELECT pg_cancel_backend($1)", &[&pid]).unwrap().get(0);
        assert!(ok);
        Instant::now()
    });
    let error = expect_pg_error(
        pg.batch_execute("INSERT INTO app.k SELECT g, 'big' FROM generate_series(1000, 100000000) g"),
        &["canceling statement"],
    );
    let cancelled_at = canceller.join().unwrap();
    assert_eq!(error.code, "57014", "{error:?}");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(3),
        "stopped {:?} after the cancel",
        cancelled_at.elapsed()
    );
    assert_eq!(rows(&mut pg, "SELECT count(*) FROM app.k"), ["100"]);
    let mut fresh = env.pg();
    assert_eq!(rows(&mut fresh, "SELECT count(*) FROM app.k WHERE name = 'big'"), ["0"]);
    pg.batch_execute("INSERT INTO app.k VALUES (101, 'after')").unwrap();
    assert_eq!(rows(&mut pg, "SELECT count(*) FROM app.k"), ["101"]);
}

// Goal: sessions writing to one table at once all keep their rows; two transactions changing
// the same row: the first to commit wins, the second gets a serialization failure (40001) at
// COMMIT and leaves nothing; two inserting the same key: the second gets 23505.
#[test]
fn concurrent_writers() {
    let env = TestEnv::start();
    let mut pg = fixture(&env);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mut session = env.pg();
            std::thread::spawn(move || {
                for round in 0..5 {
                    let first = 10_000 + w * 10_000 + round * 1_000;
                    session
                        .batch_execute(&format!(
                            "BEGIN;
                             INSERT INTO app.k SELECT g, 'writer {w}' FROM generate_series({first}, {}) g;
                             UPDATE app.k SET name = name || ' done' WHERE id = {first};
                             COMMIT;",
                            first + 999
                        ))
                        .unwrap_or_else(|e| panic!("writer {w}: {e}"));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(
        rows(
            &mut pg,
            "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE name LIKE '% done') FROM app.k"
        ),
        ["20100|20100|20"]
    );

    let mut a = env.pg();
    let mut b = env.pg();
    a.batch_execute("BEGIN; UPDATE app.k SET name = 'a' WHERE id = 1;").unwrap();
    b.batch_execute("BEGIN; UPDATE app.k SET name = 'b' WHERE id = 1;").unwrap();
    a.batch_execute("COMMIT").unwrap();
    let error = expect_pg_error(b.batch_execute("COMMIT"), &["retry"]);
    assert_eq!(error.code, "40001", "{error:?}");
    assert_eq!(rows(&mut pg, "SELECT name FROM app.k WHERE id = 1"), ["a"]);

    a.batch_execute("BEGIN; INSERT INTO app.k VALUES (500000, 'a');").unwrap();
    b.batch_execute("BEGIN; INSERT INTO app.k VALUES (500000, 'b');").unwrap();
    a.batch_execute("COMMIT").unwrap();
    let error = expect_pg_error(b.batch_execute("COMMIT"), &["duplicate key"]);
    assert_eq!(error.code, "23505", "{error:?}");
    assert_eq!(rows(&mut pg, "SELECT name FROM app.k WHERE id = 500000"), ["a"]);
}
