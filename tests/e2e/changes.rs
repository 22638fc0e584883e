//! UPDATE and DELETE through foreign tables: rows found by their identity (the remote primary
//! key, else `_seq`), in the PostgreSQL transaction, checked against a heap table that took
//! the same statements.

use kalam_e2e::{TestEnv, expect_pg_error};

fn rows(pg: &mut postgres::Client, sql: &str) -> Vec<String> {
    kalam_e2e::query_text(pg, sql).unwrap_or_else(|code| panic!("{sql}: {code}"))
}

const COLUMNS: &str = "id bigint NOT NULL, name text, n numeric(12,3), tz timestamptz, j jsonb, u uuid";
const KALAM_COLUMNS: &str =
    "id BIGINT PRIMARY KEY, name TEXT, n DECIMAL(12,3), tz TIMESTAMPTZ, j JSON, u UUID";
const SEED: &str = "INSERT INTO {t} SELECT g, 'name ' || g, g * 1.5, \
     timestamptz '2024-01-01 00:00+00' + g * interval '1 hour', jsonb_build_object('g', g), \
     md5(g::text)::uuid FROM generate_series(1, 300) g";

/// A keyed remote table `app.k` behind a foreign table, and a heap twin `app.k_heap`, seeded alike.
fn fixture(env: &TestEnv) -> postgres::Client {
    env.kalam_sql("CREATE NAMESPACE app");
    env.kalam_sql(&format!("CREATE TABLE app.k ({KALAM_COLUMNS})"));
    let mut pg = env.pg_with_server();
    pg.batch_execute(&format!(
        "SET TIME ZONE 'UTC'; CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.k ({COLUMNS}) SERVER kalam_server;
         CREATE TABLE app.k_heap ({COLUMNS}, PRIMARY KEY (id));
         {}; {};",
        SEED.replace("{t}", "app.k"),
        SEED.replace("{t}", "app.k_heap")
    ))
    .unwrap();
    pg
}

