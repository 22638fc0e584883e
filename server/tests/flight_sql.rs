//! kalamdb-server over real Flight SQL sockets, driven by pg_kalam's own client crate.

use std::time::Duration;

use arrow_array::Array;
use kalam_flight::{ClientConfig, Error, KalamClient};
use kalamdb_server::Server;
use kalamdb_server::config::Config;

/// A server on free loopback ports, stopped when dropped.
struct Running {
    client: KalamClient,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(batch_rows: usize) -> Running {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = TempDir(std::env::temp_dir().join(format!("kalamdb_flight_test_{}_{n}", std::process::id())));
    let mut config = Config::default();
    config.server.flight_port = 0;
    config.server.http_port = 0;
    config.server.data_dir = dir.0.clone();
    config.limits.batch_rows = batch_rows;
    let server = Server::bind(config).await.expect("bind");
    let addrs = server.addrs();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let client_config =
        ClientConfig::new("127.0.0.1", addrs.flight.port()).with_timeout(Duration::from_secs(10));
    let client = KalamClient::connect(client_config).await.expect("connect");
    Running { client, stop: Some(stop), _dir: dir }
}

// Goal: a statement query streams its result in many batches (GetFlightInfo, then DoGet), with
// the schema announced before the first batch, and updates report their row counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_streams_batches() {
    let server = start(1000).await;
    let client = &server.client;
    client.execute_update("CREATE SCHEMA app", None).await.unwrap();
    client.execute_update("CREATE TABLE app.t (id BIGINT, name VARCHAR)", None).await.unwrap();
    let inserted = client
        .execute_update(
            "INSERT INTO app.t SELECT value, 'n' || CAST(value AS VARCHAR) FROM generate_series(1, 20000)",
            None,
        )
        .await
        .unwrap();
    assert_eq!(inserted, 20_000);

    let mut stream = client.query("SELECT id, name FROM app.t", None).await.unwrap();
    let names: Vec<&str> = stream.schema().fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name"]);
    let (mut batches, mut rows) = (0, 0);
    while let Some(batch) = stream.next_batch().await.unwrap() {
        assert!(batch.num_rows() <= 1000, "batch of {} rows exceeds the configured 1000", batch.num_rows());
        batches += 1;
        rows += batch.num_rows();
    }
    assert_eq!(rows, 20_000);
    assert!(batches >= 20, "expected the result in at least 20 batches, got {batches}");
}

async fn query_error(client: &KalamClient, sql: &str) -> Error {
    match client.query(sql, None).await {
        Ok(_) => panic!("{sql:?} must fail"),
        Err(e) => e,
    }
}

// Goal: bad statements are errors with the right status and a message naming the problem,
// whether they are sent as a query or as an update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_statements_are_clear_errors() {
    let server = start(8192).await;
    let client = &server.client;

    let err = query_error(client, "SELEC 1").await;
    assert!(matches!(&err, Error::Server { code: tonic::Code::InvalidArgument, .. }), "{err}");

    let err = query_error(client, "SELECT * FROM app.nothing").await;
    assert!(err.to_string().contains("nothing"), "{err}");

    let err = query_error(client, "CREATE TABLE nowhere.t (id INT)").await;
    assert!(matches!(&err, Error::Server { code: tonic::Code::InvalidArgument, .. }), "{err}");
    assert!(err.to_string().contains("namespace nowhere does not exist"), "{err}");
    let err = query_error(client, "INSERT INTO nowhere.t VALUES (1)").await;
    assert!(err.to_string().contains("nowhere"), "{err}");

    // The server keeps serving after errors.
    let mut stream = client.query("SELECT 1 AS one", None).await.unwrap();
    assert_eq!(stream.next_batch().await.unwrap().unwrap().num_rows(), 1);
}

// Goal: nobody listening is reported as unreachable, naming the address.
#[tokio::test]
async fn unreachable_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = ClientConfig::new("127.0.0.1", port).with_timeout(Duration::from_secs(2));
    let err = KalamClient::connect(config).await.err().expect("nothing listens there");
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&format!("unreachable at 127.0.0.1:{port}")), "{err}");
}

