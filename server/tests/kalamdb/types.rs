//! Every KalamDB column type: created by DDL, written by SQL literal and by bulk ingest, read
//! back exactly (also after a flush to Parquet and a restart), named by DESCRIBE TABLE and the
//! system tables, and carried in Arrow schemas with the canonical extension names.

use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use arrow_array::{
    ArrayRef, BinaryArray, FixedSizeBinaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow_flight::sql::{
    CommandGetTables, CommandStatementIngest, TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use crate::support::{Client, Dir, INVALID_ARGUMENT, eventually, rows, start, update, update_error};

const EVERY_TYPE: &str = "CREATE SHARED TABLE app.every (
    id BIGINT PRIMARY KEY, u UUID, j JSON, jb JSONB, f FILE, e EMBEDDING(3),
    ts TIMESTAMP, tz TIMESTAMPTZ, tz2 TIMESTAMP WITH TIME ZONE, tm TIME, d DECIMAL(10,2),
    b BYTEA, bin BINARY, ints INT[], day DATE, flag BOOLEAN, small SMALLINT, r REAL, name TEXT
) WITH (FLUSH_POLICY = 'rows:2,interval:3600')";

const COLUMNS: &str = "id, u, j, jb, f, e, ts, tz, tz2, tm, d, b, bin, ints, day, flag, small, r, name";

const ROW_1: &str = "1|a0eebc999c0b4ef8bb6d6bb9bd380a11|{\"a\": [1, 2.5, null]}|[1, 2]|{\"id\": \"f1\", \"name\": \"a.png\"}\
|[0.5, 1.5, -2.0]|2024-05-06T07:08:09.123456|2024-05-06T05:08:09.123456Z|1969-12-31T23:00:00Z|23:59:59.999999\
|12345678.91|00ff|01|[1, NULL, 3]|2024-02-29|true|-32768|1.5|n";

fn ingest(table: &str, create: bool) -> CommandStatementIngest {
    CommandStatementIngest {
        table_definition_options: Some(TableDefinitionOptions {
            if_not_exist: if create { TableNotExistOption::Create } else { TableNotExistOption::Fail }.into(),
            if_exists: TableExistsOption::Append.into(),
        }),
        table: table.into(),
        schema: Some("app".into()),
        catalog: None,
        temporary: false,
        transaction_id: None,
        options: Default::default(),
    }
}

fn uuid_field(name: &str) -> Field {
    Field::new(name, DataType::FixedSizeBinary(16), true)
        .with_metadata([("ARROW:extension:name".to_string(), "arrow.uuid".to_string())].into())
}

fn embeddings(values: &[[f32; 3]]) -> ArrayRef {
    let mut builder = FixedSizeListBuilder::new(Float32Builder::new(), 3);
    for vector in values {
        builder.values().append_slice(vector);
        builder.append(true);
    }
    Arc::new(builder.finish())
}

/// The metadata of each field of a query's result schema, as `name:key=value`.
async fn extension_names(c: &mut Client, sql: &str) -> Vec<String> {
    let info = c.execute(sql.to_string(), None).await.unwrap();
    let schema = info.try_decode_schema().unwrap();
    schema
        .fields()
        .iter()
        .map(|f| {
            let mut metadata: Vec<String> = f.metadata().iter().map(|(k, v)| format!("{k}={v}")).collect();
            metadata.sort();
            format!("{}:{}:{}", f.name(), f.data_type(), metadata.join(","))
        })
        .collect()
}

// Goal: a table with every KalamDB type is created by DDL, takes SQL literals, reads back
// exactly, and keeps reading back the same after a flush to Parquet and a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_by_ddl_and_sql_literals() {
    let dir = Dir::new("types_ddl");
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    update(&mut c, "CREATE NAMESPACE app").await;
    update(&mut c, EVERY_TYPE).await;
    let inserted = update(
        &mut c,
        r#"INSERT INTO app.every VALUES
            (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.5, null]}', '[1, 2]',
             '{"id": "f1", "name": "a.png"}', ARRAY[0.5, 1.5, -2], '2024-05-06 07:08:09.123456',
             '2024-05-06 07:08:09.123456+02:00', '1970-01-01T00:00:00+01:00', '23:59:59.999999', 12345678.91,
             X'00ff', X'01', ARRAY[1, NULL, 3], '2024-02-29', true, -32768, 1.5, 'n'),
            (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
             NULL, NULL, NULL)"#,
    )
    .await;
    assert_eq!(inserted, 2);
    let select = format!("SELECT {COLUMNS} FROM app.every ORDER BY id");
    let nulls = format!("2{}", "|NULL".repeat(18));
    assert_eq!(rows(&mut c, &select).await, [ROW_1, &nulls]);
    // UUID text in other forms and from other expressions, UPDATE of a UUID.
    update(&mut c, "INSERT INTO app.every (id, u) VALUES (3, '{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12}')")
        .await;
    update(&mut c, "INSERT INTO app.every (id, u) SELECT 4, 'a0eebc999c0b4ef8bb6d6bb9bd380a13'").await;
    update(&mut c, "UPDATE app.every SET u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a14' WHERE id = 4").await;
    assert_eq!(
        rows(&mut c, "SELECT id, u FROM app.every WHERE id > 2 ORDER BY id").await,
        ["3|a0eebc999c0b4ef8bb6d6bb9bd380a12", "4|a0eebc999c0b4ef8bb6d6bb9bd380a14"]
    );
    // UUIDs compare with UUID text, as in PostgreSQL.
    for filter in [
        "u = to_uuid('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')",
        "u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
        "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}' = u",
        "u IN ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380aff')",
        "u = CAST('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11' AS UUID)",
        "u < 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'",
        "u BETWEEN 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a10' AND 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
    ] {
        assert_eq!(
            rows(&mut c, &format!("SELECT id FROM app.every WHERE {filter}")).await,
            ["1"],
            "{filter}"
        );
    }
    let err = crate::support::query_error(&mut c, "SELECT id FROM app.every WHERE u = 'zzz'").await;
    assert!(err.contains("'zzz' is not a UUID"), "{err}");
    assert_eq!(
        rows(&mut c, "SELECT f->>'name', e FROM app.every WHERE id = 1").await,
        ["a.png|[0.5, 1.5, -2.0]"]
    );

    // Flushed to Parquet (FLUSH_POLICY rows:2), then read after a restart: the same values.
    eventually(&mut c, "SELECT rows_in_memory FROM system.tables WHERE table_name = 'every'", &["0"]).await;
    let before = rows(&mut c, &select).await;
    server.stop().await;
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    assert_eq!(rows(&mut c, &select).await, before);
    assert_eq!(before[0], ROW_1);
    server.stop().await;
}

