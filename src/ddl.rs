//! The DDL hook: `CREATE TABLE ... USING kalamdb` authors a KalamDB table from PostgreSQL, and
//! the foreign tables made that way own their remote tables (`DROP` drops it, `ALTER TABLE ...
//! ADD/DROP COLUMN` is mirrored). A plain `CREATE FOREIGN TABLE` is never touched remotely.
//!
//! The statement is read from PostgreSQL's parse tree (column definitions, type names,
//! constraints, defaults, `WITH` options), never from its text, and checked whole before
//! anything is made. Then, in order: the local schema (when missing) and a foreign table with
//! the declared columns plus `_seq` (and `_userid` on user and stream tables), so that what
//! fails locally makes nothing remotely; then the namespace (when missing) and the table on the
//! server, undone if the statement or its transaction aborts. Remote drops wait until the
//! transaction has committed ([`transactions`]).
//!
//! A session that had not loaded pg_kalam when such a statement began runs it without the hook;
//! the `ddl_command_start` event trigger [`kalam_ddl_guard`] loads the library and does the
//! hook's work. Where event triggers do not fire, the `kalamdb` table access method's handler
//! ([`kalamdb_am_handler`]) says what to do.

use std::ffi::{CStr, CString, c_char};

use kalam_pushdown::RemoteTable;
use kalam_pushdown::ddl::{
    self as remote, Column, ColumnType, CreateTable, Default as RemoteDefault, TableKind,
};
use pgrx::pg_sys::{self, NodeTag, Oid};
use pgrx::prelude::*;
use pgrx::{PgList, PgSqlErrorCode};

use crate::connection::{self, Server};
use crate::error::{KalamError, Result};
use crate::modify::SYSTEM_COLUMNS;
use crate::options::{self, TableOptions};
use crate::{runtime, transactions};

/// The access method name that marks a KalamDB table.
const ACCESS_METHOD: &str = "kalamdb";

static mut PREVIOUS: pg_sys::ProcessUtility_hook_type = None;
/// When the library was loaded (the statement start time of that moment).
static mut LOADED_AT: pg_sys::TimestampTz = 0;

/// Installs the hook (from `_PG_init`), chained to the one installed before.
pub fn init() {
    // SAFETY: _PG_init runs once per process, before any statement uses the hook.
    unsafe {
        PREVIOUS = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
        if pg_sys::IsUnderPostmaster {
            LOADED_AT = pg_sys::GetCurrentStatementStartTimestamp();
        }
    }
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    let _active = HookActive::enter();
    // SAFETY: PostgreSQL passes a planned utility statement; the parse tree is only read, and
    // statements we change are copies.
    unsafe {
        let call = Call { pstmt, query_string, read_only_tree, context, params, query_env, dest, qc };
        let stmt = (*pstmt).utilityStmt;
        let handled = match (*stmt).type_ {
            NodeTag::T_CreateStmt if is_kalamdb(stmt.cast()) && extension_installed() => {
                let copy: *mut pg_sys::CreateStmt = pg_sys::copyObjectImpl(stmt.cast()).cast();
                create_table(copy, &call.pieces(), true).unwrap_or_else(|e| e.report());
                set_completion(call.qc);
                true
            }
            NodeTag::T_CreateTableAsStmt if creates_kalamdb(stmt.cast()) => KalamError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "CREATE TABLE ... USING kalamdb AS SELECT is not supported",
            )
            .with_hint("Create the table with its columns, then INSERT INTO it ... SELECT.")
            .report(),
            NodeTag::T_DropStmt if extension_installed() => {
                drop_tables(&call, stmt.cast()).unwrap_or_else(|e| e.report());
                true
            }
            NodeTag::T_AlterTableStmt if extension_installed() => {
                alter_table(&call, stmt.cast()).unwrap_or_else(|e| e.report());
                true
            }
            NodeTag::T_RenameStmt if extension_installed() => {
                refuse_column_rename(stmt.cast()).unwrap_or_else(|e| e.report());
                false
            }
            _ => false,
        };
        if !handled {
            call.pass(pstmt);
        }
    }
}

thread_local! {
    /// How many calls of the hook are under way (statements inside statements nest).
    static HOOK_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Counts a hook call while it runs, also when it ends in an ERROR (which unwinds through it).
struct HookActive;

impl HookActive {
    fn enter() -> Self {
        HOOK_DEPTH.set(HOOK_DEPTH.get() + 1);
        HookActive
    }
}

impl Drop for HookActive {
    fn drop(&mut self) {
        HOOK_DEPTH.set(HOOK_DEPTH.get() - 1);
    }
}

/// The arguments of one ProcessUtility call.
struct Call {
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
}

impl Call {
    /// Runs `pstmt` (this call's statement, or a changed copy) as PostgreSQL would have.
    unsafe fn pass(&self, pstmt: *mut pg_sys::PlannedStmt) {
        let read_only = self.read_only_tree && pstmt == self.pstmt;
        // SAFETY: the arguments PostgreSQL gave this call.
        unsafe {
            let (q, c, p, e, d, qc) =
                (self.query_string, self.context, self.params, self.query_env, self.dest, self.qc);
            match PREVIOUS {
                // Another extension's hook: its ERRORs cross Rust frames only through the guard.
                Some(previous) => {
                    pg_sys::ffi::pg_guard_ffi_boundary(|| previous(pstmt, q, read_only, c, p, e, d, qc))
                }
                None => pg_sys::standard_ProcessUtility(pstmt, q, read_only, c, p, e, d, qc),
            }
        }
    }

    /// How this call runs the statements it is made of.
    fn pieces(&self) -> Pieces {
        // SAFETY: the call's planned statement.
        let (location, len) = unsafe { ((*self.pstmt).stmt_location, (*self.pstmt).stmt_len) };
        Pieces { query_string: self.query_string, params: self.params, location, len, context: self.context }
    }

    /// A copy of this call's statement, to change.
    unsafe fn copy(&self) -> *mut pg_sys::PlannedStmt {
        // SAFETY: copyObject of a node tree.
        unsafe { pg_sys::copyObjectImpl(self.pstmt.cast()).cast() }
    }
}

/// Runs the utility statements a statement is made of (as PostgreSQL runs the pieces of a
/// CREATE TABLE): through every hook, sending no result; event triggers fire for the pieces run
/// in the statement's own context.
struct Pieces {
    query_string: *const c_char,
    params: pg_sys::ParamListInfo,
    location: i32,
    len: i32,
    /// The context the statement itself runs in.
    context: pg_sys::ProcessUtilityContext::Type,
}

impl Pieces {
    /// For a statement PostgreSQL runs without the hook (from the event trigger).
    fn of_current_statement() -> Self {
        // SAFETY: reads a backend global (NULL outside a client statement).
        let text = unsafe { pg_sys::debug_query_string };
        let query_string = if text.is_null() { c"".as_ptr() } else { text };
        let context = pg_sys::ProcessUtilityContext::PROCESS_UTILITY_SUBCOMMAND;
        Pieces { query_string, params: std::ptr::null_mut(), location: -1, len: 0, context }
    }

    unsafe fn run(&self, stmt: *mut pg_sys::Node, context: pg_sys::ProcessUtilityContext::Type) {
        // SAFETY: a fresh PlannedStmt wrapping a utility node of the current memory context.
        unsafe {
            let wrapper = pgrx::PgBox::<pg_sys::PlannedStmt>::alloc_node(NodeTag::T_PlannedStmt).into_pg();
            (*wrapper).commandType = pg_sys::CmdType::CMD_UTILITY;
            (*wrapper).canSetTag = false;
            (*wrapper).utilityStmt = stmt;
            (*wrapper).stmt_location = self.location;
            (*wrapper).stmt_len = self.len;
            pg_sys::ProcessUtility(
                wrapper,
                self.query_string,
                false,
                context,
                self.params,
                std::ptr::null_mut(),
                pg_sys::None_Receiver,
                std::ptr::null_mut(),
            );
            pg_sys::CommandCounterIncrement();
        }
    }
}

/// The handler of the `kalamdb` table access method. A table is never stored with it: the
/// hook takes `CREATE TABLE ... USING kalamdb` first, so PostgreSQL reaches this only when the
/// hook was not there yet, or for a statement the access method cannot serve.
#[pg_extern(sql = r#"
CREATE FUNCTION kalamdb_am_handler(internal) RETURNS table_am_handler
    LANGUAGE C STRICT AS 'MODULE_PATHNAME', 'kalamdb_am_handler_wrapper';
COMMENT ON FUNCTION kalamdb_am_handler(internal) IS
    'Marks KalamDB tables in CREATE TABLE ... USING kalamdb; stores nothing itself.';
"#)]
fn kalamdb_am_handler(_internal: pgrx::Internal) -> pgrx::Internal {
    // SAFETY: reads backend globals.
    let loaded_now = unsafe { LOADED_AT == pg_sys::GetCurrentStatementStartTimestamp() };
    let error = if loaded_now {
        not_loaded("it could not create the KalamDB table")
    } else {
        KalamError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "the kalamdb access method only marks KalamDB tables in CREATE TABLE ... USING kalamdb",
        )
        .with_hint("Materialized views and other relations cannot be stored in KalamDB.")
    };
    error.report()
}