// Goal: the JSON operators and functions KalamDB offers work on JSON text columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_operators_and_functions() {
    let server = start(8192).await;
    let client = &server.client;
    client.execute_update("CREATE SCHEMA app", None).await.unwrap();
    client.execute_update("CREATE TABLE app.events (id BIGINT, payload VARCHAR)", None).await.unwrap();
    client
        .execute_update(
            r#"INSERT INTO app.events VALUES
                 (1, '{"kind": "click", "meta": {"x": 3, "ok": true}, "tags": ["a", "b"]}'),
                 (2, '{"kind": "view", "score": 2.5}'),
                 (3, 'not json')"#,
            None,
        )
        .await
        .unwrap();
    let sql = "SELECT id, payload->>'kind', payload->'meta'->>'x', payload ? 'score',
                      json_get_int(payload, 'meta', 'x'), json_get_float(payload, 'score'),
                      json_get_bool(payload, 'meta', 'ok'), json_length(payload, 'tags'),
                      json_contains(payload, 'meta'), json_as_text(payload, 'kind')
               FROM app.events ORDER BY id";
    let mut stream = client.query(sql, None).await.unwrap();
    let batch = stream.next_batch().await.unwrap().expect("one batch");
    // Each row as text, NULL as "NULL".
    let columns: Vec<_> =
        batch.columns().iter().map(|c| arrow_cast::cast(c, &arrow_schema::DataType::Utf8).unwrap()).collect();
    let row = |i: usize| -> Vec<String> {
        columns
            .iter()
            .map(|c| {
                let c = c.as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
                if c.is_null(i) { "NULL".to_string() } else { c.value(i).to_string() }
            })
            .collect()
    };
    assert_eq!(row(0), ["1", "click", "3", "false", "3", "NULL", "true", "2", "true", "click"]);
    assert_eq!(row(1)[..6], ["2", "view", "NULL", "true", "NULL", "2.5"]);
    // Text that is not JSON yields NULLs, not an error.
    assert_eq!(row(2)[..3], ["3", "NULL", "NULL"]);
}

// Goal: pg_ascii_lower lowers A-Z only, character by character, as PostgreSQL does under a C
// LC_CTYPE: the Kelvin sign, accented capitals and a combining accent after a capital stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ascii_lowering_keeps_other_characters() {
    let server = start(8192).await;
    let client = &server.client;
    let sql = "SELECT pg_ascii_lower('AbC \u{212A} \u{C9}T\u{C9} A\u{301}Z'), pg_ascii_lower(NULL), \
               pg_ascii_lower('ABC') LIKE 'abc'";
    let mut stream = client.query(sql, None).await.unwrap();
    let batch = stream.next_batch().await.unwrap().expect("one batch");
    let text = arrow_cast::cast(batch.column(0), &arrow_schema::DataType::Utf8).unwrap();
    let text = text.as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
    assert_eq!(text.value(0), "abc \u{212A} \u{C9}t\u{C9} a\u{301}z");
    assert!(batch.column(1).is_null(0));
    let like = batch.column(2).as_any().downcast_ref::<arrow_array::BooleanArray>().unwrap();
    assert!(like.value(0));
}

// Goal: SNOWFLAKE_ID() gives every row a distinct, increasing id, also as a column default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snowflake_ids_as_values_and_defaults() {
    let server = start(8192).await;
    let client = &server.client;
    client.execute_update("CREATE SCHEMA app", None).await.unwrap();
    client
        .execute_update("CREATE TABLE app.t (id BIGINT DEFAULT SNOWFLAKE_ID(), v VARCHAR)", None)
        .await
        .unwrap();
    client
        .execute_update("INSERT INTO app.t (v) SELECT 'x' FROM generate_series(1, 5000)", None)
        .await
        .unwrap();
    let mut stream =
        client.query("SELECT count(DISTINCT id), min(id) > 0, count(id) FROM app.t", None).await.unwrap();
    let batch = stream.next_batch().await.unwrap().unwrap();
    let distinct = batch.column(0).as_any().downcast_ref::<arrow_array::Int64Array>().unwrap().value(0);
    let positive = batch.column(1).as_any().downcast_ref::<arrow_array::BooleanArray>().unwrap().value(0);
    assert_eq!(distinct, 5000);
    assert!(positive);
}

