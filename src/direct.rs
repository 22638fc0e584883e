//! Direct modify: an UPDATE or DELETE whose whole WHERE the server runs, and whose new values
//! PostgreSQL computes once (constants, parameters, `now()`), runs as one remote statement,
//! `UPDATE ... SET "c" = $1 WHERE <the scan's filters>`, instead of a scan that returns every
//! row to change and a change per row.
//!
//! PostgreSQL offers it ([`plan_direct_modify`]) only without row triggers, WITH CHECK OPTION
//! and stored generated columns; pg_kalam takes it when the scan below the ModifyTable is its
//! own, of the result relation, with no local filter, no RETURNING (the server has none) and
//! SET values it can send. The new values go as Arrow parameters, converted by the code that
//! converts an INSERT's rows; the filters' run-time values as literals, as a scan sends them.

use std::ffi::CString;

use kalam_pushdown::RemoteChange;
use pgrx::pg_sys;
use pgrx::{PgMemoryContexts, PgRelation, PgTupleDesc, pg_guard};

use crate::convert::write::RowBuffer;
use crate::deparse::{int_list, list_nodes, make_int_list};
use crate::error::Result;
use crate::modify::{SYSTEM_COLUMNS, Target, remote_change, sql_error, write_column};
use crate::scan::{Parameter, SCAN_PRIVATE_LEN, parameter_literals, remote_filters};
use crate::{runtime, transactions};

/// Positions in a direct modify's `fdw_private`, after the scan's own.
#[repr(usize)]
enum DirectPrivateIndex {
    /// Integer list: the 0-based attributes set (UPDATE), whose value expressions follow the
    /// filters' values in `fdw_exprs`.
    SetAttrs = SCAN_PRIVATE_LEN,
    /// Integer list: how many `fdw_exprs` the filters need, and whether the statement sets
    /// the command's row count (`canSetTag`).
    Counts = SCAN_PRIVATE_LEN + 1,
}

#[pg_guard]
pub unsafe extern "C-unwind" fn plan_direct_modify(
    root: *mut pg_sys::PlannerInfo,
    plan: *mut pg_sys::ModifyTable,
    result_relation: pg_sys::Index,
    _subplan_index: i32,
) -> bool {
    // SAFETY: the planner passes its ModifyTable, whose subplan is planned already.
    unsafe { plan_direct(root, plan, result_relation) }
}