pgrx::extension_sql!(
    r#"
CREATE ACCESS METHOD kalamdb TYPE TABLE HANDLER kalamdb_am_handler;
COMMENT ON ACCESS METHOD kalamdb IS 'CREATE TABLE ... USING kalamdb creates the table in KalamDB (pg_kalam)';
"#,
    name = "kalamdb_access_method",
    requires = [kalamdb_am_handler]
);

/// The `ddl_command_start` event trigger of CREATE, DROP and ALTER of tables. A session that had
/// not loaded pg_kalam when such a statement began runs it without the hook (calling this
/// function loads the library, so the hook is there from the next statement on). For the
/// statements the hook would have taken, the trigger does the hook's work itself, changing the
/// statement PostgreSQL goes on to run (`standard_ProcessUtility` gives it a tree of its own):
/// - `CREATE TABLE ... USING kalamdb`: the tables are made here, and the statement becomes
///   `IF NOT EXISTS`, so PostgreSQL skips the relation made (its NOTICE muted, [`mute_notices`]);
/// - `DROP TABLE` of authored tables runs as `DROP FOREIGN TABLE`, their remote tables dropped
///   at commit;
/// - `ALTER TABLE ... ADD/DROP COLUMN` is mirrored, the added columns' definitions made local.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn kalam_ddl_guard(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    if HOOK_DEPTH.get() > 0 {
        return pg_sys::Datum::from(0);
    }
    // SAFETY: PostgreSQL calls an event trigger with its EventTriggerData as the context; the
    // parse tree it carries is the statement's own copy.
    unsafe {
        let data = (*fcinfo).context as *mut pg_sys::EventTriggerData;
        if data.is_null() || (*data).type_ != NodeTag::T_EventTriggerData {
            KalamError::new(
                PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                "kalam_ddl_guard() runs only as an event trigger",
            )
            .report();
        }
        if let Err(e) = without_hook((*data).parsetree) {
            e.report();
        }
    }
    pg_sys::Datum::from(0)
}

/// The hook's work on a statement PostgreSQL runs without it (see [`kalam_ddl_guard`]).
unsafe fn without_hook(tree: *mut pg_sys::Node) -> Result<()> {
    // SAFETY: the statement's parse tree, ours to change.
    unsafe {
        match (*tree).type_ {
            NodeTag::T_CreateStmt if is_kalamdb(tree.cast()) => {
                let create = tree as *mut pg_sys::CreateStmt;
                if create_table(create, &Pieces::of_current_statement(), false)? {
                    mute_notices();
                }
                (*create).if_not_exists = true;
            }
            NodeTag::T_DropStmt => {
                let drop = tree as *mut pg_sys::DropStmt;
                let (owned, as_foreign) = owned_in_drop(drop)?;
                if as_foreign {
                    (*drop).removeType = pg_sys::ObjectType::OBJECT_FOREIGN_TABLE;
                }
                drop_at_commit(owned)?;
            }
            NodeTag::T_AlterTableStmt => {
                if let Some(changes) = column_changes(tree.cast())? {
                    changes.mirror()?;
                }
            }
            NodeTag::T_RenameStmt => refuse_column_rename(tree.cast())?,
            _ => {}
        }
        Ok(())
    }
}

thread_local! {
    /// The GUC nest level at which [`mute_notices`] raised `client_min_messages`, and the
    /// start of the statement it did it for (one that ended in an ERROR was restored by the
    /// abort, and is not restored again).
    static MUTED_AT: std::cell::Cell<Option<(i32, pg_sys::TimestampTz)>> = const { std::cell::Cell::new(None) };
}

/// Raises `client_min_messages` to WARNING until the statement's `ddl_command_end`
/// ([`kalam_ddl_end`]), so that PostgreSQL's "relation ... already exists, skipping" about the
/// relation this statement itself made does not reach the client. Saved at a GUC nest level of
/// its own (as a function's SET clause is): an ERROR before the end restores it as it aborts.
fn mute_notices() {
    // SAFETY: reads and sets a GUC of this backend.
    unsafe {
        if pg_sys::client_min_messages >= pg_sys::WARNING as i32 {
            return;
        }
        let level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"client_min_messages".as_ptr(),
            c"warning".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        MUTED_AT.set(Some((level, pg_sys::GetCurrentStatementStartTimestamp())));
    }
}

/// The `ddl_command_end` event trigger of CREATE TABLE: restores what [`mute_notices`] raised.
#[unsafe(no_mangle)]
#[pg_guard]
pub unsafe extern "C-unwind" fn kalam_ddl_end(_fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: reads a backend global; pops the GUC nest level mute_notices pushed in this
    // very statement.
    unsafe {
        if let Some((level, statement)) = MUTED_AT.take()
            && statement == pg_sys::GetCurrentStatementStartTimestamp()
        {
            pg_sys::AtEOXact_GUC(true, level);
        }
    }
    pg_sys::Datum::from(0)
}

