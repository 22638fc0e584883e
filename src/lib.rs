//! pg_kalam: a PostgreSQL foreign data wrapper over KalamDB's Arrow Flight SQL interface.
//!
//! # Layout
//!
//! The extension (this crate, `src/`), by phase of a foreign table's life:
//! - [`handler`]: the FDW handler (callback table) and option validator.
//! - [`options`]: the one table of accepted options and their typed, validated views.
//! - [`scan`]: planner and executor callbacks of a foreign scan; streams batch by batch.
//! - [`deparse`]: which WHERE clauses the server runs (exactly PostgreSQL's answer, or local).
//! - [`analyze`]: ANALYZE's sample of a foreign table, drawn by the server.
//! - [`modify`]: INSERT, COPY, UPDATE and DELETE through foreign tables, in batches of Arrow rows.
//! - [`direct`]: an UPDATE or DELETE the server runs whole, as one remote statement.
//! - [`ddl`]: the DDL hook: `CREATE TABLE ... USING kalamdb`, and DROP/ALTER of the tables it made.
//! - [`import`]: IMPORT FOREIGN SCHEMA, from the server's table listing.
//! - [`upper`]: grouped queries (GROUP BY and aggregates), ORDER BY and LIMIT the server computes.
//! - [`join`]: joins of foreign tables (and of such joins) the server computes.
//! - [`transactions`]: the remote transaction (and savepoints) of the PostgreSQL transaction.
//! - [`stream`]: a query's result, fetched and decoded ahead on the I/O thread (bounded queue).
//! - [`convert`]: Arrow columns into PostgreSQL datums, a column at a time (`numeric`, `array`).
//! - [`connection`]: client settings from server options and user mappings; connections cached per backend.
//! - [`runtime`]: the backend's I/O thread (signals blocked, started lazily) and interruptible waits.
//! - [`guc`]: settings (`kalam.user_id`).
//! - [`functions`]: SQL functions (`kalam_version()`, `kalam_compiled_mode()`).
//! - [`error`]: the error type; callbacks report it as a PostgreSQL ERROR at one boundary.
//!
//! Beside it in the workspace: `flight/` (Flight SQL client), `pushdown/` (remote SQL planning,
//! no PostgreSQL dependency), `server/` (`kalamdb-server`), `tests/` (end-to-end harness),
//! `sql/` (extension SQL), `benches/`, `docker/`.

pgrx::pg_module_magic!();

mod analyze;
mod connection;
mod convert;
mod ddl;
mod deparse;
mod direct;
mod error;
mod functions;
mod guc;
mod handler;
mod import;
mod join;
mod modify;
mod options;
mod runtime;
mod scan;
mod stream;
mod transactions;
mod upper;

/// Called when the library loads in a backend (or the postmaster, with shared_preload_libraries):
/// registers settings only; no thread or connection is started here.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::init();
    ddl::init();
}

pgrx::extension_sql_file!(
    "../sql/pg_kalam_fdw.sql",
    name = "pg_kalam_fdw",
    requires = [handler::pg_kalam_fdw_handler, handler::pg_kalam_fdw_validator]
);
