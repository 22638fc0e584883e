//! Connecting: authentication modes, user mappings, sessions, TLS and user tables.

use kalam_e2e::{KalamServer, PgCluster, TestCerts, TestEnv, expect_pg_error};

const PASSWORD: &str = "s3cret-root-pw";

fn create_shared_table(kalam: &KalamServer) {
    kalam.sql("CREATE SCHEMA app");
    kalam.sql("CREATE TABLE app.t (id BIGINT, name VARCHAR)");
    kalam.sql("INSERT INTO app.t VALUES (1, 'one'), (2, 'two')");
}

fn count(pg: &mut postgres::Client, sql: &str) -> i64 {
    pg.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e:?}")).get(0)
}

/// Open sessions of `user` on the server.
fn sessions_of(kalam: &KalamServer, user: &str) -> i64 {
    let result = kalam.sql(&format!("SELECT count(*) AS n FROM system.sessions WHERE user_id = '{user}'"));
    result["results"][0]["rows"][0]["n"].as_i64().unwrap()
}

// Goal: account_login logs in once per backend and reuses the session for every query; the
// credentials may come from a user mapping; a wrong password is a clear error that never shows
// the password, and the backend keeps working.
#[test]
fn account_login_reuses_one_session_per_backend() {
    let env = TestEnv::start_with_password(PASSWORD);
    create_shared_table(&env.kalam);
    let mut pg = env.pg();
    pg.batch_execute(&format!(
        "CREATE EXTENSION pg_kalam;
         CREATE SERVER k FOREIGN DATA WRAPPER pg_kalam
             OPTIONS (host '127.0.0.1', port '{}', auth_mode 'account_login');
         CREATE USER MAPPING FOR CURRENT_USER SERVER k OPTIONS (login_user 'root', login_password '{PASSWORD}');
         CREATE FOREIGN TABLE t (id bigint, name text) SERVER k OPTIONS (namespace 'app', table 't');",
        env.kalam.flight_port
    ))
    .unwrap();
    let before = sessions_of(&env.kalam, "root");
    for _ in 0..3 {
        assert_eq!(count(&mut pg, "SELECT count(*) FROM t"), 2);
    }
    assert_eq!(sessions_of(&env.kalam, "root"), before + 1, "one login for three queries");
    // A second backend has its own connection and session.
    let mut other = env.pg();
    assert_eq!(count(&mut other, "SELECT count(*) FROM t"), 2);
    assert_eq!(sessions_of(&env.kalam, "root"), before + 2);

    // A changed mapping is a new connection with the new credentials.
    pg.batch_execute(
        "ALTER USER MAPPING FOR CURRENT_USER SERVER k OPTIONS (SET login_password 'wrong-pw-42')",
    )
    .unwrap();
    let e = expect_pg_error(
        pg.query("SELECT count(*) FROM t", &[]),
        &["refused the login of user \"root\"", "check login_user and login_password"],
    );
    assert_eq!(e.code, "28P01", "{e:?}");
    let everything = format!("{e:?}");
    assert!(!everything.contains("wrong-pw-42") && !everything.contains(PASSWORD), "{everything}");
    pg.batch_execute(&format!(
        "ALTER USER MAPPING FOR CURRENT_USER SERVER k OPTIONS (SET login_password '{PASSWORD}')"
    ))
    .unwrap();
    assert_eq!(count(&mut pg, "SELECT count(*) FROM t"), 2);
}

