//! Authoring KalamDB tables from PostgreSQL: the getting-started guide's steps as written
//! (host, port and token filled in), the JSON and FILE examples, bad input that must create
//! nothing, and the remote table following the PostgreSQL transaction.

use kalam_e2e::{KalamServer, PgCluster, TestEnv, expect_pg_error};

/// The shared secret the guide's `auth_header 'Bearer <your-kalamdb-token>'` is filled in with.
const TOKEN: &str = "a-shared-secret-of-at-least-32-characters";

fn rows(pg: &mut postgres::Client, sql: &str) -> Vec<String> {
    kalam_e2e::query_text(pg, sql).unwrap_or_else(|code| panic!("{sql}: {code}"))
}

/// A server that needs credentials (the guide sends a token), and a cluster.
fn guarded_env() -> TestEnv {
    let kalam =
        KalamServer::start_with_env(&[("KALAMDB_JWT_SECRET", TOKEN), ("KALAMDB_ROOT_PASSWORD", "root-pw")]);
    TestEnv { pg: PgCluster::start(), kalam }
}

/// The remote tables of a namespace, as the server lists them.
fn remote_tables(env: &TestEnv, namespace: &str) -> Vec<String> {
    let answer = env.kalam_sql(&format!(
        "SELECT table_name FROM system.tables WHERE namespace_id = '{namespace}' ORDER BY table_name"
    ));
    answer["results"][0]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["table_name"].as_str().expect("name").to_string())
        .collect()
}

/// A query's rows as the server answers it (JSON values).
fn remote_rows(env: &TestEnv, sql: &str) -> Vec<serde_json::Value> {
    env.kalam_sql(sql)["results"][0]["rows"].as_array().expect("rows").clone()
}