#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_kalam_ddl_end() -> &'static pg_sys::Pg_finfo_record {
    static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `ALTER TABLE ... RENAME COLUMN` of an authored table: refused (the server has no rename,
/// and the foreign table reads its columns by name).
unsafe fn refuse_column_rename(rename: *mut pg_sys::RenameStmt) -> Result<()> {
    // SAFETY: a RenameStmt parse tree.
    unsafe {
        if (*rename).renameType == pg_sys::ObjectType::OBJECT_COLUMN
            && !(*rename).relation.is_null()
            && owned_table(relation_oid((*rename).relation))?.is_some()
        {
            return Err(unsupported(
                "a column of a KalamDB table cannot be renamed from PostgreSQL",
                "Add a column with the new name and copy the values with UPDATE, then drop the old one.",
            ));
        }
        Ok(())
    }
}

/// The error of a statement that began before pg_kalam was loaded in the session.
fn not_loaded(consequence: &str) -> KalamError {
    KalamError::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("pg_kalam was not loaded in this session when the statement began, so {consequence}"),
    )
    .with_hint(
        "Run the statement again (pg_kalam is loaded now), or add pg_kalam to shared_preload_libraries \
         (or session_preload_libraries) so that every session has it from the start.",
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn pg_finfo_kalam_ddl_guard() -> &'static pg_sys::Pg_finfo_record {
    static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION kalam_ddl_guard() RETURNS event_trigger
    LANGUAGE C AS 'MODULE_PATHNAME', 'kalam_ddl_guard';
CREATE EVENT TRIGGER kalam_ddl_guard ON ddl_command_start
    WHEN TAG IN ('CREATE TABLE', 'DROP TABLE', 'DROP FOREIGN TABLE', 'ALTER TABLE', 'ALTER FOREIGN TABLE')
    EXECUTE FUNCTION kalam_ddl_guard();
CREATE FUNCTION kalam_ddl_end() RETURNS event_trigger
    LANGUAGE C AS 'MODULE_PATHNAME', 'kalam_ddl_end';
CREATE EVENT TRIGGER kalam_ddl_end ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION kalam_ddl_end();
"#,
    name = "ddl_guard"
);

fn extension_installed() -> bool {
    // SAFETY: a catalog lookup; missing_ok.
    unsafe { pg_sys::get_extension_oid(c"pg_kalam".as_ptr(), true) != pg_sys::InvalidOid }
}

unsafe fn cstr(ptr: *const c_char) -> Option<String> {
    // SAFETY: a NUL-terminated string or NULL.
    unsafe { ptr.as_ref().map(|_| CStr::from_ptr(ptr).to_string_lossy().into_owned()) }
}

fn pstrdup(text: &str) -> *mut c_char {
    let c = CString::new(text).expect("names have no NUL");
    // SAFETY: copies into the current memory context.
    unsafe { pg_sys::pstrdup(c.as_ptr()) }
}

/// Whether a CREATE TABLE names the kalamdb access method (or leaves it to a
/// `default_table_access_method` of kalamdb).
unsafe fn is_kalamdb(create: *mut pg_sys::CreateStmt) -> bool {
    // SAFETY: a CreateStmt node (not a CREATE FOREIGN TABLE: its tag differs).
    unsafe {
        match cstr((*create).accessMethod) {
            Some(method) => method == ACCESS_METHOD,
            None => {
                (*create).partbound.is_null()
                    && cstr(pg_sys::default_table_access_method).as_deref() == Some(ACCESS_METHOD)
            }
        }
    }
}

unsafe fn creates_kalamdb(create: *mut pg_sys::CreateTableAsStmt) -> bool {
    // SAFETY: a CreateTableAsStmt node.
    unsafe {
        let into = (*create).into;
        !into.is_null() && cstr((*into).accessMethod).as_deref() == Some(ACCESS_METHOD)
    }
}

fn unsupported(message: impl Into<String>, hint: impl Into<String>) -> KalamError {
    KalamError::new(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, message).with_hint(hint)
}

/// The types a KalamDB column can have, for messages.
const TYPES: &str = "boolean, smallint, integer, bigint, real, double precision, numeric(p,s) with p <= 38, \
     text, varchar, char, bytea, date, time, timestamp, timestamptz, uuid, json, jsonb, FILE, EMBEDDING(n), \
     or a one-dimensional array of boolean, smallint, integer, bigint, real or double precision";

/// A CREATE TABLE ... USING kalamdb, read and checked.
struct Authored {
    server: Server,
    server_name: String,
    /// The local schema (and remote namespace), and whether it exists here.
    schema: String,
    schema_oid: Option<Oid>,
    remote: CreateTable,
    /// The local statement's column list (copied column definitions, system columns added).
    local_columns: *mut pg_sys::List,
}

/// Makes the table of a CREATE TABLE ... USING kalamdb, remotely and locally; `create` is
/// changed (its column definitions become the local ones). `notice`: say so when IF NOT EXISTS
/// skips an existing relation. Returns whether the table was made.
unsafe fn create_table(create: *mut pg_sys::CreateStmt, pieces: &Pieces, notice: bool) -> Result<bool> {
    // SAFETY: the parse tree of a CREATE TABLE, ours to change.
    unsafe {
        let relation = (*create).relation;
        let name = cstr((*relation).relname).expect("a relation has a name");
        let schema = match cstr((*relation).schemaname) {
            Some(schema) => schema,
            None => {
                let oid = pg_sys::RangeVarGetCreationNamespace(relation);
                if pg_sys::isAnyTempNamespace(oid) {
                    return Err(unsupported(
                        "a KalamDB table cannot be temporary",
                        "Name the schema (CREATE TABLE app.t ...) or put a permanent schema first in search_path.",
                    ));
                }
                cstr(pg_sys::get_namespace_name(oid)).expect("the creation namespace exists")
            }
        };
        let c_schema = CString::new(schema.clone()).expect("names have no NUL");
        let schema_oid =
            Some(pg_sys::get_namespace_oid(c_schema.as_ptr(), true)).filter(|o| *o != pg_sys::InvalidOid);
        let c_name = CString::new(name.clone()).expect("names have no NUL");
        if let Some(oid) = schema_oid
            && pg_sys::get_relname_relid(c_name.as_ptr(), oid) != pg_sys::InvalidOid
        {
            if (*create).if_not_exists {
                if notice {
                    pgrx::ereport!(
                        PgLogLevel::NOTICE,
                        PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
                        format!("relation \"{name}\" already exists, skipping")
                    );
                }
                return Ok(false);
            }
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        let authored = read_create(create, schema, schema_oid, name)?;
        let Authored { server, server_name, schema, schema_oid, remote, local_columns } = authored;

        let drops =
            [remote.table.drop_sql(true).map_err(internal)?, remote.table.drop_sql(false).map_err(internal)?];
        if transactions::pending_at_commit(&drops) {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "this transaction drops KalamDB table {}.{} when it commits; it cannot create it again before",
                    remote.table.namespace, remote.table.table
                ),
            )
            .with_hint("Commit the DROP first, then create the table."));
        }
        // Here first (what fails here makes nothing remotely): the schema when missing, then
        // the foreign table.
        if schema_oid.is_none() {
            let stmt =
                pgrx::PgBox::<pg_sys::CreateSchemaStmt>::alloc_node(NodeTag::T_CreateSchemaStmt).into_pg();
            (*stmt).schemaname = pstrdup(&schema);
            (*stmt).if_not_exists = true;
            pieces.run(stmt.cast(), pg_sys::ProcessUtilityContext::PROCESS_UTILITY_SUBCOMMAND);
        }
        let foreign =
            pgrx::PgBox::<pg_sys::CreateForeignTableStmt>::alloc_node(NodeTag::T_CreateForeignTableStmt)
                .into_pg();
        (*foreign).base = *create;
        (*foreign).base.type_ = NodeTag::T_CreateForeignTableStmt;
        (*foreign).base.tableElts = local_columns;
        (*foreign).base.options = std::ptr::null_mut();
        (*foreign).base.accessMethod = std::ptr::null_mut();
        (*foreign).base.if_not_exists = false;
        if (*(*foreign).base.relation).schemaname.is_null() {
            (*(*foreign).base.relation).schemaname = pstrdup(&schema);
        }
        (*foreign).servername = pstrdup(&server_name);
        let mut options = PgList::<pg_sys::DefElem>::new();
        let kind = remote.kind.name();
        for (option, value) in [
            ("namespace", remote.table.namespace.as_str()),
            ("table", remote.table.table.as_str()),
            ("table_type", kind),
            ("owns_remote", "true"),
        ] {
            options.push(pg_sys::makeDefElem(pstrdup(option), pg_sys::makeString(pstrdup(value)).cast(), -1));
        }
        (*foreign).options = options.into_pg();
        // Run as the statement itself was, so that event triggers see it.
        pieces.run(foreign.cast(), pieces.context);

        // Then the server: the namespace when missing, then the table; each undone if this aborts.
        let client = server.client()?;
        let listing = client.clone();
        let namespaces =
            runtime::call(async move { listing.namespaces().await }).map_err(KalamError::from)?;
        if !namespaces.contains(&remote.table.namespace) {
            let namespace_sql = remote::create_namespace_sql(&remote.table.namespace, true);
            run(&client, namespace_sql, &remote.table, "create the namespace of")?;
            // Dropped again only while empty: DROP NAMESPACE without CASCADE.
            transactions::undo_at_abort(&server, remote::drop_namespace_sql(&remote.table.namespace))?;
        }
        let sql = remote.to_sql().map_err(internal)?;
        run(&client, sql, &remote.table, "create").map_err(|e| {
            if e.message.contains("already exists") {
                e.with_hint(
                    "The KalamDB table exists already: map it with CREATE FOREIGN TABLE or IMPORT FOREIGN SCHEMA, \
                     or choose another name.",
                )
            } else {
                e
            }
        })?;
        transactions::undo_at_abort(&server, remote.table.drop_sql(true).map_err(internal)?)?;

        Ok(true)
    }
}