// Goal: a session that expired while the backend was idle is renewed or replaced by a new
// login without the query failing.
#[test]
fn expired_session_logs_in_again_transparently() {
    let kalam = KalamServer::start_with_env(&[
        ("KALAMDB_ROOT_PASSWORD", PASSWORD),
        ("KALAMDB_SESSION_LEASE_SECS", "1"),
    ]);
    create_shared_table(&kalam);
    let cluster = PgCluster::start();
    let mut pg = cluster.connect();
    pg.batch_execute(&format!(
        "CREATE EXTENSION pg_kalam;
         CREATE SERVER k FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '{}',
             auth_mode 'account_login', login_user 'root', login_password '{PASSWORD}');
         CREATE FOREIGN TABLE t (id bigint) SERVER k OPTIONS (namespace 'app', table 't');",
        kalam.flight_port
    ))
    .unwrap();
    assert_eq!(count(&mut pg, "SELECT count(*) FROM t"), 2);
    // Queries within the lease keep the session alive past its first expiry.
    for _ in 0..4 {
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert_eq!(count(&mut pg, "SELECT count(*) FROM t"), 2);
    }
    // Idle for longer than the lease: the session is gone on the server.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(count(&mut pg, "SELECT count(*) FROM t"), 2);
    drop(pg);
    drop(cluster);
}

// Goal: static_header sends a fixed authorization header (here a bearer token); a bad token is
// an authentication error.
#[test]
fn static_header_authenticates_every_request() {
    let secret = "a-jwt-secret-that-is-at-least-32-characters";
    let kalam =
        KalamServer::start_with_env(&[("KALAMDB_ROOT_PASSWORD", PASSWORD), ("KALAMDB_JWT_SECRET", secret)]);
    create_shared_table(&kalam);
    let cluster = PgCluster::start();
    let mut pg = cluster.connect();
    pg.batch_execute(&format!(
        "CREATE EXTENSION pg_kalam;
         CREATE SERVER good FOREIGN DATA WRAPPER pg_kalam
             OPTIONS (host '127.0.0.1', port '{port}', auth_header 'Bearer {secret}');
         CREATE SERVER bad FOREIGN DATA WRAPPER pg_kalam
             OPTIONS (host '127.0.0.1', port '{port}', auth_mode 'static_header', auth_header 'Bearer nope-nope');
         CREATE SERVER anonymous FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '{port}');
         CREATE FOREIGN TABLE good_t (id bigint) SERVER good OPTIONS (namespace 'app', table 't');
         CREATE FOREIGN TABLE bad_t (id bigint) SERVER bad OPTIONS (namespace 'app', table 't');
         CREATE FOREIGN TABLE anonymous_t (id bigint) SERVER anonymous OPTIONS (namespace 'app', table 't');",
        port = kalam.flight_port
    ))
    .unwrap();
    assert_eq!(count(&mut pg, "SELECT count(*) FROM good_t"), 2);
    let e = expect_pg_error(pg.query("SELECT * FROM bad_t", &[]), &["unauthenticated"]);
    assert_eq!(e.code, "28000", "{e:?}");
    assert!(!format!("{e:?}").contains("nope-nope"), "{e:?}");
    expect_pg_error(pg.query("SELECT * FROM anonymous_t", &[]), &["unauthenticated"]);
    assert_eq!(count(&mut pg, "SELECT count(*) FROM good_t"), 2);
    drop(pg);
    drop(cluster);
}