/// Runs `sql` (with `{t}` for the table) on the foreign table and on the heap twin: the same
/// rows changed, the same RETURNING rows, then the same table contents.
fn same(pg: &mut postgres::Client, sql: &str) {
    let on = |t: &str| sql.replace("{t}", t);
    if sql.contains("RETURNING") {
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let foreign = sorted(rows(pg, &on("app.k")));
        assert_eq!(foreign, sorted(rows(pg, &on("app.k_heap"))), "{sql}");
    } else {
        let foreign = pg.execute(on("app.k").as_str(), &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let heap = pg.execute(on("app.k_heap").as_str(), &[]).unwrap();
        assert_eq!(foreign, heap, "rows changed by {sql}");
    }
    let all = "SELECT id, name, n, tz, j, u FROM {t} ORDER BY id";
    assert_eq!(
        rows(pg, &all.replace("{t}", "app.k")),
        rows(pg, &all.replace("{t}", "app.k_heap")),
        "after {sql}"
    );
}

// Goal: UPDATE and DELETE change exactly the rows and values a heap table's do, whether the
// WHERE runs on the server or in PostgreSQL, including a change of the key itself, NULLs,
// RETURNING, and rows found through a join with a local table.
#[test]
fn updates_and_deletes_match_a_heap_table() {
    let env = TestEnv::start();
    let mut pg = fixture(&env);
    pg.batch_execute("CREATE TABLE app.picks (id bigint, label text); INSERT INTO app.picks VALUES (7, 'seven'), (8, 'eight'), (9, NULL);")
        .unwrap();
    for sql in [
        "UPDATE {t} SET name = 'changed' WHERE id = 5",
        "UPDATE {t} SET name = NULL, n = n * 2 WHERE id BETWEEN 10 AND 20",
        // A WHERE PostgreSQL evaluates (md5 is not shipped): rows come back, are changed by key.
        "UPDATE {t} SET n = -1.5, j = jsonb_set(j, '{g}', '0') WHERE md5(name) LIKE 'a%'",
        "UPDATE {t} SET tz = tz + interval '1 day', u = NULL WHERE id % 7 = 0",
        // The key itself changes: the old row is found by its old key.
        "UPDATE {t} SET id = id + 1000 WHERE id > 290",
        "UPDATE {t} SET name = p.label FROM app.picks p WHERE p.id = {t}.id",
        "UPDATE {t} SET name = 'none' WHERE false",
        "UPDATE {t} SET name = upper(name) WHERE id < 4 RETURNING id, name, n",
        "DELETE FROM {t} WHERE id IN (1, 2, 3)",
        "DELETE FROM {t} WHERE md5(name) LIKE 'b%'",
        "DELETE FROM {t} WHERE id > 1295 RETURNING *",
        "DELETE FROM {t} USING app.picks p WHERE p.id = {t}.id AND p.label IS NULL",
        "DELETE FROM {t} WHERE n < 0 RETURNING id, name",
        // Run by the server as one statement (direct modify): a constant, a value computed once.
        "UPDATE {t} SET name = 'direct', n = 0.125, j = '{\"d\": [1, 2]}' WHERE id BETWEEN 100 AND 120 AND name LIKE 'name 1%'",
        "UPDATE {t} SET tz = timestamptz '2030-01-01 00:00+00' + interval '1 second', u = NULL WHERE id > 250",
        "UPDATE {t} SET name = NULL WHERE name IS NULL OR id = 130",
        "DELETE FROM {t} WHERE id >= 40 AND id < 45",
    ] {
        same(&mut pg, sql);
    }
    // A prepared statement's parameters, in a generic plan.
    pg.batch_execute("SET plan_cache_mode = force_generic_plan").unwrap();
    for t in ["app.k", "app.k_heap"] {
        pg.batch_execute(&format!(
            "PREPARE up_{0}(bigint, text) AS UPDATE {t} SET name = $2 WHERE id > $1;
             EXECUTE up_{0}(280, 'param');
             PREPARE del_{0}(bigint) AS DELETE FROM {t} WHERE id = $1;
             EXECUTE del_{0}(150);",
            t.replace('.', "_")
        ))
        .unwrap();
    }
    same(&mut pg, "DELETE FROM {t} WHERE false");
    same(&mut pg, "DELETE FROM {t}");
    assert_eq!(rows(&mut pg, "SELECT count(*) FROM app.k"), ["0"]);
}

// Goal: EXPLAIN shows which UPDATEs and DELETEs the server runs whole (a Foreign Update or
// Delete with its one remote statement) and which change rows one by one (a Foreign Scan under
// the ModifyTable, with a local filter, RETURNING or a value computed per row).
#[test]
fn explain_shows_direct_changes() {
    let env = TestEnv::start();
    let mut pg = fixture(&env);
    let plan = |pg: &mut postgres::Client, sql: &str| {
        rows(pg, &format!("EXPLAIN (VERBOSE, COSTS OFF) {sql}")).join("\n")
    };
    let direct = [
        (
            "UPDATE app.k SET name = 'x', n = 2 WHERE id > 5",
            r#"Remote SQL: UPDATE "app"."k" SET "name" = $1, "n" = $2 WHERE ("id" > 5)"#,
        ),
        ("DELETE FROM app.k WHERE name = 'a'", r#"Remote SQL: DELETE FROM "app"."k" WHERE ("name" = 'a')"#),
        ("DELETE FROM app.k", r#"Remote SQL: DELETE FROM "app"."k""#),
    ];
    for (sql, remote) in direct {
        let shown = plan(&mut pg, sql);
        assert!(shown.contains("Foreign Update") || shown.contains("Foreign Delete"), "{sql}:\n{shown}");
        assert!(shown.contains(remote), "{sql}:\n{shown}");
        assert!(!shown.contains("Foreign Scan"), "{sql}:\n{shown}");
    }
    for sql in [
        "UPDATE app.k SET name = 'x' WHERE md5(name) = 'y'",
        "UPDATE app.k SET n = n + 1 WHERE id = 5",
        "UPDATE app.k SET name = 'x' WHERE id = 5 RETURNING id",
        "DELETE FROM app.k WHERE id = 5 RETURNING *",
        "UPDATE app.k SET name = random()::text WHERE id = 5",
    ] {
        let shown = plan(&mut pg, sql);
        assert!(shown.contains("Foreign Scan"), "{sql}:\n{shown}");
    }
    // EXPLAIN ANALYZE runs it: the row count is the server's.
    let analyzed = rows(
        &mut pg,
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) DELETE FROM app.k WHERE id <= 10",
    )
    .join("\n");
    assert!(analyzed.contains("Foreign Delete"), "{analyzed}");
    assert_eq!(rows(&mut pg, "SELECT count(*) FROM app.k"), ["290"]);
}

// Goal: changes belong to the PostgreSQL transaction (read by it at once, undone by ROLLBACK and
// by ROLLBACK TO SAVEPOINT, invisible to others until COMMIT); a key taken twice is a 23505 with
// the key in DETAIL, on INSERT and on UPDATE, at the statement and leaving nothing of it; a NULL
// in a NOT NULL column is a 23502; the server's columns cannot be set.
#[test]
fn changes_follow_the_transaction_and_keep_the_key() {
    let env = TestEnv::start();
    let mut pg = fixture(&env);
    let mut other = env.pg();
    other.batch_execute("SET TIME ZONE 'UTC'").unwrap();
    let name =
        |pg: &mut postgres::Client, id: i64| rows(pg, &format!("SELECT name FROM app.k WHERE id = {id}"));

    pg.batch_execute("BEGIN; UPDATE app.k SET name = 'tx' WHERE id = 1; DELETE FROM app.k WHERE id = 2;")
        .unwrap();
    assert_eq!(name(&mut pg, 1), ["tx"]);
    assert!(name(&mut pg, 2).is_empty());
    assert_eq!(name(&mut other, 1), ["name 1"], "nothing is seen before COMMIT");
    pg.batch_execute("ROLLBACK").unwrap();
    assert_eq!(name(&mut pg, 1), ["name 1"]);
    assert_eq!(name(&mut pg, 2), ["name 2"]);

    pg.batch_execute(
        "BEGIN;
         UPDATE app.k SET name = 'kept' WHERE id = 1;
         SAVEPOINT s;
         UPDATE app.k SET name = 'undone' WHERE id = 1;
         DELETE FROM app.k WHERE id = 3;
         ROLLBACK TO SAVEPOINT s;
         UPDATE app.k SET name = name || '!' WHERE id = 1;
         COMMIT;",
    )
    .unwrap();
    assert_eq!(name(&mut other, 1), ["kept!"]);
    assert_eq!(name(&mut other, 3), ["name 3"]);

    let error = expect_pg_error(
        pg.batch_execute("INSERT INTO app.k (id, name) VALUES (4, 'again')"),
        &["duplicate key"],
    );
    assert_eq!(error.code, "23505", "{error:?}");
    assert_eq!(error.detail.as_deref(), Some("Key (id)=(4) already exists."), "{error:?}");
    let error = expect_pg_error(pg.batch_execute("UPDATE app.k SET id = 5 WHERE id = 6"), &["duplicate key"]);
    assert_eq!(error.code, "23505", "{error:?}");
    // Inside a transaction the error comes at the statement, and the statements before stay.
    pg.batch_execute("BEGIN; INSERT INTO app.k (id, name) VALUES (5000, 'new');").unwrap();
    let error = expect_pg_error(
        pg.batch_execute(
            "INSERT INTO app.k (id) SELECT g FROM generate_series(5001, 5010) g UNION ALL SELECT 5000",
        ),
        &["duplicate key"],
    );
    assert_eq!(error.code, "23505", "{error:?}");
    pg.batch_execute("ROLLBACK").unwrap();
    assert!(name(&mut other, 5000).is_empty());
    assert_eq!(rows(&mut other, "SELECT count(*) FROM app.k WHERE id > 4000"), ["0"]);

    let error = expect_pg_error(pg.batch_execute("UPDATE app.k SET id = NULL WHERE id = 7"), &["null"]);
    assert_eq!(error.code, "23502", "{error:?}");
    assert_eq!(name(&mut other, 7), ["name 7"]);

    pg.batch_execute("ALTER FOREIGN TABLE app.k ADD COLUMN _seq bigint").unwrap();
    let error = expect_pg_error(pg.batch_execute("UPDATE app.k SET _seq = 1 WHERE id = 8"), &["_seq"]);
    assert_eq!(error.code, "428C9", "{error:?}");
}

// Goal: a table without a primary key is changed through `_seq` when the foreign table declares
// it; without either, UPDATE and DELETE are refused before anything runs, saying what to declare.
#[test]
fn rows_without_a_key_are_found_by_seq() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE NAMESPACE app");
    env.kalam_sql("CREATE TABLE app.log (kind TEXT, n INT)");
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.log (kind text, n integer, _seq bigint) SERVER kalam_server;
         CREATE FOREIGN TABLE app.log_plain (kind text, n integer) SERVER kalam_server OPTIONS (table 'log');
         INSERT INTO app.log (kind, n) VALUES ('a', 1), ('a', 1), ('b', 2), ('c', 3);",
    )
    .unwrap();
    // Two rows alike: each is its own row version.
    assert_eq!(
        pg.execute("UPDATE app.log SET n = n + 10 WHERE kind = 'a' AND random() >= 0", &[]).unwrap(),
        2
    );
    assert_eq!(pg.execute("DELETE FROM app.log WHERE kind = 'b' AND random() >= 0", &[]).unwrap(), 1);
    assert_eq!(rows(&mut pg, "SELECT kind, n FROM app.log ORDER BY kind, n"), ["a|11", "a|11", "c|3"]);

    for sql in ["UPDATE app.log_plain SET n = n + 1", "DELETE FROM app.log_plain WHERE random() >= 0"] {
        let error = expect_pg_error(pg.batch_execute(sql), &["no identity"]);
        assert_eq!(error.code, "55000", "{error:?}");
        assert!(error.hint.as_deref().unwrap_or("").contains("_seq"), "{error:?}");
    }
    assert_eq!(rows(&mut pg, "SELECT count(*) FROM app.log"), ["3"]);
    // What the server runs whole needs no identity.
    assert_eq!(pg.execute("UPDATE app.log_plain SET n = 0 WHERE kind = 'c'", &[]).unwrap(), 1);
    assert_eq!(pg.execute("DELETE FROM app.log_plain WHERE n = 0", &[]).unwrap(), 1);
    assert_eq!(rows(&mut pg, "SELECT kind, n FROM app.log ORDER BY kind, n"), ["a|11", "a|11"]);
    // A statement does not see its own writes: the rows are copied once.
    assert_eq!(pg.execute("INSERT INTO app.log (kind, n) SELECT kind, n + 1 FROM app.log", &[]).unwrap(), 2);
    assert_eq!(
        rows(&mut pg, "SELECT kind, n FROM app.log ORDER BY kind, n"),
        ["a|11", "a|11", "a|12", "a|12"]
    );
}

