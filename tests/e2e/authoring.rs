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

// Goal: the README's JSON example (a jsonb payload, `->>` and `?` pushed to the server) and its
// FILE example (remote FILE, local jsonb holding a FileRef) work as written.
#[test]
fn json_and_file_examples() {
    let env = TestEnv::start();
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE TABLE app.events (
           id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(),
           payload JSONB NOT NULL
         ) USING kalamdb WITH (
           type = 'shared'
         );
         INSERT INTO app.events (payload) VALUES ('{\"kind\": \"click\", \"x\": 1}'), ('{\"x\": 2}'), ('{\"kind\": \"view\"}');",
    )
    .unwrap();
    let sql = "SELECT payload->>'kind' AS kind FROM app.events WHERE payload ? 'kind' ORDER BY 1";
    assert_eq!(rows(&mut pg, sql), ["click", "view"]);
    let plan = rows(&mut pg, &format!("EXPLAIN (VERBOSE, COSTS OFF) {sql}")).join("\n");
    assert!(plan.contains("Remote SQL") && plan.contains("pg_json") && !plan.contains("Filter:"), "{plan}");
    assert_eq!(
        rows(
            &mut pg,
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'app.events'::regclass AND attname = 'payload'"
        ),
        ["jsonb"]
    );

    pg.batch_execute(
        "CREATE TABLE app.docs (id BIGINT PRIMARY KEY, attachment FILE, notes JSON) USING kalamdb;
         INSERT INTO app.docs VALUES (1, '{\"id\": \"f1\", \"name\": \"a.pdf\", \"size\": 10}', '{\"b\": 1, \"a\": 2}');",
    )
    .unwrap();
    assert_eq!(
        rows(
            &mut pg,
            "SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'app.docs'::regclass AND attnum > 0 ORDER BY attnum"
        ),
        ["id bigint", "attachment jsonb", "notes json", "_seq bigint"]
    );
    assert_eq!(
        rows(&mut pg, "SELECT attachment->>'name', notes FROM app.docs"),
        ["a.pdf|{\"b\": 1, \"a\": 2}"]
    );
    let described = remote_rows(&env, "DESCRIBE TABLE app.docs");
    assert_eq!(described[1]["data_type"], "FILE", "{described:?}");
    // A FILE value is a FileRef object: the server refuses anything else.
    let error =
        expect_pg_error(pg.batch_execute("INSERT INTO app.docs VALUES (2, '[1]', NULL)"), &["FileRef"]);
    assert!(!error.code.is_empty());
}

/// The statement's error, and then that nothing was made: no local relation `app.bad`, no
/// remote table, no remote namespace `app` left behind.
fn refused(env: &TestEnv, pg: &mut postgres::Client, sql: &str, needles: &[&str], code: &str) {
    let error = expect_pg_error(pg.batch_execute(sql), needles);
    assert_eq!(error.code, code, "{sql}: {error:?}");
    assert_eq!(rows(pg, "SELECT count(*) FROM pg_class WHERE relname = 'bad'"), ["0"], "{sql}");
    let namespaces =
        remote_rows(env, "SELECT namespace_id FROM system.namespaces WHERE namespace_id = 'app'");
    assert!(namespaces.is_empty(), "{sql}: namespace left behind");
}

