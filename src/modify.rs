//! Writes through foreign tables: INSERT and COPY FROM (and rows routed to a foreign
//! partition), UPDATE and DELETE of the rows a scan found.
//!
//! Rows are converted into Arrow a column at a time ([`RowBuffer`]) and sent in batches of
//! `insert_batch_rows` rows, inside the remote transaction of the PostgreSQL transaction
//! ([`transactions`]): nothing is seen elsewhere before COMMIT, and a statement or transaction
//! that fails leaves nothing on the server.
//!
//! - INSERT and COPY send the columns they name, and those with a local default, with Flight
//!   SQL bulk ingest; a column they leave out gets the remote table's default (or NULL).
//!   Each row is converted into the batch as `ExecForeignInsert` gets it. PostgreSQL's own
//!   batch insert (`GetForeignModifyBatchSize`/`ExecForeignBatchInsert`) is not used: it copies
//!   every row into two slots of its own before handing them over, which made an INSERT ...
//!   SELECT of 1M rows 0.5-0.7 s slower (about 30%), and the batching it brings is had here.
//! - UPDATE and DELETE find each row on the server by its identity: the remote table's primary
//!   key when the foreign table declares all of its columns, else `_seq` (the server's row
//!   version) when it is declared. The identity comes from the scan as junk columns
//!   ([`add_foreign_update_targets`]). The statement (`UPDATE ... SET <changed columns> = $n
//!   WHERE <identity> = $m`, or the DELETE) is prepared once on the server, in the transaction,
//!   and each batch is one request that runs it once per row. UPDATE sends only the columns
//!   the statement (or a trigger) changes.
//!
//! Callbacks are thin shims over [`Writer`]; the state lives in the executor's query memory
//! context and is released with it, on error as well.

use std::ffi::CString;

use kalam_flight::PreparedId;
use kalam_pushdown::{Change, Qual, RemoteChange, RemoteTable, identity_filter};
use pgrx::pg_sys::{self, Datum};
use pgrx::{FromDatum, PgMemoryContexts, PgRelation, PgSqlErrorCode, PgTupleDesc, pg_guard};

use crate::connection::Server;
use crate::convert::write::{RowBuffer, WriteColumn};
use crate::deparse::{attribute_indexes, int_list, list_nodes, make_int_list};
use crate::error::{KalamError, Result};
use crate::guc;
use crate::options::TableType;
use crate::runtime;
use crate::scan::{foreign_table, live_attributes, remote_columns, remote_table, user_id_for};
use crate::transactions;

/// Columns the server sets: a statement may not write them.
pub(crate) const SYSTEM_COLUMNS: [&str; 3] = ["_seq", "_userid", "_deleted"];
/// The junk column carrying the old row of a DELETE ... RETURNING.
const WHOLE_ROW: &std::ffi::CStr = c"wholerow";

/// The remote table a write goes to, and as whom.
pub(crate) struct Target {
    pub(crate) server: Server,
    pub(crate) remote: RemoteTable,
    pub(crate) relation: String,
    pub(crate) user_id: Option<String>,
    batch_rows: usize,
}

impl Target {
    pub(crate) fn new(relation: &PgRelation) -> Result<Self> {
        let (server, table_options) = foreign_table(relation)?;
        let user_id = match table_options.table_type {
            TableType::Shared => None,
            TableType::User | TableType::Stream => Some(guc::user_id().ok_or_else(|| {
                KalamError::new(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("\"{}\" is a KalamDB user table and kalam.user_id is not set", relation.name()),
                )
                .with_hint("SET kalam.user_id = '<user>' to choose whose rows to write.")
            })?),
        };
        let remote = remote_table(relation, &table_options);
        let batch_rows = server.options.tuning.with_table(&table_options).insert_batch_rows;
        Ok(Self { server, remote, relation: relation.name().to_string(), user_id, batch_rows })
    }

    pub(crate) fn context(&self, e: kalam_flight::Error) -> KalamError {
        let error = KalamError::from(e);
        if error.detail.is_some() {
            error
        } else {
            error.with_detail(format!("writing to foreign table \"{}\"", self.relation))
        }
    }
}

