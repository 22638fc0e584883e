//! End-to-end tests: PostgreSQL → pg_kalam → Arrow Flight SQL → kalamdb-server, all real.
//! One module per area; each test starts its own server and cluster through `TestEnv`.

mod aggregates;
mod authoring;
mod changes;
mod connect;
mod errors;
mod estimates;
mod joins;
mod order_limit;
mod peers;
mod pushdown;
mod scan;
mod server;
mod stream;
mod tpch;
mod types;
mod versions;
mod write_failures;
mod writes;