// Goal: bad input is an error with a fitting SQLSTATE before anything is made, here or on the
// server (the namespace the statement would have created included).
#[test]
fn bad_input_creates_nothing() {
    let env = TestEnv::start();
    let mut pg = env.pg_with_server();
    let cases: &[(&str, &[&str], &str)] = &[
        ("CREATE TABLE app.bad (id bigint, _seq bigint) USING kalamdb", &["_seq", "system column"], "42939"),
        (
            "CREATE TABLE app.bad (id bigint, _userid text) USING kalamdb WITH (type = 'user')",
            &["_userid"],
            "42939",
        ),
        ("CREATE TABLE app.bad (id bigint, _deleted boolean) USING kalamdb", &["_deleted"], "42939"),
        ("CREATE TABLE app.bad (id bigint) USING kalamdb WITH (type = 'table')", &["type", "table"], "22023"),
        (
            "CREATE TABLE app.bad (id bigint) USING kalamdb WITH (flush_policy = 'sometimes')",
            &["FLUSH_POLICY"],
            "HV000",
        ),
        ("CREATE TABLE app.bad (id bigint) USING kalamdb WITH (colour = 'red')", &["COLOUR"], "HV000"),
        (
            "CREATE TABLE app.bad (id bigint, d interval) USING kalamdb",
            &["interval", "no KalamDB counterpart"],
            "0A000",
        ),
        ("CREATE TABLE app.bad (id bigint, n numeric) USING kalamdb", &["numeric", "precision"], "0A000"),
        ("CREATE TABLE app.bad (id bigint, n numeric(50,2)) USING kalamdb", &["38"], "0A000"),
        ("CREATE TABLE app.bad (id bigint, t text[]) USING kalamdb", &["text[]"], "0A000"),
        ("CREATE TABLE app.bad (id serial) USING kalamdb", &["serial", "not supported"], "0A000"),
        (
            "CREATE TABLE app.bad (id integer GENERATED ALWAYS AS IDENTITY) USING kalamdb",
            &["identity", "bigint"],
            "0A000",
        ),
        ("CREATE TABLE app.bad (id bigint CHECK (id > 0)) USING kalamdb", &["CHECK"], "0A000"),
        ("CREATE TABLE app.bad (id bigint UNIQUE) USING kalamdb", &["UNIQUE"], "0A000"),
        ("CREATE TABLE app.bad (id bigint DEFAULT random()) USING kalamdb", &["DEFAULT", "id"], "0A000"),
        (
            "CREATE TABLE app.bad (id bigint PRIMARY KEY, PRIMARY KEY (id)) USING kalamdb",
            &["multiple primary keys"],
            "42P16",
        ),
        ("CREATE TABLE app.bad (id bigint, PRIMARY KEY (nope)) USING kalamdb", &["nope"], "42703"),
        ("CREATE TABLE app.bad (e EMBEDDING) USING kalamdb", &["EMBEDDING", "dimensions"], "22023"),
        ("CREATE TEMP TABLE bad (id bigint) USING kalamdb", &["temporary"], "0A000"),
        ("CREATE TABLE app.bad (LIKE pg_class) USING kalamdb", &["LIKE"], "0A000"),
        (
            "CREATE TABLE app.bad (id bigint) USING kalamdb WITH (server = 'nope')",
            &["nope", "does not exist"],
            "42704",
        ),
        ("CREATE TABLE app.bad USING kalamdb AS SELECT 1 AS id", &["AS SELECT"], "0A000"),
        ("CREATE TABLE app.bad (id bigint) USING kalamdb WITH (type = 'stream')", &["TTL_SECONDS"], "HV000"),
        (
            "CREATE TABLE app.bad (a bigint PRIMARY KEY, b bigint PRIMARY KEY) USING kalamdb",
            &["multiple primary keys"],
            "42P16",
        ),
        (
            "CREATE TABLE app.bad (a bigint, PRIMARY KEY (a), b bigint PRIMARY KEY) USING kalamdb",
            &["multiple primary keys"],
            "42P16",
        ),
        ("CREATE TABLE app.bad (a bigint, PRIMARY KEY (a, a)) USING kalamdb", &["appears twice"], "42701"),
        ("CREATE TABLE app.bad (a bigint NULL PRIMARY KEY) USING kalamdb", &["NULL"], "42601"),
        (
            "CREATE TABLE app.bad (a bigint) USING kalamdb WITH (\"x') , (y\" = 'v')",
            &["not a KalamDB table option name"],
            "22023",
        ),
        ("CREATE TABLE app.bad (t timestamp DEFAULT 'now'::timestamp) USING kalamdb", &["DEFAULT"], "0A000"),
        ("CREATE TABLE app.bad (t timestamp DEFAULT myschema.now()) USING kalamdb", &["DEFAULT"], "0A000"),
        (
            "SET search_path = pg_temp, public; CREATE TABLE bad (a bigint) USING kalamdb",
            &["temporary"],
            "0A000",
        ),
    ];
    for (sql, needles, code) in cases {
        refused(&env, &mut pg, sql, needles, code);
    }
    pg.batch_execute("RESET search_path").unwrap();
    // With two pg_kalam servers, the statement must name one.
    pg.batch_execute(&format!(
        "CREATE SERVER other FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '{}')",
        env.kalam.flight_port
    ))
    .unwrap();
    refused(
        &env,
        &mut pg,
        "CREATE TABLE app.bad (id bigint) USING kalamdb",
        &["2 pg_kalam servers", "kalam_server, other"],
        "42P08",
    );
    pg.batch_execute("CREATE TABLE app.named (id bigint) USING kalamdb WITH (server = 'other')").unwrap();
    assert_eq!(remote_tables(&env, "app"), ["named"]);
    // A table that exists already, here or there.
    let error = expect_pg_error(
        pg.batch_execute("CREATE TABLE app.named (id bigint) USING kalamdb WITH (server = 'other')"),
        &["already exists"],
    );
    assert_eq!(error.code, "42P07");
    pg.batch_execute(
        "CREATE TABLE IF NOT EXISTS app.named (id bigint) USING kalamdb WITH (server = 'other')",
    )
    .unwrap();
    env.kalam_sql("CREATE TABLE app.theirs (id BIGINT)");
    let error = expect_pg_error(
        pg.batch_execute("CREATE TABLE app.theirs (id bigint) USING kalamdb WITH (server = 'other')"),
        &["already exists"],
    );
    assert!(error.hint.as_deref().unwrap_or("").contains("IMPORT FOREIGN SCHEMA"), "{error:?}");
    assert_eq!(rows(&mut pg, "SELECT count(*) FROM pg_class WHERE relname = 'theirs'"), ["0"]);
    assert_eq!(remote_tables(&env, "app"), ["named", "theirs"]);
}

