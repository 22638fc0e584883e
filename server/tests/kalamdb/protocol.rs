//! Transactions, prepared statements, bulk ingest, metadata and bad input over Flight SQL.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_flight::sql::{
    CommandGetPrimaryKeys, CommandStatementIngest, EndTransaction, TableDefinitionOptions, TableExistsOption,
    TableNotExistOption,
};
use arrow_schema::{DataType, Field, Schema};
use futures::{StreamExt, TryStreamExt};

use crate::support::{
    ABORTED, Dir, INVALID_ARGUMENT, query_error, render, rows, start, try_query, update, update_error,
};

fn batch(ids: &[i64], names: &[&str]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> =
        vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(StringArray::from(names.to_vec()))];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn ingest_command(
    table: &str,
    if_not_exist: TableNotExistOption,
    if_exists: TableExistsOption,
) -> CommandStatementIngest {
    CommandStatementIngest {
        table_definition_options: Some(TableDefinitionOptions {
            if_not_exist: if_not_exist.into(),
            if_exists: if_exists.into(),
        }),
        table: table.into(),
        schema: Some("app".into()),
        catalog: None,
        temporary: false,
        transaction_id: None,
        options: Default::default(),
    }
}

// Goal: a transaction sees its own writes, nobody else does until commit; rollback leaves
// nothing; of two transactions deleting the same row, the second to commit is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_atomic_and_isolated() {
    let dir = Dir::new("tx");
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    let mut other = server.client().await;
    update(&mut c, "CREATE NAMESPACE app").await;
    update(&mut c, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, name TEXT)").await;
    update(&mut c, "INSERT INTO app.t VALUES (1, 'one')").await;

    let tx = c.begin_transaction().await.unwrap();
    c.execute_update("INSERT INTO app.t VALUES (2, 'two')".into(), Some(tx.clone())).await.unwrap();
    c.execute_update("UPDATE app.t SET name = 'uno' WHERE id = 1".into(), Some(tx.clone())).await.unwrap();
    let inside = try_query(&mut c, "SELECT id, name FROM app.t ORDER BY id", Some(tx.clone())).await.unwrap();
    assert_eq!(render(&inside), ["1|uno", "2|two"]);
    assert_eq!(rows(&mut other, "SELECT id, name FROM app.t ORDER BY id").await, ["1|one"]);
    c.end_transaction(tx, EndTransaction::Commit).await.unwrap();
    assert_eq!(rows(&mut other, "SELECT id, name FROM app.t ORDER BY id").await, ["1|uno", "2|two"]);

    let tx = c.begin_transaction().await.unwrap();
    c.execute_update("DELETE FROM app.t".into(), Some(tx.clone())).await.unwrap();
    c.end_transaction(tx.clone(), EndTransaction::Rollback).await.unwrap();
    assert_eq!(rows(&mut other, "SELECT count(*) FROM app.t").await, ["2"]);
    let err = c.execute_update("DELETE FROM app.t".into(), Some(tx)).await.unwrap_err().to_string();
    assert!(err.contains("unknown transaction"), "{err}");

    let first = c.begin_transaction().await.unwrap();
    let second = other.begin_transaction().await.unwrap();
    c.execute_update("DELETE FROM app.t WHERE id = 2".into(), Some(first.clone())).await.unwrap();
    other
        .execute_update("UPDATE app.t SET name = 'x' WHERE id = 2".into(), Some(second.clone()))
        .await
        .unwrap();
    c.end_transaction(first, EndTransaction::Commit).await.unwrap();
    let err = other.end_transaction(second, EndTransaction::Commit).await.unwrap_err().to_string();
    assert!(err.contains(ABORTED) && err.contains("retry"), "{err}");
    assert_eq!(rows(&mut c, "SELECT id, name FROM app.t").await, ["1|uno"]);
    server.stop().await;
}

// Goal: prepared statements bind parameters for queries and run updates once per parameter row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_bind_parameters() {
    let dir = Dir::new("prepared");
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    update(&mut c, "CREATE NAMESPACE app").await;
    update(&mut c, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, name TEXT)").await;

    let mut insert = c.prepare("INSERT INTO app.t VALUES ($1, $2)".into(), None).await.unwrap();
    let params = insert.parameter_schema().unwrap().clone();
    assert_eq!(params.fields().len(), 2);
    let values = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("$1", DataType::Int64, false),
            Field::new("$2", DataType::Utf8, true),
        ])),
        vec![Arc::new(Int64Array::from(vec![1, 2, 3])), Arc::new(StringArray::from(vec!["a", "b", "c"]))],
    )
    .unwrap();
    insert.set_parameters(values).unwrap();
    assert_eq!(insert.execute_update().await.unwrap(), 3);
    insert.close().await.unwrap();

    let mut select = c.prepare("SELECT name FROM app.t WHERE id = $1".into(), None).await.unwrap();
    assert_eq!(select.dataset_schema().unwrap().field(0).name(), "name");
    let one = |id: i64| {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("$1", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from(vec![id]))],
        )
        .unwrap()
    };
    for (id, name) in [(2, "b"), (3, "c")] {
        select.set_parameters(one(id)).unwrap();
        let info = select.execute().await.unwrap();
        let stream = c.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap();
        let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        assert_eq!(render(&batches), [name]);
    }
    server.stop().await;
}

