//! Writes through foreign tables: INSERT and COPY FROM (and rows routed to a foreign
//! partition).
//!
//! Rows are converted into Arrow a column at a time ([`RowBuffer`]) and sent with Flight SQL
//! bulk ingest, `scan_batch_rows` rows per batch, inside the remote transaction of the
//! PostgreSQL transaction ([`transactions`]): nothing is seen elsewhere before COMMIT, and a
//! statement or transaction that fails leaves nothing on the server. Every column of the
//! foreign table is sent; a column the statement leaves out gets its local default or NULL (the
//! remote table's own defaults do not apply).
//!
//! Callbacks are thin shims over [`ModifyState`]; the state lives in the executor's query
//! memory context and is released with it, on error as well.

use pgrx::pg_sys::{self, Datum};
use pgrx::{PgMemoryContexts, PgRelation, PgSqlErrorCode, PgTupleDesc, pg_guard};

use crate::connection::Server;
use crate::convert::write::{RowBuffer, WriteColumn};
use crate::error::{KalamError, Result};
use crate::guc;
use crate::options::{self, TableOptions, TableType};
use crate::runtime;
use crate::scan::{live_attributes, remote_table};
use crate::transactions;

/// What an INSERT or COPY into one foreign table holds.
struct ModifyState {
    server: Server,
    namespace: String,
    table: String,
    relation: String,
    user_id: Option<String>,
    /// Attribute indexes sent, in the buffer's column order.
    attrs: Vec<usize>,
    buffer: RowBuffer,
    batch_rows: usize,
    values: Vec<Datum>,
    nulls: Vec<bool>,
    /// Where a row's values are read (detoasted, printed); reset after each row.
    row_context: pg_sys::MemoryContext,
}

#[pg_guard]
pub unsafe extern "C-unwind" fn is_foreign_rel_updatable(_relation: pg_sys::Relation) -> i32 {
    1 << pg_sys::CmdType::CMD_INSERT
}

#[pg_guard]
pub unsafe extern "C-unwind" fn plan_foreign_modify(
    _root: *mut pg_sys::PlannerInfo,
    plan: *mut pg_sys::ModifyTable,
    _result_relation: pg_sys::Index,
    _subplan_index: i32,
) -> *mut pg_sys::List {
    // SAFETY: the planner passes its ModifyTable node.
    unsafe {
        refuse_on_conflict(plan);
        if (*plan).operation != pg_sys::CmdType::CMD_INSERT {
            KalamError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "pg_kalam foreign tables take INSERT and COPY only, not UPDATE or DELETE yet",
            )
            .report();
        }
    }
    std::ptr::null_mut()
}