// Goal: every SQL block of the getting-started guide runs as written (host, port and token
// filled in) and does what the guide says, checked on PostgreSQL and on the server.
#[test]
fn getting_started_guide_runs_as_written() {
    let env = guarded_env();
    let mut pg = env.pg();
    let port = env.kalam.flight_port;

    // 1. Create the extension.
    pg.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_kalam;").unwrap();
    let version = rows(&mut pg, "SELECT kalam_version(), kalam_compiled_mode();");
    assert!(version[0].starts_with("pg_kalam "), "{version:?}");

    // 2. Register the server.
    pg.batch_execute(&format!(
        "CREATE SERVER IF NOT EXISTS kalam_server FOREIGN DATA WRAPPER pg_kalam OPTIONS ( host '127.0.0.1', port '{port}', auth_header 'Bearer {TOKEN}' );"
    ))
    .unwrap();

    // 3. The first shared table.
    pg.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS app; CREATE TABLE app.shared_items ( id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), title TEXT NOT NULL, value INTEGER, created_at TIMESTAMP DEFAULT NOW() ) USING kalamdb WITH ( type = 'shared', flush_policy = 'rows:1000,interval:60' );",
    )
    .unwrap();
    assert_eq!(remote_tables(&env, "app"), ["shared_items"]);
    let described = remote_rows(&env, "DESCRIBE TABLE app.shared_items");
    let described: Vec<String> = described
        .iter()
        .map(|c| {
            format!(
                "{} {} {} {}",
                c["column_name"].as_str().unwrap(),
                c["data_type"].as_str().unwrap(),
                c["is_nullable"].as_str().unwrap(),
                c["is_primary_key"]
            )
        })
        .collect();
    assert_eq!(
        &described[..4],
        ["id BIGINT NO true", "title TEXT NO false", "value INT YES false", "created_at TIMESTAMP YES false"],
        "{described:?}"
    );
    // The local surface: the declared columns plus _seq, as a foreign table of kalam_server.
    assert_eq!(
        rows(
            &mut pg,
            "SELECT attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END \
             FROM pg_attribute WHERE attrelid = 'app.shared_items'::regclass AND attnum > 0 ORDER BY attnum"
        ),
        [
            "id bigint not null",
            "title text not null",
            "value integer",
            "created_at timestamp without time zone",
            "_seq bigint"
        ]
    );
    assert_eq!(
        rows(
            &mut pg,
            "SELECT srvname FROM pg_foreign_table JOIN pg_foreign_server s ON s.oid = ftserver WHERE ftrelid = 'app.shared_items'::regclass"
        ),
        ["kalam_server"]
    );

    // 4. Query and mutate.
    pg.batch_execute("INSERT INTO app.shared_items (id, title, value) VALUES (SNOWFLAKE_ID(), 'Alpha', 10), (SNOWFLAKE_ID(), 'Beta', 20);")
        .unwrap();
    assert_eq!(
        rows(&mut pg, "SELECT id > 0, title, value FROM app.shared_items ORDER BY id;"),
        ["t|Alpha|10", "t|Beta|20"]
    );
    // The guide's ids 1 and 2 are not the rows' (their ids are snowflakes): nothing changes.
    assert_eq!(pg.execute("UPDATE app.shared_items SET value = 25 WHERE id = 2;", &[]).unwrap(), 0);
    assert_eq!(pg.execute("DELETE FROM app.shared_items WHERE id = 1;", &[]).unwrap(), 0);
    assert_eq!(pg.execute("UPDATE app.shared_items SET value = 25 WHERE title = 'Beta'", &[]).unwrap(), 1);
    assert_eq!(pg.execute("DELETE FROM app.shared_items WHERE title = 'Alpha'", &[]).unwrap(), 1);
    let on_server =
        remote_rows(&env, "SELECT title, value, created_at IS NOT NULL AS stamped FROM app.shared_items");
    assert_eq!(on_server, [serde_json::json!({"title": "Beta", "value": 25, "stamped": true})]);
    // _seq is readable, and the server's.
    assert_eq!(rows(&mut pg, "SELECT _seq > 0 FROM app.shared_items"), ["t"]);

    // 5. Session identity for user tables.
    pg.batch_execute(
        "SET kalam.user_id = 'user-alice'; CREATE TABLE app.profiles ( id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), name TEXT, age INTEGER ) USING kalamdb WITH ( type = 'user' ); INSERT INTO app.profiles (id, name, age) VALUES (SNOWFLAKE_ID(), 'Alice', 30); INSERT INTO app.profiles (id, name, age, _userid) VALUES (SNOWFLAKE_ID(), 'Bob', 41, 'user-bob');",
    )
    .unwrap();
    // Alice's session sees Alice's rows; Bob's row went to Bob.
    assert_eq!(
        rows(&mut pg, "SELECT name, age, _userid, _seq > 0 FROM app.profiles ORDER BY _seq;"),
        ["Alice|30|user-alice|t"]
    );
    pg.batch_execute("SET kalam.user_id = 'user-bob'").unwrap();
    assert_eq!(
        rows(&mut pg, "SELECT name, age, _userid FROM app.profiles ORDER BY _seq"),
        ["Bob|41|user-bob"]
    );
    assert_eq!(
        rows(
            &mut pg,
            "SELECT attname FROM pg_attribute WHERE attrelid = 'app.profiles'::regclass AND attnum > 0 ORDER BY attnum"
        ),
        ["id", "name", "age", "_seq", "_userid"]
    );

    // 6. KalamDB table options through WITH.
    pg.batch_execute(
        "CREATE TABLE app.orders ( id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), customer_id TEXT NOT NULL, status TEXT DEFAULT 'pending', created_at TIMESTAMP DEFAULT NOW() ) USING kalamdb WITH ( type = 'shared', flush_policy = 'rows:1000,interval:60' );",
    )
    .unwrap();
    pg.batch_execute("INSERT INTO app.orders (customer_id) VALUES ('c1')").unwrap();
    assert_eq!(
        rows(&mut pg, "SELECT customer_id, status, created_at IS NOT NULL FROM app.orders"),
        ["c1|pending|t"]
    );
    // The server has the defaults too, for writers that are not PostgreSQL.
    env.kalam_sql("INSERT INTO app.orders (customer_id) VALUES ('c2')");
    assert_eq!(
        rows(
            &mut pg,
            "SELECT customer_id, status, id > 0, created_at IS NOT NULL FROM app.orders ORDER BY customer_id"
        ),
        ["c1|pending|t|t", "c2|pending|t|t"]
    );

    // 7. Statements sent directly.
    let altered =
        rows(&mut pg, "SELECT kalam_exec('ALTER TABLE app.orders ADD COLUMN priority INTEGER DEFAULT 0');");
    let status: serde_json::Value = serde_json::from_str(&altered[0]).unwrap();
    assert_eq!(status["status"], "ok", "{altered:?}");
    let dropped = rows(&mut pg, "SELECT kalam_exec('DROP TABLE app.orders');");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&dropped[0]).unwrap()["status"], "ok");
    let tables = rows(&mut pg, "SELECT kalam_exec('SELECT * FROM system.tables');");
    let tables: serde_json::Value = serde_json::from_str(&tables[0]).unwrap();
    let names: Vec<&str> =
        tables.as_array().unwrap().iter().filter_map(|t| t["table_name"].as_str()).collect();
    assert!(
        names.contains(&"shared_items") && names.contains(&"profiles") && !names.contains(&"orders"),
        "{tables}"
    );

    // 8. Maintain the server definition. The guide's second statement ADDs auth_header, which
    // step 2 already set: PostgreSQL refuses ADD of an option that is there (SET replaces it).
    pg.batch_execute("ALTER SERVER kalam_server OPTIONS (SET host 'kalamdb.internal', SET port '9188');")
        .unwrap();
    let error = expect_pg_error(
        pg.batch_execute("ALTER SERVER kalam_server OPTIONS (ADD auth_header 'Bearer <replacement-token>');"),
        &["auth_header"],
    );
    assert_eq!(error.code, "42710");
    pg.batch_execute("ALTER SERVER kalam_server OPTIONS (SET auth_header 'Bearer <replacement-token>');")
        .unwrap();
    // This session cached a connection to the old address; the change applies at once.
    expect_pg_error(pg.query("SELECT * FROM app.shared_items", &[]), &["kalamdb.internal"]);
    pg.batch_execute("DROP SERVER kalam_server CASCADE;").unwrap();
    assert_eq!(rows(&mut pg, "SELECT count(*) FROM pg_foreign_table"), ["0"]);
    // Removing the bridge keeps the data.
    assert_eq!(remote_tables(&env, "app"), ["profiles", "shared_items"]);
}
