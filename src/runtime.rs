//! The async runtime the backend drives Flight requests with.
//!
//! A current-thread tokio runtime, created on first use inside the backend (never in the
//! postmaster) and driven only from the backend's own thread by [`wait`]: it starts no threads,
//! so no thread of ours can receive a signal meant for the backend or call into PostgreSQL.
//! Host names are resolved by the backend before connecting (see [`connect`]) so that the
//! resolver's thread pool is never used either.

use std::net::ToSocketAddrs;
use std::sync::OnceLock;
use std::time::Duration;

use kalam_flight::{ClientConfig, KalamClient};
use pgrx::PgSqlErrorCode;
use pgrx::pg_sys;

use crate::error::{KalamError, Result};
use crate::options::ServerOptions;

/// Created once per backend process, lives until the process exits.
static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// How often a wait on the server looks at PostgreSQL's pending interrupts: the bound on how
/// late a query cancel or `statement_timeout` is noticed while the server is silent.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

/// Runs a request to completion, staying responsive to PostgreSQL: while it waits, pending
/// interrupts (query cancel, `statement_timeout`, backend termination) are processed. When one
/// raises an ERROR, unwinding drops the request, which closes its stream.
pub fn wait<F: Future>(request: F) -> F::Output {
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .expect("a current-thread runtime needs no resources that can be missing")
    });
    let mut request = Box::pin(request);
    loop {
        match runtime.block_on(async { tokio::time::timeout(INTERRUPT_POLL, &mut request).await }) {
            Ok(output) => return output,
            Err(_) => {
                pgrx::check_for_interrupts!();
            }
        }
    }
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
    let config = ClientConfig::new(addr.ip().to_string(), addr.port()).with_timeout(options.timeout);
    wait(KalamClient::connect(config)).map_err(KalamError::from)
}

/// Whether the current database stores text as UTF-8 (Arrow's encoding), so that strings can
/// be copied as they are.
pub fn database_is_utf8() -> bool {
    // SAFETY: GetDatabaseEncoding only reads a backend global.
    unsafe { pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as i32 }
}
