//! Connections to KalamDB servers, cached per backend.
//!
//! A connection is keyed by (foreign server, user) and remembers the exact client settings it
//! was made with: after `ALTER SERVER` or `ALTER USER MAPPING` the settings differ and a new
//! connection replaces the old one. A connection that broke (the server restarted) is dropped
//! by the scan that notices, and the next query reconnects. All of them close when the backend
//! exits ([`close_all`], called by the runtime's exit hook).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, Int64Array, UInt64Array};
use arrow_schema::SchemaRef;
use kalam_pushdown::RemoteTable;

use kalam_flight::{Auth, ClientConfig, KalamClient, TlsConfig};
use pgrx::PgSqlErrorCode;
use pgrx::pg_sys::{self, Oid};

use crate::error::{KalamError, Result};
use crate::options::{self, AuthMode, Credentials, ServerOptions};
use crate::runtime;

thread_local! {
    /// Only the backend's own thread touches the cache.
    static CACHE: RefCell<HashMap<(Oid, Oid), (ClientConfig, KalamClient)>> = RefCell::new(HashMap::new());
    /// Whether each server has the functions with PostgreSQL's semantics, and when asked.
    static PG_FUNCTIONS: RefCell<HashMap<(Oid, Oid), (Instant, bool)>> = RefCell::new(HashMap::new());
    /// What the planner learned of remote tables, and when.
    static TABLES: RefCell<HashMap<TableKey, (Instant, Arc<RemoteTableInfo>)>> = RefCell::new(HashMap::new());
    /// Counts the planner asked for (use_remote_estimate), by (server, user, user id, SQL).
    static COUNTS: RefCell<HashMap<(Oid, Oid, Option<String>, String), (Instant, u64)>> =
        RefCell::new(HashMap::new());
    /// Primary key columns of remote tables (the row identity of UPDATE and DELETE).
    static KEYS: RefCell<HashMap<TableKey, (Instant, Arc<Vec<String>>)>> = RefCell::new(HashMap::new());
}

