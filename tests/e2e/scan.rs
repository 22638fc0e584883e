//! Reading foreign tables.

use kalam_e2e::TestEnv;

/// Creates `app.readings` on the server: every skeleton type, NULLs in every column but `id`.
fn create_readings(env: &TestEnv) {
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql(
        "CREATE TABLE app.readings (id BIGINT NOT NULL, value DOUBLE, label VARCHAR, ok BOOLEAN, taken_at TIMESTAMP)",
    );
    env.kalam_sql(
        "INSERT INTO app.readings VALUES
           (1, 1.5, 'alpha', true, '2024-01-02T03:04:05.123456'),
           (2, NULL, NULL, NULL, NULL),
           (3, -0.25, 'γράμμα ✓', false, '1999-12-31T23:59:59'),
           (-9223372036854775808, 1e300, '', true, '2150-06-01T00:00:00')",
    );
}

const READINGS_DDL: &str = "CREATE FOREIGN TABLE app.readings (
        id bigint, value double precision, label text, ok boolean, taken_at timestamp
    ) SERVER kalam_server";

// Goal: the extension loads and reports what it is.
#[test]
fn extension_reports_version_and_mode() {
    let env = TestEnv::start();
    let mut pg = env.pg();
    pg.batch_execute("CREATE EXTENSION pg_kalam").unwrap();
    let row = pg.query_one("SELECT kalam_version(), kalam_compiled_mode()", &[]).unwrap();
    let version: String = row.get(0);
    let mode: String = row.get(1);
    assert_eq!(version, format!("pg_kalam {}", env!("CARGO_PKG_VERSION")));
    assert!(mode.contains("Arrow Flight SQL"), "{mode}");
}

// Goal: every skeleton type arrives exactly, NULLs included, through the real path.
#[test]
fn select_returns_every_type_and_null() {
    let env = TestEnv::start();
    create_readings(&env);
    let mut pg = env.pg_with_server();
    pg.batch_execute("CREATE SCHEMA app").unwrap();
    pg.batch_execute(READINGS_DDL).unwrap();

    let rows =
        pg.query("SELECT id, value, label, ok, taken_at::text FROM app.readings ORDER BY id", &[]).unwrap();
    type Row = (i64, Option<f64>, Option<String>, Option<bool>, Option<String>);
    let got: Vec<Row> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    let expected: Vec<Row> = vec![
        (i64::MIN, Some(1e300), Some(String::new()), Some(true), Some("2150-06-01 00:00:00".into())),
        (1, Some(1.5), Some("alpha".into()), Some(true), Some("2024-01-02 03:04:05.123456".into())),
        (2, None, None, None, None),
        (3, Some(-0.25), Some("γράμμα ✓".into()), Some(false), Some("1999-12-31 23:59:59".into())),
    ];
    assert_eq!(got, expected);
}

// Goal: an analytical query over many batches computes the same answer as the server itself,
// and EXPLAIN shows the remote SQL fetching only the columns the query uses.
#[test]
fn aggregate_over_many_batches_matches_server() {
    let env = TestEnv::start();
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql("CREATE TABLE app.trips (id BIGINT, city VARCHAR, fare DOUBLE, note VARCHAR)");
    // 50,000 rows = several engine batches (8,192 rows each).
    env.kalam_sql(
        "INSERT INTO app.trips SELECT value, 'city_' || CAST(value % 7 AS VARCHAR), CAST(value % 100 AS DOUBLE) / 4, NULL
         FROM generate_series(1, 50000)",
    );
    let expected = env.kalam_sql("SELECT count(*) AS n, sum(fare) AS total FROM app.trips WHERE id % 7 = 3");
    let expected_row = &expected["results"][0]["rows"][0];

    let mut pg = env.pg_with_server();
    pg.batch_execute("CREATE SCHEMA app").unwrap();
    pg.batch_execute(
        "CREATE FOREIGN TABLE app.trips (id bigint, city text, fare double precision, note text) SERVER kalam_server",
    )
    .unwrap();
    let row = pg.query_one("SELECT count(*), sum(fare) FROM app.trips WHERE city = 'city_3'", &[]).unwrap();
    let n: i64 = row.get(0);
    let total: f64 = row.get(1);
    assert_eq!(n, expected_row["n"].as_i64().unwrap());
    assert_eq!(total, expected_row["total"].as_f64().unwrap());

    let per_city = pg.query("SELECT city, count(*) FROM app.trips GROUP BY city ORDER BY city", &[]).unwrap();
    assert_eq!(per_city.len(), 7);
    let counted: i64 = per_city.iter().map(|r| r.get::<_, i64>(1)).sum();
    assert_eq!(counted, 50_000);

    let plan: Vec<String> = pg
        .query("EXPLAIN (VERBOSE, COSTS OFF) SELECT sum(fare) FROM app.trips WHERE city = 'city_3'", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let remote = plan.iter().find(|l| l.contains("Remote SQL")).unwrap_or_else(|| panic!("{plan:#?}"));
    assert!(remote.contains(r#""fare""#) && remote.contains(r#""city""#), "{remote}");
    assert!(!remote.contains(r#""note""#) && !remote.contains(r#""id""#), "{remote}");
}

// Goal: the namespace and table options point a foreign table anywhere; rescans (a nested
// loop's inner side) restart the remote query and return the same rows.
#[test]
fn table_options_and_rescan() {
    let env = TestEnv::start();
    create_readings(&env);
    let mut pg = env.pg_with_server();
    pg.batch_execute(
        "CREATE FOREIGN TABLE public.r (id bigint, label text) SERVER kalam_server
             OPTIONS (namespace 'app', table 'readings');
         CREATE TABLE public.keys (k bigint);
         INSERT INTO keys VALUES (1), (2), (3);
         SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off;",
    )
    .unwrap();
    let rows = pg.query("SELECT k, r.label FROM keys JOIN r ON r.id = keys.k ORDER BY k", &[]).unwrap();
    let got: Vec<(i64, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, Some("alpha".into())), (2, None), (3, Some("γράμμα ✓".into()))]);
}