unsafe fn plan_direct(
    root: *mut pg_sys::PlannerInfo,
    plan: *mut pg_sys::ModifyTable,
    result_relation: pg_sys::Index,
) -> bool {
    // SAFETY: see plan_direct_modify; node tags are checked before each cast.
    unsafe {
        let operation = (*plan).operation;
        if operation != pg_sys::CmdType::CMD_UPDATE && operation != pg_sys::CmdType::CMD_DELETE {
            return false;
        }
        let subplan = (*plan).plan.lefttree;
        if subplan.is_null() || (*subplan).type_ != pg_sys::NodeTag::T_ForeignScan {
            return false;
        }
        let fscan = subplan as *mut pg_sys::ForeignScan;
        if (*fscan).scan.scanrelid != result_relation
            || !(*fscan).scan.plan.qual.is_null()
            || !(*fscan).scan.plan.lefttree.is_null()
            || !(*plan).returningLists.is_null()
        {
            return false;
        }
        // A subquery condition (`NOT IN`, a scalar subquery, a numeric init plan sent as one) is
        // the server's in a SELECT only: a change's WHERE keeps the row-by-row path.
        let remote_conds = list_nodes((*fscan).fdw_private)
            .get(crate::scan::FdwPrivateIndex::RemoteConds as usize)
            .copied()
            .unwrap_or(std::ptr::null_mut());
        let baserel = pg_sys::find_base_rel(root, result_relation as i32);
        if (*baserel).fdw_private.is_null() {
            return false;
        }
        let info = &*((*baserel).fdw_private as *const crate::scan::RelInfo);
        let mut deparser = info.deparser(result_relation, true);
        let subquery = |c: *mut pg_sys::Node| deparser.clause(c.cast()).is_ok_and(|q| q.has_subquery());
        if list_nodes(remote_conds.cast()).into_iter().any(subquery) {
            return false;
        }
        let rte = *(*root).simple_rte_array.add(result_relation as usize);
        let relation = PgRelation::with_lock((*rte).relid, pg_sys::NoLock as _);
        let tupdesc = PgTupleDesc::from_pg_unchecked(relation.rd_att);
        let mut set_attrs = Vec::new();
        let mut set_exprs = std::ptr::null_mut();
        if operation == pg_sys::CmdType::CMD_UPDATE {
            let (mut tlist, mut colnos) = (std::ptr::null_mut(), std::ptr::null_mut());
            pg_sys::get_translated_update_targetlist(root, result_relation, &mut tlist, &mut colnos);
            // The first entries of the target list are the new values, one per updated column;
            // the row-identity junk columns follow.
            let colnos = int_list(colnos);
            for (entry, attno) in list_nodes(tlist).into_iter().zip(colnos) {
                let expr = (*(entry as *mut pg_sys::TargetEntry)).expr;
                if attno <= 0 || !computed_once(expr.cast()) {
                    return false;
                }
                let attr = attno as usize - 1;
                let writable = write_column(&tupdesc, attr, relation.name()).is_ok();
                if !writable || SYSTEM_COLUMNS.contains(&tupdesc.get(attr).expect("attr").name()) {
                    return false;
                }
                set_attrs.push(attno - 1);
                set_exprs = pg_sys::lappend(set_exprs, expr.cast());
            }
        }
        let filter_values = if (*fscan).fdw_exprs.is_null() { 0 } else { (*(*fscan).fdw_exprs).length };
        let counts = make_int_list([filter_values, (*plan).canSetTag as i32]);
        (*fscan).operation = operation;
        (*fscan).resultRelation = result_relation;
        (*fscan).fdw_exprs = pg_sys::list_concat((*fscan).fdw_exprs, set_exprs);
        (*fscan).fdw_private = pg_sys::lappend((*fscan).fdw_private, make_int_list(set_attrs).cast());
        (*fscan).fdw_private = pg_sys::lappend((*fscan).fdw_private, counts.cast());
        true
    }
}

/// Whether PostgreSQL computes `node` once for the whole statement: no column, nothing
/// volatile, no subquery run per row.
unsafe fn computed_once(node: *mut pg_sys::Node) -> bool {
    // SAFETY: a valid expression tree.
    unsafe {
        !pg_sys::contain_var_clause(node)
            && !pg_sys::contain_volatile_functions(node)
            && !pg_sys::contain_subplans(node)
    }
}

/// A direct modify being run.
struct DirectState {
    target: Target,
    change: RemoteChange,
    /// The statement as EXPLAIN shows it (run-time values as `$n`).
    shown_sql: String,
    /// Values of the filters, then the new values, computed when the statement runs.
    parameters: Vec<Parameter>,
    set_values: Vec<*mut pg_sys::ExprState>,
    values: RowBuffer,
    econtext: *mut pg_sys::ExprContext,
    sets_row_count: bool,
    done: bool,
}