// Goal: bulk ingest creates a table from the Arrow schema, appends, refuses to overwrite,
// and is all-or-nothing: a bad batch after good ones leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_ingest() {
    let dir = Dir::new("ingest");
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    update(&mut c, "CREATE NAMESPACE app").await;
    let good = vec![Ok(batch(&[1, 2], &["a", "b"])), Ok(batch(&[3], &["c"]))];
    let command = ingest_command("people", TableNotExistOption::Create, TableExistsOption::Append);
    assert_eq!(c.execute_ingest(command.clone(), futures::stream::iter(good)).await.unwrap(), 3);
    let more = vec![Ok(batch(&[4], &["d"]))];
    assert_eq!(c.execute_ingest(command.clone(), futures::stream::iter(more)).await.unwrap(), 1);
    assert_eq!(
        rows(&mut c, "SELECT id, name FROM app.people ORDER BY id").await,
        ["1|a", "2|b", "3|c", "4|d"]
    );

    let fail = ingest_command("people", TableNotExistOption::Fail, TableExistsOption::Fail);
    let err = c.execute_ingest(fail, futures::stream::iter(vec![Ok(batch(&[5], &["e"]))])).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let missing = ingest_command("nobody", TableNotExistOption::Fail, TableExistsOption::Append);
    let err =
        c.execute_ingest(missing, futures::stream::iter(vec![Ok(batch(&[5], &["e"]))])).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");

    let extra_schema = Arc::new(Schema::new(vec![Field::new("age", DataType::Int64, false)]));
    let extra = RecordBatch::try_new(extra_schema, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
    let err = c.execute_ingest(command, futures::stream::iter(vec![Ok(extra)])).await.unwrap_err();
    assert!(err.to_string().contains("no column age"), "{err}");
    assert_eq!(rows(&mut c, "SELECT count(*) FROM app.people").await, ["4"]);

    // A duplicate key in the third batch: the first two are not kept either.
    update(&mut c, "CREATE TABLE app.keyed (id BIGINT PRIMARY KEY, name TEXT)").await;
    let keyed = ingest_command("keyed", TableNotExistOption::Fail, TableExistsOption::Append);
    let batches = vec![Ok(batch(&[1, 2], &["a", "b"])), Ok(batch(&[3], &["c"])), Ok(batch(&[2], &["again"]))];
    let err = c.execute_ingest(keyed, futures::stream::iter(batches)).await.unwrap_err();
    assert!(err.to_string().contains("duplicate key value violates the primary key"), "{err}");
    assert_eq!(rows(&mut c, "SELECT count(*) FROM app.keyed").await, ["0"]);
    server.stop().await;
}

