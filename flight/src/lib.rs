//! kalam-flight: the Arrow Flight SQL client pg_kalam uses to reach a KalamDB server, and the
//! protocol facts (ports, header names, limits) it shares with `kalamdb-server`.
//!
//! Layers, bottom up:
//! - [`protocol`]: constants both sides agree on; each says why it has its value.
//! - [`error`]: one error enum; every failure a caller sees names the server address and says what to do.
//! - [`client`]: [`KalamClient`] (connect, run a query) and [`QueryStream`], which yields record
//!   batches one at a time as they arrive: nothing is collected.
//!
//! The crate knows nothing of PostgreSQL; it is async (tokio) and the caller picks the runtime.

pub mod client;
pub mod error;
pub mod protocol;

pub use client::{
    Auth, ClientConfig, KalamClient, PreparedId, QueryStream, SavepointId, TableListing, TlsConfig,
    TransactionId,
};
pub use error::Error;