/// What a write into one foreign table holds.
enum Writer {
    Insert(InsertState),
    Change(ChangeState),
}

/// An INSERT or COPY.
struct InsertState {
    target: Target,
    /// Attribute indexes sent, in the buffer's column order.
    attrs: Vec<usize>,
    rows: Rows,
    /// `_seq` and `_deleted`, which the server sets: not sent, and a row that gives them a
    /// value is refused.
    server_set: Vec<(usize, String)>,
    /// `_userid` of a user or stream table, when sent, and the owner of the statement's rows.
    owner: Option<(usize, Option<String>)>,
}

/// An UPDATE or DELETE of the rows the scan found.
struct ChangeState {
    target: Target,
    /// The statement run once per row: new values first, then the identity, as placeholders.
    sql: String,
    /// Attribute indexes whose new values are sent (UPDATE).
    set_attrs: Vec<usize>,
    /// Where the scan's output (the plan slot) carries each identity column.
    identity_junk: Vec<pg_sys::AttrNumber>,
    /// Where it carries the whole old row (DELETE ... RETURNING).
    whole_row_junk: Option<pg_sys::AttrNumber>,
    rows: Rows,
    prepared: Option<PreparedId>,
}

/// Rows converted into Arrow, waiting to be sent.
struct Rows {
    buffer: RowBuffer,
    batch_rows: usize,
    values: Vec<Datum>,
    nulls: Vec<bool>,
    /// Where a row's values are read (detoasted, printed); reset after each row.
    row_context: pg_sys::MemoryContext,
}

impl Rows {
    fn new(columns: Vec<WriteColumn>, batch_rows: usize) -> Self {
        let width = columns.len();
        Self {
            buffer: RowBuffer::new(columns),
            batch_rows,
            values: Vec::with_capacity(width),
            nulls: Vec::with_capacity(width),
            // SAFETY: a child of the current (query) context, freed with it.
            row_context: unsafe {
                pg_sys::AllocSetContextCreateInternal(
                    pg_sys::CurrentMemoryContext,
                    c"pg_kalam row".as_ptr(),
                    pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
                    pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
                    pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
                )
            },
        }
    }

    fn start_row(&mut self) {
        self.values.clear();
        self.nulls.clear();
    }

    /// Adds the values of attributes `attrs` of a row to the one being gathered.
    fn take(&mut self, attrs: &[usize], values: &[Datum], nulls: &[bool]) {
        for &a in attrs {
            self.values.push(values[a]);
            self.nulls.push(nulls[a]);
        }
    }

    /// The rows appended since the last batch, if any.
    fn batch(&mut self) -> Result<Option<arrow_array::RecordBatch>> {
        if self.buffer.rows() == 0 { Ok(None) } else { self.buffer.finish().map(Some) }
    }

    /// Appends the row gathered in `values`/`nulls`; true when a batch is full.
    ///
    /// # Safety
    /// `values` must hold valid datums of the buffer's columns, in order.
    unsafe fn append(&mut self) -> Result<bool> {
        // SAFETY: per the contract; what reading the values allocates goes to the row context,
        // reset once the builders copied them.
        unsafe {
            let (buffer, values, nulls) = (&mut self.buffer, &self.values, &self.nulls);
            let appended =
                PgMemoryContexts::For(self.row_context).switch_to(|_| buffer.append(values, nulls));
            pg_sys::MemoryContextReset(self.row_context);
            appended?;
        }
        Ok(self.buffer.rows() >= self.batch_rows)
    }
}

/// The UPDATE (of `set_attrs`, from placeholders `$1`, `$2`, ... in that order) or DELETE
/// of the rows of `target` that `filters` keep.
pub(crate) fn remote_change(
    relation: &PgRelation,
    target: &Target,
    delete: bool,
    set_attrs: &[usize],
    filters: Vec<Qual>,
) -> RemoteChange {
    let change = if delete {
        Change::Delete
    } else {
        Change::Update(set_attrs.iter().enumerate().map(|(i, &a)| (a, Qual::Placeholder(i))).collect())
    };
    let columns = remote_columns(relation).into_iter().map(|c| c.name).collect();
    RemoteChange { table: target.remote.clone(), columns, change, filters }
}

