//! Row estimates: ANALYZE's sample drawn by the server, and counts asked of it when planning.

use kalam_e2e::{TestEnv, expect_pg_error};

/// The planner's row estimate of the (only) scan of `query`.
fn estimated_rows(pg: &mut postgres::Client, query: &str) -> f64 {
    let messages = pg.simple_query(&format!("EXPLAIN (FORMAT JSON) {query}")).unwrap();
    let text = messages
        .iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .expect("a plan");
    let plan: serde_json::Value = serde_json::from_str(&text).unwrap();
    plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or_else(|| panic!("no row estimate in {plan}"))
}

/// 20,000 rows: `k` uniform over 0..999, `tag` 'rare' for 1 row in 100, else 'common'.
fn big_table(env: &TestEnv) -> postgres::Client {
    env.kalam_sql("CREATE NAMESPACE app");
    env.kalam_sql("CREATE TABLE app.big (id BIGINT, k INT, tag TEXT)");
    env.kalam_sql(
        "INSERT INTO app.big SELECT value, value % 1000, \
         CASE WHEN value % 100 = 0 THEN 'rare' ELSE 'common' END FROM generate_series(1, 20000)",
    );
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE SCHEMA app;
         CREATE FOREIGN TABLE app.big (id bigint, k integer, tag text) SERVER kalam_server;",
    )
    .unwrap();
    pg
}

// Goal: ANALYZE of a foreign table larger than its sample has the server keep a random share
// (the rows read are near the sample's size, not the table's), records the server's row count
// as reltuples, and fills pg_stats, so that estimates follow the data: before it, `tag =
// 'common'` is PostgreSQL's default guess (0.5% of the rows); after it, about the 99% it is.
#[test]
fn analyze_samples_through_the_server() {
    let env = TestEnv::start();
    let mut setup = big_table(&env);
    let query = "SELECT id FROM app.big WHERE tag = 'common'";
    let before = estimated_rows(&mut setup, query);
    assert!(before < 1000.0, "estimate before ANALYZE: {before}");

    let (mut pg, notices) = env.pg_with_notices();
    // 300 × the statistics target: a sample of 3,000 of the 20,000 rows.
    pg.batch_execute("SET default_statistics_target = 10; ANALYZE VERBOSE app.big").unwrap();
    let notices = notices.lock().unwrap().clone();
    let line = notices
        .iter()
        .find(|n| n.contains("the KalamDB server holds"))
        .unwrap_or_else(|| panic!("no sampling message in {notices:#?}"));
    // "\"big\": the KalamDB server holds 20000 rows, N were read, M are in the sample"
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let [total, read, kept] = numbers[..] else { panic!("{line}") };
    assert_eq!(total, 20000, "{line}");
    assert!((2000..=6000).contains(&read), "the server should send about 3,600 rows: {line}");
    assert_eq!(kept, read.min(3000), "{line}");

    let (reltuples, relpages): (f32, i32) = pg
        .query_one("SELECT reltuples, relpages FROM pg_class WHERE oid = 'app.big'::regclass", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(reltuples, 20000.0);
    // The pages the rows would take here (a partitioned table's sample is shared by pages).
    assert!((50..=1000).contains(&relpages), "relpages {relpages}");
    let common: String = pg
        .query_one(
            "SELECT most_common_vals::text FROM pg_stats WHERE schemaname = 'app' AND tablename = 'big' \
             AND attname = 'tag'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(common.contains("common"), "{common}");
    let after = estimated_rows(&mut pg, query);
    assert!(after > 15000.0, "estimate after ANALYZE: {after}");
    // A range over the uniform column: 10% of the rows.
    let range = estimated_rows(&mut pg, "SELECT id FROM app.big WHERE k < 100");
    assert!((1000.0..=4000.0).contains(&range), "estimate of k < 100: {range}");
}

// Goal: a table smaller than the sample is read whole, every row in it; a KalamDB user table
// without kalam.user_id refuses ANALYZE with what to do.
#[test]
fn analyze_reads_small_tables_whole_and_needs_a_user_for_user_tables() {
    let env = TestEnv::start();
    let mut pg = big_table(&env);
    pg.batch_execute("ANALYZE app.big").unwrap();
    let reltuples: f32 =
        pg.query_one("SELECT reltuples FROM pg_class WHERE oid = 'app.big'::regclass", &[]).unwrap().get(0);
    assert_eq!(reltuples, 20000.0);
    let distinct: f32 = pg
        .query_one(
            "SELECT n_distinct FROM pg_stats WHERE schemaname = 'app' AND tablename = 'big' AND attname = 'k'",
            &[],
        )
        .unwrap()
        .get(0);
    // Every row was read (the default target samples 30,000): exactly 1,000 distinct values.
    assert_eq!(distinct, 1000.0);

    env.kalam_sql("CREATE TABLE app.notes (id BIGINT, body TEXT) WITH (TYPE = 'USER')");
    pg.batch_execute(
        "CREATE FOREIGN TABLE app.notes (id bigint, body text) SERVER kalam_server OPTIONS (table_type 'user')",
    )
    .unwrap();
    let error = expect_pg_error(pg.batch_execute("ANALYZE app.notes"), &["kalam.user_id"]);
    assert_eq!(error.code, "22023", "{error:?}");
}

// Goal: with use_remote_estimate, planning asks the server to count the rows the remote
// clauses keep, so the estimate is the true count where PostgreSQL's default would be off by
// far; a clause with a run-time value is estimated locally on that count; a bad value of the
// option is refused at CREATE/ALTER time.
#[test]
fn remote_estimates_count_on_the_server() {
    let env = TestEnv::start();
    let mut pg = big_table(&env);
    let query = "SELECT id FROM app.big WHERE tag = 'common' AND k < 500";
    let local = estimated_rows(&mut pg, query);
    pg.batch_execute("ALTER FOREIGN TABLE app.big OPTIONS (ADD use_remote_estimate 'true')").unwrap();
    let remote = estimated_rows(&mut pg, query);
    let exact: i64 = pg.query_one(&format!("SELECT count(*) FROM ({query}) q"), &[]).unwrap().get(0);
    assert!(local < 1000.0, "default estimate: {local}");
    assert_eq!(remote, exact as f64, "the server's count");
    // A local clause (a function of a column) is estimated on the counted rows.
    let with_local = estimated_rows(&mut pg, "SELECT id FROM app.big WHERE tag = 'common' AND abs(k) = 3");
    assert!(with_local < 19800.0, "{with_local}");
    // The server's option applies to every table; the table's own value overrides it.
    pg.batch_execute(
        "ALTER FOREIGN TABLE app.big OPTIONS (DROP use_remote_estimate);
         ALTER SERVER kalam_server OPTIONS (ADD use_remote_estimate 'on');",
    )
    .unwrap();
    assert_eq!(estimated_rows(&mut pg, query), exact as f64);
    pg.batch_execute("ALTER FOREIGN TABLE app.big OPTIONS (ADD use_remote_estimate 'false')").unwrap();
    assert!(estimated_rows(&mut pg, query) < 1000.0);

    let error = expect_pg_error(
        pg.batch_execute("ALTER FOREIGN TABLE app.big OPTIONS (SET use_remote_estimate 'maybe')"),
        &["use_remote_estimate", "maybe"],
    );
    assert_eq!(error.code, "HV024", "{error:?}");
}
