//! Writes survive restarts, flushes to Parquet, and UPDATE/DELETE across flushed data.

use crate::support::{Dir, eventually, rows, start, update};

fn parquet_files(dir: &std::path::Path) -> usize {
    fn walk(dir: &std::path::Path, n: &mut usize) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, n);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

// Goal: rows flushed to Parquet by FLUSH_POLICY and rows still only in the write-ahead log
// both come back after a restart; UPDATE and DELETE of flushed rows stay applied; _seq grows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_flush_and_restart() {
    let dir = Dir::new("durability");
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    update(&mut c, "CREATE NAMESPACE app").await;
    update(
        &mut c,
        "CREATE SHARED TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, qty INT) \
         WITH (FLUSH_POLICY = 'rows:4,interval:3600')",
    )
    .await;
    assert_eq!(update(&mut c, "INSERT INTO app.items VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30), (4, 'd', 40), (5, 'e', 50)").await, 5);
    eventually(
        &mut c,
        "SELECT segments, rows_in_memory FROM system.tables WHERE table_name = 'items'",
        &["1|0"],
    )
    .await;
    assert_eq!(parquet_files(&dir.0), 1);

    // Changes to flushed rows, and one row that stays in memory (and in the log) only.
    assert_eq!(update(&mut c, "UPDATE app.items SET qty = qty + 1 WHERE id IN (1, 2)").await, 2);
    assert_eq!(update(&mut c, "DELETE FROM app.items WHERE name = 'c'").await, 1);
    assert_eq!(update(&mut c, "INSERT INTO app.items (id, name) VALUES (6, 'f')").await, 1);
    let expected = ["1|a|11", "2|b|21", "4|d|40", "5|e|50", "6|f|NULL"];
    let sql = "SELECT id, name, qty FROM app.items ORDER BY id";
    assert_eq!(rows(&mut c, sql).await, expected);
    let seq_of = |r: &Vec<String>, id: &str| {
        r.iter()
            .find(|l| l.starts_with(&format!("{id}|")))
            .unwrap()
            .split('|')
            .nth(1)
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    let seqs = rows(&mut c, "SELECT id, _seq FROM app.items").await;
    assert!(seq_of(&seqs, "1") > seq_of(&seqs, "4"), "an updated row gets a newer _seq: {seqs:?}");
    assert_eq!(rows(&mut c, "SELECT count(*) FROM app.items WHERE _deleted").await, ["0"]);

    server.stop().await;
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    assert_eq!(rows(&mut c, sql).await, expected);
    // The primary key index came back too.
    let err = crate::support::update_error(&mut c, "INSERT INTO app.items VALUES (4, 'again', 1)").await;
    assert!(err.contains("duplicate key value violates the primary key"), "{err}");
    // _seq keeps growing after a restart.
    update(&mut c, "INSERT INTO app.items VALUES (7, 'g', 70)").await;
    let seqs = rows(&mut c, "SELECT id, _seq FROM app.items").await;
    assert!(
        seqs.iter().all(
            |l| l.starts_with("7|") || seq_of(&seqs, "7") > l.split('|').nth(1).unwrap().parse().unwrap()
        )
    );
    server.stop().await;
}

// Goal: DROP and ALTER TABLE and views persist; an added column reads NULL for old rows (in memory and
// in Parquet); a dropped column is gone; a changed type is cast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_persist() {
    let dir = Dir::new("alter");
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    update(&mut c, "CREATE NAMESPACE app").await;
    update(
        &mut c,
        "CREATE TABLE app.t (id INT PRIMARY KEY, note TEXT, n INT) WITH (FLUSH_POLICY = 'rows:2')",
    )
    .await;
    update(&mut c, "INSERT INTO app.t VALUES (1, 'x', 5), (2, 'y', 6)").await;
    eventually(&mut c, "SELECT segments FROM system.tables WHERE table_name = 't'", &["1"]).await;
    update(&mut c, "INSERT INTO app.t VALUES (3, 'z', 7)").await;
    update(&mut c, "ALTER TABLE app.t ADD COLUMN score DOUBLE").await;
    update(&mut c, "ALTER TABLE app.t DROP COLUMN note").await;
    update(&mut c, "ALTER TABLE app.t MODIFY COLUMN n BIGINT").await;
    update(&mut c, "INSERT INTO app.t VALUES (4, 8, 1.5)").await;
    update(&mut c, "CREATE VIEW app.big_n AS SELECT id FROM app.t WHERE n > 6").await;
    update(&mut c, "CREATE TABLE app.gone (id INT)").await;
    update(&mut c, "DROP TABLE app.gone").await;
    let sql = "SELECT * FROM (SELECT id, n, score, arrow_typeof(n) FROM app.t) ORDER BY id";
    let expected = ["1|5|NULL|Int64", "2|6|NULL|Int64", "3|7|NULL|Int64", "4|8|1.5|Int64"];
    assert_eq!(rows(&mut c, sql).await, expected);
    server.stop().await;

    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    assert_eq!(rows(&mut c, sql).await, expected);
    assert_eq!(rows(&mut c, "SHOW TABLES IN app").await.len(), 1);
    assert_eq!(rows(&mut c, "SELECT id FROM app.big_n ORDER BY id").await, ["3", "4"]);
    let err = crate::support::query_error(&mut c, "SELECT note FROM app.t").await;
    assert!(err.contains("note"), "{err}");
    server.stop().await;
}

// Goal: a STREAM table is append-only and hides rows older than TTL_SECONDS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_tables_expire_rows() {
    let dir = Dir::new("stream");
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    update(&mut c, "CREATE NAMESPACE app").await;
    update(&mut c, "CREATE STREAM TABLE app.events (kind TEXT) WITH (TTL_SECONDS = 1)").await;
    update(&mut c, "EXECUTE AS USER 'u1' (INSERT INTO app.events VALUES ('click'))").await;
    assert_eq!(
        rows(&mut c, "EXECUTE AS USER 'u1' (SELECT kind, _userid FROM app.events)").await,
        ["click|u1"]
    );
    let err = crate::support::update_error(&mut c, "EXECUTE AS USER 'u1' (DELETE FROM app.events)").await;
    assert!(err.contains("append-only"), "{err}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(rows(&mut c, "EXECUTE AS USER 'u1' (SELECT kind FROM app.events)").await.is_empty());
    let err = crate::support::update_error(&mut c, "CREATE STREAM TABLE app.bad (k TEXT)").await;
    assert!(err.contains("TTL_SECONDS"), "{err}");
    server.stop().await;
}
