//! Writes through foreign tables: INSERT and COPY, in the PostgreSQL transaction.

use kalam_e2e::{TestEnv, expect_pg_error};

/// A query's rows as text, in order.
fn rows(pg: &mut postgres::Client, sql: &str) -> Vec<String> {
    kalam_e2e::query_text(pg, sql).unwrap_or_else(|code| panic!("{sql}: {code}"))
}

const COLUMNS: &str = "id bigint, i2 smallint, i4 integer, f4 real, f8 double precision, ok boolean, \
     n numeric(12,3), t text, v varchar(10), b bytea, u uuid, d date, tm time, ts timestamp, tz timestamptz, \
     j jsonb, js json";
const KALAM_COLUMNS: &str = "id BIGINT, i2 SMALLINT, i4 INT, f4 FLOAT, f8 DOUBLE, ok BOOLEAN, n DECIMAL(12,3), \
     t TEXT, v TEXT, b BYTEA, u UUID, d DATE, tm TIME, ts TIMESTAMP, tz TIMESTAMPTZ, j JSON, js JSON";

fn fixture(env: &TestEnv) -> postgres::Client {
    env.kalam_sql("CREATE NAMESPACE app");
    env.kalam_sql(&format!("CREATE TABLE app.w ({KALAM_COLUMNS})"));
    let mut pg = env.pg_with_server();
    pg.batch_execute(&format!(
        "SET TIME ZONE 'UTC'; CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.w ({COLUMNS}) SERVER kalam_server;
         CREATE TABLE app.w_heap ({COLUMNS});"
    ))
    .unwrap();
    pg
}

// Goal: every writable type goes PostgreSQL -> Arrow -> kalamdb-server -> PostgreSQL unchanged:
// the foreign table reads back what a heap table holds for the same INSERT, NULLs, extremes,
// quotes and non-ASCII text included; COPY FROM writes the same way.
#[test]
fn inserted_rows_read_back_exactly() {
    let env = TestEnv::start();
    let mut pg = fixture(&env);
    let values = "(1, -32768, 2147483647, 1.5, -0.000123456789, true, -123456789.123, 'it''s ü 日本', 'x', \
                   '\\x00ff41', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '0001-01-01', '23:59:59.999999', \
                   '1999-12-31 23:59:59.123456', '2024-05-06 07:08:09.5+02', '{\"k\": [1, 2.50], \"a\": null}', \
                   '{\"dup\": 1, \"dup\": 2}'),
                  (2, NULL, NULL, 'NaN', '-Infinity', NULL, 0.001, '', NULL, '\\x', NULL, '9999-12-31', NULL, \
                   NULL, NULL, 'null', '[]'),
                  (3, 7, 0, '-0', 1e300, false, 999999999.999, 'back\\slash', 'ten chars!', NULL, \
                   '00000000-0000-0000-0000-000000000000', NULL, '00:00', '2038-01-19 03:14:08', \
                   '1970-01-01 00:00:00+00', '\"s\"', '  {\"spaced\" : 1}  ')";
    pg.batch_execute(&format!("INSERT INTO app.w VALUES {values}; INSERT INTO app.w_heap VALUES {values};"))
        .unwrap();
    let columns = "id, i2, i4, f4, f8, ok, n, t, v, b, u, d, tm, ts, tz, j, js";
    let foreign = rows(&mut pg, &format!("SELECT {columns} FROM app.w ORDER BY id"));
    assert_eq!(foreign, rows(&mut pg, &format!("SELECT {columns} FROM app.w_heap ORDER BY id")));
    assert_eq!(foreign.len(), 3);
    // The server holds the values themselves, as its own queries show them.
    let answer = env.kalam_sql(
        "SELECT i2, i4, CAST(n AS VARCHAR) AS n, t, u, CAST(d AS VARCHAR) AS d, \
         CAST(tm AS VARCHAR) AS tm, CAST(ts AS VARCHAR) AS ts, CAST(tz AS VARCHAR) AS tz, j FROM app.w WHERE id = 1",
    );
    let row = &answer["results"][0]["rows"][0];
    let expected = serde_json::json!({
        "i2": -32768, "i4": 2147483647, "n": "-123456789.123", "t": "it's ü 日本",
        "u": "a0eebc999c0b4ef8bb6d6bb9bd380a11", "d": "0001-01-01", "tm": "23:59:59.999999",
        "ts": "1999-12-31T23:59:59.123456", "tz": "2024-05-06T05:08:09.500Z",
        "j": "{\"a\": null, \"k\": [1, 2.50]}"
    });
    assert_eq!(row, &expected, "{answer}");

    let mut copy = pg.copy_in("COPY app.w (id, t, n) FROM STDIN").unwrap();
    std::io::Write::write_all(&mut copy, b"10\tcopied\t1.5\n11\t\\N\t-2\n").unwrap();
    assert_eq!(copy.finish().unwrap(), 2);
    assert_eq!(
        rows(&mut pg, "SELECT id, t, n FROM app.w WHERE id >= 10 ORDER BY id"),
        ["10|copied|1.500", "11|NULL|-2.000"]
    );
}