fn set_completion(qc: *mut pg_sys::QueryCompletion) {
    // SAFETY: NULL or the caller's completion record.
    if let Some(qc) = unsafe { qc.as_mut() } {
        qc.commandTag = pg_sys::CommandTag::CMDTAG_CREATE_TABLE;
        qc.nprocessed = 0;
    }
}

/// Runs a remote schema statement now.
fn run(client: &kalam_flight::KalamClient, sql: String, table: &RemoteTable, what: &str) -> Result<i64> {
    let client = client.clone();
    runtime::call(async move { client.execute_update(&sql, None).await }).map_err(|e| {
        let error = KalamError::from(e);
        let message =
            format!("cannot {what} KalamDB table {}.{}: {}", table.namespace, table.table, error.message);
        KalamError { message, ..error }
    })
}

fn internal(e: kalam_pushdown::Error) -> KalamError {
    KalamError::new(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("cannot build the KalamDB statement: {e}"),
    )
}

/// Reads and checks a CREATE TABLE ... USING kalamdb (a copy: its column definitions are
/// changed into the local ones).
unsafe fn read_create(
    create: *mut pg_sys::CreateStmt,
    schema: String,
    schema_oid: Option<Oid>,
    name: String,
) -> Result<Authored> {
    // SAFETY: a copied CreateStmt parse tree.
    unsafe {
        let relation = (*create).relation;
        if (*relation).relpersistence == pg_sys::RELPERSISTENCE_TEMP as c_char {
            return Err(unsupported("a KalamDB table cannot be temporary", "Leave out TEMPORARY."));
        }
        if (*relation).relpersistence == pg_sys::RELPERSISTENCE_UNLOGGED as c_char {
            return Err(unsupported(
                "a KalamDB table cannot be UNLOGGED",
                "Leave out UNLOGGED: KalamDB logs every acknowledged write.",
            ));
        }
        for (present, what) in [
            (!(*create).inhRelations.is_null(), "INHERITS"),
            (!(*create).partbound.is_null(), "PARTITION OF"),
            (!(*create).partspec.is_null(), "PARTITION BY"),
            (!(*create).ofTypename.is_null(), "OF type"),
            (!(*create).tablespacename.is_null(), "TABLESPACE"),
            ((*create).oncommit != pg_sys::OnCommitAction::ONCOMMIT_NOOP, "ON COMMIT"),
        ] {
            if present {
                return Err(unsupported(
                    format!("CREATE TABLE ... USING kalamdb does not take {what}"),
                    "Declare the columns and KalamDB's options only.",
                ));
            }
        }
        // WITH options: the server to use, the table kind, the rest forwarded.
        let mut server_name = None;
        let mut kind = TableKind::Shared;
        let mut forwarded = Vec::new();
        for option in PgList::<pg_sys::DefElem>::from_pg((*create).options).iter_ptr() {
            let key = cstr((*option).defname).unwrap_or_default();
            if !(*option).defnamespace.is_null() {
                return Err(unsupported(
                    format!(
                        "option {}.{key} is not a KalamDB table option",
                        cstr((*option).defnamespace).unwrap_or_default()
                    ),
                    "Give KalamDB's options without a prefix, e.g. WITH (type = 'shared', flush_policy = 'rows:1000').",
                ));
            }
            if (*option).arg.is_null() {
                return Err(KalamError::new(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("option \"{key}\" needs a value"),
                ));
            }
            let value = cstr(pg_sys::defGetString(option)).unwrap_or_default();
            match key.as_str() {
                "server" => server_name = Some(value),
                "type" => {
                    kind = TableKind::parse(&value).ok_or_else(|| {
                        KalamError::new(
                            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                            format!("invalid value for option \"type\": \"{value}\""),
                        )
                        .with_hint("\"type\" is 'shared', 'user' or 'stream'.")
                    })?
                }
                _ if !key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    || key.starts_with(|c: char| c.is_ascii_digit()) =>
                {
                    return Err(KalamError::new(
                        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                        format!("\"{key}\" is not a KalamDB table option name"),
                    )
                    .with_hint(
                        "KalamDB's option names are plain words such as flush_policy or ttl_seconds.",
                    ));
                }
                _ => forwarded.push((key, value)),
            }
        }
        let server_oid = connection::pg_kalam_server(server_name.as_deref())?;
        let server_name = cstr((*pg_sys::GetForeignServer(server_oid)).servername).unwrap_or_default();
        let usage =
            pg_sys::pg_foreign_server_aclcheck(server_oid, pg_sys::GetUserId(), pg_sys::ACL_USAGE as _);
        if usage != pg_sys::AclResult::ACLCHECK_OK {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("permission denied for foreign server {server_name}"),
            )
            .with_hint(format!(
                "GRANT USAGE ON FOREIGN SERVER {server_name} TO the role creating the table."
            )));
        }
        if let Some(oid) = schema_oid {
            let create_right =
                pg_sys::pg_namespace_aclcheck(oid, pg_sys::GetUserId(), pg_sys::ACL_CREATE as _);
            if create_right != pg_sys::AclResult::ACLCHECK_OK {
                return Err(KalamError::new(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!("permission denied for schema {schema}"),
                ));
            }
        }
        let server = Server::lookup(server_oid)?;

        let mut columns = Vec::new();
        let mut defs = Vec::new();
        let mut primary_key = Vec::new();
        let mut local = PgList::<pg_sys::Node>::new();
        for element in PgList::<pg_sys::Node>::from_pg((*create).tableElts).iter_ptr() {
            match (*element).type_ {
                NodeTag::T_ColumnDef => {
                    let def = element as *mut pg_sys::ColumnDef;
                    let (column, key) = read_column(def)?;
                    if key {
                        if !primary_key.is_empty() {
                            return Err(multiple_keys());
                        }
                        primary_key.push(column.name.clone());
                    }
                    columns.push(column);
                    defs.push(def);
                    local.push(def.cast());
                }
                NodeTag::T_Constraint => {
                    let constraint = element as *mut pg_sys::Constraint;
                    if (*constraint).contype != pg_sys::ConstrType::CONSTR_PRIMARY {
                        return Err(refused_constraint((*constraint).contype, None));
                    }
                    if !primary_key.is_empty() {
                        return Err(multiple_keys());
                    }
                    if (*constraint).deferrable
                        || !(*constraint).including.is_null()
                        || !(*constraint).options.is_null()
                        || !(*constraint).indexspace.is_null()
                    {
                        return Err(unsupported(
                            "a KalamDB table's PRIMARY KEY takes its columns only",
                            "Leave out DEFERRABLE, INCLUDE, WITH and USING INDEX TABLESPACE.",
                        ));
                    }
                    for key in PgList::<pg_sys::String>::from_pg((*constraint).keys).iter_ptr() {
                        let key = cstr((*key).sval).unwrap_or_default();
                        if primary_key.contains(&key) {
                            return Err(KalamError::new(
                                PgSqlErrorCode::ERRCODE_DUPLICATE_COLUMN,
                                format!("column \"{key}\" appears twice in primary key constraint"),
                            ));
                        }
                        primary_key.push(key);
                    }
                }
                NodeTag::T_TableLikeClause => {
                    return Err(unsupported(
                        "CREATE TABLE ... USING kalamdb does not take LIKE",
                        "List the columns and their types.",
                    ));
                }
                _ => {
                    return Err(unsupported(
                        "CREATE TABLE ... USING kalamdb takes column definitions and a PRIMARY KEY only",
                        "List the columns and their types.",
                    ));
                }
            }
        }
        if columns.is_empty() {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
                "a KalamDB table needs at least one column",
            ));
        }
        for (i, column) in columns.iter().enumerate() {
            if columns[..i].iter().any(|c| c.name == column.name) {
                return Err(KalamError::new(
                    PgSqlErrorCode::ERRCODE_DUPLICATE_COLUMN,
                    format!("column \"{}\" specified more than once", column.name),
                ));
            }
        }
        for key in &primary_key {
            match columns.iter().position(|c| &c.name == key) {
                Some(at) => {
                    if !columns[at].not_null {
                        columns[at].not_null = true;
                        add_not_null(defs[at]);
                    }
                }
                None => {
                    return Err(KalamError::new(
                        PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                        format!("column \"{key}\" named in key does not exist"),
                    ));
                }
            }
        }
        local.push(pg_sys::makeColumnDef(c"_seq".as_ptr(), pg_sys::INT8OID, -1, pg_sys::InvalidOid).cast());
        if kind != TableKind::Shared {
            local.push(
                pg_sys::makeColumnDef(c"_userid".as_ptr(), pg_sys::TEXTOID, -1, pg_sys::InvalidOid).cast(),
            );
        }
        Ok(Authored {
            server,
            server_name,
            schema: schema.clone(),
            schema_oid,
            remote: CreateTable {
                table: RemoteTable { namespace: schema, table: name },
                kind,
                columns,
                primary_key,
                options: forwarded,
            },
            local_columns: local.into_pg(),
        })
    }
}