// Goal: DESCRIBE TABLE, system.columns and system.tables name each column's KalamDB type, and
// result schemas carry `arrow.uuid` / `arrow.json` so clients tell a uuid from other binaries and
// JSON from text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_are_named_and_carried_in_schemas() {
    let dir = Dir::new("types_names");
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    update(&mut c, "CREATE NAMESPACE app").await;
    update(&mut c, EVERY_TYPE).await;

    let described: Vec<String> = rows(&mut c, "DESCRIBE TABLE app.every").await;
    let types: Vec<&str> = described.iter().map(|row| row.split('|').nth(1).unwrap()).collect();
    assert_eq!(
        types,
        [
            "BIGINT",
            "UUID",
            "JSON",
            "JSON",
            "FILE",
            "EMBEDDING(3)",
            "TIMESTAMP",
            "TIMESTAMPTZ",
            "TIMESTAMPTZ",
            "TIME",
            "DECIMAL(10,2)",
            "BYTES",
            "BYTES",
            "INT[]",
            "DATE",
            "BOOLEAN",
            "SMALLINT",
            "FLOAT",
            "TEXT",
            "BIGINT",
            "BOOLEAN",
        ]
    );
    assert_eq!(described[0], "id|BIGINT|NO|NULL|1|true");
    assert_eq!(
        rows(&mut c, "SELECT data_type, arrow_type FROM system.columns WHERE table_name = 'every' AND column_name IN ('u', 'tz')")
            .await,
        ["UUID|FixedSizeBinary(16)", "TIMESTAMPTZ|Timestamp(µs, \"UTC\")"]
    );
    let columns = rows(&mut c, "SELECT columns FROM system.tables WHERE table_name = 'every'").await;
    assert!(
        columns[0]
            .starts_with("id BIGINT NOT NULL, u UUID, j JSON, jb JSON, f FILE, e EMBEDDING(3), ts TIMESTAMP"),
        "{columns:?}"
    );

    assert_eq!(
        extension_names(&mut c, "SELECT u, j, f, e, name FROM app.every").await,
        [
            "u:FixedSizeBinary(16):ARROW:extension:name=arrow.uuid",
            "j:Utf8:ARROW:extension:metadata=,ARROW:extension:name=arrow.json",
            "f:Utf8:ARROW:extension:metadata=,ARROW:extension:name=arrow.json,kalamdb.type=FILE",
            "e:FixedSizeList(3 x Float32):",
            "name:Utf8View:",
        ]
    );
    // GetTables with the table's schema, as IMPORT FOREIGN SCHEMA reads it.
    let info = c
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("app".into()),
            table_name_filter_pattern: Some("every".into()),
            table_types: vec![],
            include_schema: true,
        })
        .await
        .unwrap();
    let tables: Vec<RecordBatch> =
        futures::TryStreamExt::try_collect(c.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap())
            .await
            .unwrap();
    let schema_bytes = tables[0].column_by_name("table_schema").unwrap();
    let schema_bytes = arrow_array::cast::AsArray::as_binary::<i32>(schema_bytes.as_ref()).value(0);
    let schema = arrow_ipc::convert::try_schema_from_ipc_buffer(schema_bytes).unwrap();
    assert_eq!(schema.field_with_name("u").unwrap().metadata()["ARROW:extension:name"], "arrow.uuid");
    assert_eq!(schema.field_with_name("jb").unwrap().metadata()["ARROW:extension:name"], "arrow.json");
    server.stop().await;
}