// Goal: nothing is orphaned. A CREATE whose transaction rolls back (or whose savepoint does)
// leaves no remote table and no namespace it made; a CREATE whose local part fails is undone
// remotely; a DROP whose transaction rolls back keeps the remote table.
#[test]
fn rollbacks_and_failures_leave_no_orphans() {
    let env = TestEnv::start();
    let mut pg = env.pg_with_server();
    pg.batch_execute("BEGIN; CREATE TABLE app.t1 (id bigint PRIMARY KEY, v text) USING kalamdb; INSERT INTO app.t1 VALUES (1, 'a');")
        .unwrap();
    assert_eq!(remote_tables(&env, "app"), ["t1"]);
    assert_eq!(rows(&mut pg, "SELECT v FROM app.t1"), ["a"]);
    pg.batch_execute("ROLLBACK").unwrap();
    assert!(
        remote_rows(&env, "SELECT namespace_id FROM system.namespaces WHERE namespace_id = 'app'").is_empty()
    );
    assert_eq!(rows(&mut pg, "SELECT count(*) FROM pg_class WHERE relname = 't1'"), ["0"]);

    // A savepoint rolled back undoes only what was made inside it.
    pg.batch_execute(
        "BEGIN; CREATE TABLE app.keep (id bigint) USING kalamdb;
         SAVEPOINT s; CREATE TABLE app.gone (id bigint) USING kalamdb; ROLLBACK TO SAVEPOINT s;
         SAVEPOINT s2; CREATE TABLE app.kept_too (id bigint) USING kalamdb; RELEASE SAVEPOINT s2;
         COMMIT;",
    )
    .unwrap();
    assert_eq!(remote_tables(&env, "app"), ["keep", "kept_too"]);

    // The local part fails after the remote table was made: a type of that name exists.
    pg.batch_execute("CREATE TYPE app.clash AS (a int)").unwrap();
    expect_pg_error(pg.batch_execute("CREATE TABLE app.clash (id bigint) USING kalamdb"), &["clash"]);
    assert_eq!(remote_tables(&env, "app"), ["keep", "kept_too"]);

    // A DROP rolled back keeps the remote table (and its rows); a committed one drops it.
    pg.batch_execute("INSERT INTO app.keep VALUES (7)").unwrap();
    pg.batch_execute("BEGIN; DROP TABLE app.keep; ROLLBACK;").unwrap();
    assert_eq!(rows(&mut pg, "SELECT id FROM app.keep"), ["7"]);
    pg.batch_execute("DROP TABLE app.keep").unwrap();
    assert_eq!(remote_tables(&env, "app"), ["kept_too"]);
    pg.batch_execute("DROP FOREIGN TABLE app.kept_too").unwrap();
    assert!(remote_tables(&env, "app").is_empty());

    // A plain foreign table never drops its remote table.
    env.kalam_sql("CREATE TABLE app.mapped (id BIGINT)");
    pg.batch_execute(
        "CREATE FOREIGN TABLE app.mapped (id bigint) SERVER kalam_server; DROP FOREIGN TABLE app.mapped;",
    )
    .unwrap();
    assert_eq!(remote_tables(&env, "app"), ["mapped"]);
}