/// Reads one column definition into its KalamDB column (and whether it declares itself the
/// primary key), changing the definition into the local one: a FILE column becomes jsonb, an
/// EMBEDDING(n) real[], BIGSERIAL and identity columns bigint with `DEFAULT snowflake_id()`,
/// and constraints PostgreSQL does not allow on foreign tables are left to the server.
unsafe fn read_column(def: *mut pg_sys::ColumnDef) -> Result<(Column, bool)> {
    // SAFETY: a copied ColumnDef of the parse tree.
    unsafe {
        let name = cstr((*def).colname).unwrap_or_default();
        if SYSTEM_COLUMNS.contains(&name.as_str()) {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_RESERVED_NAME,
                format!("column \"{name}\" is a KalamDB system column and cannot be declared"),
            )
            .with_hint("pg_kalam adds _seq to every KalamDB table and _userid to user and stream tables; leave them out."));
        }
        let type_name = (*def).typeName;
        let mut data_type = None;
        let mut serial = false;
        let names = PgList::<pg_sys::String>::from_pg((*type_name).names);
        if names.len() == 1 && (*type_name).arrayBounds.is_null() {
            let word = cstr((*names.get_ptr(0).expect("one name")).sval).unwrap_or_default();
            match word.as_str() {
                "file" => {
                    data_type = Some(ColumnType::File);
                    (*def).typeName = pg_sys::makeTypeNameFromOid(pg_sys::JSONBOID, -1);
                }
                "embedding" => {
                    let modifiers = PgList::<pg_sys::Node>::from_pg((*type_name).typmods);
                    let dimensions = match (modifiers.len(), modifiers.get_ptr(0)) {
                        (1, Some(m)) if (*m).type_ == NodeTag::T_A_Const => {
                            let value = m as *mut pg_sys::A_Const;
                            ((*value).val.node.type_ == NodeTag::T_Integer).then(|| (*value).val.ival.ival)
                        }
                        _ => None,
                    };
                    let dimensions = dimensions.filter(|n| (1..=16_000).contains(n)).ok_or_else(|| {
                        KalamError::new(
                            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                            format!(
                                "column \"{name}\": EMBEDDING needs its number of dimensions, 1 to 16000"
                            ),
                        )
                        .with_hint("Write EMBEDDING(384), for example.")
                    })?;
                    data_type = Some(ColumnType::Embedding(dimensions as u32));
                    (*def).typeName = pg_sys::makeTypeNameFromOid(pg_sys::FLOAT4ARRAYOID, -1);
                }
                "bigserial" | "serial8" => {
                    serial = true;
                    data_type = Some(ColumnType::BigInt);
                    (*def).typeName = pg_sys::makeTypeNameFromOid(pg_sys::INT8OID, -1);
                }
                "serial" | "serial4" | "smallserial" | "serial2" => {
                    return Err(unsupported(
                        format!("column \"{name}\": {word} is not supported by KalamDB tables"),
                        "KalamDB makes 64-bit ids: declare BIGINT DEFAULT SNOWFLAKE_ID() (or BIGSERIAL).",
                    ));
                }
                _ => {}
            }
        }
        let data_type = match data_type {
            Some(t) => t,
            None => {
                let (mut oid, mut typmod) = (pg_sys::InvalidOid, -1);
                pg_sys::typenameTypeIdAndMod(std::ptr::null_mut(), type_name, &mut oid, &mut typmod);
                column_type(oid, typmod).map_err(|why| {
                    let shown = cstr(pg_sys::format_type_be(oid)).unwrap_or_default();
                    unsupported(
                        format!("column \"{name}\": type {shown} {why}"),
                        format!("KalamDB tables take {TYPES}."),
                    )
                })?
            }
        };
        let mut column =
            Column { name: name.clone(), data_type, not_null: (*def).is_not_null, default: None };
        let mut key = false;
        let mut local = PgList::<pg_sys::Node>::new();
        let mut snowflake = serial;
        let mut declared_not_null = (*def).is_not_null;
        for element in PgList::<pg_sys::Node>::from_pg((*def).constraints).iter_ptr() {
            let constraint = element as *mut pg_sys::Constraint;
            match (*constraint).contype {
                pg_sys::ConstrType::CONSTR_NOTNULL => {
                    column.not_null = true;
                    declared_not_null = true;
                    local.push(element);
                }
                pg_sys::ConstrType::CONSTR_NULL => local.push(element),
                pg_sys::ConstrType::CONSTR_DEFAULT => {
                    column.default = Some(remote_default((*constraint).raw_expr, &name)?);
                    local.push(element);
                }
                // PostgreSQL keeps no key on a foreign table; the key's columns are NOT NULL.
                pg_sys::ConstrType::CONSTR_PRIMARY => {
                    if key {
                        return Err(multiple_keys());
                    }
                    key = true;
                }
                pg_sys::ConstrType::CONSTR_IDENTITY => {
                    if column.data_type != ColumnType::BigInt {
                        return Err(unsupported(
                            format!(
                                "column \"{name}\": an identity column of a KalamDB table must be bigint"
                            ),
                            "KalamDB makes 64-bit ids: declare BIGINT GENERATED ... AS IDENTITY or BIGINT DEFAULT SNOWFLAKE_ID().",
                        ));
                    }
                    snowflake = true;
                }
                // Computed here, from the row's other values, and stored remotely as a value.
                pg_sys::ConstrType::CONSTR_GENERATED => local.push(element),
                other => return Err(refused_constraint(other, Some(&name))),
            }
        }
        if snowflake {
            if column.default.is_some() {
                return Err(KalamError::new(
                    PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
                    format!("multiple default values specified for column \"{name}\""),
                ));
            }
            column.default = Some(RemoteDefault::SnowflakeId);
            column.not_null = true;
            let default = pgrx::PgBox::<pg_sys::Constraint>::alloc_node(NodeTag::T_Constraint).into_pg();
            (*default).contype = pg_sys::ConstrType::CONSTR_DEFAULT;
            (*default).location = -1;
            let mut function = PgList::<pg_sys::Node>::new();
            if let Some(schema) = extension_schema() {
                function.push(pg_sys::makeString(pstrdup(&schema)).cast());
            }
            function.push(pg_sys::makeString(pstrdup("snowflake_id")).cast());
            (*default).raw_expr = pg_sys::makeFuncCall(
                function.into_pg(),
                std::ptr::null_mut(),
                pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
                -1,
            )
            .cast();
            local.push(default.cast());
        }
        (*def).constraints = local.into_pg();
        if (key || snowflake) && !declared_not_null {
            column.not_null = true;
            add_not_null(def);
        }
        Ok((column, key))
    }
}

