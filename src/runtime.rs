//! The async runtime the backend drives Flight requests with.
//!
//! A current-thread tokio runtime, created on first use inside the backend (never in the
//! postmaster) and driven only by `block_on` from the backend's own thread: it starts no
//! threads, so no thread of ours can ever receive a signal meant for the backend or call into
//! PostgreSQL. Host names are resolved by the backend before connecting (see [`connect`]) so
//! that the resolver's thread pool is never used.

use std::net::ToSocketAddrs;
use std::sync::OnceLock;

use kalam_flight::{ClientConfig, KalamClient};
use pgrx::PgSqlErrorCode;

use crate::error::{KalamError, Result};
use crate::options::ServerOptions;

/// Created once per backend process, lives until the process exits.
static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// Runs a future to completion on the backend's runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .expect("a current-thread runtime needs no resources that can be missing")
    });
    runtime.block_on(future)
}

/// Connects to the server of `options`, resolving its host name here first.
pub fn connect(options: &ServerOptions) -> Result<KalamClient> {
    let addr = (options.host.as_str(), options.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION,
                format!(
                    "KalamDB server is not running or unreachable at {}:{} (cannot resolve host name)",
                    options.host, options.port
                ),
            )
            .with_hint("Fix the host option of the foreign server.")
        })?;
    let config =
        ClientConfig::new(addr.ip().to_string(), addr.port()).with_timeout(options.timeout);
    block_on(KalamClient::connect(config)).map_err(KalamError::from)
}
