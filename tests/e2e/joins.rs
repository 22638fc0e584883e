//! Joins on the server (GetForeignJoinPaths): generated INNER, LEFT, RIGHT and FULL joins, joins
//! of joins, semi and anti joins (EXISTS, IN, NOT EXISTS), NOT IN (subquery) and correlated
//! scalar subqueries, over foreign tables and their heap twins give the same rows; golden EXPLAIN
//! plans pin each join kind sent and the shapes kept local, and why.

use std::collections::BTreeMap;

use kalam_e2e::TestEnv;

use crate::aggregates::{Rng, fixture, rows};

/// `app.g`/`app.g_heap` (the aggregates' 400 rows) and `app.h`/`app.h_heap`: 300 rows whose
/// keys repeat, miss and are NULL.
fn join_fixture(env: &TestEnv) -> postgres::Client {
    let mut pg = fixture(env);
    let seed = "SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE g * 7 % 450 END, \
         CASE WHEN g % 8 = 0 THEN NULL ELSE 'k' || (g % 9) END, \
         CASE WHEN g % 6 = 0 THEN NULL ELSE round((g * 0.37)::numeric, 2) END \
         FROM generate_series(1, 300) g";
    pg.batch_execute(&format!(
        "CREATE TABLE app.h (id bigint, g_id bigint, k text, w numeric(8,2), PRIMARY KEY (id)) USING kalamdb;
         CREATE TABLE app.h_heap (id bigint, g_id bigint, k text, w numeric(8,2));
         INSERT INTO app.h {seed}; INSERT INTO app.h_heap {seed};"
    ))
    .unwrap();
    pg
}

/// `sql` with `{g}` and `{h}` as the foreign tables, and as the heap tables.
fn both(pg: &mut postgres::Client, sql: &str) -> (Vec<String>, Vec<String>) {
    let run = |pg: &mut postgres::Client, g: &str, h: &str| {
        let mut result = rows(pg, &sql.replace("{g}", g).replace("{h}", h));
        result.sort();
        result
    };
    (run(pg, "app.g", "app.h"), run(pg, "app.g_heap", "app.h_heap"))
}

fn plan(pg: &mut postgres::Client, sql: &str) -> String {
    rows(pg, &format!("EXPLAIN (VERBOSE, COSTS OFF) {sql}")).join("\n")
}

/// Whether the join is one foreign scan.
fn shipped(pg: &mut postgres::Client, sql: &str) -> bool {
    let plan = plan(pg, &sql.replace("{g}", "app.g").replace("{h}", "app.h"));
    plan.starts_with("Foreign Scan") && plan.contains(" JOIN (")
}

