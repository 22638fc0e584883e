//! kalam-pushdown: what pg_kalam sends to the server, decided without PostgreSQL.
//!
//! The extension describes a scan in plain Rust terms ([`RemoteScan`]: the remote table, its
//! columns with Arrow types, the columns the query needs, the filters it ships as [`Qual`]s);
//! this crate turns it into `datafusion-expr` plans and expressions and renders them to SQL
//! text with [`KalamDialect`]. What a filter may contain and how each literal is written so
//! that it means exactly what it meant in PostgreSQL is documented in [`qual`].
//! SQL is never assembled by string concatenation: the plan is unparsed to a SQL syntax tree
//! and printed, so every identifier is quoted by the printer.
//!
//! Nothing here depends on pgrx, so it is tested with plain `cargo test`.

pub mod aggregate;
pub mod ddl;
mod dialect;
pub mod join;
mod modify;
pub mod order;
pub mod qual;
mod scan;
pub mod subquery;

pub use dialect::KalamDialect;
pub use modify::{Change, RemoteChange, identity_filter};
pub use order::{OrderLimit, SortKey};
pub use qual::{Comparison, Literal, Qual};
pub use scan::{RemoteColumn, RemoteScan, RemoteTable};

/// Errors while planning or rendering remote SQL (all of them are bugs or unsupported shapes,
/// never user data problems: user input reaches the plan only as quoted identifiers and literals).
pub type Error = datafusion_common::DataFusionError;
