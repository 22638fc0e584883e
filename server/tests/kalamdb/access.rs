//! Accounts, logins, tokens and the isolation of USER tables.

use std::time::Duration;

use kalamdb_server::auth::sign_jwt;

use crate::support::{
    Client, Dir, PERMISSION_DENIED, UNAUTHENTICATED, query_error, rows, start, update, update_error,
};

const ROOT_PASSWORD: &str = "root-pw-for-tests";
const SECRET: &str = "a-jwt-secret-of-at-least-32-characters";

async fn login(server: &crate::support::Running, user: &str, password: &str) -> Client {
    let mut client = server.client().await;
    client.handshake(user, password).await.unwrap_or_else(|e| panic!("login {user}: {e}"));
    client
}

// Goal: with a root password every call needs credentials; a login gives a session token with a
// lease; an expired token says to log in again; JWTs and the shared secret work; no message
// repeats a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_tokens_and_leases() {
    let dir = Dir::new("auth");
    let server = start(&dir.0, |c| {
        c.auth.root_password = Some(ROOT_PASSWORD.into());
        c.auth.jwt_secret = Some(SECRET.into());
        c.auth.session_lease_secs = 1;
    })
    .await;

    let mut anonymous = server.client().await;
    let err = query_error(&mut anonymous, "SELECT 1").await;
    assert!(err.contains(UNAUTHENTICATED) && err.contains("needs credentials"), "{err}");

    let mut wrong = server.client().await;
    let err = wrong.handshake("root", "not-it").await.unwrap_err().to_string();
    assert!(err.contains("wrong user name or password"), "{err}");
    assert!(!err.contains("not-it"), "the password leaked: {err}");

    let mut root = login(&server, "root", ROOT_PASSWORD).await;
    assert_eq!(rows(&mut root, "SELECT 1").await, ["1"]);
    update(&mut root, "CREATE USER 'ana' WITH PASSWORD 'ana-pw' ROLE dba").await;
    assert_eq!(rows(&mut root, "SELECT user_id, role FROM system.sessions").await, ["root|system"]);

    // Each use renews the lease; idle past it, the token is gone.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(rows(&mut root, "SELECT 2").await, ["2"]);
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let err = query_error(&mut root, "SELECT 3").await;
    assert!(err.contains(UNAUTHENTICATED) && err.contains("log in again"), "{err}");

    let mut jwt = server.client().await;
    jwt.set_token(sign_jwt(&serde_json::json!({"sub": "ana"}), SECRET));
    assert_eq!(
        rows(&mut jwt, "SELECT user_id, role FROM system.users WHERE user_id = 'ana'").await,
        ["ana|dba"]
    );
    let mut forged = server.client().await;
    forged.set_token(sign_jwt(&serde_json::json!({"sub": "ana"}), "some-other-secret-of-32-characters!!"));
    let err = query_error(&mut forged, "SELECT 1").await;
    assert!(err.contains("signature"), "{err}");

    let mut shared = server.client().await;
    shared.set_token(SECRET.into());
    assert_eq!(rows(&mut shared, "SELECT count(*) FROM system.users").await, ["2"]);
    server.stop().await;

    // Accounts persist; the password is stored hashed.
    let catalog = std::fs::read_to_string(dir.0.join("catalog.json")).unwrap();
    assert!(!catalog.contains("ana-pw") && !catalog.contains(ROOT_PASSWORD));
    let server = start(&dir.0, |c| c.auth.root_password = Some(ROOT_PASSWORD.into())).await;
    login(&server, "ana", "ana-pw").await;
    server.stop().await;
}