pub(crate) fn sql_error(e: kalam_pushdown::Error) -> KalamError {
    KalamError::new(PgSqlErrorCode::ERRCODE_FDW_ERROR, format!("cannot build the remote statement: {e}"))
}

/// A column of the foreign table as a write sends it.
pub(crate) fn write_column(tupdesc: &PgTupleDesc, attr: usize, relation: &str) -> Result<WriteColumn> {
    let att = tupdesc.get(attr).expect("attr");
    WriteColumn::new(att.name(), att.type_oid().value(), att.type_mod(), relation)
}

#[pg_guard]
pub unsafe extern "C-unwind" fn is_foreign_rel_updatable(_relation: pg_sys::Relation) -> i32 {
    (1 << pg_sys::CmdType::CMD_INSERT)
        | (1 << pg_sys::CmdType::CMD_UPDATE)
        | (1 << pg_sys::CmdType::CMD_DELETE)
}

/// UPDATE and DELETE: the scan also returns each row's identity, as junk columns named after
/// the attribute; DELETE ... RETURNING also the whole old row. A table whose rows have no
/// identity gets none: the statement may still run whole on the server ([`crate::direct`]),
/// and [`plan_foreign_modify`] refuses it otherwise.
#[pg_guard]
pub unsafe extern "C-unwind" fn add_foreign_update_targets(
    root: *mut pg_sys::PlannerInfo,
    rtindex: pg_sys::Index,
    target_rte: *mut pg_sys::RangeTblEntry,
    target_relation: pg_sys::Relation,
) {
    // SAFETY: the planner passes the target relation, open, and its range-table entry.
    unsafe {
        let relation = PgRelation::from_pg(target_relation);
        let identity = row_identity(&relation).unwrap_or_else(|e| e.report()).unwrap_or_default();
        for attr in identity {
            let att = &*(*target_relation).rd_att.cast::<pg_sys::TupleDescData>();
            let att = &*att.attrs.as_ptr().add(attr);
            let var = pg_sys::makeVar(
                rtindex as _,
                (attr + 1) as pg_sys::AttrNumber,
                att.atttypid,
                att.atttypmod,
                att.attcollation,
                0,
            );
            let name = identity_junk_name(attr, att);
            pg_sys::add_row_identity_var(root, var, rtindex, name.as_ptr());
        }
        let parse = (*root).parse;
        if (*parse).commandType == pg_sys::CmdType::CMD_DELETE && !(*parse).returningList.is_null() {
            let var = pg_sys::makeWholeRowVar(target_rte, rtindex as _, 0, false);
            pg_sys::add_row_identity_var(root, var, rtindex, WHOLE_ROW.as_ptr());
        }
    }
}

/// The name of the junk column carrying identity attribute `attr`: the same for every foreign
/// table whose identity is a column of that number and type, as PostgreSQL requires of the
/// row-identity columns of one statement.
fn identity_junk_name(attr: usize, att: &pg_sys::FormData_pg_attribute) -> CString {
    let name = format!(
        "kalam_rowid_{}_{}_{}_{}",
        attr + 1,
        att.atttypid.to_u32(),
        att.atttypmod,
        att.attcollation.to_u32()
    );
    CString::new(name).expect("no NUL")
}

/// The attributes (0-based) that identify a row of the foreign table on the server: the
/// remote primary key when the foreign table declares every column of it, else `_seq`; the
/// inner error says why there are none.
fn row_identity(relation: &PgRelation) -> Result<std::result::Result<Vec<usize>, KalamError>> {
    let (server, table_options) = foreign_table(relation)?;
    let remote = remote_table(relation, &table_options);
    let keys = server.primary_keys(&remote, user_id_for(&table_options).as_deref())?;
    // SAFETY: an open relation's descriptor, read only.
    let tupdesc = unsafe { PgTupleDesc::from_pg_unchecked(relation.rd_att) };
    let live = live_attributes(relation);
    let find = |name: &str| live.iter().copied().find(|&a| tupdesc.get(a).expect("attr").name() == name);
    let declared: Option<Vec<usize>> = keys.iter().map(|k| find(k)).collect();
    match declared {
        Some(identity) if !identity.is_empty() => return Ok(Ok(identity)),
        _ => {}
    }
    if let Some(seq) = find("_seq") {
        return Ok(Ok(vec![seq]));
    }
    let why = if keys.is_empty() {
        format!("The remote table {}.{} has no primary key.", remote.namespace, remote.table)
    } else {
        format!(
            "The remote table's primary key ({}) is not all declared in the foreign table.",
            keys.join(", ")
        )
    };
    Ok(Err(KalamError::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("cannot UPDATE or DELETE rows of foreign table \"{}\": its rows have no identity", relation.name()),
    )
    .with_detail(why)
    .with_hint("Declare the remote table's primary key columns in the foreign table, or add the column \"_seq bigint\" (the server's row version).")))
}

