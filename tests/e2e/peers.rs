//! kalamdb-server driven by Flight SQL clients nobody here wrote.

use std::process::Command;

use kalam_e2e::TestEnv;
use serde_json::json;

/// Runs a Python peer script from `tests/peers/` against the test server, logged in as root with
/// `password`, and returns the JSON document it prints.
fn run_python_peer(env: &TestEnv, script: &str, password: &str) -> serde_json::Value {
    let path = format!("{}/peers/{script}", kalam_e2e::package_dir());
    let output = Command::new("python3")
        .arg(path)
        .arg(env.kalam.flight_port.to_string())
        .args(["root", password])
        .output()
        .expect("run python3 (scripts/setup.sh installs the ADBC driver, pyarrow and pandas)");
    assert!(output.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON from the Python peer")
}

// Goal: Apache ADBC's Flight SQL driver (Go) logs in, reads the server's info, runs a query and
// one with JSON operators, ingests rows into a new table and appends more, reads them back,
// lists namespaces and tables, reads a table's Arrow schema, and is refused a wrong password.
#[test]
fn adbc_flightsql_driver_logs_in_queries_ingests_and_lists() {
    let env = TestEnv::start_with_password("adbc-root-pw");
    env.kalam_sql("CREATE NAMESPACE app");
    env.kalam_sql("CREATE TABLE app.trips (id BIGINT, fare DOUBLE)");
    env.kalam_sql("INSERT INTO app.trips VALUES (1, 2.5), (2, 4.0), (3, NULL)");
    env.kalam_sql("CREATE TABLE app.events (id BIGINT, payload VARCHAR)");
    env.kalam_sql(
        r#"INSERT INTO app.events VALUES (1, '{"kind": "click"}'), (2, '{}'), (3, '{"kind": "view"}')"#,
    );

    let seen = run_python_peer(&env, "adbc_flightsql.py", "adbc-root-pw");

    assert_eq!(seen["vendor_name"], "kalamdb-server");
    assert_eq!(seen["query"], json!([{ "n": 3, "total": 6.5 }]));
    assert_eq!(seen["json_query"], json!([{ "kind": "click" }, { "kind": "view" }]));
    assert_eq!(seen["ingested"], 3);
    assert_eq!(seen["appended"], 1);
    assert_eq!(
        seen["visits"],
        json!([
            { "id": 10, "city": "Oslo" }, { "id": 11, "city": "Lima" },
            { "id": 12, "city": null }, { "id": 13, "city": "Pune" }
        ])
    );
    assert_eq!(
        seen["tables"],
        json!(["kalam.app.events:TABLE", "kalam.app.trips:TABLE", "kalam.app.visits:TABLE"])
    );
    assert_eq!(seen["trips_schema"], json!(["id:int64", "fare:double", "_seq:int64", "_deleted:bool"]));
    let bad_login = seen["bad_login"].as_str().unwrap();
    assert!(bad_login.contains("wrong user name or password"), "{bad_login}");
    assert!(!bad_login.contains("wrong\"") && !bad_login.contains("adbc-root-pw"), "{bad_login}");
    assert_eq!(seen["table_types"], json!(["TABLE", "VIEW"]));
}

// Goal: a data engineer's session through ADBC's DBAPI (Go driver, pandas): DDL with every
// KalamDB type through cursor.execute, INSERT with `?` parameters and executemany with their
// rowcount, UPDATE, bulk ingest with Arrow's uuid/json types and of an empty table, reading back
// as Arrow and pandas with the extension types, a filter by UUID parameter, DESCRIBE, each bad
// input refused with what is wrong (and nothing written), and a transaction with autocommit off.
#[test]
fn adbc_dbapi_data_engineer_session() {
    let env = TestEnv::start_with_password("dbapi-root-pw");
    let seen = run_python_peer(&env, "adbc_dbapi.py", "dbapi-root-pw");

    assert_eq!(seen["create_namespace"], json!({ "rowcount": 0, "rows": [] }));
    assert_eq!(seen["create_table"], json!([]));
    assert_eq!(seen["insert"], json!({ "rowcount": 1, "rows": [[1]] }));
    assert_eq!(seen["executemany_rowcount"], 2);
    assert_eq!(seen["update"], json!({ "rowcount": 2, "rows": [[2]] }));
    assert_eq!(seen["ingested"], 2);
    assert_eq!(seen["ingested_empty"], 0);
    assert_eq!(
        seen["empty_columns"],
        json!(["id:BIGINT", "u:UUID", "j:JSON", "_seq:BIGINT", "_deleted:BOOLEAN"])
    );

    let schema: Vec<&str> =
        seen["arrow_schema"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(
        &schema[..18],
        [
            "id:int64",
            "u:extension<arrow.uuid>",
            "j:extension<arrow.json>",
            "jb:extension<arrow.json>",
            "f:extension<arrow.json>",
            "e:fixed_size_list<item: float>[3]",
            "ts:timestamp[us]",
            "tz:timestamp[us, tz=UTC]",
            "tm:time64[us]",
            "d:decimal128(10, 2)",
            "b:binary",
            "ints:list<item: int32>",
            "day:date32[day]",
            "flag:bool",
            "small:int16",
            "n:int32",
            "r:float",
            "name:string_view",
        ]
    );
    let row = &seen["arrow_row"];
    let expected = json!({
        "id": 1, "u": "uuid:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "j": r#"{"kind": "rare", "tags": ["a", "b"]}"#, "jb": "[1, 2]",
        "f": r#"{"id": "f1", "name": "photo.png", "size": 1024}"#, "e": [0.5, 1.5, -2.0],
        "ts": "datetime:2024-05-06T07:08:09.123456", "tz": "datetime:2024-05-06T05:08:09.123456+00:00",
        "tm": "time:23:59:59.999999", "d": "decimal:12345678.91", "b": "bytes:00ff", "ints": [1, null, 3],
        "day": "date:2024-02-29", "flag": true, "small": -32768, "n": 2147483647, "r": 1.5, "name": "first",
    });
    for (column, value) in expected.as_object().unwrap() {
        assert_eq!(&row[column], value, "column {column}");
    }
    assert_eq!(
        seen["pandas"],
        json!({
            "columns": ["id", "u", "name", "d"], "ids": [1, 2, 3, 10, 11],
            "names": ["first", "second!", "third!", "ten", "eleven"],
            "uuids": ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "0f8fad5b-d9cb-469f-a165-70867728950e", null,
                      "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", null],
            "decimals": ["12345678.91", "1.50", null, null, null],
        })
    );
    assert_eq!(seen["by_uuid"], json!([[1], [10]]));
    let describe: Vec<&str> =
        seen["describe"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(
        &describe[..18],
        [
            "id:BIGINT",
            "u:UUID",
            "j:JSON",
            "jb:JSON",
            "f:FILE",
            "e:EMBEDDING(3)",
            "ts:TIMESTAMP",
            "tz:TIMESTAMPTZ",
            "tm:TIME",
            "d:DECIMAL(10,2)",
            "b:BYTES",
            "ints:INT[]",
            "day:DATE",
            "flag:BOOLEAN",
            "small:SMALLINT",
            "n:INT",
            "r:FLOAT",
            "name:TEXT",
        ]
    );

    let errors = &seen["errors"];
    let error =
        |name: &str| errors[name].as_str().unwrap_or_else(|| panic!("no {name} in {errors}")).to_string();
    for (name, needle) in [
        ("unknown_type", "unknown type FOO: use one of BOOLEAN"),
        ("bad_json", r#"column j of shop.every is JSON: '{"kind": ' is not valid JSON"#),
        ("uuid_length", "column u of shop.every is UUID: a UUID is 16 bytes, this value has 10"),
        ("uuid_text", "'not-a-uuid' is not a UUID: write 32 hexadecimal digits"),
        ("ingest_uuid_length", "a UUID is 16 bytes, this value has 10"),
        ("ingest_nothing", "send the schema (a record batch of zero rows)"),
        ("int_overflow", "column n of shop.every is INT"),
    ] {
        let message = error(name);
        assert!(message.contains("INVALID_ARGUMENT") && message.contains(needle), "{name}: {message}");
        assert!(!message.contains("dbapi-root-pw"), "{name}: {message}");
    }
    assert_eq!(seen["after_errors"], json!([[0]]));
    assert_eq!(
        seen["transaction"],
        json!({ "inside": [[1]], "outside": [[0]], "after_rollback": [[0]], "after_commit": [["committed"]] })
    );
}

// Goal: Apache Arrow's `flight_sql_client` CLI runs a statement query and lists catalogs,
// namespaces and tables (with the schema and table filters it sends).
#[test]
fn arrow_flight_sql_client_cli() {
    let env = TestEnv::start_with_password("cli-root-pw");
    env.kalam_sql("CREATE SCHEMA app");
    env.kalam_sql("CREATE TABLE app.trips (id BIGINT, fare DOUBLE)");
    env.kalam_sql("CREATE TABLE app.other (id BIGINT)");
    env.kalam_sql("INSERT INTO app.trips VALUES (1, 2.5), (2, 4.0), (3, NULL)");

    let port = env.kalam.flight_port.to_string();
    let run = |args: &[&str]| -> String {
        let output = Command::new("flight_sql_client")
            .args(["--host", "127.0.0.1", "--port", &port, "--username", "root", "--password", "cli-root-pw"])
            .args(args)
            .output()
            .expect("run flight_sql_client (scripts/setup.sh installs it)");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "flight_sql_client {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };

    let result = run(&["statement-query", "SELECT count(*) AS n, sum(fare) AS total FROM app.trips"]);
    let row =
        result.lines().find(|l| l.contains("6.5")).unwrap_or_else(|| panic!("no result row in:\n{result}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(cells, ["3", "6.5"]);

    // DDL and DML sent as statement queries, the way the CLI sends every statement.
    run(&["statement-query", "CREATE TABLE app.made (id BIGINT PRIMARY KEY, u UUID, j JSON)"]);
    let inserted = run(&[
        "statement-query",
        "INSERT INTO app.made VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": 1}')",
    ]);
    assert!(inserted.contains("rows_affected") && inserted.lines().any(|l| l.contains("| 1")), "{inserted}");
    let described = run(&["statement-query", "DESCRIBE TABLE app.made"]);
    assert!(described.contains("UUID") && described.contains("JSON"), "{described}");

    assert!(run(&["catalogs"]).contains("kalam"));
    assert!(run(&["db-schemas", "kalam"]).contains("app"));
    let tables = run(&["tables", "kalam", "--db-schema-filter", "app", "--table-filter", "tr%"]);
    assert!(!tables.contains("made"), "{tables}");
    assert!(tables.contains("trips") && !tables.contains("other"), "{tables}");
}