// Goal: bulk ingest writes every type (from the Arrow types clients send: uuid as 16 bytes or
// text, nanosecond timestamps, int64 into INT), creates tables whose uuid and JSON columns keep
// their extension types, and creates an empty table from a schema with no rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_by_ingest() {
    let dir = Dir::new("types_ingest");
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    update(&mut c, "CREATE NAMESPACE app").await;
    update(&mut c, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, u UUID, v UUID, j JSON, e EMBEDDING(3), ts TIMESTAMP, n INT)").await;

    let uuid =
        [0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11];
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        uuid_field("u"),
        Field::new("v", DataType::Utf8, true),
        Field::new("j", DataType::Utf8, true),
        Field::new("e", DataType::new_fixed_size_list(DataType::Float32, 3, true), true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        Field::new("n", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(FixedSizeBinaryArray::try_from_iter([uuid].into_iter()).unwrap()),
            Arc::new(StringArray::from(vec!["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"])),
            Arc::new(StringArray::from(vec![r#"{"k": "v"}"#])),
            embeddings(&[[1.0, 2.0, 3.0]]),
            Arc::new(TimestampNanosecondArray::from(vec![1_714_979_289_123_456_000])),
            Arc::new(Int64Array::from(vec![7])),
        ],
    )
    .unwrap();
    let written =
        c.execute_ingest(ingest("t", false), futures::stream::iter(vec![Ok(batch.clone())])).await.unwrap();
    assert_eq!(written, 1);
    assert_eq!(
        rows(&mut c, "SELECT id, u, v, j, e, ts, n FROM app.t").await,
        [
            "1|a0eebc999c0b4ef8bb6d6bb9bd380a11|a0eebc999c0b4ef8bb6d6bb9bd380a11|{\"k\": \"v\"}|[1.0, 2.0, 3.0]|2024-05-06T07:08:09.123456|7"
        ]
    );

    // A new table from the client's schema: the uuid column is a UUID, JSON text stays text.
    let created =
        c.execute_ingest(ingest("made", true), futures::stream::iter(vec![Ok(batch)])).await.unwrap();
    assert_eq!(created, 1);
    let described =
        rows(&mut c, "SELECT column_name, data_type FROM system.columns WHERE table_name = 'made'").await;
    assert_eq!(&described[..5], ["id|BIGINT", "u|UUID", "v|TEXT", "j|TEXT", "e|EMBEDDING(3)"]);

    // Zero rows, with the schema: the table is created, and appending zero rows changes nothing.
    let empty_schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), uuid_field("u")]));
    let empty = RecordBatch::new_empty(empty_schema);
    let none = c
        .execute_ingest(ingest("empty", true), futures::stream::iter(vec![Ok(empty.clone())]))
        .await
        .unwrap();
    assert_eq!(none, 0);
    assert_eq!(rows(&mut c, "SELECT count(*) FROM app.empty").await, ["0"]);
    let none =
        c.execute_ingest(ingest("empty", false), futures::stream::iter(vec![Ok(empty)])).await.unwrap();
    assert_eq!(none, 0);
    assert_eq!(
        rows(&mut c, "SELECT column_name, data_type FROM system.columns WHERE table_name = 'empty' AND column_name = 'u'")
            .await,
        ["u|UUID"]
    );
    server.stop().await;
}

