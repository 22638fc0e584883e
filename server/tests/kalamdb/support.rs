//! A server in this process on free loopback ports (restartable on the same data directory)
//! and a Flight SQL client for it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_flight::sql::client::FlightSqlServiceClient;
use bytes::Bytes;
use futures::TryStreamExt;
use kalamdb_server::Server;
use kalamdb_server::config::Config;
use tonic::transport::Channel;

pub type Client = FlightSqlServiceClient<Channel>;

/// How the client renders each gRPC status code in its error messages.
pub const UNAUTHENTICATED: &str = "does not have valid authentication credentials";
pub const PERMISSION_DENIED: &str = "does not have permission";
pub const INVALID_ARGUMENT: &str = "invalid argument";
pub const ABORTED: &str = "aborted";

/// A scratch directory, removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(name: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("kalamdb_{name}_{}_{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Running {
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl Running {
    /// Stops the server and waits until it released its data directory.
    pub async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        self.done.take().expect("running").await.expect("server task").expect("server ran");
    }

    pub async fn client(&self) -> Client {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("connect");
        FlightSqlServiceClient::new(channel)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a server on `dir` with the default test configuration changed by `tweak`.
pub async fn start(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Running {
    let mut config = Config::default();
    config.server.flight_port = 0;
    config.server.http_port = 0;
    config.server.data_dir = dir.to_path_buf();
    tweak(&mut config);
    let server = Server::bind(config).await.expect("bind");
    let port = server.addrs().flight.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Running { port, stop: Some(stop), done: Some(done) }
}

/// Runs a query and returns its batches.
pub async fn try_query(
    client: &mut Client,
    sql: &str,
    tx: Option<Bytes>,
) -> Result<Vec<RecordBatch>, String> {
    let info = client.execute(sql.to_string(), tx).await.map_err(|e| e.to_string())?;
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let stream = client.do_get(ticket).await.map_err(|e| e.to_string())?;
    stream.try_collect().await.map_err(|e| e.to_string())
}

/// Every row of a query as `a|b|c` text, NULL as "NULL".
pub async fn rows(client: &mut Client, sql: &str) -> Vec<String> {
    render(&try_query(client, sql, None).await.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

pub fn render(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<_> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for row in 0..batch.num_rows() {
            out.push(formatters.iter().map(|f| f.value(row).to_string()).collect::<Vec<_>>().join("|"));
        }
    }
    out
}

pub async fn update(client: &mut Client, sql: &str) -> i64 {
    client.execute_update(sql.to_string(), None).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The error of a statement that must fail.
pub async fn update_error(client: &mut Client, sql: &str) -> String {
    match client.execute_update(sql.to_string(), None).await {
        Ok(n) => panic!("{sql} must fail, changed {n} rows"),
        Err(e) => e.to_string(),
    }
}

pub async fn query_error(client: &mut Client, sql: &str) -> String {
    match try_query(client, sql, None).await {
        Ok(rows) => panic!("{sql} must fail, returned {:?}", render(&rows)),
        Err(e) => e,
    }
}

/// Waits until `sql` returns `expected` (the flusher runs once a second).
pub async fn eventually(client: &mut Client, sql: &str, expected: &[&str]) {
    for _ in 0..100 {
        if rows(client, sql).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows(client, sql).await, expected, "{sql}");
}