// Goal: ALTER TABLE ... ADD/DROP COLUMN of an authored table is mirrored on the server (and
// undone with a rolled-back transaction); other subcommands stay local.
#[test]
fn alter_table_is_mirrored() {
    let env = TestEnv::start();
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE TABLE app.o (id bigint PRIMARY KEY, a text) USING kalamdb;
         INSERT INTO app.o VALUES (1, 'x');
         ALTER TABLE app.o ADD COLUMN priority integer DEFAULT 0, ADD COLUMN doc FILE;",
    )
    .unwrap();
    let columns = |env: &TestEnv| -> Vec<String> {
        remote_rows(env, "DESCRIBE TABLE app.o")
            .iter()
            .map(|c| format!("{} {}", c["column_name"].as_str().unwrap(), c["data_type"].as_str().unwrap()))
            .filter(|c| !c.starts_with('_'))
            .collect()
    };
    assert_eq!(columns(&env), ["id BIGINT", "a TEXT", "priority INT", "doc FILE"]);
    pg.batch_execute("INSERT INTO app.o (id, a) VALUES (2, 'y')").unwrap();
    assert_eq!(rows(&mut pg, "SELECT id, priority FROM app.o ORDER BY id"), ["1|NULL", "2|0"]);
    pg.batch_execute("BEGIN; ALTER TABLE app.o ADD COLUMN tmp text; ROLLBACK;").unwrap();
    assert_eq!(columns(&env), ["id BIGINT", "a TEXT", "priority INT", "doc FILE"]);
    pg.batch_execute("BEGIN; ALTER TABLE app.o DROP COLUMN a; ROLLBACK;").unwrap();
    assert_eq!(rows(&mut pg, "SELECT a FROM app.o ORDER BY id"), ["x", "y"]);
    pg.batch_execute("ALTER TABLE app.o DROP COLUMN a").unwrap();
    assert_eq!(columns(&env), ["id BIGINT", "priority INT", "doc FILE"]);
    expect_pg_error(pg.batch_execute("ALTER TABLE app.o ADD COLUMN n text NOT NULL"), &["NOT NULL"]);
    expect_pg_error(pg.batch_execute("ALTER TABLE app.o DROP COLUMN _seq"), &["system column"]);
    expect_pg_error(pg.batch_execute("ALTER TABLE app.o ADD COLUMN w interval"), &["interval"]);
    expect_pg_error(pg.batch_execute("ALTER TABLE app.o ADD COLUMN s bigserial"), &["generated ids"]);
    expect_pg_error(
        pg.batch_execute("ALTER TABLE app.o RENAME COLUMN priority TO p"),
        &["cannot be renamed"],
    );
    expect_pg_error(
        pg.batch_execute("ALTER TABLE app.o ALTER COLUMN priority TYPE bigint"),
        &["cannot be changed"],
    );
    let error = expect_pg_error(
        pg.batch_execute("BEGIN; ALTER TABLE app.o DROP COLUMN doc; ALTER TABLE app.o ADD COLUMN doc text;"),
        &["drops column \"doc\" when it commits"],
    );
    assert_eq!(error.code, "55000");
    pg.batch_execute("ROLLBACK").unwrap();
    assert_eq!(columns(&env), ["id BIGINT", "priority INT", "doc FILE"]);
    // Local-only changes work and leave the server alone.
    pg.batch_execute(
        "ALTER TABLE app.o ALTER COLUMN priority SET DEFAULT 5; ALTER TABLE app.o RENAME TO orders;",
    )
    .unwrap();
    pg.batch_execute("INSERT INTO app.orders (id) VALUES (3)").unwrap();
    assert_eq!(rows(&mut pg, "SELECT id, priority FROM app.orders ORDER BY id"), ["1|NULL", "2|0", "3|5"]);
    assert_eq!(remote_tables(&env, "app"), ["o"]);
}

