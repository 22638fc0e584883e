//! ORDER BY, LIMIT and OFFSET on the server (sorted foreign paths, UPPERREL_ORDERED and
//! UPPERREL_FINAL): generated queries over a foreign table and its heap twin give the same rows
//! in the same order; golden EXPLAIN plans pin what is sent and what stays local, and why.

use std::collections::BTreeMap;

use kalam_e2e::TestEnv;

use crate::aggregates::{Rng, fixture, rows};

/// The plan of `sql` (EXPLAIN VERBOSE, no costs).
fn plan(pg: &mut postgres::Client, sql: &str) -> String {
    rows(pg, &format!("EXPLAIN (VERBOSE, COSTS OFF) {sql}")).join("\n")
}

/// The first `keys` columns of each row (rows are `|`-joined text).
fn key_columns(rows: &[String], keys: usize) -> Vec<String> {
    rows.iter().map(|r| r.split('|').take(keys).collect::<Vec<_>>().join("|")).collect()
}

/// Compares the foreign and the heap answers of `sql` (`{t}` the table), whose first `keys`
/// columns are its sort keys: in order, the sort keys are the same row by row; the whole rows
/// are the same in order when the order is total, and the same set when every row is returned
/// (ties may come in any order, and a LIMIT may cut a tie anywhere).
fn compare(pg: &mut postgres::Client, sql: &str, keys: usize, total: bool, limited: bool, what: &str) {
    let foreign = rows(pg, &sql.replace("{t}", "app.g"));
    let heap = rows(pg, &sql.replace("{t}", "app.g_heap"));
    assert_eq!(key_columns(&foreign, keys), key_columns(&heap, keys), "{what}: sort keys differ: {sql}");
    if total {
        assert_eq!(foreign, heap, "{what}: {sql}");
    } else if !limited {
        let (mut f, mut h) = (foreign, heap);
        f.sort();
        h.sort();
        assert_eq!(f, h, "{what}: {sql}");
    }
}

/// Whether the plan of `sql` is one foreign scan that sorts and cuts as asked (no Sort, no
/// Limit above it).
fn fully_remote(pg: &mut postgres::Client, sql: &str) -> bool {
    let plan = plan(pg, &sql.replace("{t}", "app.g"));
    !plan.contains("Sort") && !plan.contains("Limit") && plan.starts_with("Foreign Scan")
}

