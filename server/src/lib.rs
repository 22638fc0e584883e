//! kalamdb-server: a KalamDB-compatible Arrow Flight SQL server on DataFusion.
//!
//! Layout:
//! - [`config`]: `server.toml` + `KALAMDB_*` environment overrides.
//! - [`engine`]: the DataFusion session every front end shares; DDL, DML, transactions.
//! - [`kalamsql`]: the KalamDB statements (namespaces, typed tables, accounts, ...).
//! - [`rewrite`]: what changes in a parsed INSERT or UPDATE before DataFusion plans it.
//! - [`storage`]: catalog, write-ahead log, Parquet segments, table scans.
//! - [`session`]: the caller of a request (account, acting user, transaction).
//! - [`auth`]: accounts, logins, session tokens, JWTs.
//! - [`system`]: `system.tables`, `system.namespaces`, `system.users`, `system.sessions`.
//! - [`flight_sql`]: the Flight SQL front end (statement queries stream batch by batch).
//! - [`http`]: healthcheck and the JSON SQL endpoint.
//! - [`metadata`]: Flight SQL catalog, schema, table and SQL-info answers.
//! - [`snowflake`]: `SNOWFLAKE_ID()` and `_seq` values.
//! - [`pg_functions`], [`pgjson`]: functions with PostgreSQL's semantics (float order, the JSON
//!   operators) that pg_kalam ships filters to; [`pg_sum`]: `pg_numeric_sum`, the exact decimal
//!   sum that fails rather than wraps; [`pg_avg`]: `pg_numeric_avg`, an average rounded as
//!   PostgreSQL's numeric division rounds it.
//! - [`types`]: KalamDB column types (UUID, JSON, FILE, EMBEDDING, ...) and how writes are
//!   converted to them.
//!
//! [`Server::bind`] loads the TLS files, locks the data directory, recovers the store and binds
//! both listeners; [`Server::serve`] serves until told to stop, flushing tables as their
//! policies say. TLS (`[tls]`) covers the Flight SQL listener; HTTP stays plain.

pub mod auth;
pub mod config;
pub mod engine;
pub mod flight_sql;
pub mod http;
pub mod kalamsql;
pub mod metadata;
pub mod pg_avg;
pub mod pg_functions;
pub mod pg_sum;
pub mod pgjson;
pub mod rewrite;
pub mod session;
pub mod snowflake;
pub mod storage;
pub mod system;
pub mod types;

use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::config::{Config, TlsSection};
use crate::engine::Engine;

/// How long in-flight requests may finish after a shutdown request.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Addresses the server actually listens on (ports resolved when 0 was configured).
#[derive(Clone, Copy, Debug)]
pub struct BoundAddrs {
    pub flight: SocketAddr,
    pub http: SocketAddr,
}

/// How long a client may take to complete the TLS handshake. Each pending handshake holds a
/// task, so a client that connects and sends nothing must not hold it forever.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A server whose listeners are bound and whose data directory is locked.
pub struct Server {
    config: Config,
    engine: Arc<Engine>,
    /// The Flight SQL transport, with TLS applied when configured.
    flight_transport: tonic::transport::Server,
    flight: TcpListener,
    http: TcpListener,
    _data_dir_lock: File,
}

/// How often the flush policies of tables are checked.
const FLUSH_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

