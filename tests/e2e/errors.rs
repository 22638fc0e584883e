//! Bad input: each case is a clear PostgreSQL ERROR and the backend keeps working.

use kalam_e2e::{TestEnv, expect_pg_error, free_port};

fn assert_backend_healthy(pg: &mut postgres::Client) {
    let one: i32 = pg.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
}

// Goal: options are validated at CREATE/ALTER time, with hints that list what is valid.
#[test]
fn bad_options_are_rejected_at_create_time() {
    let env = TestEnv::start();
    let mut pg = env.pg();
    pg.batch_execute("CREATE EXTENSION pg_kalam").unwrap();

    let e = expect_pg_error(
        pg.batch_execute(
            "CREATE SERVER s FOREIGN DATA WRAPPER pg_kalam OPTIONS (host 'h', port '1', colour 'red')",
        ),
        &["invalid option \"colour\""],
    );
    assert_eq!(
        e.hint.as_deref(),
        Some(
            "Valid options here are: host, port, auth_mode, auth_header, login_user, login_password, timeout, \
             ca_cert, client_cert, client_key, scan_batch_rows, insert_batch_rows, prefetch_batches, use_remote_estimate, \
             fdw_startup_cost, fdw_tuple_cost"
        )
    );
    expect_pg_error(
        pg.batch_execute("CREATE SERVER s FOREIGN DATA WRAPPER pg_kalam OPTIONS (host 'h', port '70000')"),
        &["invalid value for option \"port\""],
    );
    expect_pg_error(
        pg.batch_execute("CREATE SERVER s FOREIGN DATA WRAPPER pg_kalam OPTIONS (port '2910')"),
        &["option \"host\" is required"],
    );
    expect_pg_error(
        pg.batch_execute(
            "CREATE SERVER s FOREIGN DATA WRAPPER pg_kalam OPTIONS (host 'h', port '1', timeout '0')",
        ),
        &["invalid value for option \"timeout\""],
    );

    for bad in ["-1", "abc", "NaN", "inf"] {
        expect_pg_error(
            pg.batch_execute(&format!(
                "CREATE SERVER s FOREIGN DATA WRAPPER pg_kalam OPTIONS (host 'h', port '1', fdw_tuple_cost '{bad}')"
            )),
            &["invalid value for option \"fdw_tuple_cost\""],
        );
    }
    pg.batch_execute("CREATE SERVER s FOREIGN DATA WRAPPER pg_kalam OPTIONS (host 'h', port '1')").unwrap();
    expect_pg_error(
        pg.batch_execute("CREATE FOREIGN TABLE t (a int) SERVER s OPTIONS (fdw_startup_cost '1')"),
        &["invalid option \"fdw_startup_cost\" for a pg_kalam foreign table"],
    );
    pg.batch_execute("ALTER SERVER s OPTIONS (ADD fdw_startup_cost '25.5', ADD fdw_tuple_cost '0')").unwrap();
    expect_pg_error(
        pg.batch_execute("ALTER SERVER s OPTIONS (SET port 'abc')"),
        &["invalid value for option \"port\""],
    );
    expect_pg_error(pg.batch_execute("ALTER SERVER s OPTIONS (DROP host)"), &["option \"host\" is required"]);
    pg.batch_execute("ALTER SERVER s OPTIONS (SET port '2911', ADD timeout '5000')").unwrap();

    let e = expect_pg_error(
        pg.batch_execute("CREATE FOREIGN TABLE t (a int) SERVER s OPTIONS (tabel 'x')"),
        &["invalid option \"tabel\""],
    );
    assert_eq!(
        e.hint.as_deref(),
        Some(
            "Valid options here are: scan_batch_rows, insert_batch_rows, prefetch_batches, use_remote_estimate, namespace, table, table_type, owns_remote"
        )
    );
    expect_pg_error(
        pg.batch_execute("CREATE FOREIGN TABLE t (a int) SERVER s OPTIONS (table_type 'global')"),
        &["invalid value for option \"table_type\""],
    );
    expect_pg_error(
        pg.batch_execute("CREATE FOREIGN TABLE t (a int) SERVER s OPTIONS (prefetch_batches '0')"),
        &["invalid value for option \"prefetch_batches\""],
    );
    expect_pg_error(
        pg.batch_execute("CREATE FOREIGN TABLE t (a int) SERVER s OPTIONS (host 'x')"),
        &["invalid option \"host\" for a pg_kalam foreign table (it belongs on a foreign server)"],
    );
    assert_backend_healthy(&mut pg);
}

