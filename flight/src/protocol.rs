//! Facts the client (pg_kalam) and the server (kalamdb-server) must agree on.

/// Default Flight SQL port of a KalamDB server.
pub const DEFAULT_FLIGHT_PORT: u16 = 2910;

/// Default HTTP port of a KalamDB server (healthcheck and the JSON SQL endpoint).
pub const DEFAULT_HTTP_PORT: u16 = 2900;

/// Largest gRPC message either side accepts. Record batches are encoded in pieces far below
/// this ([`FLIGHT_DATA_BYTES_TARGET`]); the limit only stops a peer from making the other side
/// allocate without bound.
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Size the server aims for when it splits a record batch into Flight messages: large enough
/// that per-message overhead vanishes, small enough to keep the pipeline moving.
pub const FLIGHT_DATA_BYTES_TARGET: usize = 2 * 1024 * 1024;

/// Request header (gRPC metadata, HTTP) naming the user a dba or system account acts for on
/// USER and STREAM tables. pg_kalam sends `kalam.user_id` in it.
pub const USER_ID_HEADER: &str = "kalam-user-id";

/// Handshake response header carrying a session token's lease in milliseconds. Each use of the
/// token renews the lease; a client idle for longer must renew (handshake with the token) or log
/// in again.
pub const SESSION_LEASE_HEADER: &str = "kalam-session-lease-ms";

/// GetSqlInfo entry (a string list) naming the functions with PostgreSQL's semantics the
/// server has (`pg_float`, `pg_json_field`, ...). pg_kalam ships the operators they implement
/// only to a server that lists them. The number is outside the range Flight SQL's own entries
/// use.
pub const PG_FUNCTIONS_INFO: u32 = 10_000_001;

/// Response header (gRPC metadata) in which kalamdb-server gives the PostgreSQL SQLSTATE that
/// fits an error (`23505` for a duplicate key, `23502` for a NULL in a NOT NULL column, ...), so
/// that pg_kalam raises the error PostgreSQL itself would. Servers without it leave it out.
pub const SQLSTATE_HEADER: &str = "kalam-sqlstate";

/// Binary response header with the DETAIL of an error that has a SQLSTATE (which values).
pub const DETAIL_HEADER: &str = "kalam-detail-bin";

/// `ActionEndSavepointRequest.action` values of Flight SQL's protocol (arrow-flight keeps the
/// enum private): keep the writes since the savepoint, or drop them.
pub const END_SAVEPOINT_RELEASE: i32 = 1;
pub const END_SAVEPOINT_ROLLBACK: i32 = 2;

/// Custom Flight action reserving a run of the server's `SNOWFLAKE_ID()` values, so that a
/// client hands out ids unique across every client of the server without a round trip per id.
/// The body is the count (u32, big-endian, 1 to [`RESERVE_IDS_MAX`]); the result (an `Any`
/// value) is the first id (i64, big-endian), and the run is that id and the `count - 1` after it.
pub const RESERVE_IDS_ACTION: &str = "kalamdb.ReserveIds";

/// Most ids one [`RESERVE_IDS_ACTION`] reserves (16 milliseconds of one node's ids).
pub const RESERVE_IDS_MAX: u32 = 65_536;

/// Schema metadata key in a GetTables answer (with schemas) naming a table's KalamDB kind:
/// `SHARED`, `USER` or `STREAM`. The table type itself stays Flight SQL's `TABLE`.
pub const TABLE_KIND_METADATA: &str = "kalamdb.table_kind";
