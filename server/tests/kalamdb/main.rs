//! kalamdb-server through real Flight SQL sockets with Apache Arrow's own Flight SQL client:
//! durability, accounts and isolation, transactions, prepared statements, bulk ingest, bad input,
//! statements sent as queries, column types, and TLS.

mod access;
mod durability;
mod protocol;
mod statements;
mod support;
mod tls;
mod types;