impl Server {
    pub async fn bind(config: Config) -> Result<Self, String> {
        // First: unusable TLS files are a configuration mistake, found before any recovery.
        let flight_transport = flight_transport(&config.tls)?;
        let data_dir_lock = lock_data_dir(&config)?;
        let engine = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || Engine::open(&config))
                .await
                .map_err(|e| format!("recovery failed: {e}"))??
        };
        let flight = bind(config.flight_addr(), "Flight SQL").await?;
        let http = bind(config.http_addr(), "HTTP").await?;
        Ok(Self {
            config,
            engine: Arc::new(engine),
            flight_transport,
            flight,
            http,
            _data_dir_lock: data_dir_lock,
        })
    }

    pub fn addrs(&self) -> BoundAddrs {
        BoundAddrs {
            flight: self.flight.local_addr().expect("bound listener has an address"),
            http: self.http.local_addr().expect("bound listener has an address"),
        }
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn serve(mut self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), String> {
        let engine = self.engine.clone();
        let limits = &self.config.limits;
        let flight_service = FlightServiceServer::new(flight_sql::KalamFlightSql::new(
            engine.clone(),
            limits.handles_max,
            limits.batch_rows,
        ))
        .max_decoding_message_size(limits.message_bytes_max)
        .max_encoding_message_size(limits.message_bytes_max);
        let http_state = Arc::new(http::HttpState {
            engine: engine.clone(),
            result_rows_max: limits.http_result_rows_max,
        });
        let flusher = tokio::spawn(flush_loop(engine.clone()));

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };

        let incoming = tonic::transport::server::TcpIncoming::from(self.flight).with_nodelay(Some(true));
        let flight = self
            .flight_transport
            .add_service(flight_service)
            .serve_with_incoming_shutdown(incoming, stopped(stop_rx.clone()));
        let http =
            axum::serve(self.http, http::router(http_state)).with_graceful_shutdown(stopped(stop_rx.clone()));
        let serving = async { tokio::join!(flight, http) };
        // Requests still running after the grace period (a client that stopped reading a
        // stream, say) do not keep the server alive.
        let grace_over = async {
            stopped(stop_rx).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            (flight, http) = serving => {
                flight.map_err(|e| format!("Flight SQL server failed: {e}"))?;
                http.map_err(|e| format!("HTTP server failed: {e}"))?;
            }
            _ = grace_over => {
                eprintln!("kalamdb-server: requests still running after {SHUTDOWN_GRACE:?}; stopping anyway");
            }
        }
        flusher.abort();
        // Everything is already durable in the log; flushing now only makes the next start faster.
        let engine = self.engine.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || engine.flush_all()).await {
            eprintln!(
                "kalamdb-server: flush at shutdown failed (the write-ahead log still has every write): {e}"
            );
        }
        Ok(())
    }
}

/// Flushes tables whose FLUSH_POLICY is due, forever.
async fn flush_loop(engine: Arc<Engine>) {
    let mut tick = tokio::time::interval(FLUSH_CHECK);
    loop {
        tick.tick().await;
        let engine = engine.clone();
        match tokio::task::spawn_blocking(move || engine.flush_due()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("kalamdb-server: flush failed, will retry: {e}"),
            Err(e) => eprintln!("kalamdb-server: flush task failed, will retry: {e}"),
        }
    }
}

/// The Flight SQL transport: TLS, and client certificates, when configured. Built while binding
/// so that a certificate and key that do not work together stop the start, instead of failing
/// every handshake later.
fn flight_transport(tls: &TlsSection) -> Result<tonic::transport::Server, String> {
    let transport = tonic::transport::Server::builder();
    let Some(files) = tls.read()? else { return Ok(transport) };
    let mut tls_config = ServerTlsConfig::new()
        .identity(Identity::from_pem(&files.cert, &files.key))
        .timeout(TLS_HANDSHAKE_TIMEOUT);
    if let Some(client_ca) = &files.client_ca {
        tls_config = tls_config.client_ca_root(Certificate::from_pem(client_ca));
    }
    transport.tls_config(tls_config).map_err(|e| {
        let path = |p: &Option<std::path::PathBuf>| p.as_deref().map(|p| p.display().to_string());
        let mut files = format!(
            "tls.cert {}, tls.key {}",
            path(&tls.cert).unwrap_or_default(),
            path(&tls.key).unwrap_or_default()
        );
        if let Some(client_ca) = path(&tls.client_ca) {
            files.push_str(&format!(", tls.client_ca {client_ca}"));
        }
        format!(
            "cannot set up TLS with {files}: {}; check that the key belongs to the first certificate \
             and that each file holds PEM",
            error_causes(&e)
        )
    })
}

/// An error's causes, innermost last (tonic's own message is only "transport error").
fn error_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut causes = Vec::new();
    let mut next = error.source().or(Some(error));
    while let Some(e) = next {
        causes.push(e.to_string());
        next = e.source();
    }
    causes.join(": ")
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen for {what} on {addr}: {e}; stop whatever uses that port or choose another one")
    })
}

/// One server per data directory: a second one fails here instead of corrupting the first.
fn lock_data_dir(config: &Config) -> Result<File, String> {
    let dir = &config.server.data_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    let path = dir.join("LOCK");
    let file = File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.try_lock()
        .map_err(|_| format!("data directory {} is in use by another kalamdb-server", dir.display()))?;
    Ok(file)
}