// Goal: writes belong to the PostgreSQL transaction: seen by it at once, by other sessions only
// after COMMIT, never after ROLLBACK; ROLLBACK TO SAVEPOINT undoes what followed the savepoint
// (nested ones too) and RELEASE keeps it; a failing INSERT ... SELECT leaves nothing, even past
// the rows already sent; PREPARE TRANSACTION and UPDATE are refused with what to do.
#[test]
fn writes_follow_the_postgres_transaction() {
    let env = TestEnv::start();
    let mut pg = fixture(&env);
    let mut other = env.pg();
    other.batch_execute("CREATE SCHEMA IF NOT EXISTS app").unwrap();
    let count = |pg: &mut postgres::Client| rows(pg, "SELECT count(*) FROM app.w")[0].clone();

    pg.batch_execute("BEGIN; INSERT INTO app.w (id) SELECT generate_series(1, 10);").unwrap();
    assert_eq!(count(&mut pg), "10", "the transaction reads its own writes");
    assert_eq!(count(&mut other), "0", "nothing is seen before COMMIT");
    pg.batch_execute("COMMIT").unwrap();
    assert_eq!(count(&mut other), "10");

    pg.batch_execute("BEGIN; INSERT INTO app.w (id) VALUES (100); ROLLBACK;").unwrap();
    assert_eq!(count(&mut other), "10");

    pg.batch_execute(
        "BEGIN;
         INSERT INTO app.w (id) VALUES (201);
         SAVEPOINT a;
         INSERT INTO app.w (id) VALUES (202);
         SAVEPOINT b;
         INSERT INTO app.w (id) VALUES (203);
         ROLLBACK TO SAVEPOINT a;
         INSERT INTO app.w (id) VALUES (204);
         SAVEPOINT c;
         INSERT INTO app.w (id) VALUES (205);
         RELEASE SAVEPOINT c;
         COMMIT;",
    )
    .unwrap();
    assert_eq!(rows(&mut other, "SELECT id FROM app.w WHERE id > 200 ORDER BY id"), ["201", "204", "205"]);

    // 20,000 rows, the 15,000th not storable (numeric NaN): three batches of 4,096 were sent.
    pg.batch_execute("ALTER SERVER kalam_server OPTIONS (ADD insert_batch_rows '4096')").unwrap();
    let error = expect_pg_error(
        pg.batch_execute(
            "INSERT INTO app.w (id, n) SELECT g, CASE WHEN g = 15000 THEN 'NaN'::numeric ELSE g END \
             FROM generate_series(1000, 21000) g",
        ),
        &["NaN"],
    );
    assert_eq!(error.code, "22003", "{error:?}");
    assert_eq!(count(&mut other), "13");
    assert_eq!(count(&mut pg), "13");

    let error = expect_pg_error(
        pg.batch_execute("BEGIN; INSERT INTO app.w (id) VALUES (300); PREPARE TRANSACTION 'x';"),
        &["PREPARE", "KalamDB"],
    );
    assert_eq!(error.code, "0A000", "{error:?}");
    pg.batch_execute("ROLLBACK").ok();
    assert_eq!(count(&mut other), "13");

    let error = expect_pg_error(
        pg.batch_execute("INSERT INTO app.w (id) VALUES (1) ON CONFLICT DO NOTHING"),
        &["ON CONFLICT"],
    );
    assert_eq!(error.code, "0A000", "{error:?}");
    let error = expect_pg_error(
        pg.batch_execute("INSERT INTO app.w (id, tm) VALUES (400, '24:00:00')"),
        &["24:00:00"],
    );
    assert_eq!(error.code, "22008", "{error:?}");
    assert_eq!(count(&mut other), "13");

    // A row trigger that reads the table sees every row inserted before its own: rows are sent
    // one at a time while such a trigger exists.
    pg.batch_execute(
        "CREATE TABLE app.seen (id bigint, rows_before bigint);
         CREATE FUNCTION app.note() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           INSERT INTO app.seen SELECT NEW.id, count(*) FROM app.w WHERE id >= 500;
           RETURN NEW;
         END $$;
         CREATE TRIGGER note BEFORE INSERT ON app.w FOR EACH ROW EXECUTE FUNCTION app.note();
         INSERT INTO app.w (id) SELECT generate_series(500, 502);
         DROP TRIGGER note ON app.w;",
    )
    .unwrap();
    assert_eq!(
        rows(&mut pg, "SELECT id, rows_before FROM app.seen ORDER BY id"),
        ["500|0", "501|1", "502|2"]
    );

    let error =
        expect_pg_error(pg.batch_execute("UPDATE app.w SET t = t || 'x' WHERE id = 1"), &["no identity"]);
    assert_eq!(error.code, "55000", "{error:?}");
}

