//! kalamdb-server driven by Flight SQL clients nobody here wrote.

use std::process::Command;

use kalam_e2e::TestEnv;

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

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/adbc_flightsql.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(env.kalam.flight_port.to_string())
        .args(["root", "adbc-root-pw"])
        .output()
        .expect("run python3 (scripts/setup.sh installs the ADBC driver)");
    assert!(output.status.success(), "ADBC client failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON from the ADBC client");

    assert_eq!(seen["vendor_name"], "kalamdb-server");
    assert_eq!(seen["query"], serde_json::json!([{ "n": 3, "total": 6.5 }]));
    assert_eq!(seen["json_query"], serde_json::json!([{ "kind": "click" }, { "kind": "view" }]));
    assert_eq!(seen["ingested"], 3);
    assert_eq!(seen["appended"], 1);
    assert_eq!(
        seen["visits"],
        serde_json::json!([
            { "id": 10, "city": "Oslo" }, { "id": 11, "city": "Lima" },
            { "id": 12, "city": null }, { "id": 13, "city": "Pune" }
        ])
    );
    assert_eq!(
        seen["tables"],
        serde_json::json!(["kalam.app.events:TABLE", "kalam.app.trips:TABLE", "kalam.app.visits:TABLE"])
    );
    assert_eq!(
        seen["trips_schema"],
        serde_json::json!(["id:int64", "fare:double", "_seq:int64", "_deleted:bool"])
    );
    let bad_login = seen["bad_login"].as_str().unwrap();
    assert!(bad_login.contains("wrong user name or password"), "{bad_login}");
    assert!(!bad_login.contains("wrong\"") && !bad_login.contains("adbc-root-pw"), "{bad_login}");
    assert_eq!(seen["table_types"], serde_json::json!(["TABLE", "VIEW"]));
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

    assert!(run(&["catalogs"]).contains("kalam"));
    assert!(run(&["db-schemas", "kalam"]).contains("app"));
    let tables = run(&["tables", "kalam", "--db-schema-filter", "app", "--table-filter", "tr%"]);
    assert!(tables.contains("trips") && !tables.contains("other"), "{tables}");
}
