//! Every statement may be sent as a Flight SQL statement query or prepared-statement query (the
//! way DBAPI, JDBC and BI tools send everything): it runs once, at GetFlightInfo, and answers
//! with a result.

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_flight::FlightInfo;
use arrow_flight::sql::EndTransaction;
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use futures::TryStreamExt;

use crate::support::{Client, Dir, render, rows, start, update};

/// GetFlightInfo for `sql`, then its result read twice with the same ticket.
async fn run_as_query(c: &mut Client, sql: &str, tx: Option<Bytes>) -> (FlightInfo, Vec<String>) {
    let info = c.execute(sql.to_string(), tx).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let first: Vec<RecordBatch> = c.do_get(ticket.clone()).await.unwrap().try_collect().await.unwrap();
    let again: Vec<RecordBatch> = c.do_get(ticket).await.unwrap().try_collect().await.unwrap();
    assert_eq!(render(&first), render(&again), "a retried DoGet answers the same");
    (info, render(&first))
}

/// Parameter rows for `$1` (BIGINT) and `$2` (TEXT).
fn parameters(ids: &[i64], names: &[&str]) -> RecordBatch {
    let schema =
        Schema::new(vec![Field::new("$1", DataType::Int64, false), Field::new("$2", DataType::Utf8, true)]);
    let columns: Vec<arrow_array::ArrayRef> =
        vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(StringArray::from(names.to_vec()))];
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

fn schema_of(info: &FlightInfo) -> Schema {
    info.clone().try_decode_schema().unwrap()
}

// Goal: DDL, INSERT/UPDATE/DELETE and account statements sent as statement queries run exactly
// once per GetFlightInfo (a retried DoGet runs nothing) and answer: DDL with no columns and no
// rows, DML with one `rows_affected` row whose count is also the FlightInfo's total_records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_statement_runs_as_a_query() {
    let dir = Dir::new("statements");
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;

    let (info, result) = run_as_query(&mut c, "CREATE NAMESPACE IF NOT EXISTS app", None).await;
    assert_eq!(schema_of(&info).fields().len(), 0);
    assert_eq!((info.total_records, result.len()), (0, 0));
    run_as_query(&mut c, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, name TEXT)", None).await;
    run_as_query(&mut c, "CREATE TABLE app.log (line TEXT)", None).await;

    let (info, result) =
        run_as_query(&mut c, "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'), (3, 'c')", None).await;
    let schema = schema_of(&info);
    assert_eq!(schema.field(0), &Field::new("rows_affected", DataType::Int64, false));
    assert_eq!((info.total_records, result), (3, vec!["3".to_string()]));
    assert_eq!(rows(&mut c, "SELECT count(*) FROM app.t").await, ["3"], "the INSERT ran once");
    let (info, result) = run_as_query(&mut c, "UPDATE app.t SET name = 'x' WHERE id > 1", None).await;
    assert_eq!((info.total_records, result), (2, vec!["2".to_string()]));
    let (_, result) = run_as_query(&mut c, "DELETE FROM app.t WHERE id = 1", None).await;
    assert_eq!(result, ["1"]);
    assert_eq!(rows(&mut c, "SELECT id, name FROM app.t ORDER BY id").await, ["2|x", "3|x"]);

    // Each GetFlightInfo runs the statement again: a client that retries it inserts twice.
    for _ in 0..2 {
        run_as_query(&mut c, "INSERT INTO app.log VALUES ('hello')", None).await;
    }
    assert_eq!(rows(&mut c, "SELECT count(*) FROM app.log").await, ["2"]);

    // Accounts, EXECUTE AS USER and views go the same way.
    run_as_query(&mut c, "CREATE USER 'ann' WITH PASSWORD 'ann-secret-1' ROLE user", None).await;
    run_as_query(&mut c, "CREATE USER TABLE app.notes (body TEXT)", None).await;
    let (_, result) =
        run_as_query(&mut c, "EXECUTE AS USER 'ann' (INSERT INTO app.notes VALUES ('mine'))", None).await;
    assert_eq!(result, ["1"]);
    assert_eq!(
        rows(&mut c, "EXECUTE AS USER 'ann' (SELECT body, _userid FROM app.notes)").await,
        ["mine|ann"]
    );
    run_as_query(&mut c, "CREATE VIEW app.names AS SELECT name FROM app.t", None).await;
    assert_eq!(rows(&mut c, "SELECT count(*) FROM app.names").await, ["2"]);
    // DESCRIBE covers views and system tables too.
    assert_eq!(rows(&mut c, "DESCRIBE TABLE app.names").await, ["name|TEXT|YES|NULL|1|false"]);
    assert_eq!(rows(&mut c, "DESCRIBE TABLE system.users").await[0], "user_id|TEXT|NO|NULL|1|false");

    // Queries stay queries: planned at GetFlightInfo, streamed at DoGet.
    let (info, result) = run_as_query(&mut c, "SELECT id FROM app.t ORDER BY id", None).await;
    assert_eq!(schema_of(&info).field(0).name(), "id");
    assert_eq!(result, ["2", "3"]);

    // Updates still work, and report the same counts.
    assert_eq!(update(&mut c, "DELETE FROM app.log").await, 2);
    server.stop().await;
}