// Goal: 300 generated joins (seeded) of every kind, with join clauses on integers and text,
// filters on either side and above the join, a third table joined to the result, and ORDER BY
// with LIMIT and OFFSET (sent with the join when the server orders alike), give the
// heap tables' rows; the shippable shapes are one remote statement.
#[test]
fn generated_joins_match_the_heap_tables() {
    let env = TestEnv::start();
    let mut pg = join_fixture(&env);
    let seed: u64 = std::env::var("KALAM_JOIN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut rng = Rng(seed);
    let kinds = ["JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"];
    let conditions = [
        "g.id = h.g_id",
        "g.t = h.k",
        "g.id = h.g_id AND h.w > 10",
        "g.id = h.g_id AND g.s IS NOT NULL",
        "g.i = h.id OR g.t = h.k",
        "g.id = h.g_id + 0",
    ];
    let filters = [
        "",
        "WHERE g.id > 100",
        "WHERE h.w IS NULL",
        "WHERE g.s = 1 OR h.k = 'k2'",
        "WHERE h.id < 200",
        "WHERE md5(g.t) > 'a'",
    ];
    let thirds = ["", "", "JOIN {h} h2 ON h2.id = h.id", "LEFT JOIN {g} g2 ON g2.id = h.g_id AND g2.ok"];
    // Orders that are total ((g.id, h.id) is unique), so that a LIMIT keeps the same rows.
    let tails = [
        "",
        "",
        "ORDER BY g.id, h.id LIMIT 9",
        "ORDER BY h.k DESC, g.t NULLS FIRST, g.id, h.id LIMIT 12 OFFSET 3",
        "ORDER BY h.w, g.id DESC, h.id",
    ];
    let mut whole = 0;
    for case in 0..300 {
        let kind = *rng.pick(&kinds);
        let mut condition = *rng.pick(&conditions);
        if kind == "FULL JOIN" && condition.contains(" OR ") {
            condition = conditions[0]; // PostgreSQL's own FULL JOIN needs a merge or hash key
        }
        let third = *rng.pick(&thirds);
        let filter = *rng.pick(&filters);
        let tail = *rng.pick(&tails);
        let sql = format!(
            "SELECT g.id, h.id, g.t, h.w, h.k FROM {{g}} g {kind} {{h}} h ON {condition} {third} {filter} {tail}"
        );
        let (foreign, heap) = both(&mut pg, &sql);
        assert_eq!(foreign, heap, "case {case} (seed {seed}): {sql}");
        if shipped(&mut pg, &sql) {
            whole += 1;
        }
    }
    assert!(whole >= 100, "only {whole} of 300 joins ran on the server");
}

// Goal: 150 generated grouped queries over joins (seeded): group keys of either table,
// aggregates of either, filters, HAVING, ORDER BY and LIMIT, give the heap tables' groups; the
// shippable shapes are one remote statement.
#[test]
fn generated_grouped_joins_match_the_heap_tables() {
    let env = TestEnv::start();
    let mut pg = join_fixture(&env);
    let seed: u64 = std::env::var("KALAM_JOIN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut rng = Rng(seed.wrapping_add(7));
    let kinds = ["JOIN", "LEFT JOIN", "JOIN"];
    let groups = ["g.t", "h.k", "g.s, h.k", "g.ok"];
    let aggregates = [
        "count(*)",
        "count(h.id)",
        "sum(h.w)",
        "sum(g.i)",
        "avg(h.w)",
        "max(g.n)",
        "min(h.k)",
        "count(DISTINCT g.id)",
    ];
    let filters = ["", "WHERE g.id > 100", "WHERE h.w > 20 OR h.w IS NULL"];
    let tails = ["", "HAVING count(*) > 3", "ORDER BY 1, 2 LIMIT 4"];
    let mut whole = 0;
    for case in 0..150 {
        let group = *rng.pick(&groups);
        let aggregate = *rng.pick(&aggregates);
        let sql = format!(
            "SELECT {group}, {aggregate} FROM {{g}} g {} {{h}} h ON g.id = h.g_id {} GROUP BY {group} {}",
            rng.pick(&kinds),
            rng.pick(&filters),
            rng.pick(&tails)
        );
        let (foreign, heap) = both(&mut pg, &sql);
        assert_eq!(foreign, heap, "case {case} (seed {seed}): {sql}");
        let plan = plan(&mut pg, &sql.replace("{g}", "app.g").replace("{h}", "app.h"));
        if plan.contains("Relations: Aggregate on ((app.g r1)")
            || plan.contains("Relations: Aggregate on ((app.h r1)")
        {
            whole += 1;
        }
    }
    assert!(whole >= 50, "only {whole} of 150 grouped joins ran on the server");
}

// Goal: 200 generated semi and anti joins (seeded) — EXISTS, NOT EXISTS, [NOT] IN (subquery),
// with equality and inequality clauses, filters inside and outside, a table joined above and
// grouping over them — give the heap tables' rows; the shippable shapes are one remote statement.
#[test]
fn generated_semi_and_anti_joins_match_the_heap_tables() {
    let env = TestEnv::start();
    let mut pg = join_fixture(&env);
    let seed: u64 = std::env::var("KALAM_JOIN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut rng = Rng(seed.wrapping_add(13));
    let subqueries = [
        "EXISTS (SELECT 1 FROM {h} h WHERE h.g_id = g.id)",
        "EXISTS (SELECT 1 FROM {h} h WHERE h.g_id = g.id AND h.k <> g.t)",
        "NOT EXISTS (SELECT 1 FROM {h} h WHERE h.g_id = g.id AND h.w > 20)",
        "NOT EXISTS (SELECT 1 FROM {h} h WHERE h.k = g.t AND h.id <> g.id)",
        "g.id IN (SELECT h.g_id FROM {h} h WHERE h.w < 50)",
        "g.t IN (SELECT h.k FROM {h} h WHERE h.id > 150)",
        "EXISTS (SELECT 1 FROM {h} h WHERE h.g_id = g.id + 0)",
        // NOT IN (subquery), sent whole: NULLs in the subquery (no row passes), NULLs outside,
        // an empty subquery (every row passes, NULLs too), a column of another type.
        "g.id NOT IN (SELECT h.g_id FROM {h} h WHERE h.w < 50)",
        "g.id NOT IN (SELECT h.g_id FROM {h} h WHERE h.g_id IS NOT NULL AND h.w < 50)",
        "g.t NOT IN (SELECT h.k FROM {h} h WHERE h.id > 280 AND h.k IS NOT NULL)",
        "g.t NOT IN (SELECT h.k FROM {h} h)",
        "g.i NOT IN (SELECT h.g_id FROM {h} h WHERE h.id < 0)",
        "g.b NOT IN (SELECT h.g_id FROM {h} h WHERE h.id < 0)",
        // Kept local: IN under OR, a correlated NOT IN.
        "(g.id IN (SELECT h.g_id FROM {h} h WHERE h.w < 50) OR g.s = 1)",
        "g.id NOT IN (SELECT h.g_id FROM {h} h WHERE h.k = g.t AND h.g_id IS NOT NULL)",
    ];
    let filters = ["", "AND g.id > 100", "AND g.s IS NOT NULL", "AND md5(g.t) > 'a'"];
    let shapes = [
        "SELECT g.id, g.t FROM {g} g WHERE {sub} {filter}",
        "SELECT g.id, h2.k FROM {g} g JOIN {h} h2 ON h2.g_id = g.id WHERE {sub} {filter}",
        "SELECT g.t, count(*), sum(g.n) FROM {g} g WHERE {sub} {filter} GROUP BY g.t",
    ];
    let mut whole = 0;
    for case in 0..200 {
        let (shape, subquery, filter) = (*rng.pick(&shapes), *rng.pick(&subqueries), *rng.pick(&filters));
        let sql = shape.replace("{sub}", subquery).replace("{filter}", filter);
        let (foreign, heap) = both(&mut pg, &sql);
        assert_eq!(foreign, heap, "case {case} (seed {seed}): {sql}");
        if plan(&mut pg, &sql.replace("{g}", "app.g").replace("{h}", "app.h")).starts_with("Foreign Scan") {
            whole += 1;
        }
    }
    assert!(whole >= 60, "only {whole} of 200 semi and anti joins ran on the server");
}

// Goal: 100 generated correlated scalar subqueries (seeded): min, max, sum, avg of numerics and
// integers (PostgreSQL's rounded average), a constant times them, correlated on integers, text
// and two columns, over the same table as the outer query and under joins and grouping (by a
// substring too), and uncorrelated numeric ones (init plans), give
// the heap tables' rows (no row from an outer row whose subquery has no rows); the shapes the
// server cannot answer as PostgreSQL does (count, a correlation other than =) stay local.
#[test]
fn generated_scalar_subqueries_match_the_heap_tables() {
    let env = TestEnv::start();
    let mut pg = join_fixture(&env);
    let seed: u64 = std::env::var("KALAM_JOIN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut rng = Rng(seed.wrapping_add(29));
    let cases = 100;
    let subqueries = [
        "g.n > (SELECT avg(h.w) FROM {h} h WHERE h.g_id = g.id)",
        "g.n < (SELECT 0.2 * avg(h.w) FROM {h} h WHERE h.k = g.t)",
        "g.i < (SELECT 3.5 * avg(h.w) FROM {h} h WHERE h.k = g.t AND h.id > 40)",
        "g.n >= (SELECT avg(h.g_id) FROM {h} h WHERE h.k = g.t)",
        "g.i > (SELECT 0.5 * sum(h.w) FROM {h} h WHERE h.g_id = g.id)",
        "g.i::numeric <= (SELECT sum(h.w) FROM {h} h WHERE h.k = g.t AND h.g_id = g.id)",
        "g.n = (SELECT max(g2.n) FROM {g} g2 WHERE g2.t = g.t)",
        "g.id = (SELECT min(g2.id) FROM {g} g2 WHERE g2.s = g.s AND g2.n > 10)",
        "g.t > (SELECT min(h.k) FROM {h} h WHERE h.g_id = g.id)",
        "g.ok = (SELECT bool_or(h.w > 30) FROM {h} h WHERE h.k = g.t)",
        // Uncorrelated (an init plan): a numeric is sent as the subquery, not as its value.
        "g.n > (SELECT avg(h.w) FROM {h} h WHERE h.k = 'k1')",
        "g.n < (SELECT 0.5 * sum(h.w) FROM {h} h WHERE h.id < 20)",
        // Kept local (a statement per outer row, so over few rows): count (0 over no rows), a
        // correlation other than =, a grouped subquery, a correlation on floats.
        "g.id < 40 AND g.i > (SELECT count(*) FROM {h} h WHERE h.g_id = g.id)",
        "g.id < 40 AND g.n > (SELECT min(h.w) FROM {h} h WHERE h.g_id < g.id)",
        "g.id < 40 AND g.n > (SELECT max(h.w) FROM {h} h WHERE h.k = g.t GROUP BY h.k)",
        "g.id < 40 AND g.n >= (SELECT max(g2.n) FROM {g} g2 WHERE g2.f = g.f)",
    ];
    let filters = [
        "",
        "AND g.id > 100",
        "AND g.s IS NOT NULL",
        "AND md5(g.t) > 'a'",
        "AND substring(g.t FROM 2 FOR 1) IN ('1', '3', '')",
    ];
    let shapes = [
        "SELECT g.id, g.t FROM {g} g WHERE {sub} {filter}",
        "SELECT g.id, h2.k FROM {g} g JOIN {h} h2 ON h2.g_id = g.id WHERE {sub} {filter}",
        "SELECT g.t, count(*), sum(g.n) FROM {g} g WHERE {sub} {filter} GROUP BY g.t",
        "SELECT g.id FROM {g} g WHERE {sub} {filter} ORDER BY g.id LIMIT 7",
        "SELECT substring(g.t FROM 1 FOR 1), count(*), sum(g.n) FROM {g} g WHERE {sub} {filter} GROUP BY 1",
    ];
    let mut whole = 0;
    for case in 0..cases {
        let (shape, subquery, filter) = (*rng.pick(&shapes), *rng.pick(&subqueries), *rng.pick(&filters));
        let sql = shape.replace("{sub}", subquery).replace("{filter}", filter);
        let (foreign, heap) = both(&mut pg, &sql);
        assert_eq!(foreign, heap, "case {case} (seed {seed}): {sql}");
        let plan = plan(&mut pg, &sql.replace("{g}", "app.g").replace("{h}", "app.h"));
        if !plan.contains("SubPlan") {
            whole += 1;
        }
    }
    assert!(whole >= 45, "only {whole} of {cases} scalar subqueries ran on the server");
}

/// Shapes whose plans are pinned in `tests/e2e/explain/<name>.out`.
const GOLDEN: &[(&str, &str)] = &[
    ("join_inner", "SELECT g.id, h.k FROM app.g g JOIN app.h h ON g.id = h.g_id WHERE g.s = 1 AND h.w > 5"),
    (
        "join_left",
        "SELECT g.id, h.k FROM app.g g LEFT JOIN app.h h ON g.id = h.g_id AND h.k <> 'k1' WHERE g.id < 50",
    ),
    (
        "join_right",
        "SELECT g.id, h.k FROM app.g g RIGHT JOIN app.h h ON g.id = h.g_id AND g.t = 'k1' WHERE h.id < 40",
    ),
    ("join_full", "SELECT g.id, h.k FROM app.g g FULL JOIN app.h h ON g.id = h.g_id"),
    (
        "join_of_joins",
        "SELECT g.id, h.k, h2.w FROM app.g g JOIN app.h h ON g.id = h.g_id LEFT JOIN app.h h2 ON h2.g_id = g.id AND h2.w > 1",
    ),
    (
        "join_aggregate",
        "SELECT h.k, count(*), sum(h.w), avg(g.i) FROM app.g g JOIN app.h h ON g.id = h.g_id WHERE g.s > 0 \
         GROUP BY h.k ORDER BY 2 DESC, 1 LIMIT 3",
    ),
    (
        "join_order_limit",
        "SELECT g.id, h.k, h.w FROM app.g g JOIN app.h h ON g.id = h.g_id WHERE h.w > 5 \
         ORDER BY h.w DESC, h.k, g.id LIMIT 5 OFFSET 2",
    ),
    ("join_computed_key_stays_local", "SELECT g.id, h.k FROM app.g g JOIN app.h h ON g.id = h.g_id + 0"),
    (
        "join_full_of_filtered_stays_local",
        "SELECT g.id, h.k FROM (SELECT * FROM app.g WHERE s = 1) g FULL JOIN app.h h ON g.id = h.g_id",
    ),
    (
        "join_filter_above_full",
        "SELECT g.id, h.k FROM app.g g FULL JOIN app.h h ON g.id = h.g_id WHERE h.id > 5 OR g.id IS NULL",
    ),
    (
        "join_semi",
        "SELECT g.id FROM app.g g WHERE EXISTS (SELECT 1 FROM app.h h WHERE h.g_id = g.id AND h.w > 5) AND g.s = 1",
    ),
    (
        "join_anti",
        "SELECT g.id FROM app.g g WHERE NOT EXISTS (SELECT 1 FROM app.h h WHERE h.g_id = g.id AND h.k <> g.t)",
    ),
    (
        "join_semi_grouped",
        "SELECT g.t, count(*) FROM app.g g WHERE g.id IN (SELECT h.g_id FROM app.h h WHERE h.w < 50) \
         GROUP BY g.t ORDER BY g.t",
    ),
    (
        "not_in_subquery",
        "SELECT g.id FROM app.g g WHERE g.id NOT IN (SELECT h.g_id FROM app.h h WHERE h.w > 5) AND g.s = 1",
    ),
    (
        "not_in_subquery_joined_and_grouped",
        "SELECT h.k, count(DISTINCT g.s) FROM app.g g JOIN app.h h ON g.id = h.g_id \
         WHERE g.id NOT IN (SELECT h2.g_id FROM app.h h2 WHERE h2.k LIKE 'k1%' AND h2.g_id IS NOT NULL) \
         GROUP BY h.k ORDER BY 1",
    ),
    (
        "not_in_in_left_join_on_stays_local",
        "SELECT g.id, h.k FROM app.g g LEFT JOIN app.h h ON g.id = h.g_id \
         AND g.id NOT IN (SELECT h2.g_id FROM app.h h2 WHERE h2.w > 5)",
    ),
    (
        "not_in_correlated_filtered_here",
        "SELECT g.id FROM app.g g WHERE g.id NOT IN (SELECT h.g_id FROM app.h h WHERE h.k = g.t) ORDER BY 1",
    ),
    (
        "scalar_subquery_min_in_join",
        "SELECT g.id, h.k FROM app.g g JOIN app.h h ON g.id = h.g_id \
         WHERE h.w = (SELECT min(h2.w) FROM app.h h2 WHERE h2.k = h.k) ORDER BY 1, 2",
    ),
    (
        "scalar_subquery_avg_times_constant_grouped",
        "SELECT sum(g.n) FROM app.g g JOIN app.h h ON g.id = h.g_id \
         WHERE g.n < (SELECT 0.2 * avg(g2.n) FROM app.g g2 WHERE g2.t = h.k)",
    ),
    (
        "scalar_subquery_same_table",
        "SELECT g.id FROM app.g g WHERE g.n = (SELECT max(g2.n) FROM app.g g2 WHERE g2.t = g.t) ORDER BY 1",
    ),
    (
        "scalar_subquery_count_filtered_here",
        "SELECT g.id FROM app.g g WHERE g.i > (SELECT count(*) FROM app.h h WHERE h.g_id = g.id) ORDER BY 1",
    ),
    (
        "scalar_init_plan_numeric_sent_as_subquery",
        "SELECT g.t, count(*) FROM app.g g WHERE g.n > (SELECT avg(h.w) FROM app.h h WHERE h.w > 1) \
         GROUP BY g.t ORDER BY g.t",
    ),
    (
        "substring_filter_and_group_key",
        "SELECT substring(g.t FROM 1 FOR 1), count(*), sum(g.n) FROM app.g g \
         WHERE substring(g.t FROM 2 FOR 1) IN ('1', '2', '3') GROUP BY 1 ORDER BY 1",
    ),
    (
        "join_local_filter_stays_local",
        "SELECT g.id, h.k FROM app.g g JOIN app.h h ON g.id = h.g_id WHERE md5(h.k) > 'a'",
    ),
];

// Goal: each join kind and a join of joins run as one remote statement with its ON and WHERE
// where they belong; the shapes that stay local (a computed key, a filter the server cannot run)
// keep PostgreSQL's join; every answer is the heap tables'.
#[test]
fn golden_join_plans() {
    let env = TestEnv::start();
    let mut pg = join_fixture(&env);
    let mut differ = BTreeMap::new();
    for (name, query) in GOLDEN {
        let actual = kalam_e2e::golden_plan(&mut pg, name, query).unwrap_or_else(|difference| {
            differ.insert(*name, difference.clone());
            difference
        });
        let heap = query.replace("app.g ", "app.g_heap ").replace("app.h ", "app.h_heap ");
        let (mut foreign, mut local) = (rows(&mut pg, query), rows(&mut pg, &heap));
        foreign.sort();
        local.sort();
        assert_eq!(foreign, local, "{name}: {query}");
        let one_scan = plan(&mut pg, query).starts_with("Foreign Scan");
        assert_eq!(one_scan, !name.ends_with("stays_local"), "{name}: {actual}");
    }
    // A DELETE whose WHERE has NOT IN (subquery) runs row by row (the server runs the
    // condition in a SELECT only), and deletes what the heap table's DELETE does.
    pg.batch_execute(
        "CREATE TABLE app.d (id bigint PRIMARY KEY) USING kalamdb; CREATE TABLE app.d_heap (id bigint);
         INSERT INTO app.d SELECT g FROM generate_series(1, 60) g;
         INSERT INTO app.d_heap SELECT g FROM generate_series(1, 60) g;",
    )
    .unwrap();
    for table in ["app.d", "app.d_heap"] {
        pg.batch_execute(&format!(
            "DELETE FROM {table} WHERE id NOT IN (SELECT h.g_id FROM app.h h WHERE h.g_id IS NOT NULL AND h.w > 20)"
        ))
        .unwrap();
    }
    let kept = rows(&mut pg, "SELECT id FROM app.d ORDER BY id");
    assert!(!kept.is_empty() && kept.len() < 60, "{kept:?}");
    assert_eq!(kept, rows(&mut pg, "SELECT id FROM app.d_heap ORDER BY id"));
    // Nor does a numeric init plan, which a SELECT sends as its subquery: the DELETE runs row
    // by row, comparing with the value PostgreSQL computed.
    for table in ["app.d", "app.d_heap"] {
        pg.batch_execute(&format!(
            "DELETE FROM {table} WHERE id > (SELECT avg(h.w) FROM app.h h WHERE h.w < 60)"
        ))
        .unwrap();
    }
    let kept = rows(&mut pg, "SELECT id FROM app.d ORDER BY id");
    assert!(!kept.is_empty(), "{kept:?}");
    assert_eq!(kept, rows(&mut pg, "SELECT id FROM app.d_heap ORDER BY id"));
    // A subquery in a CASE of an aggregate stays with PostgreSQL (the server runs subqueries
    // in a WHERE or an ON only); the groups are the heap's.
    let case = "SELECT h.k, sum(CASE WHEN g.n > (SELECT avg(h2.w) FROM app.h h2) THEN 1 ELSE 0 END) \
                FROM app.g g JOIN app.h h ON g.id = h.g_id GROUP BY h.k";
    let heap_case = case.replace("app.g g", "app.g_heap g").replace("app.h h ", "app.h_heap h ");
    let (mut foreign, mut local) = (rows(&mut pg, case), rows(&mut pg, &heap_case));
    foreign.sort();
    local.sort();
    assert_eq!(foreign, local, "{case}");
    assert!(
        differ.is_empty(),
        "plans differ from tests/e2e/explain (KALAM_UPDATE_GOLDEN=1 rewrites them):\n{differ:#?}"
    );
}