// Goal: user tables keep tenants apart on every path (scan, pushed filter, insert, update,
// delete), follow the _userid rules, and choosing the tenant is a privilege.
#[test]
fn user_tables_keep_tenants_apart() {
    let env = TestEnv::start();
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE TABLE app.notes (id bigint PRIMARY KEY, body text) USING kalamdb WITH (type = 'user');
         SET kalam.user_id = 'alice';
         INSERT INTO app.notes VALUES (1, 'a1'), (2, 'a2');
         SET kalam.user_id = 'bob';
         INSERT INTO app.notes VALUES (1, 'b1'), (3, 'b3');",
    )
    .unwrap();
    let as_user = |pg: &mut postgres::Client, user: &str, sql: &str| {
        pg.batch_execute(&format!("SET kalam.user_id = '{user}'")).unwrap();
        rows(pg, sql)
    };
    assert_eq!(
        as_user(&mut pg, "alice", "SELECT id, body, _userid FROM app.notes ORDER BY id"),
        ["1|a1|alice", "2|a2|alice"]
    );
    assert_eq!(as_user(&mut pg, "bob", "SELECT id, body FROM app.notes WHERE id = 1"), ["1|b1"]);
    assert_eq!(as_user(&mut pg, "bob", "SELECT count(*) FROM app.notes WHERE body LIKE 'a%'"), ["0"]);
    // UPDATE and DELETE act in the session's scope only, pushed or row by row.
    assert_eq!(as_user(&mut pg, "bob", "UPDATE app.notes SET body = 'B' WHERE id = 1 RETURNING body"), ["B"]);
    pg.batch_execute("SET kalam.user_id = 'bob'; DELETE FROM app.notes WHERE id < 10;").unwrap();
    assert_eq!(as_user(&mut pg, "alice", "SELECT id, body FROM app.notes ORDER BY id"), ["1|a1", "2|a2"]);
    assert!(as_user(&mut pg, "bob", "SELECT id FROM app.notes").is_empty());
    // NOT IN (subquery) of a user table stays in PostgreSQL: the subquery is read in the
    // session's scope, never inside a statement of a shared table (which carries no user).
    pg.batch_execute(
        "CREATE TABLE app.ids (id bigint PRIMARY KEY) USING kalamdb; INSERT INTO app.ids VALUES (1), (2), (3);",
    )
    .unwrap();
    let not_in = "SELECT id FROM app.ids WHERE id NOT IN (SELECT id FROM app.notes) ORDER BY id";
    assert_eq!(as_user(&mut pg, "alice", not_in), ["3"]);
    assert_eq!(as_user(&mut pg, "bob", not_in), ["1", "2", "3"]);
    let plan = rows(&mut pg, &format!("EXPLAIN (COSTS OFF) {not_in}")).join("\n");
    assert!(plan.contains("SubPlan"), "{plan}");
    // An explicit _userid writes for that user; one INSERT has one owner.
    pg.batch_execute(
        "SET kalam.user_id = 'alice'; INSERT INTO app.notes (id, body, _userid) VALUES (5, 'c5', 'carol');",
    )
    .unwrap();
    assert_eq!(as_user(&mut pg, "carol", "SELECT id, body FROM app.notes"), ["5|c5"]);
    let error = expect_pg_error(
        pg.batch_execute(
            "INSERT INTO app.notes (id, body, _userid) VALUES (6, 'x', 'carol'), (7, 'y', 'dave')",
        ),
        &["same _userid", "carol", "dave"],
    );
    assert_eq!(error.code, "22023");
    let error = expect_pg_error(
        pg.batch_execute("INSERT INTO app.notes (id, body, _userid) VALUES (6, 'x', NULL), (7, 'y', 'dave')"),
        &["same _userid"],
    );
    assert_eq!(error.code, "22023");
    assert_eq!(as_user(&mut pg, "carol", "SELECT id FROM app.notes"), ["5"]);
    assert!(as_user(&mut pg, "dave", "SELECT id FROM app.notes").is_empty());
    // The server's columns are not the client's to set.
    let error = expect_pg_error(pg.batch_execute("UPDATE app.notes SET _userid = 'eve'"), &["_userid"]);
    assert_eq!(error.code, "428C9");
    let error = expect_pg_error(
        pg.batch_execute("INSERT INTO app.notes (id, body, _seq) VALUES (9, 'x', 5)"),
        &["_seq"],
    );
    assert_eq!(error.code, "428C9");
    pg.batch_execute("RESET kalam.user_id").unwrap();
    let error = expect_pg_error(pg.query("SELECT * FROM app.notes", &[]), &["kalam.user_id"]);
    assert!(!error.code.is_empty());
    expect_pg_error(pg.batch_execute("INSERT INTO app.notes VALUES (10, 'x')"), &["kalam.user_id"]);

    // Choosing the tenant is a privilege: an ordinary role is refused until granted SET.
    pg.batch_execute(
        "CREATE ROLE app_role LOGIN; GRANT USAGE ON SCHEMA app TO app_role; GRANT ALL ON app.notes TO app_role;
         GRANT USAGE ON FOREIGN SERVER kalam_server TO app_role; CREATE USER MAPPING FOR app_role SERVER kalam_server;
         SET ROLE app_role;",
    )
    .unwrap();
    let error = expect_pg_error(pg.batch_execute("SET kalam.user_id = 'alice'"), &["kalam.user_id"]);
    assert_eq!(error.code, "42501");
    pg.batch_execute("RESET ROLE; GRANT SET ON PARAMETER kalam.user_id TO app_role; SET ROLE app_role; SET kalam.user_id = 'alice';")
        .unwrap();
    assert_eq!(rows(&mut pg, "SELECT id FROM app.notes ORDER BY id"), ["1", "2"]);
}

// Goal: snowflake_id() never repeats across backends (32 of them, 100,000 ids each, at once),
// is strictly increasing within each, and carries the server's layout (time in the high bits).
#[test]
fn snowflake_ids_are_unique_across_backends() {
    let env = TestEnv::start();
    drop(env.pg_with_server());
    let per_backend = 100_000;
    let ids: Vec<Vec<i64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..32)
            .map(|_| {
                scope.spawn(|| {
                    let mut pg = env.pg();
                    pg.query(
                        "SELECT snowflake_id() FROM generate_series(1, $1::int) ORDER BY generate_series",
                        &[&per_backend],
                    )
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<_, i64>(0))
                    .collect()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for backend in &ids {
        assert_eq!(backend.len(), per_backend as usize);
        assert!(backend.windows(2).all(|w| w[0] < w[1]), "ids of one backend are not increasing");
    }
    let mut all: Vec<i64> = ids.into_iter().flatten().collect();
    let total = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), total, "{} duplicate ids", total - all.len());
    // 41 bits of milliseconds since 2024-01-01 on top: the time of now, give or take.
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let id_ms = (all[0] >> 22) + 1_704_067_200_000;
    assert!((now_ms - id_ms).abs() < 600_000, "id time {id_ms} vs now {now_ms}");
    // The server's own SNOWFLAKE_ID() shares the sequence: no collision with its ids either.
    let mut pg = env.pg();
    let local = rows(&mut pg, "SELECT snowflake_id()")[0].parse::<i64>().unwrap();
    let remote = remote_rows(&env, "SELECT SNOWFLAKE_ID() AS id")[0]["id"].as_i64().unwrap();
    assert_ne!(local, remote);
    assert!(all.binary_search(&remote).is_err());
}