// Goal: contradictory or incomplete authentication and TLS options are rejected at CREATE/ALTER
// time, and secrets are never echoed.
#[test]
fn contradictory_auth_and_tls_options_are_rejected() {
    let env = TestEnv::start();
    let mut pg = env.pg();
    pg.batch_execute("CREATE EXTENSION pg_kalam").unwrap();
    let server = |options: &str| {
        format!("CREATE SERVER s FOREIGN DATA WRAPPER pg_kalam OPTIONS (host 'h', port '1', {options})")
    };
    let cases: &[(&str, &str)] = &[
        ("auth_mode 'none', auth_header 'Bearer t0ps3cret'", "auth_mode 'none' contradicts"),
        ("auth_mode 'static_header', login_user 'u'", "auth_mode 'static_header' sends auth_header"),
        ("auth_mode 'account_login', auth_header 'Bearer t0ps3cret'", "auth_mode 'account_login' logs in"),
        ("login_user 'u', login_password 't0ps3cret'", "auth_mode is not 'account_login'"),
        ("auth_header 'Bearer t0ps3cret', login_user 'u'", "contradict each other"),
        ("auth_mode 'kerberos'", "invalid value for option \"auth_mode\""),
        (
            "client_cert '-----BEGIN CERTIFICATE-----x'",
            "\"client_cert\" and \"client_key\" must be given together",
        ),
        ("client_key '-----BEGIN PRIVATE KEY-----t0ps3cret'", "must be given together"),
        (
            "client_cert '-----BEGIN CERTIFICATE-----x', client_key '-----BEGIN PRIVATE KEY-----t0ps3cret'",
            "a client certificate needs TLS",
        ),
        ("ca_cert '/nonexistent/ca.pem'", "cannot read the file of option \"ca_cert\" (/nonexistent/ca.pem)"),
        ("ca_cert 'not pem at all'", "cannot read the file of option \"ca_cert\""),
        ("scan_batch_rows '0'", "invalid value for option \"scan_batch_rows\""),
        ("auth_header 'Bearer a\nb'", "invalid value for option \"auth_header\": \"(hidden)\""),
    ];
    for (options, needle) in cases {
        let e = expect_pg_error(pg.batch_execute(&server(options)), &[needle]);
        assert!(!format!("{e:?}").contains("t0ps3cret"), "{options}: {e:?}");
    }
    pg.batch_execute(&server("auth_mode 'account_login'")).unwrap();
    expect_pg_error(
        pg.batch_execute("CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (login_user 'u', host 'h')"),
        &["invalid option \"host\" for a pg_kalam user mapping"],
    );
    expect_pg_error(
        pg.batch_execute(
            "CREATE USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (login_user 'u', auth_header 'Bearer t0ps3cret')",
        ),
        &["contradict each other"],
    );
    // Credentials the server needs but nobody gives are an error when a query connects.
    pg.batch_execute("CREATE FOREIGN TABLE t (a int) SERVER s").unwrap();
    expect_pg_error(pg.query("SELECT * FROM t", &[]), &["auth_mode needs login_user and login_password"]);
    assert_backend_healthy(&mut pg);
}

// Goal: a server nobody listens on gives the documented message naming the address, fast.
#[test]
fn unreachable_server_is_a_clear_error() {
    let env = TestEnv::start();
    let mut pg = env.pg();
    let port = free_port();
    pg.batch_execute(&format!(
        "CREATE EXTENSION pg_kalam;
         CREATE SERVER gone FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '{port}', timeout '3000');
         CREATE FOREIGN TABLE t (a bigint) SERVER gone OPTIONS (namespace 'app', table 't');"
    ))
    .unwrap();
    let e = expect_pg_error(
        pg.query("SELECT * FROM t", &[]),
        &[&format!("KalamDB server is not running or unreachable at 127.0.0.1:{port}")],
    );
    assert_eq!(e.code, "HV00N", "{e:?}"); // fdw_unable_to_establish_connection
    assert_backend_healthy(&mut pg);
}

