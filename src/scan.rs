//! Foreign scan: planner callbacks (size, paths, plan) and executor callbacks (begin,
//! iterate, rescan, end, explain).
//!
//! Each callback is a thin `#[pg_guard]` shim over safe code returning `Result`; errors become
//! PostgreSQL ERRORs in the shim. The scan state lives in the executor's per-query memory
//! context with a drop-on-delete callback, so its Rust resources (the prefetching task and its
//! stream, the batches) are released on error and abort as well as at the end. The connection
//! itself is cached per backend (`connection`).
//!
//! Planning splits the relation's clauses ([`deparse`] decides which the server runs),
//! estimates rows from the server's own count, and hands the executor (`ForeignScan.fdw_private`,
//! see [`FdwPrivateIndex`]) the columns to fetch and the remote clauses; the values those
//! clauses need from PostgreSQL (parameters, stable expressions) are `fdw_exprs`, evaluated
//! when the scan starts and again at each rescan.

use std::ffi::CString;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use kalam_pushdown::aggregate::{AggregateInput, Function, Output, RemoteAggregate};
use kalam_pushdown::join::{JoinKind, JoinTree, JoinedTable, RemoteJoin};
use kalam_pushdown::{Literal, OrderLimit, Qual, RemoteColumn, RemoteScan, RemoteTable, SortKey};
use pgrx::pg_sys::{self, Datum};
use pgrx::{PgMemoryContexts, PgRelation, PgSqlErrorCode, PgTupleDesc, pg_guard};

use crate::connection::Server;
use crate::convert::{Arena, Converter, SUPPORTED_TYPES_HINT, arrow_type_for, pg_type_name};
use crate::deparse::{self, Class, Deparser, QualColumn, Subqueries};
use crate::error::{KalamError, Result};
use crate::guc;
use crate::options::{self, Costs, ScanTuning, TableOptions, TableType};
use crate::runtime;
use crate::stream::Prefetch;

/// Rows assumed for a table the server did not describe.
const ROWS_ESTIMATE_DEFAULT: f64 = 1000.0;

// ---------------------------------------------------------------------------------------------
// Planner

/// What planning learned of a foreign relation (its `RelOptInfo.fdw_private`).
pub(crate) struct RelInfo {
    /// The clauses of `baserestrictinfo` the server runs.
    pub(crate) remote: Vec<*mut pg_sys::RestrictInfo>,
    /// The table's columns as clauses may use them, by attribute number - 1.
    pub(crate) columns: Vec<Option<QualColumn>>,
    /// Rows the server is expected to send (after the remote clauses).
    fetched_rows: f64,
    /// Whether the server has the functions with PostgreSQL's float and JSON semantics.
    pub(crate) pg_functions: bool,
    /// The server's `fdw_startup_cost` and `fdw_tuple_cost`.
    pub(crate) costs: Costs,
    /// The statement's subqueries the server may run inside this table's clauses.
    pub(crate) subqueries: Option<Subqueries>,
}