// Goal: bad statements get a status and a message naming the problem, and never half-apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_whole() {
    let dir = Dir::new("bad");
    let server = start(&dir.0, |c| c.limits.message_bytes_max = 1 << 20).await;
    let mut c = server.client().await;
    update(&mut c, "CREATE NAMESPACE app").await;
    update(&mut c, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, name TEXT NOT NULL)").await;
    update(&mut c, "INSERT INTO app.t VALUES (1, 'one')").await;

    let cases: [(&str, &str); 12] = [
        ("CREATE EXTERNAL TABLE app.x STORED AS CSV LOCATION '/etc/passwd'", "not supported"),
        ("INSERT INTO app.t VALUES (2, 'two'), (1, 'again')", "duplicate key value violates the primary key"),
        ("INSERT INTO app.t VALUES (3, 'x'), (3, 'y')", "duplicate key value violates the primary key"),
        ("INSERT INTO app.t (id) VALUES (4)", "NOT NULL"),
        ("INSERT INTO app.t VALUES ('abc', 'x')", "abc"),
        ("INSERT INTO nowhere.t VALUES (1)", "nowhere"),
        ("CREATE TABLE nowhere.t (id INT)", "namespace nowhere does not exist"),
        ("INSERT INTO app.t (id, nope) VALUES (5, 'x')", "nope"),
        ("CREATE TABLE app.t (id INT)", "already exists"),
        ("CREATE TABLE app.bad (_seq INT)", "reserved"),
        ("CREATE TABLE app.wide (n DECIMAL(39,2))", "holds at most 38"),
        ("ALTER TABLE app.t ADD COLUMN n DECIMAL(40,2)", "holds at most 38"),
    ];
    for (sql, needle) in cases {
        let err = update_error(&mut c, sql).await;
        assert!(err.contains(INVALID_ARGUMENT) && err.contains(needle), "{sql}: {err}");
    }
    let err = update_error(&mut c, "UPDATE app.t SET _seq = 1").await;
    assert!(err.contains("set by the server"), "{err}");
    let err = query_error(&mut c, "SELEC 1").await;
    assert!(err.contains(INVALID_ARGUMENT), "{err}");
    let err = query_error(&mut c, "DELETE FROM app.t WHERE nope = 1").await;
    assert!(err.contains(INVALID_ARGUMENT) && err.contains("nope"), "{err}");
    assert_eq!(rows(&mut c, "SELECT id, name FROM app.t").await, ["1|one"]);

    // A message over the limit is refused; the server keeps serving.
    let huge = format!("SELECT '{}'", "x".repeat(2 << 20));
    let err = query_error(&mut c, &huge).await;
    assert!(
        err.contains("message length too large")
            || err.contains("OutOfRange")
            || err.contains("ResourceExhausted"),
        "{err}"
    );
    let mut c = server.client().await;
    assert_eq!(rows(&mut c, "SELECT count(*) FROM app.t").await, ["1"]);
    server.stop().await;
}

// Goal: a client that stops reading mid-stream does not hurt the server; results stream in
// batches; GetFlightInfo reports the row count; filters prune Parquet row groups; primary keys
// are listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_metadata() {
    let dir = Dir::new("stream");
    let server = start(&dir.0, |c| c.limits.batch_rows = 1000).await;
    let mut c = server.client().await;
    update(&mut c, "CREATE NAMESPACE app").await;
    // The table is flushed once, when both statements' 300000 rows are in memory (a flush
    // between the two would leave the second statement's rows out of the segment).
    update(
        &mut c,
        "CREATE TABLE app.big (id BIGINT PRIMARY KEY, v TEXT) WITH (FLUSH_POLICY = 'rows:300000,interval:3600')",
    )
    .await;
    // Two statements: one INSERT may interleave its partitions' batches, so only the second
    // statement's rows (ids past 280000) are sure to fill the last row group alone.
    update(&mut c, "INSERT INTO app.big SELECT value, 'v' || value FROM generate_series(1, 280000)").await;
    update(&mut c, "INSERT INTO app.big SELECT value, 'v' || value FROM generate_series(280001, 300000)")
        .await;

    let info = c.execute("SELECT * FROM app.big".into(), None).await.unwrap();
    assert_eq!(info.total_records, 300_000);
    let mut stream = c.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.num_rows() <= 1000);
    drop(stream);
    assert_eq!(rows(&mut c, "SELECT count(*), sum(id) FROM app.big").await, ["300000|45000150000"]);

    // Once in Parquet, a filter skips row groups by their statistics.
    for _ in 0..100 {
        if rows(&mut c, "SELECT segments FROM system.tables WHERE table_name = 'big'").await == ["1"] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let plan =
        rows(&mut c, "EXPLAIN ANALYZE SELECT count(*) FROM app.big WHERE id > 290000").await.join("\n");
    assert!(plan.contains("row_groups_pruned_statistics=3 total → 1 matched"), "{plan}");
    assert_eq!(rows(&mut c, "SELECT count(*) FROM app.big WHERE id > 290000").await, ["10000"]);

    let info = c
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: Some("app".into()),
            table: "big".into(),
        })
        .await
        .unwrap();
    let stream = c.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap();
    let keys: Vec<RecordBatch> = stream.try_collect().await.unwrap();
    assert_eq!(render(&keys), ["kalam|app|big|id|NULL|1"]);
    assert_eq!(rows(&mut c, "SHOW TABLES").await.len(), 1);
    let described = rows(&mut c, "DESCRIBE TABLE app.big").await;
    assert_eq!(
        described,
        [
            "id|BIGINT|NO|NULL|1|true",
            "v|TEXT|YES|NULL|2|false",
            "_seq|BIGINT|YES|NULL|3|false",
            "_deleted|BOOLEAN|YES|NULL|4|false"
        ]
    );
    server.stop().await;
}