#[pg_guard]
pub unsafe extern "C-unwind" fn begin_direct_modify(node: *mut pg_sys::ForeignScanState, _eflags: i32) {
    // SAFETY: the executor passes the scan node of a plan made by plan_direct_modify; the state
    // lives in the query context. Under EXPLAIN it is built for its SQL only.
    unsafe {
        let state = DirectState::new(node).unwrap_or_else(|e| e.report());
        let state = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state);
        (*node).fdw_state = state.cast();
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn iterate_direct_modify(
    node: *mut pg_sys::ForeignScanState,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: fdw_state was set by begin_direct_modify.
    unsafe {
        let state = &mut *((*node).fdw_state as *mut DirectState);
        if !state.done {
            state.done = true;
            let changed = state.run().unwrap_or_else(|e| e.report());
            let estate = (*node).ss.ps.state;
            if state.sets_row_count {
                (*estate).es_processed += changed;
            }
            if let Some(instrument) = (*node).ss.ps.instrument.as_mut() {
                instrument.tuplecount += changed as f64;
            }
        }
        pg_sys::ExecClearTuple((*node).ss.ss_ScanTupleSlot)
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn end_direct_modify(_node: *mut pg_sys::ForeignScanState) {
    // The state goes with the query's memory context.
}

#[pg_guard]
pub unsafe extern "C-unwind" fn explain_direct_modify(
    node: *mut pg_sys::ForeignScanState,
    es: *mut pg_sys::ExplainState,
) {
    // SAFETY: fdw_state was set by begin_direct_modify, which runs under EXPLAIN too.
    unsafe {
        let state = &*((*node).fdw_state as *mut DirectState);
        let sql = CString::new(state.shown_sql.as_str()).unwrap_or_else(|_| c"(contains NUL)".into());
        pg_sys::ExplainPropertyText(c"Remote SQL".as_ptr(), sql.as_ptr(), es);
    }
}

impl DirectState {
    unsafe fn new(node: *mut pg_sys::ForeignScanState) -> Result<Self> {
        // SAFETY: see begin_direct_modify.
        unsafe {
            let plan = (*node).ss.ps.plan as *mut pg_sys::ForeignScan;
            let relation = PgRelation::from_pg((*node).ss.ss_currentRelation);
            let tupdesc = PgTupleDesc::from_pg_unchecked(relation.rd_att);
            let private = list_nodes((*plan).fdw_private);
            let set_attrs: Vec<usize> = int_list(private[DirectPrivateIndex::SetAttrs as usize].cast())
                .into_iter()
                .map(|a| a as usize)
                .collect();
            let counts = int_list(private[DirectPrivateIndex::Counts as usize].cast());
            let (filter_values, sets_row_count) = (counts[0] as usize, counts[1] != 0);
            let (filters, parameters) = remote_filters(&relation, plan, node, filter_values)?;
            let set_values = list_nodes((*plan).fdw_exprs)
                .into_iter()
                .skip(filter_values)
                .map(|expr| pg_sys::ExecInitExpr(expr.cast(), node.cast()))
                .collect::<Vec<_>>();
            let columns = set_attrs
                .iter()
                .map(|&a| write_column(&tupdesc, a, relation.name()))
                .collect::<Result<_>>()?;
            let target = Target::new(&relation)?;
            let delete = (*plan).operation == pg_sys::CmdType::CMD_DELETE;
            let change = remote_change(&relation, &target, delete, &set_attrs, filters);
            let shown_sql = change.to_sql(None).map_err(sql_error)?;
            Ok(Self {
                target,
                change,
                shown_sql,
                parameters,
                set_values,
                values: RowBuffer::new(columns),
                econtext: (*node).ss.ps.ps_ExprContext,
                sets_row_count,
                done: false,
            })
        }
    }

    /// Runs the statement in the remote transaction; the rows it changed.
    fn run(&mut self) -> Result<u64> {
        let literals = parameter_literals(&self.parameters, self.econtext)?;
        let sql = self.change.to_sql(Some(&literals)).map_err(sql_error)?;
        let mut new_values = Vec::with_capacity(self.set_values.len());
        let mut nulls = Vec::with_capacity(self.set_values.len());
        for state in &self.set_values {
            let mut is_null = false;
            // SAFETY: the expression state was initialized for this node, whose context it
            // is evaluated in; the builders copy the value before the context resets.
            new_values
                .push(unsafe { pg_sys::ExecEvalExprSwitchContext(*state, self.econtext, &mut is_null) });
            nulls.push(is_null);
        }
        let parameters = if new_values.is_empty() {
            None
        } else {
            // SAFETY: each value is a datum of its column's type (the planner coerced it).
            unsafe { self.values.append(&new_values, &nulls)? };
            Some(self.values.finish()?)
        };
        let target = &self.target;
        let transaction = transactions::for_write(&target.server)?;
        let client = target.server.client()?;
        let user_id = target.user_id.clone();
        let _in_flight = transactions::write_in_flight(&target.server);
        let changed = runtime::call(async move {
            let user_id = user_id.as_deref();
            match parameters {
                None => client.execute_update_in(&sql, user_id, Some(&transaction)).await,
                Some(parameters) => {
                    let prepared = client.prepare(&sql, user_id, Some(&transaction)).await?;
                    let changed = client.execute_prepared_update(&prepared, parameters, user_id).await?;
                    let _ = client.close_prepared(&prepared, user_id).await;
                    Ok(changed)
                }
            }
        })
        .map_err(|e| target.context(e))?;
        Ok(changed.max(0) as u64)
    }
}