/// Makes `def` NOT NULL locally the way the grammar would, with a NOT NULL constraint (so that
/// a contradicting `NULL` is PostgreSQL's "conflicting NULL/NOT NULL declarations").
unsafe fn add_not_null(def: *mut pg_sys::ColumnDef) {
    // SAFETY: a ColumnDef of a parse tree that is ours to change.
    unsafe {
        let constraint = pgrx::PgBox::<pg_sys::Constraint>::alloc_node(NodeTag::T_Constraint).into_pg();
        (*constraint).contype = pg_sys::ConstrType::CONSTR_NOTNULL;
        (*constraint).location = -1;
        let mut constraints = PgList::<pg_sys::Node>::from_pg((*def).constraints);
        constraints.push(constraint.cast());
        (*def).constraints = constraints.into_pg();
    }
}

fn multiple_keys() -> KalamError {
    KalamError::new(PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION, "multiple primary keys are not allowed")
        .with_hint("A KalamDB table has one PRIMARY KEY; list all its columns in PRIMARY KEY (a, b).")
}

fn refused_constraint(contype: pg_sys::ConstrType::Type, column: Option<&str>) -> KalamError {
    let what = match contype {
        pg_sys::ConstrType::CONSTR_CHECK => "CHECK constraints",
        pg_sys::ConstrType::CONSTR_UNIQUE => "UNIQUE constraints",
        pg_sys::ConstrType::CONSTR_EXCLUSION => "EXCLUDE constraints",
        pg_sys::ConstrType::CONSTR_FOREIGN => "FOREIGN KEY constraints",
        _ => "constraint attributes (DEFERRABLE, NOT VALID, ...)",
    };
    let place = column.map(|c| format!(" (column \"{c}\")")).unwrap_or_default();
    unsupported(
        format!("KalamDB tables do not enforce {what}{place}"),
        "Leave the constraint out: a KalamDB table takes a PRIMARY KEY, NOT NULL and DEFAULT.",
    )
}

/// The KalamDB type of a PostgreSQL type, or why there is none.
fn column_type(oid: Oid, typmod: i32) -> std::result::Result<ColumnType, &'static str> {
    const HAS_NO_COUNTERPART: &str = "has no KalamDB counterpart";
    Ok(match oid {
        pg_sys::BOOLOID => ColumnType::Boolean,
        pg_sys::INT2OID => ColumnType::SmallInt,
        pg_sys::INT4OID => ColumnType::Int,
        pg_sys::INT8OID => ColumnType::BigInt,
        pg_sys::FLOAT4OID => ColumnType::Real,
        pg_sys::FLOAT8OID => ColumnType::Double,
        pg_sys::NUMERICOID => {
            if typmod < pg_sys::VARHDRSZ as i32 {
                return Err(
                    "needs a precision and scale here: numeric(p,s) with p <= 38 (KalamDB stores DECIMAL(p,s))",
                );
            }
            let precision = ((typmod - pg_sys::VARHDRSZ as i32) >> 16) & 0xffff;
            let scale = (((typmod - pg_sys::VARHDRSZ as i32) & 0x7ff) ^ 1024) - 1024;
            if precision > 38 {
                return Err("holds more digits than KalamDB's DECIMAL (at most 38)");
            }
            if scale < 0 || scale > precision {
                return Err("has a scale KalamDB's DECIMAL cannot keep (0 to the precision)");
            }
            ColumnType::Decimal(precision as u8, scale as i8)
        }
        pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID => ColumnType::Text,
        pg_sys::BYTEAOID => ColumnType::Bytes,
        pg_sys::DATEOID => ColumnType::Date,
        pg_sys::TIMEOID => ColumnType::Time,
        pg_sys::TIMESTAMPOID => ColumnType::Timestamp,
        pg_sys::TIMESTAMPTZOID => ColumnType::TimestampTz,
        pg_sys::UUIDOID => ColumnType::Uuid,
        pg_sys::JSONOID | pg_sys::JSONBOID => ColumnType::Json,
        _ => {
            // SAFETY: a syscache lookup.
            let element = unsafe { pg_sys::get_element_type(oid) };
            let item = match element {
                pg_sys::BOOLOID => ColumnType::Boolean,
                pg_sys::INT2OID => ColumnType::SmallInt,
                pg_sys::INT4OID => ColumnType::Int,
                pg_sys::INT8OID => ColumnType::BigInt,
                pg_sys::FLOAT4OID => ColumnType::Real,
                pg_sys::FLOAT8OID => ColumnType::Double,
                _ => return Err(HAS_NO_COUNTERPART),
            };
            ColumnType::List(Box::new(item))
        }
    })
}