// Goal: kalam_exec renders every Arrow type as a JSON value (exact decimals, ISO 8601 times,
// canonical uuids, hex binary, JSON as JSON, lists as arrays), reports statements' rows,
// surfaces the server's error text, stops at its size limit, and is not granted to PUBLIC.
#[test]
fn kalam_exec_renders_json() {
    let env = TestEnv::start();
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE TABLE app.typed (id bigint PRIMARY KEY, d numeric(20,4), ts timestamp, tz timestamptz, dt date, t time,
            u uuid, b bytea, j jsonb, l bigint[], f double precision, ok boolean, s text) USING kalamdb;
         SET TIME ZONE 'UTC';
         INSERT INTO app.typed VALUES
           (1, 12345678901234.5678, '2024-02-29 12:34:56.789', '2024-01-01 00:00:00+02', '2024-12-31', '23:59:59.5',
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff', '{\"k\": [1, \"two\"]}', '{1,NULL,3}', 0.1, true, 'quote \" and \\ backslash'),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    )
    .unwrap();
    let text = rows(
        &mut pg,
        "SELECT kalam_exec('SELECT id, d, ts, tz, dt, t, u, b, j, l, f, ok, s FROM app.typed ORDER BY id')",
    );
    let json: serde_json::Value =
        serde_json::from_str(&text[0]).unwrap_or_else(|e| panic!("{e}: {}", text[0]));
    let first = &json[0];
    assert_eq!(first["id"], 1);
    // Exact in the text (serde_json itself would read it as a float).
    assert!(text[0].contains(r#""d":12345678901234.5678,"#), "decimal exact: {}", text[0]);
    assert_eq!(first["ts"], "2024-02-29T12:34:56.789");
    assert!(first["tz"].as_str().unwrap().starts_with("2023-12-31T22:00:00"), "{first}");
    assert_eq!(first["dt"], "2024-12-31");
    assert_eq!(first["t"], "23:59:59.500");
    assert_eq!(first["u"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(first["b"], "00ff");
    assert_eq!(first["j"], serde_json::json!({"k": [1, "two"]}));
    assert_eq!(first["l"], serde_json::json!([1, null, 3]));
    assert_eq!(first["f"], 0.1);
    assert_eq!(first["ok"], true);
    assert_eq!(first["s"], "quote \" and \\ backslash");
    let second = json[1].as_object().unwrap();
    assert_eq!(second.len(), 13, "NULLs are kept as null: {second:?}");
    assert!(second.iter().filter(|(k, _)| *k != "id").all(|(_, v)| v.is_null()));
    // A statement reports its rows; an empty result is an empty array.
    let status = rows(&mut pg, "SELECT kalam_exec('DELETE FROM app.typed WHERE id = 2')");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&status[0]).unwrap(),
        serde_json::json!({"status": "ok", "rows_affected": 1})
    );
    assert_eq!(rows(&mut pg, "SELECT kalam_exec('SELECT * FROM app.typed WHERE id > 100')"), ["[]"]);
    // The server's error text is in the PostgreSQL error.
    let error = expect_pg_error(
        pg.query("SELECT kalam_exec('SELECT nope FROM app.typed')", &[]),
        &["kalam_exec", "nope"],
    );
    assert!(!error.code.is_empty());
    // Past the limit (64 MiB of JSON), a clear error.
    let error = expect_pg_error(
        pg.query("SELECT kalam_exec('SELECT repeat(''x'', 1000) AS s FROM generate_series(1, 100000)')", &[]),
        &["larger than 64 MiB"],
    );
    assert_eq!(error.code, "54000");
    // Not for PUBLIC.
    pg.batch_execute("CREATE ROLE plain; SET ROLE plain;").unwrap();
    let error = expect_pg_error(pg.query("SELECT kalam_exec('SELECT 1')", &[]), &["permission denied"]);
    assert_eq!(error.code, "42501");
}

// Goal: IMPORT FOREIGN SCHEMA maps every table kind of a namespace (types, NOT NULL, _seq and
// _userid, table_type), honours LIMIT TO and EXCEPT, and refuses a namespace that is not there.
#[test]
fn import_foreign_schema_maps_every_kind() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE NAMESPACE shop");
    env.kalam_sql(
        "CREATE SHARED TABLE shop.items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, price DECIMAL(10,2), tags BIGINT[], \
         meta JSON, doc FILE, vec EMBEDDING(3), u UUID, at TIMESTAMPTZ, day DATE, raw BYTEA)",
    );
    env.kalam_sql("CREATE USER TABLE shop.carts (id BIGINT PRIMARY KEY, qty INT)");
    env.kalam_sql("CREATE STREAM TABLE shop.clicks (id BIGINT, at TIMESTAMP) WITH (TTL_SECONDS = 60)");
    let mut pg = env.pg_with_server();
    pg.batch_execute("CREATE SCHEMA local; IMPORT FOREIGN SCHEMA shop FROM SERVER kalam_server INTO local;")
        .unwrap();
    let columns = |pg: &mut postgres::Client, table: &str| {
        rows(
            pg,
            &format!(
                "SELECT attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END \
                 FROM pg_attribute WHERE attrelid = 'local.{table}'::regclass AND attnum > 0 ORDER BY attnum"
            ),
        )
    };
    assert_eq!(
        columns(&mut pg, "items"),
        [
            "id bigint not null",
            "name text not null",
            "price numeric(10,2)",
            "tags bigint[]",
            "meta jsonb",
            "doc jsonb",
            "vec real[]",
            "u uuid",
            "at timestamp with time zone",
            "day date",
            "raw bytea",
            "_seq bigint"
        ]
    );
    assert_eq!(
        columns(&mut pg, "carts"),
        ["id bigint not null", "qty integer", "_seq bigint", "_userid text"]
    );
    assert_eq!(
        columns(&mut pg, "clicks"),
        ["id bigint", "at timestamp without time zone", "_seq bigint", "_userid text"]
    );
    assert_eq!(
        rows(
            &mut pg,
            "SELECT c.relname || ' ' || array_to_string(ftoptions, ',') FROM pg_foreign_table f JOIN pg_class c ON c.oid = f.ftrelid ORDER BY 1"
        ),
        [
            "carts namespace=shop,table=carts,table_type=user",
            "clicks namespace=shop,table=clicks,table_type=stream",
            "items namespace=shop,table=items,table_type=shared"
        ]
    );
    // The imported tables read and write.
    pg.batch_execute("INSERT INTO local.items (id, name, price, tags) VALUES (1, 'pen', 2.50, '{1,2}')")
        .unwrap();
    assert_eq!(rows(&mut pg, "SELECT name, price, tags FROM local.items"), ["pen|2.50|{1,2}"]);
    pg.batch_execute("SET kalam.user_id = 'alice'; INSERT INTO local.carts VALUES (1, 3);").unwrap();
    assert_eq!(rows(&mut pg, "SELECT qty, _userid FROM local.carts"), ["3|alice"]);

    pg.batch_execute(
        "CREATE SCHEMA picked; IMPORT FOREIGN SCHEMA shop LIMIT TO (carts, nope) FROM SERVER kalam_server INTO picked;
         CREATE SCHEMA rest; IMPORT FOREIGN SCHEMA shop EXCEPT (carts) FROM SERVER kalam_server INTO rest;",
    )
    .unwrap();
    assert_eq!(
        rows(&mut pg, "SELECT relname FROM pg_class WHERE relnamespace = 'picked'::regnamespace"),
        ["carts"]
    );
    assert_eq!(
        rows(&mut pg, "SELECT relname FROM pg_class WHERE relnamespace = 'rest'::regnamespace ORDER BY 1"),
        ["clicks", "items"]
    );
    let error = expect_pg_error(
        pg.batch_execute("IMPORT FOREIGN SCHEMA nowhere FROM SERVER kalam_server INTO local"),
        &["nowhere", "does not exist"],
    );
    assert_eq!(error.code, "HV00Q");
}

// Goal: a session that had not loaded pg_kalam when its statement began (no preload, no
// pg_kalam function called yet) gets the same result as one that had: CREATE TABLE ... USING
// kalamdb (without a stray NOTICE), ALTER ADD/DROP COLUMN, RENAME COLUMN refused, DROP TABLE.
#[test]
fn sessions_that_had_not_loaded_pg_kalam_work_the_same() {
    let env = TestEnv::start();
    drop(env.pg_with_server());
    let fresh = |sql: &str| -> Vec<String> {
        let (mut pg, notices) = env.pg_with_notices();
        pg.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let notices = notices.lock().unwrap().clone();
        notices
    };
    let notices = fresh("CREATE TABLE app.later (id bigint PRIMARY KEY, a text, doc FILE) USING kalamdb");
    assert!(notices.is_empty(), "{notices:?}");
    assert_eq!(remote_tables(&env, "app"), ["later"]);
    let mut pg = env.pg();
    assert_eq!(
        rows(
            &mut pg,
            "SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'app.later'::regclass AND attnum > 0 ORDER BY attnum"
        ),
        ["id bigint", "a text", "doc jsonb", "_seq bigint"]
    );
    // What was muted for the statement is back after it.
    let notices = fresh(
        "CREATE TABLE app.later2 (id bigint) USING kalamdb; DO $$ BEGIN RAISE NOTICE 'still heard'; END $$;",
    );
    assert_eq!(notices, ["still heard"]);
    let notices = fresh("CREATE TABLE IF NOT EXISTS app.later (id bigint) USING kalamdb");
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains("already exists, skipping"), "{notices:?}");
    fresh("ALTER TABLE app.later ADD COLUMN b FILE, DROP COLUMN a");
    let described: Vec<String> = remote_rows(&env, "DESCRIBE TABLE app.later")
        .iter()
        .map(|c| format!("{} {}", c["column_name"].as_str().unwrap(), c["data_type"].as_str().unwrap()))
        .filter(|c| !c.starts_with('_'))
        .collect();
    assert_eq!(described, ["id BIGINT", "doc FILE", "b FILE"]);
    let (mut unloaded, _) = env.pg_with_notices();
    expect_pg_error(
        unloaded.batch_execute("ALTER TABLE app.later RENAME COLUMN b TO c"),
        &["cannot be renamed"],
    );
    // Unrelated DDL in a fresh session is not disturbed.
    fresh("CREATE TABLE plain_heap (a int); ALTER TABLE plain_heap ADD COLUMN b int; DROP TABLE plain_heap;");
    fresh("DROP TABLE app.later, app.later2");
    assert!(remote_tables(&env, "app").is_empty());
    assert_eq!(rows(&mut pg, "SELECT count(*) FROM pg_class WHERE relname = 'later'"), ["0"]);
}

// Goal: ids made by BIGSERIAL and identity columns are snowflakes from both sides; a user
// mapping changed in a session that cached a connection applies at once; a table whose server
// is gone can still be dropped locally once it no longer owns the remote table.
#[test]
fn identities_mappings_and_unreachable_servers() {
    let env = guarded_env();
    let mut pg = env.pg();
    pg.batch_execute(&format!(
        "CREATE EXTENSION pg_kalam;
         CREATE SERVER kalam_server FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '{}');
         CREATE USER MAPPING FOR CURRENT_USER SERVER kalam_server OPTIONS (auth_header 'Bearer {TOKEN}');
         CREATE TABLE app.ids (a bigserial PRIMARY KEY, b bigint GENERATED ALWAYS AS IDENTITY, note text) USING kalamdb;
         INSERT INTO app.ids (note) VALUES ('x'), ('y');",
        env.kalam.flight_port
    ))
    .unwrap();
    assert_eq!(
        rows(
            &mut pg,
            "SELECT count(*), count(DISTINCT a), min(a) > 1000000000, min(b) > 1000000000 FROM app.ids"
        ),
        ["2|2|t|t"]
    );
    env.kalam_sql("INSERT INTO app.ids (note) VALUES ('from the server')");
    assert_eq!(
        rows(&mut pg, "SELECT a > 1000000000 AND b > 1000000000 FROM app.ids WHERE note = 'from the server'"),
        ["t"]
    );

    pg.batch_execute(
        "ALTER USER MAPPING FOR CURRENT_USER SERVER kalam_server OPTIONS (SET auth_header 'Bearer wrong')",
    )
    .unwrap();
    let error = expect_pg_error(pg.query("SELECT * FROM app.ids", &[]), &[]);
    assert!(!error.message.contains("wrong"), "credentials in a message: {error:?}");
    pg.batch_execute(&format!(
        "ALTER USER MAPPING FOR CURRENT_USER SERVER kalam_server OPTIONS (SET auth_header 'Bearer {TOKEN}')"
    ))
    .unwrap();
    assert_eq!(rows(&mut pg, "SELECT count(*) FROM app.ids"), ["3"]);

    pg.batch_execute("ALTER SERVER kalam_server OPTIONS (SET port '1')").unwrap();
    let error = expect_pg_error(pg.batch_execute("DROP TABLE app.ids"), &["not running or unreachable"]);
    assert!(error.hint.as_deref().unwrap_or("").contains("owns_remote"), "{error:?}");
    pg.batch_execute(
        "ALTER FOREIGN TABLE app.ids OPTIONS (SET owns_remote 'false'); DROP FOREIGN TABLE app.ids;",
    )
    .unwrap();
    assert_eq!(remote_tables(&env, "app"), ["ids"]);
}