thread_local! {
    /// Bumped when a foreign server or user mapping changes (ALTER SERVER, ALTER USER MAPPING,
    /// DROP SERVER, in this session or another): what was learned under the old settings is
    /// forgotten, and names resolved to servers are resolved again.
    static GENERATION: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    static WATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The catalog generation (see [`GENERATION`]); starts watching the catalogs.
pub fn catalog_generation() -> u64 {
    watch_catalogs();
    GENERATION.get()
}

/// Registers (once per backend) the syscache callbacks of foreign servers and user mappings,
/// as postgres_fdw does: a connection made with settings that changed is replaced at its next
/// use (the settings are compared), and the remembered table descriptions are dropped now.
fn watch_catalogs() {
    if WATCHING.get() {
        return;
    }
    // SAFETY: registers plain functions that live as long as the library.
    unsafe {
        for cache in
            [pg_sys::SysCacheIdentifier::FOREIGNSERVEROID, pg_sys::SysCacheIdentifier::USERMAPPINGOID]
        {
            pg_sys::CacheRegisterSyscacheCallback(
                cache as i32,
                Some(catalog_changed),
                pg_sys::Datum::from(0),
            );
        }
    }
    WATCHING.set(true);
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn catalog_changed(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    GENERATION.set(GENERATION.get() + 1);
    let _ = TABLES.try_with(|tables| tables.borrow_mut().clear());
    let _ = COUNTS.try_with(|counts| counts.borrow_mut().clear());
    let _ = KEYS.try_with(|keys| keys.borrow_mut().clear());
    let _ = PG_FUNCTIONS.try_with(|known| known.borrow_mut().clear());
}

/// What planning learned, cached per backend.
type Remembered<K, V> = std::thread::LocalKey<RefCell<HashMap<K, (Instant, V)>>>;

/// The value remembered under `key` if it is younger than [`TABLE_INFO_TTL`], else `fetch`ed
/// now and remembered. Past [`TABLE_INFO_MAX`] entries, the expired ones and then the oldest
/// half are forgotten.
fn remembered<K: Eq + std::hash::Hash, V: Clone>(
    cache: &'static Remembered<K, V>,
    key: K,
    fetch: impl FnOnce() -> Result<V>,
) -> Result<V> {
    let cached = cache.with_borrow(|entries| entries.get(&key).cloned());
    if let Some((at, value)) = cached
        && at.elapsed() < TABLE_INFO_TTL
    {
        return Ok(value);
    }
    let value = fetch()?;
    cache.with_borrow_mut(|entries| {
        if entries.len() >= TABLE_INFO_MAX {
            entries.retain(|_, (at, _)| at.elapsed() < TABLE_INFO_TTL);
        }
        if entries.len() >= TABLE_INFO_MAX {
            let mut ages: Vec<Instant> = entries.values().map(|(at, _)| *at).collect();
            ages.sort();
            let cutoff = ages[ages.len() / 2];
            entries.retain(|_, (at, _)| *at > cutoff);
        }
        entries.insert(key, (Instant::now(), value.clone()));
    });
    Ok(value)
}

/// How long what the planner learned of a remote table (its columns, its size) is reused
/// before it is asked again: long enough that a burst of queries plans without a round trip,
/// short enough that a changed table is seen soon.
const TABLE_INFO_TTL: Duration = Duration::from_secs(30);

/// Most remote tables remembered per backend; the oldest half is forgotten past it.
const TABLE_INFO_MAX: usize = 1024;

/// (server, user whose mapping applies, namespace, table, KalamDB user the rows are read for).
type TableKey = (Oid, Oid, String, String, Option<String>);

/// A remote table as the server describes it: its columns with their Arrow types, and the
/// rows it expects (`None` when it does not say).
pub struct RemoteTableInfo {
    pub schema: SchemaRef,
    pub rows: Option<u64>,
}

/// A foreign server's options and the settings its client uses for the current user.
pub struct Server {
    pub oid: Oid,
    pub options: ServerOptions,
    /// The user whose mapping supplied credentials (`InvalidOid` for none or PUBLIC).
    user: Oid,
    config: ClientConfig,
}

impl Server {
    /// Reads a foreign server and the current user's mapping from the catalogs.
    pub fn lookup(server_oid: Oid) -> Result<Server> {
        watch_catalogs();
        // SAFETY: GetForeignServer raises an ERROR for an unknown OID; the returned struct and
        // its option list are palloc'd in the current context and only read here.
        let options = unsafe {
            let server = pg_sys::GetForeignServer(server_oid);
            ServerOptions::parse(&options::from_pg_list((*server).options))?
        };
        // SAFETY: GetUserId reads a backend global.
        let user = unsafe { pg_sys::GetUserId() };
        let (mapping_user, mapping) = user_mapping(user, server_oid)?;
        let config = client_config(&options, mapping)?;
        Ok(Server { oid: server_oid, options, user: mapping_user, config })
    }

    /// (server, user whose mapping applies): what a connection and a remote transaction belong to.
    pub fn key(&self) -> (Oid, Oid) {
        (self.oid, self.user)
    }

    /// The cached connection, or a new one.
    pub fn client(&self) -> Result<KalamClient> {
        let key = (self.oid, self.user);
        let cached = CACHE.with_borrow(|cache| cache.get(&key).cloned());
        if let Some((config, client)) = cached
            && config == self.config
        {
            return Ok(client);
        }
        let client = connect(&self.options, self.config.clone())?;
        CACHE.with_borrow_mut(|cache| cache.insert(key, (self.config.clone(), client.clone())));
        Ok(client)
    }

    /// The remote table's columns and size, from the server (GetFlightInfo of `SELECT *`,
    /// planned there, never run), reused for [`TABLE_INFO_TTL`].
    pub fn describe(&self, table: &RemoteTable, user_id: Option<&str>) -> Result<Arc<RemoteTableInfo>> {
        remembered(&TABLES, self.table_key(table, user_id), || {
            let sql = table.describe_sql().map_err(|e| {
                KalamError::new(
                    PgSqlErrorCode::ERRCODE_FDW_ERROR,
                    format!("cannot build the remote query: {e}"),
                )
            })?;
            let client = self.client()?;
            let user_id = user_id.map(str::to_string);
            let (schema, rows) =
                runtime::call(async move { client.describe(&sql, user_id.as_deref()).await })
                    .map_err(KalamError::from)?;
            Ok(Arc::new(RemoteTableInfo { schema, rows }))
        })
    }

    /// The remote table's primary key columns, in key order (Flight SQL GetPrimaryKeys; none
    /// from a server without the command), reused for [`TABLE_INFO_TTL`].
    pub fn primary_keys(&self, table: &RemoteTable, user_id: Option<&str>) -> Result<Arc<Vec<String>>> {
        remembered(&KEYS, self.table_key(table, user_id), || {
            let client = self.client()?;
            let (namespace, name, user_id) =
                (table.namespace.clone(), table.table.clone(), user_id.map(str::to_string));
            let keys =
                runtime::call(
                    async move { client.primary_keys(&namespace, &name, user_id.as_deref()).await },
                )
                .map_err(KalamError::from)?;
            Ok(Arc::new(keys))
        })
    }

    fn table_key(&self, table: &RemoteTable, user_id: Option<&str>) -> TableKey {
        (self.oid, self.user, table.namespace.clone(), table.table.clone(), user_id.map(str::to_string))
    }

    /// Whether the server lists every function pg_kalam ships PostgreSQL's float and JSON
    /// semantics to (GetSqlInfo [`kalam_flight::protocol::PG_FUNCTIONS_INFO`]); asked again
    /// after [`TABLE_INFO_TTL`].
    pub fn has_pg_functions(&self) -> Result<bool> {
        remembered(&PG_FUNCTIONS, (self.oid, self.user), || {
            let client = self.client()?;
            let names = runtime::call(async move {
                client.sql_info_strings(kalam_flight::protocol::PG_FUNCTIONS_INFO).await
            })
            .map_err(KalamError::from)?;
            Ok(crate::deparse::PG_FUNCTIONS_USED.iter().all(|f| names.iter().any(|n| n == f)))
        })
    }

    /// The value of `sql`, a query of one integer (`SELECT count(*) ...`), reused for
    /// [`TABLE_INFO_TTL`] (planning a prepared statement again asks once).
    pub fn count(&self, sql: String, user_id: Option<&str>) -> Result<u64> {
        let key = (self.oid, self.user, user_id.map(str::to_string), sql.clone());
        remembered(&COUNTS, key, || self.count_now(sql, user_id))
    }

    fn count_now(&self, sql: String, user_id: Option<&str>) -> Result<u64> {
        let client = self.client()?;
        let user_id = user_id.map(str::to_string);
        let batch = runtime::call(async move {
            let mut stream = client.query(&sql, user_id.as_deref()).await?;
            stream.next_batch().await
        })
        .map_err(|e| {
            if matches!(e, kalam_flight::Error::Lost { .. } | kalam_flight::Error::Timeout { .. }) {
                self.forget_client();
            }
            KalamError::from(e)
        })?;
        let value = batch.filter(|b| b.num_columns() == 1 && b.num_rows() == 1).and_then(|b| {
            let column = b.column(0).as_any();
            match (column.downcast_ref::<Int64Array>(), column.downcast_ref::<UInt64Array>()) {
                (Some(c), _) if c.is_valid(0) => u64::try_from(c.value(0)).ok(),
                (_, Some(c)) if c.is_valid(0) => Some(c.value(0)),
                _ => None,
            }
        });
        value.ok_or_else(|| {
            KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_ERROR,
                "the KalamDB server's count is not one integer",
            )
        })
    }

    /// Drops the cached connection (it broke); the next [`Server::client`] reconnects.
    pub fn forget_client(&self) {
        CACHE.with_borrow_mut(|cache| cache.remove(&(self.oid, self.user)));
    }
}

/// Closes every cached connection.
pub fn close_all() {
    let _ = CACHE.try_with(|cache| cache.borrow_mut().clear());
    let _ = TABLES.try_with(|tables| tables.borrow_mut().clear());
    let _ = COUNTS.try_with(|counts| counts.borrow_mut().clear());
    let _ = PG_FUNCTIONS.try_with(|known| known.borrow_mut().clear());
}

/// The credentials of `user`'s mapping for `server`, or of the PUBLIC mapping, with the user
/// the mapping belongs to; none (and `InvalidOid`) when there is no mapping.
fn user_mapping(user: Oid, server: Oid) -> Result<(Oid, Credentials)> {
    for candidate in [user, pg_sys::InvalidOid] {
        // SAFETY: a syscache lookup by (user, server); the tuple is released before returning
        // and its options are copied out (untransformRelOptions pallocs a new list).
        let options = unsafe {
            let tuple = pg_sys::SearchSysCache2(
                pg_sys::SysCacheIdentifier::USERMAPPINGUSERSERVER as i32,
                pg_sys::Datum::from(candidate),
                pg_sys::Datum::from(server),
            );
            if tuple.is_null() {
                continue;
            }
            let mut is_null = false;
            let datum = pg_sys::SysCacheGetAttr(
                pg_sys::SysCacheIdentifier::USERMAPPINGUSERSERVER as i32,
                tuple,
                pg_sys::Anum_pg_user_mapping_umoptions as pg_sys::AttrNumber,
                &mut is_null,
            );
            let list = if is_null { std::ptr::null_mut() } else { pg_sys::untransformRelOptions(datum) };
            let options = options::from_pg_list(list);
            pg_sys::ReleaseSysCache(tuple);
            options
        };
        return Ok((candidate, Credentials::from_mapping(&options)?));
    }
    Ok((pg_sys::InvalidOid, Credentials::default()))
}

/// The client settings for a server and the user's mapping.
fn client_config(options: &ServerOptions, mapping: Credentials) -> Result<ClientConfig> {
    let (mode, credentials) = options.auth(mapping)?;
    let auth = match mode {
        AuthMode::None => Auth::None,
        AuthMode::StaticHeader => {
            Auth::Header(credentials.auth_header.expect("checked by ServerOptions::auth"))
        }
        AuthMode::AccountLogin => Auth::Login {
            user: credentials.login_user.expect("checked by ServerOptions::auth"),
            password: credentials.login_password.expect("checked by ServerOptions::auth"),
        },
    };
    let mut config =
        ClientConfig::new(options.host.clone(), options.port).with_timeout(options.timeout).with_auth(auth);
    if let Some(ca) = &options.ca_cert {
        let identity = match (&options.client_cert, &options.client_key) {
            (Some(cert), Some(key)) => {
                Some((options::read_pem("client_cert", cert)?, options::read_pem("client_key", key)?))
            }
            _ => None,
        };
        config = config.with_tls(TlsConfig {
            ca_pem: options::read_pem("ca_cert", ca)?,
            identity,
            domain: options.host.clone(),
        });
    }
    Ok(config)
}

/// Connects on the I/O thread. The host name is resolved here, by the backend, so that the
/// I/O thread never needs a resolver thread; messages and TLS still use the name.
fn connect(options: &ServerOptions, mut config: ClientConfig) -> Result<KalamClient> {
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
    config.resolved = Some(addr.ip());
    runtime::call(KalamClient::connect(config)).map_err(KalamError::from)
}

/// The pg_kalam server `name` (checked to be one), or with no name the database's only one:
/// what `CREATE TABLE ... USING kalamdb`, `kalam_exec` and `snowflake_id` act on.
pub fn pg_kalam_server(name: Option<&str>) -> Result<Oid> {
    let not_ours = |name: &str| {
        KalamError::new(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("server \"{name}\" is not a pg_kalam server"),
        )
        .with_hint("Name a server created with FOREIGN DATA WRAPPER pg_kalam.")
    };
    if let Some(name) = name {
        let c_name = std::ffi::CString::new(name).map_err(|_| not_ours(name))?;
        // SAFETY: catalog lookups; missing_ok returns NULL instead of raising.
        let server = unsafe { pg_sys::GetForeignServerByName(c_name.as_ptr(), true) };
        if server.is_null() {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!("server \"{name}\" does not exist"),
            )
            .with_hint(
                "CREATE SERVER ... FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '...', port '...') first.",
            ));
        }
        // SAFETY: a valid server; its wrapper's name is read only.
        let fdw_name = unsafe {
            let fdw = pg_sys::GetForeignDataWrapper((*server).fdwid);
            std::ffi::CStr::from_ptr((*fdw).fdwname).to_string_lossy().into_owned()
        };
        return if fdw_name == "pg_kalam" { Ok(unsafe { (*server).serverid }) } else { Err(not_ours(name)) };
    }
    let servers: Vec<(Oid, String)> = pgrx::Spi::connect(|client| {
        let rows = client.select(
            "SELECT s.oid, s.srvname::text FROM pg_catalog.pg_foreign_server s \
             JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw \
             WHERE w.fdwname = 'pg_kalam' ORDER BY s.srvname",
            None,
            &[],
        )?;
        let mut found = Vec::new();
        for row in rows {
            if let (Some(oid), Some(name)) = (row.get::<Oid>(1)?, row.get::<String>(2)?) {
                found.push((oid, name));
            }
        }
        Ok::<_, pgrx::spi::Error>(found)
    })
    .map_err(|e| {
        KalamError::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("cannot list servers: {e}"))
    })?;
    match servers.as_slice() {
        [(oid, _)] => Ok(*oid),
        [] => Err(KalamError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            "there is no pg_kalam server in this database",
        )
        .with_hint("CREATE SERVER ... FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '...', port '...') first.")),
        several => Err(KalamError::new(
            PgSqlErrorCode::ERRCODE_AMBIGUOUS_PARAMETER,
            format!(
                "this database has {} pg_kalam servers ({}); name the one to use",
                several.len(),
                several.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )
        .with_hint("CREATE TABLE ... USING kalamdb takes WITH (server = 'name'); kalam_exec and snowflake_id take the server's name as their last argument.")),
    }
}