/// A column DEFAULT the server can compute: a constant (possibly cast), `now()`,
/// `CURRENT_TIMESTAMP`, `LOCALTIMESTAMP` or `snowflake_id()`.
unsafe fn remote_default(expr: *mut pg_sys::Node, column: &str) -> Result<RemoteDefault> {
    let refused = || {
        unsupported(
            format!("the DEFAULT of column \"{column}\" cannot be computed by KalamDB"),
            "Use a constant, NOW(), CURRENT_TIMESTAMP or SNOWFLAKE_ID().",
        )
    };
    // SAFETY: a raw expression of the parse tree.
    unsafe {
        match (*expr).type_ {
            NodeTag::T_A_Const => {
                let value = expr as *mut pg_sys::A_Const;
                if (*value).isnull {
                    return Ok(RemoteDefault::Null);
                }
                Ok(match (*value).val.node.type_ {
                    NodeTag::T_Integer => RemoteDefault::Number((*value).val.ival.ival.to_string()),
                    NodeTag::T_Float => {
                        RemoteDefault::Number(cstr((*value).val.fval.fval).unwrap_or_default())
                    }
                    NodeTag::T_Boolean => RemoteDefault::Boolean((*value).val.boolval.boolval),
                    NodeTag::T_String => {
                        RemoteDefault::Text(cstr((*value).val.sval.sval).unwrap_or_default())
                    }
                    _ => return Err(refused()),
                })
            }
            NodeTag::T_TypeCast => {
                let value = remote_default((*(expr as *mut pg_sys::TypeCast)).arg, column)?;
                // PostgreSQL reads these when the default is made, not when a row is written:
                // the server could not give them the same meaning.
                if let RemoteDefault::Text(text) = &value
                    && SPECIAL_TIMES.contains(&text.trim().to_ascii_lowercase().as_str())
                {
                    return Err(refused());
                }
                Ok(value)
            }
            NodeTag::T_FuncCall => {
                let call = expr as *mut pg_sys::FuncCall;
                let names: Vec<String> = PgList::<pg_sys::String>::from_pg((*call).funcname)
                    .iter_ptr()
                    .map(|n| cstr((*n).sval).unwrap_or_default())
                    .collect();
                let plain = (*call).args.is_null()
                    && (*call).agg_order.is_null()
                    && (*call).agg_filter.is_null()
                    && (*call).over.is_null()
                    && !(*call).agg_within_group
                    && !(*call).agg_star
                    && !(*call).agg_distinct
                    && !(*call).func_variadic;
                if !plain {
                    return Err(refused());
                }
                match names.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                    ["now"] | ["pg_catalog", "now"] => Ok(RemoteDefault::Now),
                    ["snowflake_id"] => Ok(RemoteDefault::SnowflakeId),
                    [schema, "snowflake_id"] if Some(schema.to_string()) == extension_schema() => {
                        Ok(RemoteDefault::SnowflakeId)
                    }
                    _ => Err(refused()),
                }
            }
            NodeTag::T_SQLValueFunction => {
                use pg_sys::SQLValueFunctionOp::*;
                match (*(expr as *mut pg_sys::SQLValueFunction)).op {
                    SVFOP_CURRENT_TIMESTAMP | SVFOP_LOCALTIMESTAMP => Ok(RemoteDefault::Now),
                    _ => Err(refused()),
                }
            }
            _ => Err(refused()),
        }
    }
}

/// Date/time input strings PostgreSQL resolves when it reads them.
const SPECIAL_TIMES: &[&str] =
    &["now", "today", "tomorrow", "yesterday", "epoch", "infinity", "-infinity", "allballs"];

/// The schema pg_kalam's objects are in.
fn extension_schema() -> Option<String> {
    pgrx::Spi::get_one::<String>(
        "SELECT n.nspname::text FROM pg_catalog.pg_extension e \
         JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_kalam'",
    )
    .ok()
    .flatten()
}

/// A foreign table of pg_kalam that owns its remote table: its server and the remote table.
unsafe fn owned_table(relid: Oid) -> Result<Option<(Oid, RemoteTable)>> {
    // SAFETY: catalog lookups of an existing relation.
    unsafe {
        if relid == pg_sys::InvalidOid
            || pg_sys::get_rel_relkind(relid) as u8 != pg_sys::RELKIND_FOREIGN_TABLE
        {
            return Ok(None);
        }
        let table = pg_sys::GetForeignTable(relid);
        let server = pg_sys::GetForeignServer((*table).serverid);
        let fdw = pg_sys::GetForeignDataWrapper((*server).fdwid);
        if cstr((*fdw).fdwname).as_deref() != Some("pg_kalam") {
            return Ok(None);
        }
        let options = TableOptions::parse(&options::from_pg_list((*table).options))?;
        if !options.owns_remote {
            return Ok(None);
        }
        let remote = RemoteTable {
            namespace: options.namespace.clone().unwrap_or_else(|| {
                cstr(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid))).unwrap_or_default()
            }),
            table: options
                .table
                .clone()
                .unwrap_or_else(|| cstr(pg_sys::get_rel_name(relid)).unwrap_or_default()),
        };
        Ok(Some(((*table).serverid, remote)))
    }
}

unsafe fn relation_oid(relation: *mut pg_sys::RangeVar) -> Oid {
    // SAFETY: a RangeVar of the parse tree; no lock (PostgreSQL locks when it runs the statement).
    unsafe {
        pg_sys::RangeVarGetRelidExtended(
            relation,
            pg_sys::NoLock as _,
            pg_sys::RVROption::RVR_MISSING_OK,
            None,
            std::ptr::null_mut(),
        )
    }
}

/// DROP TABLE / DROP FOREIGN TABLE: the remote tables of owned foreign tables are dropped when
/// the transaction commits. `DROP TABLE` of owned foreign tables (only) is run as `DROP
/// FOREIGN TABLE`, since that is how they were created.
unsafe fn drop_tables(call: &Call, drop: *mut pg_sys::DropStmt) -> Result<()> {
    // SAFETY: a DropStmt parse tree; the changed one is a copy.
    unsafe {
        let (owned, as_foreign) = owned_in_drop(drop)?;
        if as_foreign {
            let copy = call.copy();
            (*((*copy).utilityStmt as *mut pg_sys::DropStmt)).removeType =
                pg_sys::ObjectType::OBJECT_FOREIGN_TABLE;
            call.pass(copy);
        } else {
            call.pass(call.pstmt);
        }
        drop_at_commit(owned)
    }
}

