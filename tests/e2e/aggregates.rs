//! Grouped queries the server computes (GetForeignUpperPaths): the same answers as PostgreSQL
//! over the same rows in a heap table, for generated GROUP BY / aggregate / WHERE combinations;
//! EXPLAIN shows what ran remotely, and what stays local stays local.

use kalam_e2e::TestEnv;

pub(crate) fn rows(pg: &mut postgres::Client, sql: &str) -> Vec<String> {
    kalam_e2e::query_text(pg, sql).unwrap_or_else(|code| panic!("{sql}: {code}"))
}

/// 64-bit LCG: the same seed, the same queries.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

const COLUMNS: &str = "id bigint, s smallint, i integer, b bigint, n numeric(12,3), t text, d date, \
     ts timestamp, tz timestamptz, ok boolean, f double precision";

/// `app.g` (authored in KalamDB) and `app.g_heap` with the same 400 rows, NULLs in every column
/// but the key, values near the edges (bigints whose sum leaves bigint's range, dates before
/// the year 1).
pub(crate) fn fixture(env: &TestEnv) -> postgres::Client {
    let mut pg = env.pg_with_server();
    let seed = "SELECT g, \
         CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 5 - 2)::smallint END, \
         CASE WHEN g % 13 = 0 THEN NULL ELSE (g * 37 % 101 - 50) END, \
         CASE WHEN g % 17 = 0 THEN NULL ELSE 9223372036854775807 - g END, \
         CASE WHEN g % 7 = 0 THEN NULL ELSE round((g * 1.237)::numeric, 3) END, \
         CASE WHEN g % 9 = 0 THEN NULL ELSE 'k' || (g % 6) END, \
         CASE WHEN g % 10 = 0 THEN NULL WHEN g % 37 = 1 THEN date '0001-12-31 BC' - g \
              ELSE date '2024-01-01' + g % 40 * 23 END, \
         CASE WHEN g % 12 = 0 THEN NULL ELSE timestamp '2024-01-01' + g * interval '77 hours' END, \
         CASE WHEN g % 14 = 0 THEN NULL ELSE timestamptz '2024-01-01 00:00+00' + g * interval '5 hours' END, \
         CASE WHEN g % 8 = 0 THEN NULL ELSE g % 3 = 0 END, \
         CASE WHEN g % 15 = 0 THEN NULL ELSE g / 7.0 END \
         FROM generate_series(1, 400) g";
    pg.batch_execute(&format!(
        "SET TIME ZONE 'UTC';
         CREATE TABLE app.g ({COLUMNS}, PRIMARY KEY (id)) USING kalamdb;
         CREATE TABLE app.g_heap ({COLUMNS});
         INSERT INTO app.g {seed}; INSERT INTO app.g_heap {seed};"
    ))
    .unwrap();
    pg
}

/// The rows of `sql` on the foreign table and on the heap twin, sorted (GROUP BY has no order).
fn both(pg: &mut postgres::Client, sql: &str) -> (Vec<String>, Vec<String>) {
    let mut foreign = rows(pg, &sql.replace("{t}", "app.g"));
    let mut heap = rows(pg, &sql.replace("{t}", "app.g_heap"));
    foreign.sort();
    heap.sort();
    (foreign, heap)
}

fn pushed(pg: &mut postgres::Client, sql: &str) -> bool {
    let plan = rows(pg, &format!("EXPLAIN (VERBOSE, COSTS OFF) {}", sql.replace("{t}", "app.g"))).join("\n");
    plan.contains("Relations: Aggregate on (app.g)")
}