// Goal: a partitioned table with a foreign partition routes INSERT and COPY rows to the server,
// and UPDATE and DELETE through the parent change the foreign partition's rows by their key,
// as a heap twin does; INSERT ... RETURNING returns the rows written.
#[test]
fn foreign_partitions_route_and_change_rows() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE NAMESPACE app");
    env.kalam_sql("CREATE TABLE app.low (id BIGINT PRIMARY KEY, name TEXT)");
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE SCHEMA app;
         CREATE TABLE app.p (id bigint NOT NULL, name text) PARTITION BY RANGE (id);
         CREATE FOREIGN TABLE app.p_low PARTITION OF app.p FOR VALUES FROM (MINVALUE) TO (1000)
           SERVER kalam_server OPTIONS (table 'low');
         CREATE TABLE app.p_high PARTITION OF app.p FOR VALUES FROM (1000) TO (MAXVALUE);
         CREATE TABLE app.p_heap (id bigint NOT NULL, name text);
         INSERT INTO app.p SELECT g, 'n' || g FROM generate_series(980, 1019) g;
         INSERT INTO app.p_heap SELECT g, 'n' || g FROM generate_series(980, 1019) g;",
    )
    .unwrap();
    let mut copy = pg.copy_in("COPY app.p FROM STDIN").unwrap();
    std::io::Write::write_all(&mut copy, b"5\tfive\n5000\tfive thousand\n").unwrap();
    assert_eq!(copy.finish().unwrap(), 2);
    pg.batch_execute("INSERT INTO app.p_heap VALUES (5, 'five'), (5000, 'five thousand')").unwrap();
    assert_eq!(rows(&mut pg, "SELECT count(*) FROM app.p_low"), ["21"]);
    let returned =
        rows(&mut pg, "INSERT INTO app.p VALUES (6, 'six'), (6000, 'six thousand') RETURNING id, name");
    assert_eq!(returned, ["6|six", "6000|six thousand"]);
    pg.batch_execute("INSERT INTO app.p_heap VALUES (6, 'six'), (6000, 'six thousand')").unwrap();
    for sql in [
        "UPDATE {t} SET name = name || '!' WHERE id % 2 = 0",
        "UPDATE {t} SET id = id + 100 WHERE id BETWEEN 990 AND 1009 AND name LIKE 'n%'",
        "DELETE FROM {t} WHERE id % 3 = 0",
    ] {
        let changed = pg.execute(sql.replace("{t}", "app.p").as_str(), &[]).unwrap();
        assert_eq!(changed, pg.execute(sql.replace("{t}", "app.p_heap").as_str(), &[]).unwrap(), "{sql}");
    }
    assert_eq!(
        rows(&mut pg, "SELECT id, name FROM app.p ORDER BY id"),
        rows(&mut pg, "SELECT id, name FROM app.p_heap ORDER BY id")
    );
}