// Goal: 300 generated scans (seeded) with ORDER BY of one to three keys in every direction and
// NULL placement, LIMIT and OFFSET, and filters, give the heap table's rows in its order; the
// shapes the server orders as PostgreSQL does are sent whole.
#[test]
fn generated_ordered_scans_match_the_heap_table() {
    let env = TestEnv::start();
    let mut pg = fixture(&env);
    let seed: u64 = std::env::var("KALAM_ORDER_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut rng = Rng(seed);
    // Sortable as PostgreSQL sorts (t under the database's C collation), and one that is not.
    let keys = ["s", "i", "b", "n", "t", "d", "ts", "tz", "ok", "f", "t COLLATE \"C\""];
    let directions = ["", " ASC", " DESC", " NULLS FIRST", " DESC NULLS LAST", " ASC NULLS FIRST"];
    let filters = ["", "WHERE id > 150", "WHERE i < 0 OR t = 'k2'", "WHERE md5(t) > 'a'", "WHERE id < 0"];
    let limits =
        ["", "LIMIT 7", "LIMIT 0", "LIMIT 25 OFFSET 10", "OFFSET 390", "LIMIT ALL", "LIMIT 3 OFFSET 0"];
    let mut whole = 0;
    for case in 0..300 {
        let count = 1 + (rng.next() % 3) as usize;
        let chosen: Vec<&str> = (0..count).map(|_| *rng.pick(&keys)).collect();
        let order: Vec<String> = chosen.iter().map(|k| format!("{k}{}", rng.pick(&directions))).collect();
        // Two cases in three end with the key: a total order.
        let total = !rng.next().is_multiple_of(3);
        let order_clause = if total { format!("{}, id", order.join(", ")) } else { order.join(", ") };
        let limit = *rng.pick(&limits);
        let filter = *rng.pick(&filters);
        // Keys and columns under names of their own, so that ORDER BY names the table's columns.
        let selected: Vec<String> = chosen.iter().enumerate().map(|(i, k)| format!("{k} AS k{i}")).collect();
        let sql = format!(
            "SELECT {}, id AS row_id, n AS n_value, t AS t_value FROM {{t}} {filter} ORDER BY {order_clause} {limit}",
            selected.join(", ")
        );
        let limited = limit.contains("LIMIT") && limit != "LIMIT ALL" || limit.contains("OFFSET");
        compare(&mut pg, &sql, count, total, limited, &format!("case {case} (seed {seed})"));
        if fully_remote(&mut pg, &sql) {
            whole += 1;
        }
    }
    assert!(whole >= 100, "only {whole} of 300 ordered scans ran whole on the server");
}

// Goal: grouped queries ordered by their group keys and aggregates, cut by LIMIT, give the heap
// table's groups in its order (150 generated, seeded).
#[test]
fn generated_ordered_groups_match_the_heap_table() {
    let env = TestEnv::start();
    let mut pg = fixture(&env);
    let seed: u64 = std::env::var("KALAM_ORDER_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut rng = Rng(seed.wrapping_add(1));
    let groups = ["s", "t", "d", "ok", "s, t", "i"];
    let aggregates = ["count(*)", "sum(i)", "sum(b)", "max(n)", "min(t)", "count(DISTINCT s)", "avg(i)"];
    let directions = ["", " DESC", " NULLS FIRST", " DESC NULLS LAST"];
    let limits = ["", "LIMIT 3", "LIMIT 2 OFFSET 1", "OFFSET 2"];
    let havings = ["", "", "HAVING count(*) > 20"];
    let mut whole = 0;
    for case in 0..150 {
        let group = *rng.pick(&groups);
        let aggregate = *rng.pick(&aggregates);
        let direction = *rng.pick(&directions);
        // The aggregate first, then the group keys: a total order of the groups.
        let sql = format!(
            "SELECT {aggregate}, {group} FROM {{t}} GROUP BY {group} {} ORDER BY 1{direction}, {group} {}",
            rng.pick(&havings),
            rng.pick(&limits)
        );
        compare(&mut pg, &sql, 1, true, true, &format!("case {case} (seed {seed})"));
        if fully_remote(&mut pg, &sql) {
            whole += 1;
        }
    }
    assert!(whole >= 40, "only {whole} of 150 ordered grouped queries ran whole on the server");
}

/// Shapes whose plans are pinned in `tests/e2e/explain/<name>.out`.
const GOLDEN: &[(&str, &str)] = &[
    ("order_limit_scan", "SELECT id, t FROM app.g WHERE id > 10 ORDER BY t DESC, id LIMIT 5"),
    ("order_nulls_first", "SELECT id, n FROM app.g ORDER BY n NULLS FIRST, id"),
    ("limit_offset_without_order", "SELECT id FROM app.g LIMIT 3 OFFSET 2"),
    ("order_grouped", "SELECT t, count(*) FROM app.g GROUP BY t ORDER BY count(*) DESC, t"),
    ("order_limit_grouped", "SELECT t, sum(b) FROM app.g GROUP BY t ORDER BY 2 DESC NULLS LAST, t LIMIT 3"),
    (
        "having_keeps_limit_local",
        "SELECT t, count(*) FROM app.g GROUP BY t HAVING count(*) > 50 ORDER BY t LIMIT 2",
    ),
    ("order_float_stays_local", "SELECT id, f FROM app.g ORDER BY f, id LIMIT 5"),
    ("order_using_operator_stays_local", "SELECT id FROM app.g ORDER BY t USING ~<~, id LIMIT 5"),
    ("order_by_average_stays_local", "SELECT s, avg(i) FROM app.g GROUP BY s ORDER BY 2, s"),
    ("limit_over_local_filter_stays_local", "SELECT id FROM app.g WHERE md5(t) > 'a' ORDER BY id LIMIT 4"),
    ("limit_with_ties_stays_local", "SELECT id, s FROM app.g ORDER BY s FETCH FIRST 3 ROWS WITH TIES"),
    (
        "group_by_year_with_case_sums",
        "SELECT extract(year FROM d) AS y, sum(CASE WHEN t = 'k1' THEN n * 2 ELSE 0 END) AS k1, \
         sum(CASE WHEN i > 0 THEN 1 ELSE 0 END) AS positive FROM app.g GROUP BY 1 ORDER BY 1 NULLS FIRST",
    ),
    (
        "case_average_and_arithmetic",
        "SELECT s, avg(CASE WHEN ok THEN n * 2 END), sum(n * 2.5 - n) FROM app.g GROUP BY s ORDER BY s NULLS FIRST",
    ),
    (
        "sums_past_38_digits",
        "SELECT ok, sum(b::numeric * b * n), avg(n * n * n * n) FROM app.g GROUP BY ok ORDER BY ok NULLS FIRST",
    ),
    (
        "simple_case_stays_local",
        "SELECT s, sum(CASE s WHEN 1 THEN n ELSE 0 END) FROM app.g GROUP BY s ORDER BY s",
    ),
];

// Goal: the plans of the shapes above show the ORDER BY / LIMIT sent (and no Sort or Limit
// left in PostgreSQL), and the shapes kept local keep PostgreSQL's Sort and Limit; each answer,
// in order, is the heap table's.
#[test]
fn golden_order_and_limit_plans() {
    let env = TestEnv::start();
    let mut pg = fixture(&env);
    let mut differ = BTreeMap::new();
    for (name, query) in GOLDEN {
        if let Err(difference) = kalam_e2e::golden_plan(&mut pg, name, query) {
            differ.insert(*name, difference);
        }
        let heap = query.replace("app.g ", "app.g_heap ");
        if name.contains("with_ties") || !query.contains("ORDER BY") {
            let (mut f, mut h) = (rows(&mut pg, query), rows(&mut pg, &heap));
            if !query.contains("ORDER BY") {
                // Without ORDER BY, which rows a LIMIT keeps is the server's choice: only how many.
                assert_eq!(f.len(), h.len(), "{name}");
                continue;
            }
            f.sort();
            h.sort();
            assert_eq!(f, h, "{name}");
        } else {
            assert_eq!(rows(&mut pg, query), rows(&mut pg, &heap), "{name}: {query}");
        }
    }
    assert!(
        differ.is_empty(),
        "plans differ from tests/e2e/explain (KALAM_UPDATE_GOLDEN=1 rewrites them):\n{differ:#?}"
    );
    // The pushed shapes are one Foreign Scan; the local ones keep a Sort or a Limit.
    for (name, query) in GOLDEN {
        let plan = plan(&mut pg, query);
        let local = name.contains("stays_local") || name.contains("keeps");
        assert_eq!(plan.starts_with("Foreign Scan"), !local, "{name}: {plan}");
    }
    // A LIMIT sent to the server: the server sends the rows kept, not the table.
    let analyzed = rows(
        &mut pg,
        "EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) \
         SELECT id FROM app.g ORDER BY b DESC NULLS LAST, id LIMIT 4",
    )
    .join("\n");
    assert!(analyzed.contains("Remote Rows: 4"), "{analyzed}");
}