// Goal: 300 generated grouped queries (seeded) give the heap table's rows exactly (types too:
// `sum(bigint)` beyond bigint's range, `sum(integer)`, numeric scales, NULL groups, empty
// inputs); the shippable shapes run on the server.
#[test]
fn generated_grouped_queries_match_the_heap_table() {
    let env = TestEnv::start();
    let mut pg = fixture(&env);
    let seed: u64 = std::env::var("KALAM_AGGREGATE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(11);
    let mut rng = Rng(seed);
    let groups = [
        "",
        "s",
        "t",
        "d",
        "ok",
        "s, t",
        "ts",
        "tz",
        "i, ok",
        "f",
        "extract(year FROM d)",
        "extract(year FROM ts), ok",
    ];
    let aggregates = [
        "count(*)",
        "count(i)",
        "count(DISTINCT s)",
        "count(DISTINCT t)",
        "sum(s)",
        "sum(i)",
        "sum(b)",
        "sum(n)",
        "sum(DISTINCT i)",
        "min(i)",
        "max(b)",
        "min(n)",
        "max(n)",
        "min(d)",
        "max(ts)",
        "min(tz)",
        "max(t)",
        "min(id)",
        "avg(i)",
        "avg(b)",
        "avg(n)",
        "avg(DISTINCT s)",
        // Summed by PostgreSQL, in the order the rows arrive (sorted, if the server sorted them
        // for a GroupAggregate): floats compared to 8 places, as addition order moves the last.
        "round(sum(f)::numeric, 8)",
        "bool_and(ok)",
        "bool_or(ok)",
        "max(i) - min(i)",
        "round(sum(n) / 3, 2)",
        "coalesce(max(t), 'none')",
        // Computed per row by the server: numeric arithmetic, CASE (values of one scale, of
        // several scales, integers), years.
        "sum(n * 2.5 - n)",
        "sum(n * i)",
        "avg(b * 0.5 + s)",
        "avg(n * n)",
        "sum(CASE WHEN t = 'k1' THEN n ELSE 0 END)",
        "sum(CASE WHEN i > 0 THEN 1 ELSE 0 END)",
        "sum(CASE WHEN s IS NULL THEN b END)",
        "avg(CASE WHEN ok THEN n * 2 END)",
        "avg(CASE WHEN t LIKE 'k%2' THEN i WHEN ok THEN s ELSE -1 END)",
        "sum(CASE WHEN t LIKE 'k%' AND NOT ok THEN n * n WHEN s > 0 THEN n ELSE 0.5 END)",
        "sum(extract(year FROM d))",
        // Past 38 digits: 76-digit arithmetic and sums on the server (sums past 128 bits).
        "sum(b::numeric * b * n)",
        "avg(n * n * n * n)",
        "sum(n * n * n * n - n * 1.5)",
        "sum(CASE WHEN ok THEN n * n * n * n END)",
        "sum(CASE WHEN d < '2024-06-01' THEN n END) / nullif(count(*), 0)",
    ];
    let filters = [
        "",
        "WHERE id > 200",
        "WHERE i < 0",
        "WHERE t = 'k1'",
        "WHERE id < 0",
        "WHERE n > 100.5 AND s IS NOT NULL",
        "WHERE md5(t) > 'a'",
    ];
    let havings =
        ["", "", "HAVING count(*) > 5", "HAVING sum(i) > 0 OR min(t) = 'k1'", "HAVING max(n) IS NULL"];
    let mut shipped = 0;
    for case in 0..300 {
        let group = *rng.pick(&groups);
        let count = 1 + rng.next() % 3;
        let mut outputs: Vec<String> = if group.is_empty() { Vec::new() } else { vec![group.to_string()] };
        for _ in 0..count {
            outputs.push(rng.pick(&aggregates).to_string());
        }
        let filter = *rng.pick(&filters);
        let group_clause = if group.is_empty() { String::new() } else { format!("GROUP BY {group}") };
        let having = *rng.pick(&havings);
        let sql = format!("SELECT {} FROM {{t}} {filter} {group_clause} {having}", outputs.join(", "));
        let (foreign, heap) = both(&mut pg, &sql);
        assert_eq!(foreign, heap, "case {case} (seed {seed}): {sql}");
        if pushed(&mut pg, &sql) {
            shipped += 1;
        }
    }
    assert!(shipped >= 60, "only {shipped} of 300 grouped queries ran on the server");
}

// Goal: EXPLAIN shows the grouped query the server runs, and the shapes that stay local (and
// why) keep PostgreSQL's own aggregation over the scan.
#[test]
fn explain_shows_pushed_and_local_aggregates() {
    let env = TestEnv::start();
    let mut pg = fixture(&env);
    let plan = |pg: &mut postgres::Client, sql: &str| {
        rows(pg, &format!("EXPLAIN (VERBOSE, COSTS OFF) {sql}")).join("\n")
    };
    // Text ordering ships where the database's collation is C (the test cluster's).
    let text = plan(&mut pg, "SELECT min(t), max(t) FROM app.g");
    assert!(text.contains("Relations: Aggregate on (app.g)"), "{text}");
    let pushed = plan(&mut pg, "SELECT t, count(*), sum(b), max(n) FROM app.g WHERE id > 10 GROUP BY t");
    assert!(pushed.contains("Relations: Aggregate on (app.g)"), "{pushed}");
    assert!(
        pushed.contains(r#"Remote SQL: SELECT "t" AS a0, count(*) AS a1, sum(CAST("b" AS DECIMAL(38,0))) AS a2, max("n") AS a3 FROM "app"."g" WHERE ("id" > 10) GROUP BY "t""#),
        "{pushed}"
    );
    for (sql, why) in [
        ("SELECT avg(f) FROM app.g", "avg of floats"),
        ("SELECT f, count(*) FROM app.g GROUP BY f", "grouping floats: -0 and NaN"),
        ("SELECT sum(f) FROM app.g", "float sums"),
        ("SELECT count(*) FROM app.g WHERE md5(t) > 'a'", "a local WHERE"),
        ("SELECT t, count(*) FROM app.g GROUP BY t HAVING avg(f) > 1", "HAVING on an aggregate kept local"),
        ("SELECT count(*) FILTER (WHERE i > 0) FROM app.g", "FILTER"),
        ("SELECT t COLLATE \"C\", count(*) FROM app.g GROUP BY 1", "an expression as group key"),
        ("SELECT sum(CASE s WHEN 1 THEN n ELSE 0 END) FROM app.g", "a simple CASE (its = operator)"),
        ("SELECT sum(CASE WHEN tz < now() THEN 1 ELSE 0 END) FROM app.g", "a CASE with a run-time value"),
        (
            "SELECT extract(year FROM tz), count(*) FROM app.g GROUP BY 1",
            "the year of a timestamptz: time zone",
        ),
        ("SELECT sum(i + 1) FROM app.g", "integer arithmetic (overflow)"),
    ] {
        let local = plan(&mut pg, sql);
        assert!(!local.contains("Relations: Aggregate"), "{why}: {local}");
        assert!(local.contains("Aggregate") && local.contains("Foreign Scan"), "{why}: {local}");
    }
    // avg arrives as its exact sum and count; PostgreSQL's division gives its scale.
    let average = plan(&mut pg, "SELECT s, avg(i), avg(b), avg(n) FROM app.g GROUP BY s");
    assert!(average.contains(r#"sum(CAST("i" AS DECIMAL(38,0))) AS a1, count("i") AS a2"#), "{average}");
    assert!(average.contains(r#"sum(CAST("n" AS DECIMAL(38,3))) AS a5, count("n") AS a6"#), "{average}");
    assert_eq!(
        rows(&mut pg, "SELECT s, avg(i), avg(b), avg(n), avg(DISTINCT s) FROM app.g GROUP BY s ORDER BY s"),
        rows(
            &mut pg,
            "SELECT s, avg(i), avg(b), avg(n), avg(DISTINCT s) FROM app.g_heap GROUP BY s ORDER BY s"
        )
    );
    // What PostgreSQL computes of a group (expressions, HAVING) it computes from what the server
    // returns.
    let computed = plan(&mut pg, "SELECT t, max(i) - min(i) FROM app.g GROUP BY t HAVING count(*) > 10");
    assert!(computed.contains("Relations: Aggregate on (app.g)"), "{computed}");
    assert!(computed.contains("Filter: ((count(*)) > 10)"), "{computed}");
    assert!(
        computed.contains(r#"SELECT "t" AS a0, max("i") AS a1, min("i") AS a2, count(*) AS a3"#),
        "{computed}"
    );
    // count(*) fetches one row, however many the table has.
    let analyzed = rows(
        &mut pg,
        "EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM app.g",
    )
    .join("\n");
    assert!(analyzed.contains("Remote Rows: 1"), "{analyzed}");
    assert_eq!(
        rows(&mut pg, "SELECT count(*), sum(b) FROM app.g"),
        rows(&mut pg, "SELECT count(*), sum(b) FROM app.g_heap")
    );
}