/// The owned tables a DROP TABLE / DROP FOREIGN TABLE names, and whether it is a DROP TABLE
/// of owned tables only (run as DROP FOREIGN TABLE).
unsafe fn owned_in_drop(drop: *mut pg_sys::DropStmt) -> Result<(Vec<(Oid, RemoteTable)>, bool)> {
    // SAFETY: a DropStmt parse tree.
    unsafe {
        let kind = (*drop).removeType;
        if kind != pg_sys::ObjectType::OBJECT_TABLE && kind != pg_sys::ObjectType::OBJECT_FOREIGN_TABLE {
            return Ok((Vec::new(), false));
        }
        let objects = PgList::<pg_sys::List>::from_pg((*drop).objects);
        let mut owned = Vec::new();
        for names in objects.iter_ptr() {
            let relation = pg_sys::makeRangeVarFromNameList(names);
            if let Some(table) = owned_table(relation_oid(relation))? {
                owned.push(table);
            }
        }
        let as_foreign =
            kind == pg_sys::ObjectType::OBJECT_TABLE && !owned.is_empty() && owned.len() == objects.len();
        Ok((owned, as_foreign))
    }
}

/// Registers the drop of owned tables' remote tables at commit.
fn drop_at_commit(owned: Vec<(Oid, RemoteTable)>) -> Result<()> {
    {
        for (server, table) in owned {
            let server = Server::lookup(server)?;
            transactions::at_commit(&server, table.drop_sql(true).map_err(internal)?).map_err(|e| {
                e.with_hint(format!(
                    "The KalamDB table {}.{} is dropped with the foreign table. To drop only the foreign table, \
                     ALTER FOREIGN TABLE ... OPTIONS (SET owns_remote 'false') first.",
                    table.namespace, table.table
                ))
            })?;
        }
        Ok(())
    }
}

/// ALTER TABLE of an owned foreign table: ADD COLUMN is made on the server at once (and undone
/// if the transaction aborts), DROP COLUMN when the transaction commits. Other subcommands
/// change only the local table.
unsafe fn alter_table(call: &Call, alter: *mut pg_sys::AlterTableStmt) -> Result<()> {
    // SAFETY: an AlterTableStmt parse tree; the changed one is a copy.
    unsafe {
        if owned_table(relation_oid((*alter).relation))?.is_none() {
            call.pass(call.pstmt);
            return Ok(());
        }
        let copy = call.copy();
        let changes = column_changes((*copy).utilityStmt.cast())?;
        call.pass(copy);
        if let Some(changes) = changes {
            changes.mirror()?;
        }
        Ok(())
    }
}

/// The ADD/DROP COLUMN subcommands of an ALTER TABLE of an owned table, checked, to be made on
/// the server.
struct ColumnChanges {
    server_oid: Oid,
    table: RemoteTable,
    added: Vec<(Column, bool)>,
    dropped: Vec<(String, bool)>,
}

/// Reads (and changes into the local definitions) the column subcommands of `changed`, an
/// ALTER TABLE that is ours to change; `None` when it is not about an owned table.
unsafe fn column_changes(changed: *mut pg_sys::AlterTableStmt) -> Result<Option<ColumnChanges>> {
    // SAFETY: an AlterTableStmt parse tree.
    unsafe {
        let Some((server_oid, table)) = owned_table(relation_oid((*changed).relation))? else {
            return Ok(None);
        };
        let mut added = Vec::new();
        let mut dropped = Vec::new();
        for cmd in PgList::<pg_sys::AlterTableCmd>::from_pg((*changed).cmds).iter_ptr() {
            match (*cmd).subtype {
                pg_sys::AlterTableType::AT_AddColumn => {
                    let def = (*cmd).def as *mut pg_sys::ColumnDef;
                    let (column, key) = read_column(def)?;
                    if key {
                        return Err(unsupported(
                            "a KalamDB table's primary key cannot be changed",
                            "Add the column without PRIMARY KEY.",
                        ));
                    }
                    if column.default == Some(RemoteDefault::SnowflakeId) && column.not_null {
                        return Err(unsupported(
                            format!("column \"{}\" cannot be added with generated ids", column.name),
                            "The rows already stored have no value for it: add it as a nullable bigint.",
                        ));
                    }
                    if column.not_null {
                        return Err(unsupported(
                            format!("column \"{}\" cannot be added as NOT NULL", column.name),
                            "The rows already stored have no value for it: add it without NOT NULL.",
                        ));
                    }
                    added.push((column, (*cmd).missing_ok));
                }
                pg_sys::AlterTableType::AT_DropColumn => {
                    let name = cstr((*cmd).name).unwrap_or_default();
                    if SYSTEM_COLUMNS.contains(&name.as_str()) {
                        return Err(KalamError::new(
                            PgSqlErrorCode::ERRCODE_RESERVED_NAME,
                            format!("column \"{name}\" is a KalamDB system column and cannot be dropped"),
                        ));
                    }
                    dropped.push((name, (*cmd).missing_ok));
                }
                pg_sys::AlterTableType::AT_AlterColumnType => {
                    return Err(unsupported(
                        "the type of a KalamDB table's column cannot be changed from PostgreSQL",
                        "Add a column of the new type and copy the values with UPDATE.",
                    ));
                }
                _ => {}
            }
        }
        Ok(Some(ColumnChanges { server_oid, table, added, dropped }))
    }
}

impl ColumnChanges {
    /// ADD COLUMN on the server now (undone at abort), DROP COLUMN at commit.
    fn mirror(self) -> Result<()> {
        let ColumnChanges { server_oid, table, added, dropped } = self;
        if added.is_empty() && dropped.is_empty() {
            return Ok(());
        }
        let server = Server::lookup(server_oid)?;
        let client = server.client()?;
        for (column, if_not_exists) in added {
            let drops = [
                table.drop_column_sql(&column.name, true).map_err(internal)?,
                table.drop_column_sql(&column.name, false).map_err(internal)?,
            ];
            if transactions::pending_at_commit(&drops) {
                return Err(KalamError::new(
                    PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!(
                        "this transaction drops column \"{}\" when it commits; it cannot add it again before",
                        column.name
                    ),
                )
                .with_hint("Commit the DROP COLUMN first, then add the column."));
            }
            let sql = table.add_column_sql(&column, if_not_exists).map_err(internal)?;
            run(&client, sql, &table, "add a column to")?;
            // With IF NOT EXISTS the column may have been there before: it is not undone.
            if !if_not_exists {
                transactions::undo_at_abort(
                    &server,
                    table.drop_column_sql(&column.name, true).map_err(internal)?,
                )?;
            }
        }
        for (name, if_exists) in dropped {
            transactions::at_commit(&server, table.drop_column_sql(&name, if_exists).map_err(internal)?)?;
        }
        Ok(())
    }
}
