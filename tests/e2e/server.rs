//! kalamdb-server as a process: acknowledged writes survive SIGKILL.

use std::sync::{Arc, Mutex};

use kalam_e2e::KalamServer;

// Goal: every write the server acknowledged is there after the process is killed with
// SIGKILL (no shutdown, no flush) and started again on the same data directory — rows already
// flushed to Parquet, rows only in the write-ahead log, deletes and updates alike.
#[test]
fn acknowledged_writes_survive_sigkill() {
    let server = KalamServer::start_with_password("crash-test-pw");
    server.sql("CREATE NAMESPACE app");
    server.sql(
        "CREATE TABLE app.log (id BIGINT PRIMARY KEY, writer INT, note TEXT) WITH (FLUSH_POLICY = 'rows:64')",
    );

    // Four writers, one acknowledged INSERT at a time each.
    let server = Arc::new(server);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (server, acknowledged) = (server.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                for i in 0..60 {
                    let id = writer * 1000 + i;
                    server.sql(&format!("INSERT INTO app.log VALUES ({id}, {writer}, 'n{id}')"));
                    acknowledged.lock().unwrap().push(id);
                }
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().expect("writer"));
    server.sql("DELETE FROM app.log WHERE id % 10 = 0");
    server.sql("UPDATE app.log SET note = 'changed' WHERE id = 3001");
    let server = Arc::into_inner(server).expect("writers are done");

    let server = server.restart();
    let mut expected: Vec<i64> =
        acknowledged.lock().unwrap().iter().copied().filter(|id| id % 10 != 0).collect();
    expected.sort_unstable();
    let answer = server.sql("SELECT id FROM app.log ORDER BY id");
    let found: Vec<i64> =
        answer["results"][0]["rows"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(found, expected);
    let answer = server.sql("SELECT note FROM app.log WHERE id = 3001");
    assert_eq!(answer["results"][0]["rows"][0]["note"], "changed");
    // Some rows were in Parquet before the kill.
    let answer = server.sql("SELECT segments FROM system.tables WHERE table_name = 'log'");
    assert!(answer["results"][0]["rows"][0]["segments"].as_u64().unwrap() >= 1, "{answer}");
}