/// Positions in the `fdw_private` of an UPDATE or DELETE.
#[repr(usize)]
enum ModifyPrivateIndex {
    /// Integer list: the 0-based attributes whose new values are sent (UPDATE).
    SetAttrs = 0,
    /// Integer list: the 0-based attributes that identify a row.
    Identity = 1,
}

#[pg_guard]
pub unsafe extern "C-unwind" fn plan_foreign_modify(
    root: *mut pg_sys::PlannerInfo,
    plan: *mut pg_sys::ModifyTable,
    result_relation: pg_sys::Index,
    _subplan_index: i32,
) -> *mut pg_sys::List {
    // SAFETY: the planner passes its ModifyTable node and the result relation's index.
    unsafe {
        refuse_on_conflict(plan);
        let operation = (*plan).operation;
        if operation == pg_sys::CmdType::CMD_INSERT {
            return std::ptr::null_mut();
        }
        let rte = *(*root).simple_rte_array.add(result_relation as usize);
        let relation = PgRelation::with_lock((*rte).relid, pg_sys::NoLock as _);
        let mut set_attrs = Vec::new();
        if operation == pg_sys::CmdType::CMD_UPDATE {
            let updated = pg_sys::bms_union((*rte).updatedCols, (*rte).extraUpdatedCols);
            set_attrs = attribute_indexes(updated);
            let tupdesc = PgTupleDesc::from_pg_unchecked(relation.rd_att);
            for &a in &set_attrs {
                let name = tupdesc.get(a).expect("attr").name().to_string();
                if SYSTEM_COLUMNS.contains(&name.as_str()) {
                    KalamError::new(
                        PgSqlErrorCode::ERRCODE_GENERATED_ALWAYS,
                        format!("column \"{name}\" of foreign table \"{}\" is set by the server and cannot be updated", relation.name()),
                    )
                    .report();
                }
            }
        }
        let identity = row_identity(&relation).and_then(|found| found).unwrap_or_else(|e| e.report());
        let set = make_int_list(set_attrs.into_iter().map(|a| a as i32));
        let list = pg_sys::lappend(std::ptr::null_mut(), set.cast());
        pg_sys::lappend(list, make_int_list(identity.into_iter().map(|a| a as i32)).cast())
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn begin_foreign_modify(
    mtstate: *mut pg_sys::ModifyTableState,
    rinfo: *mut pg_sys::ResultRelInfo,
    fdw_private: *mut pg_sys::List,
    _subplan_index: i32,
    eflags: i32,
) {
    if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0 {
        return;
    }
    // SAFETY: the executor passes the result relation being written and its plan's state.
    unsafe {
        if (*mtstate).operation == pg_sys::CmdType::CMD_INSERT {
            return begin_insert(rinfo, (*mtstate).ps.state);
        }
        let parts = list_nodes(fdw_private);
        let indexes = |i: ModifyPrivateIndex| -> Vec<usize> {
            int_list(parts[i as usize].cast()).into_iter().map(|a| a as usize).collect()
        };
        let set_attrs = indexes(ModifyPrivateIndex::SetAttrs);
        let identity = indexes(ModifyPrivateIndex::Identity);
        let subplan = (*(*mtstate).ps.lefttree).plan;
        let relation = PgRelation::from_pg((*rinfo).ri_RelationDesc);
        let tupdesc = (*rinfo).ri_RelationDesc.as_ref().expect("relation").rd_att;
        let mut identity_junk = Vec::with_capacity(identity.len());
        for &attr in &identity {
            let att = &*(*tupdesc).attrs.as_ptr().add(attr);
            let name = identity_junk_name(attr, att);
            let junk = pg_sys::ExecFindJunkAttributeInTlist((*subplan).targetlist, name.as_ptr());
            if junk <= 0 {
                KalamError::new(
                    PgSqlErrorCode::ERRCODE_FDW_ERROR,
                    format!("the plan does not carry the row identity of foreign table \"{}\"; run the statement again", relation.name()),
                )
                .report();
            }
            identity_junk.push(junk);
        }
        let whole_row = pg_sys::ExecFindJunkAttributeInTlist((*subplan).targetlist, WHOLE_ROW.as_ptr());
        let delete = (*mtstate).operation == pg_sys::CmdType::CMD_DELETE;
        let whole_row_junk = (delete && whole_row > 0).then_some(whole_row);
        let mut state =
            ChangeState::new(&relation, delete, set_attrs, &identity, identity_junk, whole_row_junk)
                .unwrap_or_else(|e| e.report());
        if one_row_at_a_time(rinfo, false) {
            state.rows.batch_rows = 1;
        }
        // The scan of the rows to change reads in the remote transaction, so it sees what this
        // transaction wrote before: begin it now, before the scan's first fetch.
        transactions::for_write(&state.target.server).unwrap_or_else(|e| e.report());
        let writer = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(Writer::Change(state));
        (*rinfo).ri_FdwState = writer.cast();
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn begin_foreign_insert(
    mtstate: *mut pg_sys::ModifyTableState,
    rinfo: *mut pg_sys::ResultRelInfo,
) {
    // SAFETY: COPY passes a ModifyTableState without a plan; tuple routing the INSERT's.
    unsafe {
        let mut estate = std::ptr::null_mut();
        if let Some(mtstate) = mtstate.as_ref() {
            refuse_on_conflict(mtstate.ps.plan as *mut pg_sys::ModifyTable);
            estate = mtstate.ps.state;
        }
        begin_insert(rinfo, estate)
    }
}

/// `ON CONFLICT` needs the server to find the conflicting row: refused, not ignored.
unsafe fn refuse_on_conflict(plan: *mut pg_sys::ModifyTable) {
    // SAFETY: a ModifyTable node of the planner or of a plan.
    unsafe {
        if !plan.is_null() && (*plan).onConflictAction != pg_sys::OnConflictAction::ONCONFLICT_NONE {
            KalamError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "INSERT ... ON CONFLICT is not supported on pg_kalam foreign tables",
            )
            .report();
        }
    }
}

/// Sets up an insert's state in the current (query) memory context.
unsafe fn begin_insert(rinfo: *mut pg_sys::ResultRelInfo, estate: *mut pg_sys::EState) {
    // SAFETY: see the callers.
    unsafe {
        let relation = PgRelation::from_pg((*rinfo).ri_RelationDesc);
        let attrs = sent_attributes(&relation, rinfo, estate);
        let mut state = InsertState::new(&relation, attrs).unwrap_or_else(|e| e.report());
        if one_row_at_a_time(rinfo, true) {
            state.rows.batch_rows = 1;
        }
        let writer = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(Writer::Insert(state));
        (*rinfo).ri_FdwState = writer.cast();
    }
}

/// Whether rows are sent one at a time: row triggers and WITH CHECK OPTION queries may read the
/// table, so each row goes before the next one is made, and they see every row before theirs.
/// `insert`: for INSERT and COPY (their row triggers), else for UPDATE and DELETE.
unsafe fn one_row_at_a_time(rinfo: *mut pg_sys::ResultRelInfo, insert: bool) -> bool {
    // SAFETY: the executor's result relation.
    unsafe {
        let triggers = (*rinfo).ri_TrigDesc.as_ref().is_some_and(|t| {
            if insert {
                return t.trig_insert_before_row || t.trig_insert_after_row || t.trig_insert_instead_row;
            }
            t.trig_update_before_row
                || t.trig_update_after_row
                || t.trig_update_instead_row
                || t.trig_delete_before_row
                || t.trig_delete_after_row
                || t.trig_delete_instead_row
        });
        triggers || !(*rinfo).ri_WithCheckOptions.is_null()
    }
}

/// The attributes an INSERT or COPY sends: those it names, and those PostgreSQL computes for
/// it (local defaults, generated columns). A column it leaves out is not sent, so the remote
/// table's default (such as `SNOWFLAKE_ID()`) applies to it. Without the statement's
/// column list (or with an empty one, `DEFAULT VALUES`), every column is sent.
unsafe fn sent_attributes(
    relation: &PgRelation,
    rinfo: *mut pg_sys::ResultRelInfo,
    estate: *mut pg_sys::EState,
) -> Vec<usize> {
    let live = live_attributes(relation);
    if estate.is_null() {
        return live;
    }
    // SAFETY: the executor's result relation and state; the descriptor is read only.
    unsafe {
        let inserted = pg_sys::ExecGetInsertedCols(rinfo, estate);
        let tupdesc = (*rinfo).ri_RelationDesc.as_ref().expect("relation").rd_att;
        let named: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&a| {
                let att = &*(*tupdesc).attrs.as_ptr().add(a);
                let member = a as i32 + 1 - pg_sys::FirstLowInvalidHeapAttributeNumber;
                pg_sys::bms_is_member(member, inserted) || att.atthasdef || att.attgenerated != 0
            })
            .collect();
        if named.is_empty() { live } else { named }
    }
}

/// The writer of a result relation, set by a begin callback.
unsafe fn writer<'a>(rinfo: *mut pg_sys::ResultRelInfo) -> &'a mut Writer {
    // SAFETY: ri_FdwState was set by begin_insert or begin_foreign_modify.
    unsafe { &mut *((*rinfo).ri_FdwState as *mut Writer) }
}

/// The values of all attributes of `slot`.
unsafe fn slot_values<'a>(slot: *mut pg_sys::TupleTableSlot) -> (&'a [Datum], &'a [bool]) {
    // SAFETY: a valid slot; after slot_getallattrs every attribute has a value.
    unsafe {
        pg_sys::slot_getallattrs(slot);
        let natts = (*(*slot).tts_tupleDescriptor).natts as usize;
        (
            std::slice::from_raw_parts((*slot).tts_values, natts),
            std::slice::from_raw_parts((*slot).tts_isnull, natts),
        )
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn exec_foreign_insert(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    _plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: the slot holds the row of the foreign table.
    unsafe {
        let Writer::Insert(state) = writer(rinfo) else { unreachable!("an insert's writer") };
        let (values, nulls) = slot_values(slot);
        if let Err(e) = state.insert(values, nulls) {
            e.report();
        }
        slot
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn exec_foreign_update(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: `slot` holds the new row, `plan_slot` the scan's output with the identity.
    unsafe {
        let Writer::Change(state) = writer(rinfo) else { unreachable!("a change's writer") };
        let (values, nulls) = slot_values(slot);
        let (junk, junk_nulls) = slot_values(plan_slot);
        if let Err(e) = state.change(Some((values, nulls)), (junk, junk_nulls)) {
            e.report();
        }
        slot
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn exec_foreign_delete(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: `plan_slot` holds the scan's output with the identity (and the old row, for
    // RETURNING); `slot` is where the old row goes for RETURNING.
    unsafe {
        let Writer::Change(state) = writer(rinfo) else { unreachable!("a change's writer") };
        let (junk, junk_nulls) = slot_values(plan_slot);
        if let Err(e) = state.change(None, (junk, junk_nulls)) {
            e.report();
        }
        if let Some(whole_row) = state.whole_row_junk {
            let index = whole_row as usize - 1;
            if !junk_nulls[index] {
                let header = pg_sys::DatumGetHeapTupleHeader(junk[index]);
                // Not a tuple of a table: an invalid item pointer (InvalidBlockNumber).
                let invalid = pg_sys::ItemPointerData {
                    ip_blkid: pg_sys::BlockIdData { bi_hi: u16::MAX, bi_lo: u16::MAX },
                    ip_posid: 0,
                };
                let mut tuple = pg_sys::HeapTupleData {
                    t_len: pgrx::varlena::varsize(header.cast()) as u32,
                    t_self: invalid,
                    t_tableOid: (*(*rinfo).ri_RelationDesc).rd_id,
                    t_data: header,
                };
                pg_sys::ExecForceStoreHeapTuple(&mut tuple, slot, false);
            }
        }
        slot
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn end_foreign_modify(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
) {
    // SAFETY: ri_FdwState was set by a begin callback (absent under EXPLAIN).
    unsafe {
        let Some(writer) = ((*rinfo).ri_FdwState as *mut Writer).as_mut() else { return };
        let result = match writer {
            Writer::Insert(state) => state.flush(),
            Writer::Change(state) => state.finish(),
        };
        if let Err(e) = result {
            e.report();
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn end_foreign_insert(
    estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
) {
    // SAFETY: as end_foreign_modify.
    unsafe { end_foreign_modify(estate, rinfo) }
}

impl InsertState {
    fn new(relation: &PgRelation, mut attrs: Vec<usize>) -> Result<Self> {
        let target = Target::new(relation)?;
        // SAFETY: an open relation's descriptor, read only.
        let tupdesc = unsafe { PgTupleDesc::from_pg_unchecked(relation.rd_att) };
        let name = |a: usize| tupdesc.get(a).expect("attr").name().to_string();
        // A shared table's rows have no owner: a `_userid` there is the server's too.
        let per_user = target.user_id.is_some();
        let server_set: Vec<(usize, String)> = attrs
            .iter()
            .map(|&a| (a, name(a)))
            .filter(|(_, n)| n == "_seq" || n == "_deleted" || (n == "_userid" && !per_user))
            .collect();
        attrs.retain(|a| !server_set.iter().any(|(s, _)| s == a));
        let owner = attrs.iter().copied().find(|&a| name(a) == "_userid").map(|a| (a, None));
        let columns =
            attrs.iter().map(|&a| write_column(&tupdesc, a, relation.name())).collect::<Result<_>>()?;
        let rows = Rows::new(columns, target.batch_rows);
        Ok(Self { target, attrs, rows, server_set, owner })
    }

    /// Refuses a row that sets a column the server sets, or whose `_userid` differs from the
    /// statement's earlier rows (an omitted or NULL `_userid` is `kalam.user_id`).
    fn check_system_columns(&mut self, values: &[Datum], nulls: &[bool]) -> Result<()> {
        if let Some((_, column)) = self.server_set.iter().find(|(a, _)| !nulls[*a]) {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_GENERATED_ALWAYS,
                format!(
                    "column \"{column}\" of foreign table \"{}\" is set by the KalamDB server and cannot be inserted",
                    self.target.relation
                ),
            )
            .with_hint(format!("Leave {column} out of the INSERT (or give it NULL).")));
        }
        let Some((attr, first)) = &mut self.owner else { return Ok(()) };
        let session = self.target.user_id.as_deref().expect("owner is checked on user tables only");
        // SAFETY: a text datum of the row, read in place (no copy per row).
        let given = if nulls[*attr] { None } else { unsafe { <&str>::from_datum(values[*attr], false) } };
        let owner = given.unwrap_or(session);
        match first {
            None => *first = Some(owner.to_string()),
            Some(first) if first == owner => {}
            Some(first) => {
                return Err(KalamError::new(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!(
                        "all rows of one INSERT into user table \"{}\" must have the same _userid: \"{first}\", then \"{owner}\"",
                        self.target.relation
                    ),
                )
                .with_hint("Insert each user's rows in a statement of their own."));
            }
        }
        Ok(())
    }

    /// Takes one row (all attributes of the table); sends a batch when it is full.
    fn insert(&mut self, values: &[Datum], nulls: &[bool]) -> Result<()> {
        self.check_system_columns(values, nulls)?;
        self.rows.start_row();
        self.rows.take(&self.attrs, values, nulls);
        // SAFETY: the slot's values are datums of the table's columns.
        if unsafe { self.rows.append()? } {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the rows taken since the last batch, in the PostgreSQL transaction's remote one.
    fn flush(&mut self) -> Result<()> {
        let Some(batch) = self.rows.batch()? else { return Ok(()) };
        let target = &self.target;
        let transaction = transactions::for_write(&target.server)?;
        let client = target.server.client()?;
        let (namespace, table, user_id) =
            (target.remote.namespace.clone(), target.remote.table.clone(), target.user_id.clone());
        let stream = futures::stream::iter([Ok(batch)]);
        let _in_flight = transactions::write_in_flight(&target.server);
        runtime::call(async move {
            client.ingest(&namespace, &table, stream, user_id.as_deref(), Some(&transaction)).await
        })
        .map_err(|e| target.context(e))?;
        Ok(())
    }
}

impl ChangeState {
    fn new(
        relation: &PgRelation,
        delete: bool,
        set_attrs: Vec<usize>,
        identity: &[usize],
        identity_junk: Vec<pg_sys::AttrNumber>,
        whole_row_junk: Option<pg_sys::AttrNumber>,
    ) -> Result<Self> {
        let target = Target::new(relation)?;
        // SAFETY: an open relation's descriptor, read only.
        let tupdesc = unsafe { PgTupleDesc::from_pg_unchecked(relation.rd_att) };
        let placeholders = set_attrs.len();
        let identity_placeholders: Vec<(usize, usize)> =
            identity.iter().enumerate().map(|(i, &a)| (a, placeholders + i)).collect();
        let remote =
            remote_change(relation, &target, delete, &set_attrs, identity_filter(&identity_placeholders));
        let sql = remote.to_sql(None).map_err(sql_error)?;
        let mut write_columns = Vec::with_capacity(set_attrs.len() + identity.len());
        for &a in set_attrs.iter().chain(identity) {
            write_columns.push(write_column(&tupdesc, a, relation.name())?);
        }
        let rows = Rows::new(write_columns, target.batch_rows);
        Ok(Self { target, sql, set_attrs, identity_junk, whole_row_junk, rows, prepared: None })
    }

    /// Takes one row: its new values (UPDATE: all attributes of the table) and the scan's
    /// output, which carries its identity; sends a batch when it is full.
    fn change(&mut self, new: Option<(&[Datum], &[bool])>, junk: (&[Datum], &[bool])) -> Result<()> {
        self.rows.start_row();
        if let Some((values, nulls)) = new {
            self.rows.take(&self.set_attrs, values, nulls);
        }
        for &j in &self.identity_junk {
            let index = j as usize - 1;
            if junk.1[index] {
                return Err(KalamError::new(
                    PgSqlErrorCode::ERRCODE_FDW_ERROR,
                    format!(
                        "a row of foreign table \"{}\" to change has no identity (NULL)",
                        self.target.relation
                    ),
                ));
            }
            self.rows.values.push(junk.0[index]);
            self.rows.nulls.push(false);
        }
        // SAFETY: the values are datums of the columns, in the buffer's order.
        if unsafe { self.rows.append()? } {
            self.flush()?;
        }
        Ok(())
    }

    /// Runs the statement once for each row taken since the last batch, in one request.
    fn flush(&mut self) -> Result<()> {
        let Some(batch) = self.rows.batch()? else { return Ok(()) };
        let target = &self.target;
        let transaction = transactions::for_write(&target.server)?;
        let client = target.server.client()?;
        let user_id = target.user_id.clone();
        let prepared = self.prepared.clone();
        let sql = self.sql.clone();
        let _in_flight = transactions::write_in_flight(&target.server);
        let prepared = runtime::call(async move {
            let prepared = match prepared {
                Some(prepared) => prepared,
                None => client.prepare(&sql, user_id.as_deref(), Some(&transaction)).await?,
            };
            client.execute_prepared_update(&prepared, batch, user_id.as_deref()).await?;
            Ok::<_, kalam_flight::Error>(prepared)
        })
        .map_err(|e| target.context(e))?;
        self.prepared = Some(prepared);
        Ok(())
    }

    /// Sends the last batch and closes the prepared statement (which the server also drops
    /// when the transaction ends).
    fn finish(&mut self) -> Result<()> {
        self.flush()?;
        if let Some(prepared) = self.prepared.take() {
            let client = self.target.server.client()?;
            let user_id = self.target.user_id.clone();
            // A statement that cannot be closed goes with its transaction.
            let _ = runtime::call(async move { client.close_prepared(&prepared, user_id.as_deref()).await });
        }
        Ok(())
    }
}