// Goal: a column an INSERT or COPY leaves out gets the remote table's default (a snowflake id
// per row, the time, a constant), a column with a local default gets PostgreSQL's, and a
// column given NULL stays NULL; a multi-row INSERT and an INSERT ... SELECT of several batches
// number every row.
#[test]
fn omitted_columns_get_the_remote_defaults() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE NAMESPACE app");
    env.kalam_sql(
        "CREATE TABLE app.d (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), created TIMESTAMP DEFAULT NOW(), \
         note TEXT DEFAULT 'remote', tag TEXT DEFAULT 'remote tag', v INT)",
    );
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.d (id bigint, created timestamp, note text, tag text DEFAULT 'local tag', v integer)
           SERVER kalam_server;
         INSERT INTO app.d (v) VALUES (1), (2), (3);
         INSERT INTO app.d (v, note) VALUES (4, NULL);
         INSERT INTO app.d (v) SELECT g FROM generate_series(100, 20099) g;",
    )
    .unwrap();
    let mut copy = pg.copy_in("COPY app.d (v) FROM STDIN").unwrap();
    std::io::Write::write_all(&mut copy, b"5\n6\n").unwrap();
    assert_eq!(copy.finish().unwrap(), 2);
    assert_eq!(
        rows(&mut pg, "SELECT v, note, tag FROM app.d WHERE v < 100 ORDER BY v"),
        [
            "1|remote|local tag",
            "2|remote|local tag",
            "3|remote|local tag",
            "4|NULL|local tag",
            "5|remote|local tag",
            "6|remote|local tag"
        ]
    );
    assert_eq!(
        rows(
            &mut pg,
            "SELECT count(*), count(DISTINCT id), count(created), \
             bool_and(created > now()::timestamp - interval '1 day') FROM app.d"
        ),
        ["20006|20006|20006|t"]
    );
}

// Goal: one-dimensional arrays of booleans, integers and floats are written as lists and read
// back unchanged (NULL elements, empty arrays, NULL arrays, NaN and infinities, an embedding);
// arrays that would not come back the same are refused clearly, and nothing is written.
#[test]
fn arrays_round_trip() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE NAMESPACE app");
    env.kalam_sql(
        "CREATE TABLE app.a (id BIGINT, ints INT[], small SMALLINT[], big BIGINT[], reals REAL[], \
         dbl DOUBLE[], flags BOOLEAN[], e EMBEDDING(3))",
    );
    let columns = "id bigint, ints integer[], small smallint[], big bigint[], reals real[], \
         dbl double precision[], flags boolean[], e real[]";
    let mut pg = env.pg_with_server();
    let values = "(1, '{1,NULL,3}', '{-32768,32767}', '{9223372036854775807,-1}', '{1.5,NaN,-Infinity}', \
                   '{1e300,-0}', '{t,f,NULL}', '{0.1,0.2,0.3}'),
                  (2, '{}', '{}', '{}', '{}', '{}', '{}', NULL),
                  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL)";
    pg.batch_execute(&format!(
        "CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.a ({columns}) SERVER kalam_server;
         CREATE TABLE app.a_heap ({columns});
         INSERT INTO app.a VALUES {values};
         INSERT INTO app.a_heap VALUES {values};"
    ))
    .unwrap();
    let all = "SELECT id, ints, small, big, reals, dbl, flags, e FROM {t} ORDER BY id";
    let foreign = rows(&mut pg, &all.replace("{t}", "app.a"));
    assert_eq!(foreign, rows(&mut pg, &all.replace("{t}", "app.a_heap")));
    assert_eq!(foreign.len(), 3);
    for (sql, code) in [
        ("INSERT INTO app.a (id, ints) VALUES (9, '{{1,2},{3,4}}')", "0A000"),
        ("INSERT INTO app.a (id, ints) VALUES (9, '[0:1]={1,2}')", "2202E"),
        ("INSERT INTO app.a (id, e) VALUES (9, '{1,2}')", "22000"),
    ] {
        let error = expect_pg_error(pg.batch_execute(sql), &[]);
        assert_eq!(error.code, code, "{sql}: {error:?}");
    }
    assert_eq!(rows(&mut pg, "SELECT count(*) FROM app.a"), ["3"]);
}