// Goal: inside a Flight SQL transaction a statement sent as a query joins the transaction: the
// transaction reads it, nobody else does until commit, and a rollback undoes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_as_queries_join_the_transaction() {
    let dir = Dir::new("statements_tx");
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    let mut other = server.client().await;
    update(&mut c, "CREATE NAMESPACE app").await;
    update(&mut c, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, name TEXT)").await;

    let tx = c.begin_transaction().await.unwrap();
    let (_, result) =
        run_as_query(&mut c, "INSERT INTO app.t VALUES (1, 'a'), (2, 'b')", Some(tx.clone())).await;
    assert_eq!(result, ["2"]);
    let (_, inside) = run_as_query(&mut c, "SELECT count(*) FROM app.t", Some(tx.clone())).await;
    assert_eq!(inside, ["2"]);
    assert_eq!(rows(&mut other, "SELECT count(*) FROM app.t").await, ["0"]);
    c.end_transaction(tx, EndTransaction::Commit).await.unwrap();
    assert_eq!(rows(&mut other, "SELECT count(*) FROM app.t").await, ["2"]);

    let tx = c.begin_transaction().await.unwrap();
    run_as_query(&mut c, "DELETE FROM app.t", Some(tx.clone())).await;
    c.end_transaction(tx, EndTransaction::Rollback).await.unwrap();
    assert_eq!(rows(&mut other, "SELECT count(*) FROM app.t").await, ["2"]);
    server.stop().await;
}

// Goal: a prepared INSERT executed as a query (what DBAPI's cursor.execute with parameters
// does) runs once per parameter row and answers the count, and is described as an update (an
// empty dataset schema); a row that fails takes back the rows before it, also inside the client's
// transaction; a prepared DDL statement runs too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_changes_run_as_queries() {
    let dir = Dir::new("statements_prepared");
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    let mut create = c.prepare("CREATE NAMESPACE app".into(), None).await.unwrap();
    let info = create.execute().await.unwrap();
    assert_eq!(info.total_records, 0);
    update(&mut c, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, name TEXT)").await;

    let mut insert = c.prepare("INSERT INTO app.t VALUES ($1, $2)".into(), None).await.unwrap();
    // An empty dataset schema is how clients (JDBC's driver among them) tell an update.
    assert_eq!(insert.dataset_schema().unwrap().fields().len(), 0);
    insert.set_parameters(parameters(&[1, 2], &["a", "b"])).unwrap();
    let info = insert.execute().await.unwrap();
    assert_eq!(info.total_records, 2);
    let result: Vec<RecordBatch> =
        c.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap().try_collect().await.unwrap();
    assert_eq!(render(&result), ["2"]);
    assert_eq!(rows(&mut c, "SELECT id, name FROM app.t ORDER BY id").await, ["1|a", "2|b"]);

    // A failing row leaves nothing of the others.
    insert.set_parameters(parameters(&[3, 1], &["c", "dup"])).unwrap();
    let err = insert.execute().await.unwrap_err().to_string();
    assert!(err.contains("duplicate key value violates the primary key"), "{err}");
    assert_eq!(rows(&mut c, "SELECT count(*) FROM app.t").await, ["2"]);

    // Inside the client's transaction, as an update and as a query: the good row before the bad
    // one is not kept, and the transaction goes on.
    update(&mut c, "CREATE TABLE app.u (id BIGINT PRIMARY KEY, u UUID)").await;
    let tx = c.begin_transaction().await.unwrap();
    let mut in_tx = c.prepare("INSERT INTO app.u VALUES ($1, $2)".into(), Some(tx.clone())).await.unwrap();
    let rows_with_bad_uuid = || parameters(&[50, 51], &["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "nope"]);
    in_tx.set_parameters(rows_with_bad_uuid()).unwrap();
    let err = in_tx.execute_update().await.unwrap_err().to_string();
    assert!(err.contains("'nope' is not a UUID"), "{err}");
    in_tx.set_parameters(rows_with_bad_uuid()).unwrap();
    assert!(in_tx.execute().await.is_err());
    in_tx.set_parameters(parameters(&[52], &["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"])).unwrap();
    assert_eq!(in_tx.execute_update().await.unwrap(), 1);
    c.end_transaction(tx, EndTransaction::Commit).await.unwrap();
    assert_eq!(rows(&mut c, "SELECT id FROM app.u").await, ["52"]);
    server.stop().await;
}