// Goal: the server lists its functions with PostgreSQL's semantics in GetSqlInfo, and they
// answer as PostgreSQL does: floats compare with -0 = 0 and NaN = NaN above all numbers; the
// JSON operators read json and jsonb as PostgreSQL does (jsonb's canonical text, the last
// duplicate key, a scalar as an array of one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_with_postgres_semantics() {
    let server = start(8192).await;
    let client = &server.client;
    let names = client.sql_info_strings(kalam_flight::protocol::PG_FUNCTIONS_INFO).await.unwrap();
    for name in ["pg_float", "pg_json_field_text", "pg_jsonb_contains"] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
    let one = |sql: &'static str| async move {
        let mut stream = client.query(sql, None).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let batch = stream.next_batch().await.unwrap().unwrap();
        arrow_cast::display::array_value_to_string(batch.column(0), 0).unwrap()
    };
    client.execute_update("CREATE SCHEMA app", None).await.unwrap();
    client.execute_update("CREATE TABLE app.f (x DOUBLE)", None).await.unwrap();
    client
        .execute_update(
            "INSERT INTO app.f VALUES (CAST('-0' AS DOUBLE)), (-(CAST('NaN' AS DOUBLE))), (1.5)",
            None,
        )
        .await
        .unwrap();
    // DataFusion orders a NaN by its sign bit (a negative NaN is below every number);
    // through pg_float every NaN is above them, as in PostgreSQL.
    assert_eq!(one("SELECT count(*) FROM app.f WHERE x < CAST('1.5' AS DOUBLE)").await, "2");
    assert_eq!(
        one("SELECT count(*) FROM app.f WHERE pg_float(x) < pg_float(CAST('1.5' AS DOUBLE))").await,
        "1"
    );
    assert_eq!(
        one("SELECT count(*) FROM app.f WHERE pg_float(x) = pg_float(CAST('0' AS DOUBLE))").await,
        "1"
    );
    assert_eq!(one("SELECT count(*) FROM app.f WHERE x > CAST('Infinity' AS DOUBLE)").await, "0");
    assert_eq!(
        one("SELECT count(*) FROM app.f WHERE pg_float(x) > pg_float(CAST('Infinity' AS DOUBLE))").await,
        "1"
    );
    assert_eq!(
        one("SELECT count(*) FROM app.f WHERE pg_float(x) = pg_float(CAST('NaN' AS DOUBLE))").await,
        "1"
    );
    assert_eq!(
        one(r#"SELECT pg_json_field('{"b":1,"a":[1,2.50,1e2],"b":{"x" : 1}}', 'b', true)"#).await,
        r#"{"x": 1}"#
    );
    assert_eq!(one(r#"SELECT pg_json_field('{"b":{"x" : 1}}', 'b', false)"#).await, r#"{"x" : 1}"#);
    assert_eq!(one("SELECT pg_json_element_text('1.50', 0, true)").await, "1.50");
    assert_eq!(one(r#"SELECT pg_jsonb_contains('{"a":[1,2,3]}', '{"a":[3]}')"#).await, "true");
    let err = client.query("SELECT pg_jsonb_exists('{not json', 'a')", None).await;
    let err = match err {
        Err(e) => e.to_string(),
        Ok(mut stream) => stream.next_batch().await.err().map(|e| e.to_string()).unwrap_or_default(),
    };
    assert!(err.contains("invalid JSON"), "{err}");
}

/// `SELECT count(*)` of `sql`'s rows, seen inside `transaction` or outside any.
async fn count(client: &KalamClient, table: &str, transaction: Option<&kalam_flight::TransactionId>) -> i64 {
    let sql = format!("SELECT count(*) FROM {table}");
    let mut stream = client.query_in(&sql, None, transaction).await.unwrap();
    let batch = stream.next_batch().await.unwrap().expect("one batch");
    batch.column(0).as_any().downcast_ref::<arrow_array::Int64Array>().unwrap().value(0)
}

/// `rows` rows `(id, name)` from `from`.
fn rows(from: i64, rows: i64) -> arrow_array::RecordBatch {
    let ids: Vec<i64> = (from..from + rows).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("row {i}")).collect();
    arrow_array::RecordBatch::try_from_iter([
        ("id", std::sync::Arc::new(arrow_array::Int64Array::from(ids)) as arrow_array::ArrayRef),
        ("name", std::sync::Arc::new(arrow_array::StringArray::from(names)) as arrow_array::ArrayRef),
    ])
    .unwrap()
}

// Goal: bulk ingest and statements inside a transaction are seen inside it and nowhere else
// until it commits; a rollback leaves nothing; savepoints undo what followed them (nested ones
// with them) or keep it when released; ended handles are refused with what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_ingest_and_savepoints() {
    let server = start(8192).await;
    let client = &server.client;
    client.execute_update("CREATE SCHEMA app", None).await.unwrap();
    client.execute_update("CREATE TABLE app.t (id BIGINT, name TEXT)", None).await.unwrap();
    let ingest = |batches: Vec<arrow_array::RecordBatch>, tx: Option<kalam_flight::TransactionId>| async move {
        let stream = futures::stream::iter(batches.into_iter().map(Ok));
        client.ingest("app", "t", stream, None, tx.as_ref()).await
    };

    // Outside a transaction: appended at once, in many messages.
    assert_eq!(ingest(vec![rows(0, 50_000), rows(50_000, 10)], None).await.unwrap(), 50_010);
    assert_eq!(count(client, "app.t", None).await, 50_010);

    // Commit: invisible outside until the commit.
    let tx = client.begin_transaction(None).await.unwrap();
    assert_eq!(ingest(vec![rows(100_000, 100)], Some(tx.clone())).await.unwrap(), 100);
    client.execute_update_in("INSERT INTO app.t VALUES (-1, 'statement')", None, Some(&tx)).await.unwrap();
    assert_eq!(count(client, "app.t", Some(&tx)).await, 50_111);
    assert_eq!(count(client, "app.t", None).await, 50_010);
    // Savepoints: s1 { 10 rows; s2 { 20 rows } rolled back to s1 } -> only the rows before s1.
    let s1 = client.begin_savepoint(&tx, "s1", None).await.unwrap();
    ingest(vec![rows(200_000, 10)], Some(tx.clone())).await.unwrap();
    let s2 = client.begin_savepoint(&tx, "s2", None).await.unwrap();
    ingest(vec![rows(300_000, 20)], Some(tx.clone())).await.unwrap();
    assert_eq!(count(client, "app.t", Some(&tx)).await, 50_141);
    client.end_savepoint(&s1, true, None).await.unwrap();
    assert_eq!(count(client, "app.t", Some(&tx)).await, 50_111);
    // s2 ended with s1.
    let gone = client.end_savepoint(&s2, false, None).await.unwrap_err();
    assert!(gone.to_string().contains("unknown savepoint"), "{gone}");
    // Released: its rows stay.
    let s3 = client.begin_savepoint(&tx, "s3", None).await.unwrap();
    ingest(vec![rows(400_000, 5)], Some(tx.clone())).await.unwrap();
    client.end_savepoint(&s3, false, None).await.unwrap();
    client.end_transaction(&tx, true, None).await.unwrap();
    assert_eq!(count(client, "app.t", None).await, 50_116);

    // Rollback: nothing stays; the ended transaction is refused.
    let tx = client.begin_transaction(None).await.unwrap();
    ingest(vec![rows(500_000, 1000)], Some(tx.clone())).await.unwrap();
    client.end_transaction(&tx, false, None).await.unwrap();
    assert_eq!(count(client, "app.t", None).await, 50_116);
    let ended = ingest(vec![rows(600_000, 1)], Some(tx.clone())).await.unwrap_err();
    assert!(ended.to_string().contains("unknown transaction"), "{ended}");
    let ended = client.begin_savepoint(&tx, "late", None).await.unwrap_err();
    assert!(ended.to_string().contains("unknown transaction"), "{ended}");

    // A batch that cannot be sent fails the whole ingest, and the batches before it are not
    // appended: the upload is cancelled, not ended.
    let wrong = arrow_array::RecordBatch::try_from_iter([(
        "id",
        std::sync::Arc::new(arrow_array::StringArray::from(vec!["not a number"])) as arrow_array::ArrayRef,
    )])
    .unwrap();
    let refused = ingest(vec![rows(700_000, 10), wrong], None).await.unwrap_err();
    assert!(refused.to_string().contains("number of columns"), "{refused}");
    assert_eq!(count(client, "app.t", None).await, 50_116);
}
