//! kalam-pushdown: what pg_kalam sends to the server, decided without PostgreSQL.
//!
//! The extension describes a scan in plain Rust terms ([`RemoteScan`]: the remote table, its
//! columns with Arrow types, the columns the query needs); this crate turns it into a
//! `datafusion-expr` logical plan and renders that plan to SQL text with [`KalamDialect`].
//! SQL is never assembled by string concatenation: the plan is unparsed to a SQL syntax tree
//! and printed, so every identifier is quoted by the printer.
//!
//! Nothing here depends on pgrx, so it is tested with plain `cargo test`.

mod dialect;
mod scan;

pub use dialect::KalamDialect;
pub use scan::{RemoteColumn, RemoteScan, RemoteTable};

/// Errors while planning or rendering remote SQL (all of them are bugs or unsupported shapes,
/// never user data problems: user input reaches the plan only as quoted identifiers and literals).
pub type Error = datafusion_common::DataFusionError;