#[pg_guard]
pub unsafe extern "C-unwind" fn begin_foreign_modify(
    _mtstate: *mut pg_sys::ModifyTableState,
    rinfo: *mut pg_sys::ResultRelInfo,
    _fdw_private: *mut pg_sys::List,
    _subplan_index: i32,
    eflags: i32,
) {
    if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0 {
        return;
    }
    // SAFETY: the executor passes the result relation being written.
    unsafe { begin(rinfo) }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn begin_foreign_insert(
    mtstate: *mut pg_sys::ModifyTableState,
    rinfo: *mut pg_sys::ResultRelInfo,
) {
    // SAFETY: COPY passes no ModifyTableState; tuple routing passes the INSERT's.
    unsafe {
        if let Some(mtstate) = mtstate.as_ref() {
            refuse_on_conflict(mtstate.ps.plan as *mut pg_sys::ModifyTable);
        }
        begin(rinfo)
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

/// Sets up the write's state in the current (query) memory context.
unsafe fn begin(rinfo: *mut pg_sys::ResultRelInfo) {
    // SAFETY: see the callers.
    unsafe {
        let relation = PgRelation::from_pg((*rinfo).ri_RelationDesc);
        let mut state = ModifyState::new(&relation).unwrap_or_else(|e| e.report());
        // Row triggers and WITH CHECK OPTION queries may read the table: each row is sent
        // before the next one is made, so they see every row before theirs.
        let triggers = (*rinfo).ri_TrigDesc.as_ref().is_some_and(|t| {
            t.trig_insert_before_row || t.trig_insert_after_row || t.trig_insert_instead_row
        });
        if triggers || !(*rinfo).ri_WithCheckOptions.is_null() {
            state.batch_rows = 1;
        }
        let state = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state);
        (*rinfo).ri_FdwState = state.cast();
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn exec_foreign_insert(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    _plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: ri_FdwState was set by begin; the slot holds the row of the foreign table.
    unsafe {
        let state = &mut *((*rinfo).ri_FdwState as *mut ModifyState);
        pg_sys::slot_getallattrs(slot);
        let natts = (*(*slot).tts_tupleDescriptor).natts as usize;
        let values = std::slice::from_raw_parts((*slot).tts_values, natts);
        let nulls = std::slice::from_raw_parts((*slot).tts_isnull, natts);
        if let Err(e) = state.insert(values, nulls) {
            e.report();
        }
        slot
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn end_foreign_modify(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
) {
    // SAFETY: ri_FdwState was set by begin (absent under EXPLAIN).
    unsafe {
        if let Some(state) = ((*rinfo).ri_FdwState as *mut ModifyState).as_mut()
            && let Err(e) = state.flush()
        {
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

impl ModifyState {
    fn new(relation: &PgRelation) -> Result<Self> {
        // SAFETY: catalog lookups of an open relation.
        let (server, table_options) = unsafe {
            let table = pg_sys::GetForeignTable(relation.oid());
            (
                Server::lookup((*table).serverid)?,
                TableOptions::parse(&options::from_pg_list((*table).options))?,
            )
        };
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
        // SAFETY: an open relation's descriptor, read only.
        let tupdesc = unsafe { PgTupleDesc::from_pg_unchecked(relation.rd_att) };
        let attrs = live_attributes(relation);
        let mut columns = Vec::with_capacity(attrs.len());
        for &a in &attrs {
            let att = tupdesc.get(a).expect("attr");
            columns.push(WriteColumn::new(
                att.name(),
                att.type_oid().value(),
                att.type_mod(),
                relation.name(),
            )?);
        }
        let batch_rows = server.options.tuning.with_table(&table_options).batch_rows;
        let natts = tupdesc.len();
        Ok(Self {
            server,
            namespace: remote.namespace,
            table: remote.table,
            relation: relation.name().to_string(),
            user_id,
            attrs,
            buffer: RowBuffer::new(columns),
            batch_rows,
            values: Vec::with_capacity(natts),
            nulls: Vec::with_capacity(natts),
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
        })
    }

    /// Takes one row (all attributes of the table); sends a batch when it is full.
    fn insert(&mut self, values: &[Datum], nulls: &[bool]) -> Result<()> {
        self.values.clear();
        self.nulls.clear();
        for &a in &self.attrs {
            self.values.push(values[a]);
            self.nulls.push(nulls[a]);
        }
        // SAFETY: the slot's values are datums of the table's columns, in attribute order; what
        // reading them allocates goes to the row context, reset once the builders copied them.
        unsafe {
            let (buffer, values, nulls) = (&mut self.buffer, &self.values, &self.nulls);
            let appended =
                PgMemoryContexts::For(self.row_context).switch_to(|_| buffer.append(values, nulls));
            pg_sys::MemoryContextReset(self.row_context);
            appended?;
        }
        if self.buffer.rows() >= self.batch_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the rows taken since the last batch, in the PostgreSQL transaction's remote one.
    fn flush(&mut self) -> Result<()> {
        if self.buffer.rows() == 0 {
            return Ok(());
        }
        let batch = self.buffer.finish()?;
        let transaction = transactions::for_write(&self.server)?;
        let client = self.server.client()?;
        let (namespace, table, user_id) = (self.namespace.clone(), self.table.clone(), self.user_id.clone());
        let stream = futures::stream::iter([Ok(batch)]);
        let _in_flight = transactions::write_in_flight(&self.server);
        runtime::call(async move {
            client.ingest(&namespace, &table, stream, user_id.as_deref(), Some(&transaction)).await
        })
        .map_err(|e| {
            KalamError::from(e).with_detail(format!("writing to foreign table \"{}\"", self.relation))
        })?;
        Ok(())
    }
}