// Goal: a value that does not fit its column is refused with what is wrong and which column,
// nothing of the statement or the ingest is kept, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_and_types_are_refused() {
    let dir = Dir::new("types_bad");
    let server = start(&dir.0, |_| {}).await;
    let mut c = server.client().await;
    update(&mut c, "CREATE NAMESPACE app").await;
    update(
        &mut c,
        "CREATE TABLE app.t (id BIGINT PRIMARY KEY, u UUID, j JSON, f FILE, e EMBEDDING(3), n INT)",
    )
    .await;

    let cases: [(&str, &str); 10] = [
        ("CREATE TABLE app.x (v FOO)", "unknown type FOO: use one of BOOLEAN"),
        ("CREATE TABLE app.x (e EMBEDDING(0))", "1 to 16000 dimensions"),
        ("CREATE TABLE app.x (e EMBEDDING)", "EMBEDDING(384)"),
        ("CREATE TABLE app.x (t TIMESTAMP(9))", "microseconds"),
        ("CREATE TABLE app.x (t TIMESTAMP(3))", "leave the precision out or write 6"),
        ("INSERT INTO app.t (id, u) VALUES (1, 'not-a-uuid')", "'not-a-uuid' is not a UUID"),
        ("INSERT INTO app.t (id, u) VALUES (1, X'0102')", "16 bytes"),
        ("INSERT INTO app.t (id, j) VALUES (1, '{\"a\": 1'), (2, '{}')", "is not valid JSON"),
        ("INSERT INTO app.t (id, f) VALUES (1, '\"just text\"')", "is not a FileRef"),
        ("INSERT INTO app.t (id, e) VALUES (1, ARRAY[1, 2])", "e"),
    ];
    for (sql, needle) in cases {
        let err = update_error(&mut c, sql).await;
        assert!(err.contains(INVALID_ARGUMENT) && err.contains(needle), "{sql}: {err}");
    }
    let err = update_error(&mut c, "INSERT INTO app.t (id, j) VALUES (1, '{')").await;
    assert!(err.contains("column j of app.t is JSON"), "{err}");
    assert_eq!(rows(&mut c, "SELECT count(*) FROM app.t").await, ["0"]);
    update(&mut c, "INSERT INTO app.t (id, u) VALUES (5, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')").await;
    let err = update_error(&mut c, "UPDATE app.t SET u = 'nope' WHERE id = 5").await;
    assert!(err.contains("'nope' is not a UUID"), "{err}");
    update(&mut c, "DELETE FROM app.t").await;

    // Ingest: an int64 that does not fit INT, a 10-byte uuid; neither leaves a row.
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("n", DataType::Int64, true),
    ]));
    let too_big = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(Int64Array::from(vec![1, i64::from(i32::MAX) + 1])),
        ],
    )
    .unwrap();
    let err =
        c.execute_ingest(ingest("t", false), futures::stream::iter(vec![Ok(too_big)])).await.unwrap_err();
    assert!(err.to_string().contains("column n of app.t is INT"), "{err}");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("u", DataType::Binary, true),
    ]));
    let short = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(vec![3])), Arc::new(BinaryArray::from(vec![&b"0123456789"[..]]))],
    )
    .unwrap();
    let err = c.execute_ingest(ingest("t", false), futures::stream::iter(vec![Ok(short)])).await.unwrap_err();
    assert!(err.to_string().contains("a UUID is 16 bytes, this value has 10"), "{err}");
    assert_eq!(rows(&mut c, "SELECT count(*) FROM app.t").await, ["0"]);

    // The ints that fit are kept exactly.
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("n", DataType::Int32, true),
    ]));
    let fits = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(vec![9])), Arc::new(Int32Array::from(vec![i32::MIN]))],
    )
    .unwrap();
    c.execute_ingest(ingest("t", false), futures::stream::iter(vec![Ok(fits)])).await.unwrap();
    assert_eq!(rows(&mut c, "SELECT id, n FROM app.t").await, ["9|-2147483648"]);
    server.stop().await;
}