// Goal: TLS with a CA given as a file path or as PEM text, mutual TLS with a client
// certificate, and clear errors for a server the CA did not sign or a missing client
// certificate.
#[test]
fn tls_and_mutual_tls() {
    let certs = TestCerts::new();
    let env = TestEnv::start_tls(&certs, true);
    create_shared_table(&env.kalam);
    let mut pg = env.pg();
    let port = env.kalam.flight_port;
    let pem = |s: &str| s.replace('\'', "''");
    pg.batch_execute(&format!(
        "CREATE EXTENSION pg_kalam;
         CREATE SERVER mtls FOREIGN DATA WRAPPER pg_kalam OPTIONS (host 'localhost', port '{port}',
             ca_cert '{ca}', client_cert '{cert}', client_key '{key}');
         CREATE SERVER pem FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '{port}',
             ca_cert '{ca_pem}', client_cert '{cert_pem}', client_key '{key_pem}');
         CREATE SERVER no_client_cert FOREIGN DATA WRAPPER pg_kalam OPTIONS (host 'localhost', port '{port}',
             ca_cert '{ca}', timeout '5000');
         CREATE SERVER wrong_ca FOREIGN DATA WRAPPER pg_kalam OPTIONS (host 'localhost', port '{port}',
             ca_cert '{other_ca}', client_cert '{cert}', client_key '{key}', timeout '5000');
         CREATE SERVER plain FOREIGN DATA WRAPPER pg_kalam OPTIONS (host 'localhost', port '{port}', timeout '3000');
         CREATE FOREIGN TABLE via_path (id bigint) SERVER mtls OPTIONS (namespace 'app', table 't');
         CREATE FOREIGN TABLE via_pem (id bigint) SERVER pem OPTIONS (namespace 'app', table 't');
         CREATE FOREIGN TABLE no_cert (id bigint) SERVER no_client_cert OPTIONS (namespace 'app', table 't');
         CREATE FOREIGN TABLE wrong (id bigint) SERVER wrong_ca OPTIONS (namespace 'app', table 't');
         CREATE FOREIGN TABLE plain_t (id bigint) SERVER plain OPTIONS (namespace 'app', table 't');",
        ca = certs.ca_path.display(),
        cert = certs.client_cert_path.display(),
        key = certs.client_key_path.display(),
        other_ca = certs.other_ca_path.display(),
        ca_pem = pem(&certs.ca_pem),
        cert_pem = pem(&certs.client_cert_pem),
        key_pem = pem(&certs.client_key_pem),
    ))
    .unwrap();
    assert_eq!(count(&mut pg, "SELECT count(*) FROM via_path"), 2);
    assert_eq!(count(&mut pg, "SELECT sum(id)::bigint FROM via_pem"), 3);
    expect_pg_error(pg.query("SELECT * FROM wrong", &[]), &["KalamDB server"]);
    expect_pg_error(pg.query("SELECT * FROM no_cert", &[]), &["KalamDB server"]);
    expect_pg_error(pg.query("SELECT * FROM plain_t", &[]), &["KalamDB server"]);
    assert_eq!(count(&mut pg, "SELECT count(*) FROM via_path"), 2);
}

// Goal: a user table is read as kalam.user_id (sent in the kalam-user-id header): each user
// sees only their rows, and reading without kalam.user_id is a clear error.
#[test]
fn user_tables_read_as_kalam_user_id() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql("CREATE USER TABLE app.notes (id BIGINT, body VARCHAR)");
    env.kalam_sql(
        "EXECUTE AS USER 'alice' (INSERT INTO app.notes (id, body) VALUES (1, 'alice-1'), (2, 'alice-2'))",
    );
    env.kalam_sql("EXECUTE AS USER 'bob' (INSERT INTO app.notes (id, body) VALUES (1, 'bob-1'))");
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.notes (id bigint, body text) SERVER kalam_server OPTIONS (table_type 'user');",
    )
    .unwrap();
    let e = expect_pg_error(pg.query("SELECT * FROM app.notes", &[]), &["kalam.user_id is not set"]);
    assert!(e.hint.unwrap_or_default().contains("SET kalam.user_id"));
    let bodies = |pg: &mut postgres::Client| -> Vec<String> {
        pg.query("SELECT body FROM app.notes ORDER BY id", &[]).unwrap().iter().map(|r| r.get(0)).collect()
    };
    pg.batch_execute("SET kalam.user_id = 'alice'").unwrap();
    assert_eq!(bodies(&mut pg), ["alice-1", "alice-2"]);
    pg.batch_execute("SET kalam.user_id = 'bob'").unwrap();
    assert_eq!(bodies(&mut pg), ["bob-1"]);
    pg.batch_execute("SET kalam.user_id = 'carol'").unwrap();
    assert_eq!(bodies(&mut pg), Vec::<String>::new());
}