// Goal: a user account sees and changes only its own rows of a USER table; a dba acts for a
// user through the kalam-user-id header or EXECUTE AS USER; a user cannot act for another,
// write SHARED tables, run DDL or read system tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_tables_keep_users_apart() {
    let dir = Dir::new("isolation");
    let server = start(&dir.0, |c| c.auth.root_password = Some(ROOT_PASSWORD.into())).await;
    let mut root = login(&server, "root", ROOT_PASSWORD).await;
    for sql in [
        "CREATE USER 'alice' WITH PASSWORD 'a' ROLE user",
        "CREATE USER 'bob' WITH PASSWORD 'b' ROLE user",
        "CREATE USER 'ops' WITH PASSWORD 'o' ROLE dba",
        "CREATE NAMESPACE app",
        "CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), body TEXT)",
        "CREATE SHARED TABLE app.config (k TEXT, v TEXT)",
    ] {
        update(&mut root, sql).await;
    }
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    update(&mut alice, "INSERT INTO app.notes (body) VALUES ('a1'), ('a2')").await;
    update(&mut bob, "INSERT INTO app.notes (body) VALUES ('b1')").await;
    // The same primary key in two users' partitions is fine.
    update(&mut alice, "INSERT INTO app.notes VALUES (7, 'a7')").await;
    update(&mut bob, "INSERT INTO app.notes VALUES (7, 'b7')").await;

    let sql = "SELECT body, _userid FROM app.notes ORDER BY body";
    assert_eq!(rows(&mut alice, sql).await, ["a1|alice", "a2|alice", "a7|alice"]);
    assert_eq!(rows(&mut bob, sql).await, ["b1|bob", "b7|bob"]);
    assert_eq!(update(&mut alice, "UPDATE app.notes SET body = body || '!'").await, 3);
    assert_eq!(update(&mut bob, "DELETE FROM app.notes WHERE id = 7").await, 1);
    assert_eq!(rows(&mut alice, "SELECT body FROM app.notes WHERE id = 7").await, ["a7!"]);
    assert_eq!(rows(&mut bob, sql).await, ["b1|bob"]);

    // Only dba/system accounts act for users.
    alice.set_header("kalam-user-id", "bob");
    let err = query_error(&mut alice, sql).await;
    assert!(err.contains(PERMISSION_DENIED) && err.contains("cannot act for user 'bob'"), "{err}");
    let err = update_error(&mut alice, "INSERT INTO app.notes (body, _userid) VALUES ('x', 'bob')").await;
    assert!(err.contains(PERMISSION_DENIED), "{err}");
    let mut alice = login(&server, "alice", "a").await;
    let err = update_error(&mut alice, "INSERT INTO app.notes (body, _userid) VALUES ('x', 'bob')").await;
    assert!(err.contains("cannot write rows of user 'bob'"), "{err}");
    let err = update_error(&mut alice, "EXECUTE AS USER 'bob' (SELECT 1)").await;
    assert!(err.contains(PERMISSION_DENIED), "{err}");

    let mut ops = login(&server, "ops", "o").await;
    ops.set_header("kalam-user-id", "bob");
    assert_eq!(rows(&mut ops, sql).await, ["b1|bob"]);
    update(&mut ops, "INSERT INTO app.notes (body) VALUES ('b2')").await;
    let mut ops = login(&server, "ops", "o").await;
    assert_eq!(rows(&mut ops, "SELECT count(*) FROM app.notes").await, ["5"]);
    assert_eq!(rows(&mut ops, "EXECUTE AS USER 'alice' (SELECT count(*) FROM app.notes)").await, ["3"]);
    let err = update_error(&mut ops, "INSERT INTO app.notes (body) VALUES ('nobody')").await;
    assert!(err.contains("rows belong to a user"), "{err}");

    let err = update_error(&mut alice, "INSERT INTO app.config VALUES ('k', 'v')").await;
    assert!(err.contains("cannot change SHARED table"), "{err}");
    assert!(rows(&mut alice, "SELECT * FROM app.config").await.is_empty());
    let err = update_error(&mut alice, "CREATE NAMESPACE mine").await;
    assert!(err.contains("only dba and system accounts"), "{err}");
    let err = query_error(&mut alice, "SELECT * FROM system.users").await;
    assert!(err.contains("system tables are readable by dba and system"), "{err}");
    let err = update_error(&mut ops, "CREATE USER 'x' WITH PASSWORD 'p' ROLE system").await;
    assert!(err.contains("only a system account"), "{err}");

    // A dropped account's sessions end.
    update(&mut root, "DROP USER 'bob'").await;
    let err = query_error(&mut bob, "SELECT 1").await;
    assert!(err.contains(UNAUTHENTICATED), "{err}");
    server.stop().await;
}