impl RelInfo {
    /// A deparser of the table's clauses (range-table index `relid`); `outer_values` reads
    /// columns of other tables as values computed when the scan starts.
    pub(crate) fn deparser(&self, relid: pg_sys::Index, outer_values: bool) -> Deparser<'_> {
        let deparser =
            Deparser::new(relid, &self.columns, self.pg_functions).with_subqueries(self.subqueries);
        if outer_values { deparser.with_outer_values() } else { deparser }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_rel_size(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    foreigntableid: pg_sys::Oid,
) {
    // SAFETY: PostgreSQL passes valid planner structures for the foreign relation being
    // planned; the RelInfo lives in the planner's memory context, as long as the RelOptInfo.
    unsafe {
        let info = plan_relation(root, baserel, foreigntableid).unwrap_or_else(|e| e.report());
        let info = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(info);
        (*baserel).fdw_private = info.cast();
    }
}

/// Splits the relation's clauses into remote and local ones and estimates its rows: the rows
/// the server reports for the table (none known: [`ROWS_ESTIMATE_DEFAULT`]) times PostgreSQL's
/// selectivity of the clauses.
unsafe fn plan_relation(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    foreigntableid: pg_sys::Oid,
) -> Result<RelInfo> {
    // SAFETY: see get_foreign_rel_size; the relation is locked by the planner already.
    unsafe {
        let relation = PgRelation::with_lock(foreigntableid, pg_sys::NoLock as pg_sys::LOCKMODE);
        let (server, table_options) = foreign_table(&relation)?;
        let remote = remote_table(&relation, &table_options);
        let user_id = user_id_for(&table_options);
        let needs_user = table_options.table_type != TableType::Shared;
        // A server that cannot describe the table now (not running, no kalam.user_id yet) gets
        // every clause checked locally, and the default estimate.
        let described = if needs_user && user_id.is_none() {
            None
        } else {
            server.describe(&remote, user_id.as_deref()).ok()
        };
        let pg_functions = described.is_some() && server.has_pg_functions().unwrap_or(false);
        let tupdesc = PgTupleDesc::from_pg_unchecked(relation.rd_att);
        let columns: Vec<Option<QualColumn>> = (0..tupdesc.len())
            .map(|i| {
                let att = tupdesc.get(i).expect("attr");
                if att.is_dropped() {
                    return None;
                }
                let class = Class::of(att.type_oid().value());
                let remote_field = described.as_ref().and_then(|d| d.schema.field_with_name(att.name()).ok());
                let remote_matches =
                    remote_field.is_some_and(|f| class.is_none_or(|c| c.holds(f.data_type())));
                Some(QualColumn { index: i, class, remote_matches })
            })
            .collect();

        let relid = (*baserel).relid;
        let subqueries = Subqueries::planning(root, server.oid, (*baserel).userid);
        let mut deparser = Deparser::new(relid, &columns, pg_functions).with_subqueries(subqueries);
        let mut remote_list = std::ptr::null_mut();
        let mut remote = Vec::new();
        // For use_remote_estimate: the remote clauses that need no value from PostgreSQL (the
        // server counts the rows they keep), and every other clause (estimated here).
        let (mut countable, mut estimated_here) = (Vec::new(), std::ptr::null_mut());
        let mut remote_with_parameters = std::ptr::null_mut();
        for rinfo in deparse::list_nodes((*baserel).baserestrictinfo) {
            let rinfo = rinfo as *mut pg_sys::RestrictInfo;
            let parameters = deparser.parameters.len();
            match deparser.clause((*rinfo).clause) {
                Ok(qual) if !(*rinfo).pseudoconstant => {
                    remote.push(rinfo);
                    remote_list = pg_sys::lappend(remote_list, rinfo.cast());
                    // (A scalar subquery is only known to the executor.)
                    if deparser.parameters.len() == parameters && !qual.has_scalar_subquery() {
                        countable.push(qual);
                        continue;
                    }
                    remote_with_parameters = pg_sys::lappend(remote_with_parameters, rinfo.cast());
                }
                _ => {}
            }
            estimated_here = pg_sys::lappend(estimated_here, rinfo.cast());
        }
        // The server's count of the table; else ANALYZE's (reltuples, -1 if never analyzed).
        let total = described
            .as_ref()
            .and_then(|d| d.rows)
            .map(|r| r as f64)
            // (ANALYZE stores at least one page; PostgreSQL 13 leaves reltuples 0, not -1, before.)
            .or(((*baserel).pages > 0 && (*baserel).tuples >= 0.0).then_some((*baserel).tuples))
            .unwrap_or(ROWS_ESTIMATE_DEFAULT);
        let selectivity = |clauses| {
            pg_sys::clauselist_selectivity(
                root,
                clauses,
                relid as i32,
                pg_sys::JoinType::JOIN_INNER,
                std::ptr::null_mut(),
            )
        };
        (*baserel).tuples = total;
        let tuning = server.options.tuning.with_table(&table_options);
        let counted = if tuning.use_remote_estimate && described.is_some() && !countable.is_empty() {
            let count = RemoteScan {
                table: remote_table(&relation, &table_options),
                columns: remote_columns(&relation),
                projection: Vec::new(),
                filters: countable,
                order: OrderLimit::default(),
            };
            // A count that fails (the server went away) leaves the estimate to PostgreSQL.
            count.count_sql().ok().and_then(|sql| server.count(sql, user_id.as_deref()).ok())
        } else {
            None
        };
        let (rows, fetched_rows) = match counted {
            // The clauses the server did not count (the local ones, and the remote ones with
            // parameters) are estimated here, on the counted rows.
            Some(counted) => (
                counted as f64 * selectivity(estimated_here),
                counted as f64 * selectivity(remote_with_parameters),
            ),
            None => (total * selectivity((*baserel).baserestrictinfo), total * selectivity(remote_list)),
        };
        (*baserel).rows = pg_sys::clamp_row_est(rows);
        let fetched_rows = pg_sys::clamp_row_est(fetched_rows);
        Ok(RelInfo { remote, columns, fetched_rows, pg_functions, costs: server.options.costs, subqueries })
    }
}

/// Every attribute of a foreign table as a column of its remote scan (by attribute index),
/// with the Arrow type pg_kalam reads it as (`Null` for a type it cannot read).
pub(crate) fn remote_columns(relation: &PgRelation) -> Vec<RemoteColumn> {
    // SAFETY: an open relation's descriptor, read only.
    let tupdesc = unsafe { PgTupleDesc::from_pg_unchecked(relation.rd_att) };
    (0..tupdesc.len())
        .map(|a| {
            let att = tupdesc.get(a).expect("attr");
            let data_type = arrow_type_for(att.type_oid().value(), att.type_mod())
                .unwrap_or(arrow_schema::DataType::Null);
            RemoteColumn { name: att.name().to_string(), data_type }
        })
        .collect()
}

/// The foreign server of the foreign table `relation`, and the table's options.
pub(crate) fn foreign_table(relation: &PgRelation) -> Result<(Server, TableOptions)> {
    // SAFETY: catalog lookups of an open relation.
    unsafe {
        let table = pg_sys::GetForeignTable(relation.oid());
        Ok((
            Server::lookup((*table).serverid)?,
            TableOptions::parse(&options::from_pg_list((*table).options))?,
        ))
    }
}

/// The KalamDB user whose rows a table of `options` shows (`None` for shared tables).
pub(crate) fn user_id_for(options: &TableOptions) -> Option<String> {
    match options.table_type {
        TableType::Shared => None,
        TableType::User | TableType::Stream => guc::user_id(),
    }
}

/// The live (not dropped) attributes of a relation, as 0-based indexes.
pub(crate) fn live_attributes(relation: &PgRelation) -> Vec<usize> {
    // SAFETY: an open relation's descriptor, read only.
    let tupdesc = unsafe { PgTupleDesc::from_pg_unchecked(relation.rd_att) };
    (0..tupdesc.len()).filter(|&a| !tupdesc.get(a).expect("attr").is_dropped()).collect()
}

/// The remote table a foreign table reads: its options, else its schema and name.
pub(crate) fn remote_table(relation: &PgRelation, options: &TableOptions) -> RemoteTable {
    RemoteTable {
        namespace: options.namespace.clone().unwrap_or_else(|| relation.namespace().to_string()),
        table: options.table.clone().unwrap_or_else(|| relation.name().to_string()),
    }
}

/// The scan of a subquery planned as `scan` (a foreign scan of the table `table`) as the
/// server runs it inside another statement: its one output `column`, the clauses it sent. A
/// shared table only: the statement it goes into may carry no `kalam.user_id`, or another's.
///
/// # Safety
/// `scan` must be a plain table scan pg_kalam planned (its fdw_private a scan's), of `table`,
/// which the statement has locked.
pub(crate) unsafe fn subquery_scan(
    scan: *mut pg_sys::ForeignScan,
    table: pg_sys::Oid,
    column: usize,
    pg_functions: bool,
) -> std::result::Result<RemoteScan, deparse::Local> {
    // SAFETY: per the contract.
    unsafe {
        if deparse::list_nodes((*scan).fdw_private).len() != FdwPrivateIndex::Order as usize + 1 {
            return Err("a subquery that is not a plain scan");
        }
        let relation = PgRelation::with_lock(table, pg_sys::NoLock as pg_sys::LOCKMODE);
        let table_options = shared_table_options(&relation)?;
        let planned = FdwPrivate::from_list((*scan).fdw_private);
        if planned.order != OrderLimit::default() {
            return Err("a subquery with an order or a limit");
        }
        let qual_columns = executor_qual_columns(&relation);
        let mut deparser = Deparser::new(planned.clause_relid, &qual_columns, pg_functions);
        let mut filters = Vec::with_capacity(planned.remote_conds.len());
        for &clause in &planned.remote_conds {
            filters.push(deparser.clause(clause)?);
        }
        if !deparser.parameters.is_empty() {
            return Err("a subquery whose clauses need values PostgreSQL computes");
        }
        let columns = remote_columns(&relation);
        if columns.get(column).is_none_or(|c| c.data_type == arrow_schema::DataType::Null) {
            return Err("a subquery of a column pg_kalam cannot read");
        }
        Ok(RemoteScan {
            table: remote_table(&relation, &table_options),
            columns,
            projection: vec![column],
            filters,
            order: OrderLimit::default(),
        })
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_paths(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    _foreigntableid: pg_sys::Oid,
) {
    // SAFETY: arguments come from the planner; create_foreignscan_path copies what it keeps;
    // fdw_private was set by get_foreign_rel_size.
    unsafe {
        let info = &*((*baserel).fdw_private as *const RelInfo);
        // Every fetched row is transferred and converted; the clauses that stay local are
        // evaluated on each of them.
        let local_clauses = deparse::list_nodes((*baserel).baserestrictinfo).len() - info.remote.len();
        let cost = |fetched: f64| {
            info.costs.startup
                + fetched * (info.costs.tuple + local_clauses as f64 * pg_sys::cpu_operator_cost)
        };
        let (unordered, unparameterized) = (std::ptr::null_mut(), std::ptr::null_mut());
        let unsorted = cost(info.fetched_rows);
        let costs = (info.costs.startup, unsorted);
        add_foreign_path(root, baserel, (*baserel).rows, costs, unordered, unparameterized);

        // Sorted by the server, in the order the query wants next (ORDER BY, or the order of a
        // grouping or merge): sorting next to the data costs a tenth of sending the rows.
        let pathkeys = (*root).query_pathkeys;
        if !pathkeys.is_null() && crate::upper::sort_keys(baserel, info, pathkeys).is_some() {
            let sort = info.fetched_rows * info.costs.tuple * 0.1;
            let (startup, total) = (info.costs.startup + sort, unsorted + sort);
            add_foreign_path(root, baserel, (*baserel).rows, (startup, total), pathkeys, unparameterized);
        }

        // Parameterized paths: a join clause the server can run with the outer row's values
        // (`f.k = h.k`), so that a nested loop over a small relation fetches only matching rows.
        for param_info in parameterized_paths(root, baserel, info) {
            let rows = (*param_info).ppi_rows;
            let path_costs = (info.costs.startup, cost(rows));
            add_foreign_path(
                root,
                baserel,
                rows,
                path_costs,
                std::ptr::null_mut(),
                (*param_info).ppi_req_outer,
            );
        }
    }
}

/// Adds a foreign scan path of `rows` rows and (startup, total) costs, sorted by `pathkeys`
/// (NIL: unsorted), parameterized by `required_outer` (NULL: none).
unsafe fn add_foreign_path(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    rows: f64,
    (startup_cost, total_cost): (f64, f64),
    pathkeys: *mut pg_sys::List,
    required_outer: pg_sys::Relids,
) {
    // SAFETY: planner structures; the path is allocated in the planner's context.
    unsafe {
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16"))]
        let path = pg_sys::create_foreignscan_path(
            root,
            baserel,
            std::ptr::null_mut(),
            rows,
            startup_cost,
            total_cost,
            pathkeys,
            required_outer,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        #[cfg(feature = "pg17")]
        let path = pg_sys::create_foreignscan_path(
            root,
            baserel,
            std::ptr::null_mut(),
            rows,
            startup_cost,
            total_cost,
            pathkeys,
            required_outer,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        #[cfg(feature = "pg18")]
        let path = pg_sys::create_foreignscan_path(
            root,
            baserel,
            std::ptr::null_mut(),
            rows,
            0,
            startup_cost,
            total_cost,
            pathkeys,
            required_outer,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        pg_sys::add_path(baserel, path.cast());
    }
}

/// The parameterizations worth a path: one per set of outer relations that a shippable join
/// clause needs, from the relation's join clauses and from its equivalence classes (where
/// `f.k = h.k` lives), as postgres_fdw finds them.
unsafe fn parameterized_paths(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    info: &RelInfo,
) -> Vec<*mut pg_sys::ParamPathInfo> {
    // SAFETY: planner structures, read; get_baserel_parampathinfo caches its result on baserel.
    unsafe {
        let relid = (*baserel).relid;
        let mut clauses: Vec<*mut pg_sys::RestrictInfo> =
            deparse::list_nodes((*baserel).joininfo).into_iter().map(|n| n.cast()).collect();
        if (*baserel).has_eclass_joins {
            for expr in deparse::list_nodes((*(*baserel).reltarget).exprs) {
                let is_own_column = pgrx::is_a(expr, pg_sys::NodeTag::T_Var)
                    && (*(expr as *mut pg_sys::Var)).varno as pg_sys::Index == relid;
                if !is_own_column {
                    continue;
                }
                let implied = pg_sys::generate_implied_equalities_for_column(
                    root,
                    baserel,
                    Some(ec_member_is),
                    expr.cast(),
                    (*baserel).lateral_referencers,
                );
                clauses.extend(
                    deparse::list_nodes(implied).into_iter().map(|n| n.cast::<pg_sys::RestrictInfo>()),
                );
            }
        }
        let mut found: Vec<*mut pg_sys::ParamPathInfo> = Vec::new();
        for rinfo in clauses {
            if !pg_sys::join_clause_is_movable_to(rinfo, baserel) {
                continue;
            }
            let mut deparser = info.deparser(relid, true);
            if deparser.clause((*rinfo).clause).is_err() {
                continue;
            }
            let required = pg_sys::bms_union((*rinfo).clause_relids, (*baserel).lateral_relids);
            let required = pg_sys::bms_del_member(required, relid as i32);
            if pg_sys::bms_num_members(required) == 0 {
                continue;
            }
            let param_info = pg_sys::get_baserel_parampathinfo(root, baserel, required);
            if !found.contains(&param_info) {
                found.push(param_info);
            }
        }
        found
    }
}

/// The equivalence-class member that is the column being considered (`arg`).
#[pg_guard]
unsafe extern "C-unwind" fn ec_member_is(
    _root: *mut pg_sys::PlannerInfo,
    _rel: *mut pg_sys::RelOptInfo,
    _ec: *mut pg_sys::EquivalenceClass,
    member: *mut pg_sys::EquivalenceMember,
    arg: *mut std::ffi::c_void,
) -> bool {
    // SAFETY: the planner passes a valid member; `arg` is the Var given above.
    unsafe { pg_sys::equal((*member).em_expr.cast(), arg) }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_plan(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    _foreigntableid: pg_sys::Oid,
    best_path: *mut pg_sys::ForeignPath,
    tlist: *mut pg_sys::List,
    scan_clauses: *mut pg_sys::List,
    outer_plan: *mut pg_sys::Plan,
) -> *mut pg_sys::ForeignScan {
    // SAFETY: planner-provided pointers; every list built here is palloc'd in the planner's
    // context and becomes part of the plan; fdw_private was set by get_foreign_rel_size.
    unsafe {
        if (*baserel).reloptkind == pg_sys::RelOptKind::RELOPT_JOINREL {
            return join_plan(root, baserel, best_path, tlist, outer_plan);
        }
        if (*baserel).reloptkind == pg_sys::RelOptKind::RELOPT_UPPER_REL {
            return grouped_plan(root, baserel, best_path, tlist, outer_plan);
        }
        let info = &*((*baserel).fdw_private as *const RelInfo);
        let Some(order_by) = crate::upper::sort_keys(baserel, info, (*best_path).path.pathkeys) else {
            KalamError::new(PgSqlErrorCode::ERRCODE_FDW_ERROR, "a sorted scan's order cannot be shipped")
                .report()
        };
        let order = order_limit(root, best_path, order_by);
        let relid = (*baserel).relid;
        // The clauses the server runs go to fdw_private (read again when the scan starts);
        // the values they need that PostgreSQL computes go to fdw_exprs, where the planner
        // finishes them (set_plan_refs) so the executor can evaluate them.
        let (mut remote_exprs, mut local_exprs) = (std::ptr::null_mut(), std::ptr::null_mut());
        // A parameterized path brings its join clauses here, whose outer columns are values.
        let mut deparser = info.deparser(relid, true);
        for rinfo in deparse::list_nodes(scan_clauses) {
            let rinfo = rinfo as *mut pg_sys::RestrictInfo;
            if (*rinfo).pseudoconstant {
                continue; // the planner checks these once, above the scan
            }
            if deparser.clause((*rinfo).clause).is_ok() {
                remote_exprs = pg_sys::lappend(remote_exprs, (*rinfo).clause.cast());
            } else {
                local_exprs = pg_sys::lappend(local_exprs, (*rinfo).clause.cast());
            }
        }
        let fdw_exprs = deparse::make_node_list(deparser.parameters);
        // Only the columns the query returns or the local clauses read are fetched.
        let mut attrs: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        pg_sys::pull_varattnos((*(*baserel).reltarget).exprs.cast(), relid, &mut attrs);
        pg_sys::pull_varattnos(local_exprs.cast(), relid, &mut attrs);
        let fdw_private =
            FdwPrivate { order, ..FdwPrivate::from_attrs(attrs) }.into_list(remote_exprs, relid);
        pg_sys::make_foreignscan(
            tlist,
            local_exprs,
            relid,
            fdw_exprs,
            fdw_private,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            outer_plan,
        )
    }
}

/// The plan of a grouped relation the server computes ([`crate::upper`]): a scan of no
/// relation (`scanrelid` 0) whose output columns are the grouping target's expressions, with
/// every clause of the grouped table run on the server.
unsafe fn grouped_plan(
    root: *mut pg_sys::PlannerInfo,
    upper_rel: *mut pg_sys::RelOptInfo,
    best_path: *mut pg_sys::ForeignPath,
    tlist: *mut pg_sys::List,
    outer_plan: *mut pg_sys::Plan,
) -> *mut pg_sys::ForeignScan {
    // SAFETY: planner structures; fdw_private of both relations was set by pg_kalam.
    unsafe {
        let upper = crate::upper::grouped_info(upper_rel).expect("a grouped relation of pg_kalam's");
        let Some(order_by) = crate::upper::group_sort_keys(upper, (*best_path).path.pathkeys) else {
            KalamError::new(PgSqlErrorCode::ERRCODE_FDW_ERROR, "a grouped scan's order cannot be shipped")
                .report()
        };
        let order = order_limit(root, best_path, order_by);
        let exprs = deparse::make_node_list(upper.scan_exprs.iter().copied());
        let scan_tlist = pg_sys::add_to_flat_tlist(std::ptr::null_mut(), exprs);
        let having = deparse::make_node_list(upper.local_conds.iter().copied());
        let input = upper.input;
        let (fdw_private, fdw_exprs) = if let Some(join) = crate::join::join_info(input) {
            // The join sends no columns of its own: the grouped outputs follow its lists.
            let (fdw_private, fdw_exprs) = encode_join(root, join, std::ptr::null_mut(), &order);
            (crate::upper::encode(upper, pg_sys::InvalidOid, fdw_private), fdw_exprs)
        } else {
            table_grouping(root, upper, input, order)
        };
        pg_sys::make_foreignscan(
            tlist,
            having,
            0,
            fdw_exprs,
            fdw_private,
            scan_tlist,
            std::ptr::null_mut(),
            outer_plan,
        )
    }
}

/// The `fdw_private` and `fdw_exprs` of a grouped scan of the foreign table `input`: every
/// clause of the table runs on the server.
unsafe fn table_grouping(
    root: *mut pg_sys::PlannerInfo,
    upper: &crate::upper::UpperInfo,
    input: *mut pg_sys::RelOptInfo,
    order: OrderLimit,
) -> (*mut pg_sys::List, *mut pg_sys::List) {
    // SAFETY: planner structures; fdw_private of the table was set by pg_kalam.
    unsafe {
        let relid = (*input).relid;
        let info = &*((*input).fdw_private as *const RelInfo);
        let mut deparser = info.deparser(relid, false);
        let mut remote_exprs = std::ptr::null_mut();
        for rinfo in deparse::list_nodes((*input).baserestrictinfo) {
            let clause = (*(rinfo as *mut pg_sys::RestrictInfo)).clause;
            if deparser.clause(clause).is_err() {
                KalamError::new(
                    PgSqlErrorCode::ERRCODE_FDW_ERROR,
                    "a grouped scan's clause cannot be shipped",
                )
                .report();
            }
            remote_exprs = pg_sys::lappend(remote_exprs, clause.cast());
        }
        let fdw_exprs = deparse::make_node_list(deparser.parameters);
        let table = (**(*root).simple_rte_array.add(relid as usize)).relid;
        let scan = FdwPrivate { attrs: None, remote_conds: Vec::new(), clause_relid: relid, order };
        (crate::upper::encode(upper, table, scan.into_list(remote_exprs, relid)), fdw_exprs)
    }
}

/// `fdw_private` of a join's scan: a marker (no table scan's attribute list is `[-2]`), the
/// tables as (range-table index, OID) pairs, the tree (prefix: `[0, table]` or `[1, kind, ON
/// clauses, left..., right...]`), the clauses (each join's ON in tree order, then the WHERE),
/// the outputs as (table, attribute) pairs, and the order ([`encode_order`]).
const JOIN_MARKER: i32 = -2;
/// How many entries of `fdw_private` are the join's; a grouped join's follow.
pub(crate) const JOIN_PRIVATE_LEN: usize = 6;

/// The plan of a join the server computes ([`crate::join`]): a scan of no relation whose
/// output columns are the join's columns.
unsafe fn join_plan(
    root: *mut pg_sys::PlannerInfo,
    joinrel: *mut pg_sys::RelOptInfo,
    best_path: *mut pg_sys::ForeignPath,
    tlist: *mut pg_sys::List,
    outer_plan: *mut pg_sys::Plan,
) -> *mut pg_sys::ForeignScan {
    // SAFETY: planner structures; fdw_private of the join was set by pg_kalam.
    unsafe {
        let info = crate::join::join_info(joinrel).expect("a join planned by pg_kalam");
        // The columns the join's target reads: the topmost join's target may compute
        // expressions of them (the query's scan/join target, applied after the join was planned),
        // which the plan's projection computes from the scan tuple.
        let vars = pg_sys::pull_var_clause(
            (*(*joinrel).reltarget).exprs.cast(),
            pg_sys::PVC_RECURSE_PLACEHOLDERS as i32,
        );
        let scan_tlist = pg_sys::add_to_flat_tlist(std::ptr::null_mut(), vars);
        // Sorted (and cut) by the server: each key is one of the columns sent.
        let outputs = deparse::list_nodes(scan_tlist);
        let output = |var: *mut pg_sys::Var| {
            outputs.iter().position(|&entry| {
                pg_sys::equal((*(entry as *mut pg_sys::TargetEntry)).expr.cast(), var.cast())
            })
        };
        let Some(order_by) = crate::upper::join_sort_keys(info, (*best_path).path.pathkeys, output) else {
            KalamError::new(PgSqlErrorCode::ERRCODE_FDW_ERROR, "a sorted join's order cannot be shipped")
                .report()
        };
        let order = order_limit(root, best_path, order_by);
        let (fdw_private, fdw_exprs) = encode_join(root, info, scan_tlist, &order);
        pg_sys::make_foreignscan(
            tlist,
            std::ptr::null_mut(),
            0,
            fdw_exprs,
            fdw_private,
            scan_tlist,
            std::ptr::null_mut(),
            outer_plan,
        )
    }
}

/// The `fdw_private` and `fdw_exprs` of a scan of the join `info` (see [`JOIN_MARKER`]),
/// sending the columns of `scan_tlist` (Vars of the join's tables; NIL: none) in `order`.
unsafe fn encode_join(
    root: *mut pg_sys::PlannerInfo,
    info: &crate::join::JoinInfo,
    scan_tlist: *mut pg_sys::List,
    order: &OrderLimit,
) -> (*mut pg_sys::List, *mut pg_sys::List) {
    // SAFETY: planner structures; lists in the planner's memory.
    unsafe {
        let (mut shape, mut clauses) = (Vec::new(), Vec::new());
        encode_tree(&info.tree, &mut shape, &mut clauses);
        clauses.extend(info.filters.iter().copied());
        let mut deparser = info.deparser();
        let mut clause_list = std::ptr::null_mut();
        for &clause in &clauses {
            if deparser.clause(clause).is_err() {
                KalamError::new(PgSqlErrorCode::ERRCODE_FDW_ERROR, "a join's clause cannot be shipped")
                    .report();
            }
            clause_list = pg_sys::lappend(clause_list, clause.cast());
        }
        let fdw_exprs = deparse::make_node_list(deparser.parameters);
        let mut outputs = Vec::new();
        for entry in deparse::list_nodes(scan_tlist) {
            let var = (*(entry as *mut pg_sys::TargetEntry)).expr as *mut pg_sys::Var;
            let table = info
                .tables
                .iter()
                .position(|&(relid, _)| relid == (*var).varno as pg_sys::Index)
                .expect("a column of the join's tables");
            outputs.extend([table as i32, (*var).varattno as i32 - 1]);
        }
        let mut tables = Vec::new();
        for &(relid, _) in &info.tables {
            let oid = (**(*root).simple_rte_array.add(relid as usize)).relid;
            tables.extend([relid as i32, u32::from(oid) as i32]);
        }
        let mut fdw_private =
            pg_sys::lappend(std::ptr::null_mut(), deparse::make_int_list([JOIN_MARKER]).cast());
        for part in [deparse::make_int_list(tables), deparse::make_int_list(shape)] {
            fdw_private = pg_sys::lappend(fdw_private, part.cast());
        }
        fdw_private = pg_sys::lappend(fdw_private, clause_list.cast());
        fdw_private = pg_sys::lappend(fdw_private, deparse::make_int_list(outputs).cast());
        fdw_private = pg_sys::lappend(fdw_private, deparse::make_int_list(encode_order(order)).cast());
        (fdw_private, fdw_exprs)
    }
}

/// Appends `tree` in prefix form to `shape`, and its ON clauses (in the same order) to
/// `clauses`.
fn encode_tree(tree: &crate::join::Tree, shape: &mut Vec<i32>, clauses: &mut Vec<*mut pg_sys::Expr>) {
    match tree {
        crate::join::Tree::Table(i) => shape.extend([0, *i as i32]),
        crate::join::Tree::Join { kind, left, right, on } => {
            shape.extend([1, join_kind_code(*kind), on.len() as i32]);
            clauses.extend(on.iter().copied());
            encode_tree(left, shape, clauses);
            encode_tree(right, shape, clauses);
        }
    }
}

fn join_kind_code(kind: JoinKind) -> i32 {
    match kind {
        JoinKind::Inner => 0,
        JoinKind::Left => 1,
        JoinKind::Right => 2,
        JoinKind::Full => 3,
        JoinKind::Semi => 4,
        JoinKind::Anti => 5,
    }
}

/// The tree `encode_tree` wrote, its ON clauses taken from `quals` (in order); returns the
/// tree, and how many of `shape` and of `quals` it took.
fn decode_tree(shape: &[i32], quals: &[Qual]) -> (JoinTree, usize, usize) {
    match shape {
        [0, table, ..] => (JoinTree::Table(*table as usize), 2, 0),
        [1, kind, count, rest @ ..] => {
            let kind = [
                JoinKind::Inner,
                JoinKind::Left,
                JoinKind::Right,
                JoinKind::Full,
                JoinKind::Semi,
                JoinKind::Anti,
            ][*kind as usize];
            let count = *count as usize;
            let on = quals[..count].to_vec();
            let (left, left_shape, left_quals) = decode_tree(rest, &quals[count..]);
            let (right, right_shape, right_quals) =
                decode_tree(&rest[left_shape..], &quals[count + left_quals..]);
            let tree = JoinTree::Join { kind, left: Box::new(left), right: Box::new(right), on };
            (tree, 3 + left_shape + right_shape, count + left_quals + right_quals)
        }
        _ => unreachable!("encoded by encode_tree"),
    }
}

/// What a join's `fdw_private` ([`join_plan`]) describes, ready to run.
struct JoinParts {
    /// The join (its order is `order`, left for the caller to place).
    join: RemoteJoin,
    order: OrderLimit,
    parameters: Vec<Parameter>,
    /// The table whose options rule the scan: the first user table, if any (its statement
    /// carries `kalam.user_id`), else the first.
    relation: PgRelation,
    server: Server,
    table_options: TableOptions,
    tuning: ScanTuning,
    /// `(s.a r1) INNER JOIN (s.b r2)`.
    label: String,
    /// Each table's range-table index (as the plan's clauses name it) and the number of its
    /// first column.
    relations: Vec<(pg_sys::Index, usize)>,
    /// Each table's columns as clauses use them (in `relations`' order).
    qual_columns: Vec<Vec<Option<QualColumn>>>,
}

/// The join of a scan of no relation ([`join_plan`]'s encoding).
unsafe fn decode_join(
    node: *mut pg_sys::ForeignScanState,
    plan: *mut pg_sys::ForeignScan,
) -> Result<JoinParts> {
    // SAFETY: a ForeignScan made by `join_plan` (or a grouped one over a join); its tables are
    // locked by the plan.
    unsafe {
        let parts = deparse::list_nodes((*plan).fdw_private);
        let ids = deparse::int_list(parts[1].cast());
        let shape = deparse::int_list(parts[2].cast());
        let clauses: Vec<*mut pg_sys::Node> = deparse::list_nodes(parts[3].cast());
        let outputs: Vec<(usize, usize)> =
            deparse::int_list(parts[4].cast()).chunks(2).map(|p| (p[0] as usize, p[1] as usize)).collect();
        let order = decode_order(&deparse::int_list(parts[5].cast()));
        let relations: Vec<(pg_sys::Index, PgRelation)> = ids
            .chunks(2)
            .map(|p| {
                let oid = pg_sys::Oid::from(p[1] as u32);
                (p[0] as pg_sys::Index, PgRelation::with_lock(oid, pg_sys::NoLock as pg_sys::LOCKMODE))
            })
            .collect();
        let qual_columns: Vec<Vec<Option<QualColumn>>> =
            relations.iter().map(|(_, relation)| executor_qual_columns(relation)).collect();
        let mut deparser = Deparser::new(relations[0].0, &qual_columns[0], true)
            .with_subqueries(Subqueries::executing(node, plan));
        let mut offset = qual_columns[0].len();
        for ((relid, _), columns) in relations.iter().zip(&qual_columns).skip(1) {
            deparser = deparser.with_relation(*relid, columns, offset);
            offset += columns.len();
        }
        let mut quals = Vec::with_capacity(clauses.len());
        for &clause in &clauses {
            quals.push(deparser.clause(clause.cast()).map_err(|why| {
                KalamError::new(
                    PgSqlErrorCode::ERRCODE_FDW_ERROR,
                    format!("a join clause planned for the server can no longer be sent: {why}"),
                )
            })?);
        }
        let expressions = deparse::list_nodes((*plan).fdw_exprs);
        if expressions.len() != deparser.parameters.len() {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_ERROR,
                "a join's plan computes other values than its clauses need",
            ));
        }
        let parameters = expressions
            .into_iter()
            .map(|expr| Parameter {
                state: pg_sys::ExecInitExpr(expr.cast(), node.cast()),
                type_oid: pg_sys::exprType(expr),
            })
            .collect();
        let (tree, _, used) = decode_tree(&shape, &quals);
        let filters = quals[used..].to_vec();
        let mut tables = Vec::with_capacity(relations.len());
        let mut names = Vec::with_capacity(relations.len());
        let mut scoped = None;
        for (i, (_, relation)) in relations.iter().enumerate() {
            let (_, options) = foreign_table(relation)?;
            if options.table_type != TableType::Shared && scoped.is_none() {
                scoped = Some(i);
            }
            tables.push(JoinedTable {
                table: remote_table(relation, &options),
                columns: remote_columns(relation),
            });
            names.push(format!("{}.{} r{}", relation.namespace(), relation.name(), i + 1));
        }
        let label = crate::join::relations_label(&tree, &names);
        let mut numbering = Vec::with_capacity(relations.len());
        let mut first = 0;
        for ((relid, _), table) in relations.iter().zip(&tables) {
            numbering.push((*relid, first));
            first += table.columns.len();
        }
        let relation = relations.into_iter().nth(scoped.unwrap_or(0)).expect("a join has tables").1;
        let (server, table_options) = foreign_table(&relation)?;
        let tuning = server.options.tuning.with_table(&table_options);
        let join = RemoteJoin { tables, tree, filters, outputs, order: OrderLimit::default() };
        Ok(JoinParts {
            join,
            order,
            parameters,
            relation,
            server,
            table_options,
            tuning,
            label,
            relations: numbering,
            qual_columns,
        })
    }
}

/// The options of `relation` if it is a shared table: a subquery's statement goes into
/// another statement, which may carry no `kalam.user_id`, or another user's.
pub(crate) fn shared_table_options(
    relation: &PgRelation,
) -> std::result::Result<TableOptions, deparse::Local> {
    let (_, options) = foreign_table(relation).map_err(|_| "a subquery of a table without options")?;
    if options.table_type != TableType::Shared {
        return Err("a subquery of a KalamDB user or stream table");
    }
    Ok(options)
}

/// A scalar subquery's grouped scan, as its plan describes it (a scan of no relation made by
/// [`grouped_plan`]).
pub(crate) struct GroupedSubquery {
    /// Its tables: (range-table index in the subquery, OID).
    pub(crate) tables: Vec<(pg_sys::Index, pg_sys::Oid)>,
    /// The clauses of its joins' ONs.
    pub(crate) on: Vec<*mut pg_sys::Node>,
    /// The clauses of its WHERE.
    pub(crate) filters: Vec<*mut pg_sys::Node>,
    /// The expressions it aggregates.
    pub(crate) computed: Vec<*mut pg_sys::Node>,
    pub(crate) group_by: Vec<usize>,
    pub(crate) outputs: Vec<Output>,
    pub(crate) order: OrderLimit,
}

/// The grouped scan `scan` (its `fdw_private`), or why it is not one.
///
/// # Safety
/// `scan` must be a ForeignScan of pg_kalam's.
pub(crate) unsafe fn grouped_subquery(
    scan: *mut pg_sys::ForeignScan,
) -> std::result::Result<GroupedSubquery, &'static str> {
    // SAFETY: fdw_private made by this module and `crate::upper::encode`.
    unsafe {
        if (*scan).scan.scanrelid != 0 || (*scan).fdw_private.is_null() {
            return Err("a subquery that is not grouped");
        }
        let parts = deparse::list_nodes((*scan).fdw_private);
        let over_join = deparse::int_list(parts[0].cast()) == [JOIN_MARKER];
        let from = if over_join { JOIN_PRIVATE_LEN } else { SCAN_PRIVATE_LEN };
        let (table, group_by, outputs, computed) =
            crate::upper::decode((*scan).fdw_private, from).ok_or("a subquery that is not grouped")?;
        if over_join {
            let ids = deparse::int_list(parts[1].cast());
            let shape = deparse::int_list(parts[2].cast());
            let clauses = deparse::list_nodes(parts[3].cast());
            let placeholders = vec![Qual::And(Vec::new()); clauses.len()];
            let (_, _, on_count) = decode_tree(&shape, &placeholders);
            Ok(GroupedSubquery {
                tables: ids
                    .chunks(2)
                    .map(|p| (p[0] as pg_sys::Index, pg_sys::Oid::from(p[1] as u32)))
                    .collect(),
                on: clauses[..on_count].to_vec(),
                filters: clauses[on_count..].to_vec(),
                computed,
                group_by,
                outputs,
                order: decode_order(&deparse::int_list(parts[5].cast())),
            })
        } else {
            let private = FdwPrivate::from_list((*scan).fdw_private);
            Ok(GroupedSubquery {
                tables: vec![(private.clause_relid, table)],
                on: Vec::new(),
                filters: private.remote_conds.into_iter().map(|c| c.cast()).collect(),
                computed,
                group_by,
                outputs,
                order: private.order,
            })
        }
    }
}

/// The grouped query a subquery's scan state sends (begun before the statement's own plan),
/// with how many parameters it has.
///
/// # Safety
/// `state` must be a plan state of the statement.
pub(crate) unsafe fn planned_aggregate(state: *mut pg_sys::PlanState) -> Option<(RemoteAggregate, usize)> {
    // SAFETY: the node tag is checked before the cast; fdw_state is a ScanState of ours.
    unsafe {
        if state.is_null() || (*state).type_ != pg_sys::NodeTag::T_ForeignScanState {
            return None;
        }
        if (*(state as *mut pg_sys::ForeignScanState)).fdw_state.is_null() {
            return None;
        }
        let scan = &*((*(state as *mut pg_sys::ForeignScanState)).fdw_state as *const ScanState);
        match &scan.remote {
            RemoteQuery::Aggregate(aggregate) => Some((aggregate.clone(), scan.parameters.len())),
            _ => None,
        }
    }
}

/// The order and bounds a path promises: its pathkeys' `order_by`, and the query's LIMIT and
/// OFFSET when the path is the one that applies them (its `fdw_private` set by
/// [`crate::upper`]'s final path).
unsafe fn order_limit(
    root: *mut pg_sys::PlannerInfo,
    best_path: *mut pg_sys::ForeignPath,
    order_by: Vec<SortKey>,
) -> OrderLimit {
    // SAFETY: planner structures.
    unsafe {
        let (limit, offset) = if (*best_path).fdw_private.is_null() {
            (None, 0)
        } else {
            crate::upper::limit_of((*root).parse).expect("bounds checked when the path was made")
        };
        OrderLimit { order_by, limit, offset }
    }
}

/// Positions in `ForeignScan.fdw_private`, a list of four lists (a grouped scan's has three
/// more, [`crate::upper::encode`]).
#[repr(usize)]
pub(crate) enum FdwPrivateIndex {
    /// Integer list: the 0-based attribute indexes to fetch, or `[-1]` for every column.
    Attrs = 0,
    /// Expression list: the clauses the server runs (ANDed).
    RemoteConds = 1,
    /// Integer list of one: the range-table index the clauses' columns name. fdw_private is
    /// not adjusted when the plan is finished, so in a subquery's plan this stays the
    /// subquery's index while `scanrelid` becomes the flattened one.
    ClauseRelid = 2,
    /// Integer list: LIMIT (present, then its high and low 32 bits), OFFSET (high, low), then
    /// a triple per sort key (column, descending, NULLS FIRST).
    Order = 3,
}

/// How many entries of `fdw_private` are the scan's ([`FdwPrivateIndex`]); a grouped scan's
/// and a direct modify's own follow.
pub(crate) const SCAN_PRIVATE_LEN: usize = 4;

/// What the planner tells the executor.
struct FdwPrivate {
    /// 0-based attribute indexes the query reads; `None` = every column (a whole-row reference).
    attrs: Option<Vec<usize>>,
    /// The clauses the server runs.
    remote_conds: Vec<*mut pg_sys::Expr>,
    /// The range-table index their columns name.
    clause_relid: pg_sys::Index,
    /// The order and bounds of the rows.
    order: OrderLimit,
}

impl FdwPrivate {
    /// From `pull_varattnos` output (members offset by `FirstLowInvalidHeapAttributeNumber`).
    unsafe fn from_attrs(attrs: *const pg_sys::Bitmapset) -> Self {
        // SAFETY: NULL (empty) or the planner's set; system columns are not fetched.
        let attrs = unsafe {
            let whole_row = pg_sys::bms_is_member(-pg_sys::FirstLowInvalidHeapAttributeNumber, attrs);
            (!whole_row).then(|| deparse::attribute_indexes(attrs))
        };
        Self { attrs, remote_conds: Vec::new(), clause_relid: 0, order: OrderLimit::default() }
    }

    /// Encoded as [`FdwPrivateIndex`] says.
    unsafe fn into_list(
        self,
        remote_conds: *mut pg_sys::List,
        clause_relid: pg_sys::Index,
    ) -> *mut pg_sys::List {
        let values: Vec<i32> = match self.attrs {
            None => vec![-1],
            Some(indexes) => indexes.into_iter().map(|i| i as i32).collect(),
        };
        // SAFETY: the lists are allocated in the current (planner) memory context.
        unsafe {
            let list = pg_sys::lappend(std::ptr::null_mut(), deparse::make_int_list(values).cast());
            let list = pg_sys::lappend(list, remote_conds.cast());
            let list = pg_sys::lappend(list, deparse::make_int_list([clause_relid as i32]).cast());
            pg_sys::lappend(list, deparse::make_int_list(encode_order(&self.order)).cast())
        }
    }

    unsafe fn from_list(list: *mut pg_sys::List) -> Self {
        // SAFETY: the list was built by `into_list` and copied with the plan.
        unsafe {
            let parts = deparse::list_nodes(list);
            let values = deparse::int_list(parts[FdwPrivateIndex::Attrs as usize].cast());
            let remote_conds =
                deparse::list_nodes(parts[FdwPrivateIndex::RemoteConds as usize] as *mut pg_sys::List)
                    .into_iter()
                    .map(|node| node.cast())
                    .collect();
            let attrs = if values.first() == Some(&-1) {
                None
            } else {
                Some(values.into_iter().map(|v| v as usize).collect())
            };
            let clause_relid =
                deparse::int_list(parts[FdwPrivateIndex::ClauseRelid as usize].cast())[0] as pg_sys::Index;
            let order = decode_order(&deparse::int_list(parts[FdwPrivateIndex::Order as usize].cast()));
            Self { attrs, remote_conds, clause_relid, order }
        }
    }
}

/// [`FdwPrivateIndex::Order`]'s integers.
fn encode_order(order: &OrderLimit) -> Vec<i32> {
    let halves = |v: u64| [(v >> 32) as u32 as i32, v as u32 as i32];
    let mut values = vec![order.limit.is_some() as i32];
    values.extend(halves(order.limit.unwrap_or(0)));
    values.extend(halves(order.offset));
    for key in &order.order_by {
        values.extend([key.key as i32, key.descending as i32, key.nulls_first as i32]);
    }
    values
}

fn decode_order(values: &[i32]) -> OrderLimit {
    let whole = |high: i32, low: i32| (u64::from(high as u32) << 32) | u64::from(low as u32);
    let [present, limit_high, limit_low, offset_high, offset_low, keys @ ..] = values else {
        unreachable!("encoded by encode_order")
    };
    OrderLimit {
        order_by: keys
            .chunks(3)
            .map(|k| SortKey { key: k[0] as usize, descending: k[1] != 0, nulls_first: k[2] != 0 })
            .collect(),
        limit: (*present != 0).then(|| whole(*limit_high, *limit_low)),
        offset: whole(*offset_high, *offset_low),
    }
}

// ---------------------------------------------------------------------------------------------
// Executor

/// A column fetched from the server.
struct Fetched {
    /// Index of the attribute in the scan tuple.
    attr: usize,
    name: String,
    pg_type: pg_sys::Oid,
    typmod: i32,
    /// Chosen when the result schema arrives, with the Arrow type it was chosen for.
    converter: Option<(Converter, arrow_schema::DataType)>,
    values: Vec<Datum>,
    nulls: Vec<bool>,
    /// Holds the column's text, bytea, numeric and uuid values of the current batch.
    arena: Arena,
}

impl Fetched {
    fn new(name: String, attr: usize, pg_type: pg_sys::Oid, typmod: i32) -> Self {
        Self {
            attr,
            name,
            pg_type,
            typmod,
            converter: None,
            values: Vec::new(),
            nulls: Vec::new(),
            arena: Arena::default(),
        }
    }
}

/// The `attr` of a fetched column that is no attribute of the scan tuple (what an average is
/// computed from).
const HIDDEN: usize = usize::MAX;

/// An aggregate computed here from what the server sent: an `avg` sent as its exact sum
/// (`fetched[sum]`, numeric) and its count (`fetched[count]`, bigint), since PostgreSQL's own
/// `avg` of integers and numerics is `numeric_div(sum, count)`, which sets its scale from the
/// values; a sum of values of several scales, sent with the largest scale of them
/// (`fetched[scale]`, bigint), to which PostgreSQL's sum would show it (rounding to it is
/// exact: no value added had more digits).
struct Average {
    attr: usize,
    sum: usize,
    count: Option<usize>,
    scale: Option<usize>,
    values: Vec<Datum>,
    nulls: Vec<bool>,
}

/// A fetched column's converted values, read by [`ScanState::next_row`] for each row without
/// bounds checks: pointers into [`Fetched::values`]/[`Fetched::nulls`], valid until the next
/// conversion.
struct RowSource {
    attr: usize,
    values: *const Datum,
    nulls: *const bool,
}

/// A value of the remote clauses that PostgreSQL computes when the scan starts.
pub(crate) struct Parameter {
    state: *mut pg_sys::ExprState,
    type_oid: pg_sys::Oid,
}

fn remote_sql_error(e: kalam_pushdown::Error) -> KalamError {
    KalamError::new(PgSqlErrorCode::ERRCODE_FDW_ERROR, format!("cannot build the remote query: {e}"))
}

/// The remote clauses of a foreign scan's plan, read again as [`Qual`]s (the planner shipped
/// them, so each one is shippable), and the values they need, whose expressions are the first
/// `parameters` of `fdw_exprs`, ready to be evaluated in `node`.
///
/// # Safety
/// `plan` must be a ForeignScan made by [`get_foreign_plan`] of `relation`, `node` its state.
/// The columns of `relation` as the executor deparses planned clauses again (each was
/// checked against the server's types when planned).
fn executor_qual_columns(relation: &PgRelation) -> Vec<Option<QualColumn>> {
    // SAFETY: an open relation's descriptor, read only.
    let tupdesc = unsafe { PgTupleDesc::from_pg_unchecked(relation.rd_att) };
    (0..tupdesc.len())
        .map(|a| {
            let att = tupdesc.get(a).expect("attr");
            let class = Class::of(att.type_oid().value());
            (!att.is_dropped()).then_some(QualColumn { index: a, class, remote_matches: true })
        })
        .collect()
}

pub(crate) unsafe fn remote_filters(
    relation: &PgRelation,
    plan: *mut pg_sys::ForeignScan,
    node: *mut pg_sys::ForeignScanState,
    parameters: usize,
) -> Result<(Vec<Qual>, Vec<Parameter>)> {
    // SAFETY: per the contract.
    unsafe {
        let wanted = FdwPrivate::from_list((*plan).fdw_private);
        let qual_columns = executor_qual_columns(relation);
        let mut deparser = Deparser::new(wanted.clause_relid, &qual_columns, true)
            .with_outer_values()
            .with_subqueries(Subqueries::executing(node, plan));
        let mut filters = Vec::with_capacity(wanted.remote_conds.len());
        for clause in &wanted.remote_conds {
            filters.push(deparser.clause(*clause).map_err(|why| {
                KalamError::new(
                    PgSqlErrorCode::ERRCODE_FDW_ERROR,
                    format!("a clause planned for the server can no longer be sent: {why}"),
                )
            })?);
        }
        if parameters != deparser.parameters.len() {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_ERROR,
                format!(
                    "the plan computes {parameters} values for the remote clauses, which need {}",
                    deparser.parameters.len()
                ),
            ));
        }
        let parameters = deparse::list_nodes((*plan).fdw_exprs)
            .into_iter()
            .take(parameters)
            .map(|expr| Parameter {
                state: pg_sys::ExecInitExpr(expr.cast(), node.cast()),
                type_oid: pg_sys::exprType(expr),
            })
            .collect();
        Ok((filters, parameters))
    }
}

/// The literals of `parameters`' values, computed by PostgreSQL now in `econtext`.
pub(crate) fn parameter_literals(
    parameters: &[Parameter],
    econtext: *mut pg_sys::ExprContext,
) -> Result<Vec<kalam_pushdown::Literal>> {
    let mut values = Vec::with_capacity(parameters.len());
    for parameter in parameters {
        let mut is_null = false;
        // SAFETY: the expression state was initialized for the plan node whose expression
        // context `econtext` is; the datum is read before that context resets.
        let value = unsafe {
            let datum = pg_sys::ExecEvalExprSwitchContext(parameter.state, econtext, &mut is_null);
            deparse::literal(datum, is_null, parameter.type_oid)
        };
        values.push(value.ok_or_else(|| {
            KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_ERROR,
                format!(
                    "a value for the remote query has type {}, which cannot be sent",
                    pg_type_name(parameter.type_oid)
                ),
            )
        })?);
    }
    Ok(values)
}

/// What EXPLAIN ANALYZE reports about the remote side of a scan.
#[derive(Default)]
struct ScanStats {
    batches: u64,
    rows: u64,
    /// Bytes of the Flight messages that carried the batches.
    bytes: u64,
    /// Time the backend waited for the server (connecting, planning, the next batch).
    wait: Duration,
    /// Time spent converting Arrow values into datums.
    convert: Duration,
}

/// Everything a running scan holds. Dropped with the executor's query memory context (or, for
/// ANALYZE's sample, when the sampling returns or unwinds).
pub(crate) struct ScanState {
    server: Server,
    relation: String,
    table_type: TableType,
    tuning: ScanTuning,
    /// What the server runs (the remote clauses with their parameters unbound).
    remote: RemoteQuery,
    /// For EXPLAIN VERBOSE: what a scan of no relation computes (`Aggregate on (s.t)`).
    relations: Option<String>,
    /// The values of the remote clauses' parameters, computed by PostgreSQL.
    parameters: Vec<Parameter>,
    /// Where parameters are evaluated (the plan node's expression context).
    econtext: *mut pg_sys::ExprContext,
    /// The remote SQL as EXPLAIN shows it (parameters as `$n`).
    sql: String,
    /// The remote SQL last sent, with its parameters' values.
    sent_sql: String,
    fetched: Vec<Fetched>,
    /// Averages computed from fetched sums and counts (grouped scans).
    averages: Vec<Average>,
    /// Attributes never fetched; set to NULL in every row.
    unfetched: Vec<usize>,
    /// Holds the by-reference datums of the current batch; reset before each new batch.
    batch_context: pg_sys::MemoryContext,
    /// The running query; opened at the first fetch, closed at the end, on rescan and on drop.
    stream: Option<Prefetch>,
    /// The batch being read and the first of its rows not converted yet: batches are
    /// converted `tuning.batch_rows` rows at a time.
    pending: Option<(RecordBatch, usize)>,
    /// Where each fetched column's converted values are (set by each conversion).
    rows: Vec<RowSource>,
    /// Rows converted into the columns' values, and the next one to return.
    batch_rows: usize,
    next_row: usize,
    finished: bool,
    stats: ScanStats,
}

#[pg_guard]
pub unsafe extern "C-unwind" fn begin_foreign_scan(node: *mut pg_sys::ForeignScanState, _eflags: i32) {
    // SAFETY: the executor passes a valid ForeignScanState whose plan is our ForeignScan;
    // CurrentMemoryContext is the query context, which outlives the scan.
    unsafe {
        // Under EXPLAIN (EXEC_FLAG_EXPLAIN_ONLY) the state is built for its remote SQL only:
        // nothing connects before the first fetch.
        let state = ScanState::new(node).unwrap_or_else(|e| e.report());
        let state = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state);
        (*node).fdw_state = state.cast();
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn iterate_foreign_scan(
    node: *mut pg_sys::ForeignScanState,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: fdw_state was set by begin_foreign_scan; the slot is the scan's own.
    unsafe {
        let state = &mut *((*node).fdw_state as *mut ScanState);
        let slot = (*node).ss.ss_ScanTupleSlot;
        clear_slot(slot);
        match state.next_row(slot) {
            Ok(true) => store_virtual_tuple(slot),
            Ok(false) => {}
            Err(e) => e.report(),
        }
        slot
    }
}

/// `ExecClearTuple`, a static inline function in PostgreSQL, called here directly rather than
/// through an FFI guard for every row: the slot's own clear callback, which cannot fail.
///
/// # Safety
/// `slot` must be a valid, initialized slot.
#[inline]
unsafe fn clear_slot(slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: per the contract; every slot kind has a clear callback.
    unsafe {
        let clear = (*(*slot).tts_ops).clear.expect("a slot without a clear callback");
        clear(slot);
    }
}

/// `ExecStoreVirtualTuple` without an FFI call per row: marks the cleared slot's values (all
/// of its attributes, set by [`ScanState::next_row`]) as its contents.
///
/// # Safety
/// `slot` must be empty (cleared) and hold a value and null flag for every attribute.
#[inline]
unsafe fn store_virtual_tuple(slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: per the contract; the same two stores ExecStoreVirtualTuple makes.
    unsafe {
        (*slot).tts_flags &= !(pg_sys::TTS_FLAG_EMPTY as u16);
        (*slot).tts_nvalid = (*(*slot).tts_tupleDescriptor).natts as pg_sys::AttrNumber;
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn rescan_foreign_scan(node: *mut pg_sys::ForeignScanState) {
    // SAFETY: fdw_state was set by begin_foreign_scan.
    unsafe { (*((*node).fdw_state as *mut ScanState)).restart() };
}

#[pg_guard]
pub unsafe extern "C-unwind" fn end_foreign_scan(node: *mut pg_sys::ForeignScanState) {
    // SAFETY: fdw_state was set by begin_foreign_scan (also under EXPLAIN); the state itself is
    // freed with the query context, but the stream is closed and the value buffers freed now.
    unsafe {
        if let Some(state) = ((*node).fdw_state as *mut ScanState).as_mut() {
            state.restart();
            state.rows.clear();
            for column in &mut state.fetched {
                column.arena.release();
            }
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn explain_foreign_scan(
    node: *mut pg_sys::ForeignScanState,
    es: *mut pg_sys::ExplainState,
) {
    // SAFETY: fdw_state was set by begin_foreign_scan, which runs under EXPLAIN too.
    unsafe {
        let state = &*((*node).fdw_state as *mut ScanState);
        let text = |label: &std::ffi::CStr, value: &str| {
            let value = CString::new(value).unwrap_or_else(|_| c"(contains NUL)".into());
            pg_sys::ExplainPropertyText(label.as_ptr(), value.as_ptr(), es);
        };
        if let Some(relations) = state.relations.as_deref().filter(|_| (*es).verbose) {
            text(c"Relations", relations);
        }
        text(c"Remote SQL", &state.sql);
        if (*es).verbose {
            let names: Vec<&str> = state.fetched.iter().map(|f| f.name.as_str()).collect();
            text(c"Columns Fetched", &if names.is_empty() { "(none)".to_string() } else { names.join(", ") });
        }
        if (*es).analyze {
            let stats = &state.stats;
            let int = |label: &std::ffi::CStr, value: u64| {
                pg_sys::ExplainPropertyInteger(label.as_ptr(), std::ptr::null(), value as i64, es);
            };
            int(c"Remote Batches", stats.batches);
            int(c"Remote Rows", stats.rows);
            int(c"Remote Bytes", stats.bytes);
            let ms = |label: &std::ffi::CStr, value: Duration| {
                pg_sys::ExplainPropertyFloat(
                    label.as_ptr(),
                    c"ms".as_ptr(),
                    value.as_secs_f64() * 1e3,
                    3,
                    es,
                );
            };
            ms(c"Remote Wait Time", stats.wait);
            ms(c"Convert Time", stats.convert);
        }
    }
}

/// The statement a scan sends.
enum RemoteQuery {
    Scan(RemoteScan),
    Aggregate(RemoteAggregate),
    Join(RemoteJoin),
}

impl RemoteQuery {
    fn to_sql(&self, parameters: Option<&[Literal]>) -> std::result::Result<String, kalam_pushdown::Error> {
        match self {
            RemoteQuery::Scan(scan) => scan.to_sql(parameters),
            RemoteQuery::Aggregate(aggregate) => aggregate.to_sql(parameters),
            RemoteQuery::Join(join) => join.to_sql(parameters),
        }
    }
}

impl ScanState {
    unsafe fn new(node: *mut pg_sys::ForeignScanState) -> Result<Self> {
        // SAFETY: see begin_foreign_scan.
        unsafe {
            let plan = (*node).ss.ps.plan as *mut pg_sys::ForeignScan;
            if (*plan).scan.scanrelid == 0 {
                let parts = deparse::list_nodes((*plan).fdw_private);
                if deparse::int_list(parts[0].cast()) != [JOIN_MARKER] {
                    return Self::grouped(node, plan, false);
                }
                if parts.len() > JOIN_PRIVATE_LEN {
                    return Self::grouped(node, plan, true);
                }
                return Self::joined(node, plan);
            }
            let relation = PgRelation::from_pg((*node).ss.ss_currentRelation);
            let wanted = FdwPrivate::from_list((*plan).fdw_private);

            // The live attributes the query reads, in attribute order. A query that reads none
            // (count(*)) fetches rows without columns.
            let live = live_attributes(&relation);
            let reads: Vec<usize> = match wanted.attrs {
                None => live,
                Some(attrs) => live.into_iter().filter(|a| attrs.contains(a)).collect(),
            };

            let parameters = deparse::list_nodes((*plan).fdw_exprs).len();
            let (filters, parameters) = remote_filters(&relation, plan, node, parameters)?;
            let mut state = Self::build(&relation, reads, filters, parameters, (*node).ss.ps.ps_ExprContext)?;
            if let RemoteQuery::Scan(scan) = &mut state.remote {
                scan.order = wanted.order;
                state.sql = state.remote.to_sql(None).map_err(remote_sql_error)?;
            }
            Ok(state)
        }
    }

    /// The scan of `reads` (attribute indexes, in order) of the foreign table `relation`, with
    /// the remote clauses `filters` and the values they need (`parameters`, evaluated in
    /// `econtext`; none needs no context).
    ///
    /// # Safety
    /// `relation` must be an open foreign table; `econtext` the context of `parameters`.
    pub(crate) unsafe fn build(
        relation: &PgRelation,
        reads: Vec<usize>,
        filters: Vec<Qual>,
        parameters: Vec<Parameter>,
        econtext: *mut pg_sys::ExprContext,
    ) -> Result<Self> {
        // SAFETY: per the contract; catalog lookups of an open relation.
        unsafe {
            let (server, table_options) = foreign_table(relation)?;
            let tuning = server.options.tuning.with_table(&table_options);
            let remote = remote_table(relation, &table_options);
            let tupdesc = PgTupleDesc::from_pg_unchecked(relation.rd_att);
            let natts = tupdesc.len();

            // Every attribute is a column of the remote scan (its index is the attribute's), so
            // that remote clauses can name columns that are not fetched. Only columns that are
            // fetched need a type pg_kalam can read.
            let columns = remote_columns(relation);
            let mut fetched = Vec::with_capacity(reads.len());
            for &attr in &reads {
                let att = tupdesc.get(attr).expect("attr");
                let (pg_type, typmod) = (att.type_oid().value(), att.type_mod());
                if arrow_type_for(pg_type, typmod).is_none() {
                    return Err(KalamError::new(
                        PgSqlErrorCode::ERRCODE_FDW_INVALID_DATA_TYPE,
                        format!(
                            "column \"{}\" of foreign table \"{}\" has type {}, which pg_kalam cannot read",
                            att.name(),
                            relation.name(),
                            pg_type_name(pg_type)
                        ),
                    )
                    .with_hint(SUPPORTED_TYPES_HINT));
                }
                fetched.push(Fetched::new(att.name().to_string(), attr, pg_type, typmod));
            }

            let projection = fetched.iter().map(|f| f.attr).collect();
            let order = OrderLimit::default();
            let remote = RemoteQuery::Scan(RemoteScan { table: remote, columns, projection, filters, order });
            let unfetched = (0..natts).filter(|a| !fetched.iter().any(|f| f.attr == *a)).collect();
            Self::assemble(
                relation,
                server,
                table_options,
                tuning,
                remote,
                None,
                parameters,
                econtext,
                fetched,
                unfetched,
            )
        }
    }

    /// The scan of a join the server computes ([`join_plan`]): its output columns are the
    /// scan tuple's (the plan's `fdw_scan_tlist`).
    unsafe fn joined(node: *mut pg_sys::ForeignScanState, plan: *mut pg_sys::ForeignScan) -> Result<Self> {
        // SAFETY: a join's ForeignScan made by `join_plan`.
        unsafe {
            let parts = decode_join(node, plan)?;
            let mut join = parts.join;
            let tupdesc = PgTupleDesc::from_pg_unchecked((*(*node).ss.ss_ScanTupleSlot).tts_tupleDescriptor);
            let mut fetched = Vec::with_capacity(join.outputs.len());
            for (attr, &(table, column)) in join.outputs.iter().enumerate() {
                let att = tupdesc.get(attr).expect("one scan column per output");
                let (pg_type, typmod) = (att.type_oid().value(), att.type_mod());
                let name = format!("r{}.{}", table + 1, join.tables[table].columns[column].name);
                if arrow_type_for(pg_type, typmod).is_none() {
                    return Err(KalamError::new(
                        PgSqlErrorCode::ERRCODE_FDW_INVALID_DATA_TYPE,
                        format!(
                            "column {name} of a join has type {}, which pg_kalam cannot read",
                            pg_type_name(pg_type)
                        ),
                    )
                    .with_hint(SUPPORTED_TYPES_HINT));
                }
                fetched.push(Fetched::new(name, attr, pg_type, typmod));
            }
            join.order = parts.order;
            Self::assemble(
                &parts.relation,
                parts.server,
                parts.table_options,
                parts.tuning,
                RemoteQuery::Join(join),
                Some(parts.label),
                parts.parameters,
                (*node).ss.ps.ps_ExprContext,
                fetched,
                Vec::new(),
            )
        }
    }

    /// The scan of a grouped query the server computes: its output columns are the scan
    /// tuple's (the plan's `fdw_scan_tlist`).
    unsafe fn grouped(
        node: *mut pg_sys::ForeignScanState,
        plan: *mut pg_sys::ForeignScan,
        over_join: bool,
    ) -> Result<Self> {
        // SAFETY: a grouped ForeignScan made by `grouped_plan`; its tables are locked by the plan.
        unsafe {
            let from = if over_join { JOIN_PRIVATE_LEN } else { SCAN_PRIVATE_LEN };
            let (table, group_by, outputs, computed) =
                crate::upper::decode((*plan).fdw_private, from).expect("a grouped scan's fdw_private");
            // Where the columns of each table are numbered from (range-table index, first column).
            let (mut relations, mut qual_columns) = (Vec::new(), Vec::new());
            let (input, order, parameters, relation, server, table_options, tuning, label) = if over_join {
                let parts = decode_join(node, plan)?;
                relations = parts.relations;
                qual_columns = parts.qual_columns;
                let label = format!("Aggregate on ({})", parts.label);
                let input = AggregateInput::Join(parts.join);
                let (relation, server) = (parts.relation, parts.server);
                (
                    input,
                    parts.order,
                    parts.parameters,
                    relation,
                    server,
                    parts.table_options,
                    parts.tuning,
                    label,
                )
            } else {
                let private = FdwPrivate::from_list((*plan).fdw_private);
                relations.push((private.clause_relid, 0));
                let order = private.order;
                let relation = PgRelation::with_lock(table, pg_sys::NoLock as pg_sys::LOCKMODE);
                qual_columns.push(executor_qual_columns(&relation));
                let parameters = deparse::list_nodes((*plan).fdw_exprs).len();
                let (filters, parameters) = remote_filters(&relation, plan, node, parameters)?;
                let (server, table_options) = foreign_table(&relation)?;
                let tuning = server.options.tuning.with_table(&table_options);
                let table = remote_table(&relation, &table_options);
                let columns = remote_columns(&relation);
                let scan = RemoteScan {
                    table,
                    columns,
                    projection: Vec::new(),
                    filters,
                    order: OrderLimit::default(),
                };
                let label = format!("Aggregate on ({}.{})", relation.namespace(), relation.name());
                (
                    AggregateInput::Scan(scan),
                    order,
                    parameters,
                    relation,
                    server,
                    table_options,
                    tuning,
                    label,
                )
            };
            let columns = input.column_count();
            let column_of = |node: *mut pg_sys::Node| crate::upper::numbered_column(&relations, node);
            // CASE conditions: the tables' columns numbered as the join (or the table) numbers them.
            let mut deparser = Deparser::new(relations[0].0, &qual_columns[0], true);
            for (&(relid, offset), columns) in relations.iter().zip(&qual_columns).skip(1) {
                deparser = deparser.with_relation(relid, columns, offset);
            }
            let mut row_exprs = Vec::with_capacity(computed.len());
            for &expr in &computed {
                let value = crate::upper::key_expr(expr, &column_of, &mut deparser).ok_or_else(|| {
                    KalamError::new(
                        PgSqlErrorCode::ERRCODE_FDW_ERROR,
                        "an expression planned for the server can no longer be sent",
                    )
                })?;
                row_exprs.push((value.expr, value.data_type));
            }
            let column_name = |c: usize| match input.column(c) {
                Some(column) => column.name.clone(),
                None => format!("expression {}", c + 1 - columns),
            };
            let tupdesc = PgTupleDesc::from_pg_unchecked((*(*node).ss.ss_ScanTupleSlot).tts_tupleDescriptor);
            let mut fetched = Vec::with_capacity(tupdesc.len());
            let mut averages = Vec::new();
            let column = Fetched::new;
            for (attr, output) in outputs.iter().copied().enumerate() {
                let att = tupdesc.get(attr).expect("one scan column per output");
                // avg: the sum and the count arrive; the average is computed from them. A sum
                // of values of several scales arrives with the largest scale.
                if let Output::Aggregate {
                    function: function @ (Function::Avg | Function::SumRescaled | Function::AvgRescaled),
                    column: c,
                    distinct,
                } = output
                {
                    let (name, distinct) = (column_name(c), if distinct { "DISTINCT " } else { "" });
                    let sum = fetched.len();
                    fetched.push(column(format!("sum({distinct}{name})"), HIDDEN, pg_sys::NUMERICOID, -1));
                    let count = (function != Function::SumRescaled).then(|| {
                        fetched.push(column(format!("count({distinct}{name})"), HIDDEN, pg_sys::INT8OID, -1));
                        fetched.len() - 1
                    });
                    let scale = (function != Function::Avg).then(|| {
                        fetched.push(column(format!("scale of {name}"), HIDDEN, pg_sys::INT8OID, -1));
                        fetched.len() - 1
                    });
                    averages.push(Average { attr, sum, count, scale, values: Vec::new(), nulls: Vec::new() });
                    continue;
                }
                let name = match output {
                    Output::Group(column) => column_name(column),
                    Output::Aggregate { function, column, distinct } => {
                        let column = column_name(column);
                        let distinct = if distinct { "DISTINCT " } else { "" };
                        match function {
                            Function::CountRows => "count(*)".to_string(),
                            Function::Count => format!("count({distinct}{column})"),
                            Function::Sum | Function::SumAsDecimal => format!("sum({distinct}{column})"),
                            Function::Min => format!("min({column})"),
                            Function::Max => format!("max({column})"),
                            Function::BoolAnd => format!("bool_and({column})"),
                            Function::BoolOr => format!("bool_or({column})"),
                            Function::Avg | Function::SumRescaled | Function::AvgRescaled => {
                                unreachable!("taken above")
                            }
                        }
                    }
                };
                fetched.push(column(name, attr, att.type_oid().value(), att.type_mod()));
            }
            let remote = RemoteQuery::Aggregate(RemoteAggregate {
                input,
                computed: row_exprs,
                group_by,
                outputs,
                order,
            });
            let mut state = Self::assemble(
                &relation,
                server,
                table_options,
                tuning,
                remote,
                Some(label),
                parameters,
                (*node).ss.ps.ps_ExprContext,
                fetched,
                Vec::new(),
            )?;
            state.averages = averages;
            Ok(state)
        }
    }

    /// The state of a scan sending `remote`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn assemble(
        relation: &PgRelation,
        server: Server,
        table_options: TableOptions,
        tuning: ScanTuning,
        remote: RemoteQuery,
        relations: Option<String>,
        parameters: Vec<Parameter>,
        econtext: *mut pg_sys::ExprContext,
        fetched: Vec<Fetched>,
        unfetched: Vec<usize>,
    ) -> Result<Self> {
        // SAFETY: creates a memory context under the current (query) one.
        unsafe {
            let sql = remote.to_sql(None).map_err(remote_sql_error)?;
            let batch_context = pg_sys::AllocSetContextCreateInternal(
                pg_sys::CurrentMemoryContext,
                c"pg_kalam batch".as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            );
            Ok(Self {
                server,
                relation: relation.name().to_string(),
                table_type: table_options.table_type,
                tuning,
                remote,
                relations,
                parameters,
                econtext,
                sql,
                averages: Vec::new(),
                sent_sql: String::new(),
                fetched,
                unfetched,
                batch_context,
                stream: None,
                pending: None,
                rows: Vec::new(),
                batch_rows: 0,
                next_row: 0,
                finished: false,
                stats: ScanStats::default(),
            })
        }
    }

    /// The statement for the server with this run's parameter values: computed by PostgreSQL
    /// now (at the first fetch, and again after each rescan, when they may have changed).
    fn statement(&self) -> Result<String> {
        let values = parameter_literals(&self.parameters, self.econtext)?;
        self.remote.to_sql(Some(&values)).map_err(remote_sql_error)
    }

    /// Closes the stream and frees the converted values and their memory context, for a scan
    /// that is done before its memory context goes (ANALYZE's sample).
    pub(crate) fn release(&mut self) {
        self.restart();
        self.rows.clear();
        for column in &mut self.fetched {
            column.arena.release();
        }
        if !self.batch_context.is_null() {
            // SAFETY: the context was created by `build` and is deleted once.
            unsafe { pg_sys::MemoryContextDelete(self.batch_context) };
            self.batch_context = std::ptr::null_mut();
        }
    }

    fn restart(&mut self) {
        self.stream = None;
        self.pending = None;
        self.batch_rows = 0;
        self.next_row = 0;
        self.finished = false;
    }

    /// Stores the next row in `slot`'s values; `false` at the end of the result.
    unsafe fn next_row(&mut self, slot: *mut pg_sys::TupleTableSlot) -> Result<bool> {
        // SAFETY: a slot of the scan tuple has a value and a null flag per attribute.
        unsafe { self.next_row_into((*slot).tts_values, (*slot).tts_isnull) }
    }

    /// Stores the next row in `values` and `nulls`; `false` at the end of the result. By-reference
    /// values stay valid until the next call converts another batch.
    ///
    /// # Safety
    /// `values` and `nulls` must have room for every attribute of the foreign table.
    pub(crate) unsafe fn next_row_into(&mut self, values: *mut Datum, nulls: *mut bool) -> Result<bool> {
        while self.next_row >= self.batch_rows {
            if self.finished {
                return Ok(false);
            }
            self.fetch_batch()?;
        }
        let row = self.next_row;
        self.next_row += 1;
        // SAFETY: the arrays have one entry per attribute (natts), and every `attr` is below
        // natts; each column holds `batch_rows` values and null flags, which stay where they are
        // until the next conversion (`rows` was set after it).
        unsafe {
            for column in &self.rows {
                *values.add(column.attr) = *column.values.add(row);
                *nulls.add(column.attr) = *column.nulls.add(row);
            }
            for &attr in &self.unfetched {
                *nulls.add(attr) = true;
            }
        }
        Ok(true)
    }

    /// Converts the next rows: the rest of the pending batch, or a new batch from the server.
    fn fetch_batch(&mut self) -> Result<()> {
        if self.pending.is_none() {
            let started = Instant::now();
            let next = self.next_remote_batch();
            self.stats.wait += started.elapsed();
            match next? {
                None => {
                    self.finished = true;
                    self.stream = None;
                    self.batch_rows = 0;
                    self.next_row = 0;
                    return Ok(());
                }
                Some((batch, bytes)) => {
                    self.check_batch(&batch)?;
                    self.stats.batches += 1;
                    self.stats.rows += batch.num_rows() as u64;
                    self.stats.bytes += bytes;
                    self.pending = Some((batch, 0));
                }
            }
        }
        let (batch, offset) = self.pending.take().expect("set above");
        let rows = (batch.num_rows() - offset).min(self.tuning.batch_rows);
        let started = Instant::now();
        self.convert(&batch.slice(offset, rows))?;
        self.stats.convert += started.elapsed();
        if offset + rows < batch.num_rows() {
            self.pending = Some((batch, offset + rows));
        }
        self.next_row = 0;
        Ok(())
    }

    /// The next batch of the query, opening it first if needed.
    fn next_remote_batch(&mut self) -> Result<Option<(RecordBatch, u64)>> {
        if self.stream.is_none() {
            let stream = self.open()?;
            self.resolve_converters(stream.schema())?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("opened above");
        stream.next().map_err(|e| {
            if matches!(e, kalam_flight::Error::Lost { .. } | kalam_flight::Error::Timeout { .. }) {
                self.server.forget_client();
            }
            KalamError::from(e).with_detail(format!("Remote SQL: {}", self.sent_sql))
        })
    }

    /// Sends the query. A cached connection the server has dropped (it restarted) fails at
    /// once; it is replaced by a new one and the query sent again, once.
    fn open(&mut self) -> Result<Prefetch> {
        let user_id = match self.table_type {
            TableType::Shared => None,
            TableType::User | TableType::Stream => Some(guc::user_id().ok_or_else(|| {
                KalamError::new(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("\"{}\" is a KalamDB user table and kalam.user_id is not set", self.relation),
                )
                .with_hint("SET kalam.user_id = '<user>' to choose whose rows to read.")
            })?),
        };
        self.sent_sql = self.statement()?;
        // A PostgreSQL transaction that wrote to the server reads in its remote transaction.
        let transaction = crate::transactions::current(&self.server);
        let start = |client| {
            Prefetch::start(
                client,
                self.sent_sql.clone(),
                user_id.clone(),
                transaction.clone(),
                self.tuning.prefetch_batches,
            )
        };
        let result = match start(self.server.client()?) {
            Err(
                kalam_flight::Error::Lost { .. }
                | kalam_flight::Error::Server { code: tonic::Code::Unavailable, .. },
            ) => {
                self.server.forget_client();
                start(self.server.client()?)
            }
            other => other,
        };
        result.map_err(|e| KalamError::from(e).with_detail(format!("Remote SQL: {}", self.sent_sql)))
    }

    fn resolve_converters(&mut self, schema: &arrow_schema::SchemaRef) -> Result<()> {
        if schema.fields().len() != self.fetched.len() {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_ERROR,
                format!(
                    "the KalamDB server returned {} columns for a query of {}",
                    schema.fields().len(),
                    self.fetched.len()
                ),
            )
            .with_detail(format!("Remote SQL: {}", self.sent_sql)));
        }
        for (column, field) in self.fetched.iter_mut().zip(schema.fields()) {
            let converter =
                Converter::resolve(column.pg_type, column.typmod, field.data_type(), &column.name)?;
            column.converter = Some((converter, field.data_type().clone()));
        }
        Ok(())
    }

    /// Every batch is checked against the announced schema: a later endpoint or a faulty
    /// server must not make a converter read a column of another type.
    fn check_batch(&self, batch: &RecordBatch) -> Result<()> {
        if batch.num_columns() != self.fetched.len() {
            return Err(KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_ERROR,
                format!(
                    "the KalamDB server sent a batch of {} columns for a query of {}",
                    batch.num_columns(),
                    self.fetched.len()
                ),
            )
            .with_detail(format!("Remote SQL: {}", self.sent_sql)));
        }
        for (column, array) in self.fetched.iter().zip(batch.columns()) {
            let (_, announced) = column.converter.as_ref().expect("resolved when the stream opened");
            if array.data_type() != announced {
                return Err(KalamError::new(
                    PgSqlErrorCode::ERRCODE_FDW_ERROR,
                    format!(
                        "the KalamDB server sent column \"{}\" as {} after announcing {announced}",
                        column.name,
                        array.data_type()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn convert(&mut self, batch: &RecordBatch) -> Result<()> {
        // No row of the previous batch is read after this point (the slot was cleared before
        // this fetch), so its datums can go.
        self.batch_rows = 0;
        self.rows.clear();
        // SAFETY: the batch context belongs to this scan.
        unsafe { pg_sys::MemoryContextReset(self.batch_context) };
        let utf8 = runtime::database_is_utf8();
        let mut context = PgMemoryContexts::For(self.batch_context);
        // SAFETY: switching to a valid context for the duration of the conversion.
        unsafe {
            context.switch_to(|_| -> Result<()> {
                for (column, array) in self.fetched.iter_mut().zip(batch.columns()) {
                    let (converter, _) = column.converter.as_ref().expect("checked above");
                    let target = (&mut column.values, &mut column.nulls, &mut column.arena);
                    converter.convert(array.as_ref(), &column.name, utf8, target)?;
                }
                for average in &mut self.averages {
                    let sum = &self.fetched[average.sum];
                    let count = average.count.map(|c| &self.fetched[c]);
                    let scale = average.scale.map(|c| &self.fetched[c]);
                    average.values.clear();
                    average.nulls.clear();
                    for row in 0..batch.num_rows() {
                        let n = count.map(|count| (count.nulls[row], count.values[row].value() as i64));
                        if sum.nulls[row] || matches!(n, Some((true, _) | (_, 0))) {
                            average.values.push(Datum::from(0));
                            average.nulls.push(true);
                            continue;
                        }
                        let mut value = sum.values[row];
                        if let Some(scale) = scale.filter(|scale| !scale.nulls[row]) {
                            value = pgrx::direct_function_call_as_datum(
                                pg_sys::numeric_round,
                                &[Some(value), Some(Datum::from(scale.values[row].value() as i64 as i32))],
                            )
                            .expect("numeric_round of a number");
                        }
                        if let Some((_, n)) = n {
                            let n = pgrx::direct_function_call_as_datum(
                                pg_sys::int8_numeric,
                                &[Some(Datum::from(n))],
                            );
                            value =
                                pgrx::direct_function_call_as_datum(pg_sys::numeric_div, &[Some(value), n])
                                    .expect("numeric_div of a count above 0");
                        }
                        average.values.push(value);
                        average.nulls.push(false);
                    }
                }
                Ok(())
            })?;
        }
        let fetched = self.fetched.iter().filter(|column| column.attr != HIDDEN).map(|column| {
            assert!(column.values.len() == batch.num_rows() && column.nulls.len() == batch.num_rows());
            RowSource { attr: column.attr, values: column.values.as_ptr(), nulls: column.nulls.as_ptr() }
        });
        let averages = self.averages.iter().map(|average| RowSource {
            attr: average.attr,
            values: average.values.as_ptr(),
            nulls: average.nulls.as_ptr(),
        });
        self.rows = fetched.chain(averages).collect();
        self.batch_rows = batch.num_rows();
        Ok(())
    }
}