// Goal: an unknown remote table and a column whose type does not match are errors that name
// the table or column; EXPLAIN alone does not need the server.
#[test]
fn unknown_table_and_type_mismatch() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql("CREATE TABLE app.t (id BIGINT, name VARCHAR)");
    env.kalam_sql("INSERT INTO app.t VALUES (1, 'x')");
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.missing (id bigint) SERVER kalam_server;
         CREATE FOREIGN TABLE app.t (id integer, name text) SERVER kalam_server OPTIONS (table 't');",
    )
    .unwrap();
    expect_pg_error(pg.query("SELECT * FROM app.missing", &[]), &["KalamDB server error", "missing"]);
    expect_pg_error(
        pg.query("SELECT id FROM app.t", &[]),
        &["column \"id\" has type integer but the KalamDB server sends Int64"],
    );
    // Only the column that is fetched matters: name alone reads fine.
    let name: String = pg.query_one("SELECT name FROM app.t", &[]).unwrap().get(0);
    assert_eq!(name, "x");
    // A column type pg_kalam cannot read is an error only when the query reads that column.
    pg.batch_execute(
        "CREATE FOREIGN TABLE app.wide (name text, spot point) SERVER kalam_server OPTIONS (table 't')",
    )
    .unwrap();
    let name: String = pg.query_one("SELECT name FROM app.wide", &[]).unwrap().get(0);
    assert_eq!(name, "x");
    let e = expect_pg_error(
        pg.query("SELECT spot FROM app.wide", &[]),
        &["column \"spot\" of foreign table \"wide\" has type point, which pg_kalam cannot read"],
    );
    assert!(e.hint.unwrap_or_default().starts_with("pg_kalam reads smallint"));
    pg.batch_execute("EXPLAIN SELECT * FROM app.missing").unwrap();
    assert_backend_healthy(&mut pg);
}

// Goal: statement_timeout stops a scan while the server has not answered yet (a slow remote
// query), well before the server would finish; the backend then runs the next query.
#[test]
fn statement_timeout_while_server_is_silent() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE SCHEMA app");
    // Billions of rows scanned before the first (and only) row: the server stays silent.
    env.kalam_sql(
        "CREATE VIEW app.slow AS SELECT value AS id FROM generate_series(1, 5000000000) WHERE value = 4999999999",
    );
    env.kalam_sql("CREATE TABLE app.fast (id BIGINT)");
    env.kalam_sql("INSERT INTO app.fast VALUES (7)");
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.slow (id bigint) SERVER kalam_server;
         CREATE FOREIGN TABLE app.fast (id bigint) SERVER kalam_server;
         SET statement_timeout = '300ms';",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let e = expect_pg_error(pg.query("SELECT * FROM app.slow", &[]), &["statement timeout"]);
    let elapsed = started.elapsed();
    assert_eq!(e.code, "57014", "{e:?}"); // query_canceled
    assert!(elapsed < std::time::Duration::from_secs(3), "cancel took {elapsed:?}");
    let id: i64 = pg.query_one("SELECT id FROM app.fast", &[]).unwrap().get(0);
    assert_eq!(id, 7);
}

// Goal: remote values PostgreSQL cannot represent are errors naming the column, not garbage.
#[test]
fn values_postgres_cannot_hold_are_errors() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql("CREATE TABLE app.odd (id BIGINT, d DATE, s VARCHAR)");
    env.kalam_sql("INSERT INTO app.odd VALUES (1, arrow_cast(2147483000, 'Date32'), 'fine')");
    env.kalam_sql("INSERT INTO app.odd VALUES (2, DATE '2024-02-29', concat('a', chr(0), 'b'))");
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.odd (id bigint, d date, s text) SERVER kalam_server;",
    )
    .unwrap();
    expect_pg_error(
        pg.query("SELECT d FROM app.odd", &[]),
        &["date out of PostgreSQL's range in column \"d\""],
    );
    let e = expect_pg_error(
        pg.query("SELECT s FROM app.odd", &[]),
        &["column \"s\" holds a value PostgreSQL text cannot store"],
    );
    assert_eq!(e.detail.as_deref(), Some("The value contains a NUL character (0x00)."));
    // A NUL anywhere in a short, medium or long value of any string layout.
    for layout in ["Utf8", "LargeUtf8", "Utf8View"] {
        for before in [3, 20, 100] {
            let name = format!("nul_{layout}_{before}");
            env.kalam_sql(&format!(
                "CREATE VIEW app.{name} AS SELECT id, arrow_cast(CASE WHEN id = 2
                     THEN concat(repeat('a', {before}), chr(0), 'b') ELSE 'fine' END, '{layout}') AS s FROM app.odd"
            ));
            pg.batch_execute(&format!(
                "CREATE FOREIGN TABLE app.{name} (id bigint, s text) SERVER kalam_server"
            ))
            .unwrap();
            expect_pg_error(
                pg.query(&format!("SELECT s FROM app.{name}"), &[]),
                &["column \"s\" holds a value PostgreSQL text cannot store"],
            );
        }
    }
    // Only fetched columns are converted: the other columns of the same rows read fine.
    let ids: Vec<i64> =
        pg.query("SELECT id FROM app.odd ORDER BY id", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [1, 2]);
    assert_backend_healthy(&mut pg);
}
