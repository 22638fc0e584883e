//! Upper relations the server computes: `GetForeignUpperPaths` for grouping and aggregation
//! (`UPPERREL_GROUP_AGG`) over one foreign table.
//!
//! A grouped query is shipped when the server's answer is PostgreSQL's, exactly:
//! - every WHERE clause of the table runs on the server (a local clause must see the rows
//!   before they are grouped), none of them a pseudoconstant gate;
//! - it groups by plain columns whose equality the server shares (integers, numeric(p,s),
//!   boolean, date, time, timestamps, uuid, text under a deterministic collation; not floats,
//!   whose -0 and NaN PostgreSQL groups its own way), or by values the server computes per row
//!   exactly ([`row_expr`]: `extract(year FROM d)`, numeric arithmetic, CASE) whose values share
//!   one scale, with no grouping sets;
//! - the aggregates it reads are of plain columns with PostgreSQL's result type and value:
//!   `count(*)`, `count([DISTINCT] x)`, `sum([DISTINCT] x)` of smallint and integer (bigint, as
//!   PostgreSQL), of bigint (numeric: summed as DECIMAL(38,0)) and of numeric(p,s); `min`/`max`
//!   of integers, numeric(p,s), date, time and timestamps, and of text under the C collation (or
//!   a database default that is C); `bool_and`/`bool_or`; `sum`/`avg` of a computed value
//!   ([`row_expr`]), the largest scale of the values summed sent beside the sum where a CASE
//!   mixes scales (PostgreSQL's sum shows it); no ORDER BY or FILTER inside an aggregate.
//!
//! The server returns the grouping columns and the aggregates; PostgreSQL computes from them
//! whatever else the query says of a group (`max(i) - min(i)`, `round(sum(n) / 3, 2)`) and
//! filters the groups by HAVING, so those need not be expressible remotely. Anything else is
//! aggregated by PostgreSQL over the scan, as before. The plan is a foreign scan of the upper
//! relation (`scanrelid` 0) whose scan target list (`fdw_scan_tlist`) is the server's outputs;
//! `scan.rs` runs it like a table scan.

use arrow_schema::DataType;
use kalam_pushdown::Literal;
use kalam_pushdown::SortKey;
use kalam_pushdown::aggregate::{Function, Output, RowExpr, SUM_PRECISION_MAX, YEAR_PRECISION};
use pgrx::pg_sys::{self, NodeTag, Oid};
use pgrx::{PgList, PgMemoryContexts, pg_guard};

use crate::deparse::{self, Deparser};
use crate::options::Costs;
use crate::scan::RelInfo;

/// What planning decided for a grouped relation (its `RelOptInfo.fdw_private`).
pub(crate) struct UpperInfo {
    /// The relation grouped: a foreign table, or a join the server computes.
    pub(crate) input: *mut pg_sys::RelOptInfo,
    /// The columns grouped by (numbered as the input numbers them: a table's attribute
    /// indexes, a join's across its tables).
    pub(crate) group_by: Vec<usize>,
    /// The GROUP BY expressions themselves (their Vars), for the planner's estimate of groups.
    pub(crate) group_exprs: Vec<*mut pg_sys::Node>,
    /// The columns the server returns, in order.
    pub(crate) outputs: Vec<Output>,
    /// The expression of each output (a grouping column's Var, an Aggref): the plan's scan
    /// target list, from which PostgreSQL computes the grouping target's expressions.
    pub(crate) scan_exprs: Vec<*mut pg_sys::Node>,
    /// HAVING, evaluated by PostgreSQL on the groups the server returns (implicit AND).
    pub(crate) local_conds: Vec<*mut pg_sys::Node>,
    /// The server's costs (its foreign table's).
    pub(crate) costs: Costs,
    /// The expressions aggregated or grouped by ([`row_expr`]): an aggregate's or a grouping
    /// key's column `n + k`, `n` being the number of the input's columns, is `computed[k]`.
    pub(crate) computed: Vec<*mut pg_sys::Node>,
}

/// What pg_kalam keeps in an upper relation's `fdw_private`.
pub(crate) enum UpperRel {
    /// A grouped relation the server computes.
    Grouped(UpperInfo),
    /// The ordered relation over `input` (a foreign table or a grouped relation the server
    /// computes): `pushed` when the server sorts it.
    Ordered { input: *mut pg_sys::RelOptInfo, pushed: bool },
}

/// The grouped relation the server computes that `rel` is, if it is one.
pub(crate) unsafe fn grouped_info<'a>(rel: *mut pg_sys::RelOptInfo) -> Option<&'a UpperInfo> {
    // SAFETY: an upper relation's fdw_private is NULL or an UpperRel set here.
    unsafe {
        if (*rel).reloptkind != pg_sys::RelOptKind::RELOPT_UPPER_REL || (*rel).fdw_private.is_null() {
            return None;
        }
        match &*((*rel).fdw_private as *const UpperRel) {
            UpperRel::Grouped(info) => Some(info),
            UpperRel::Ordered { .. } => None,
        }
    }
}

/// Whether `rel` is a foreign table pg_kalam plans (its `fdw_private` a [`RelInfo`]).
unsafe fn is_foreign_table(rel: *mut pg_sys::RelOptInfo) -> bool {
    // SAFETY: planner structures.
    unsafe { (*rel).reloptkind == pg_sys::RelOptKind::RELOPT_BASEREL && !(*rel).fdw_private.is_null() }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_upper_paths(
    root: *mut pg_sys::PlannerInfo,
    stage: pg_sys::UpperRelationKind::Type,
    input_rel: *mut pg_sys::RelOptInfo,
    output_rel: *mut pg_sys::RelOptInfo,
    extra: *mut std::ffi::c_void,
) {
    // SAFETY: the planner passes its structures; what is kept is allocated in its context.
    unsafe {
        if !(*output_rel).fdw_private.is_null() {
            return;
        }
        match stage {
            pg_sys::UpperRelationKind::UPPERREL_GROUP_AGG
                if is_foreign_table(input_rel) || crate::join::join_info(input_rel).is_some() =>
            {
                add_grouped_path(root, input_rel, output_rel, extra.cast())
            }
            pg_sys::UpperRelationKind::UPPERREL_ORDERED => add_ordered_path(root, input_rel, output_rel),
            pg_sys::UpperRelationKind::UPPERREL_FINAL => {
                add_final_path(root, input_rel, output_rel, extra.cast())
            }
            _ => {}
        }
    }
}

/// Keeps `upper` as `rel`'s `fdw_private`, in the planner's memory.
unsafe fn keep(rel: *mut pg_sys::RelOptInfo, upper: UpperRel) {
    // SAFETY: the planner's current context outlives the planning of the query.
    unsafe {
        let upper = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(upper);
        (*rel).fdw_private = upper.cast();
    }
}

/// A foreign path computing `rel` (a foreign table's or a grouped relation) for an upper
/// relation, added to `output_rel`.
#[allow(clippy::too_many_arguments)]
unsafe fn add_upper_path(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    output_rel: *mut pg_sys::RelOptInfo,
    target: *mut pg_sys::PathTarget,
    rows: f64,
    (startup, total): (f64, f64),
    pathkeys: *mut pg_sys::List,
    fdw_private: *mut pg_sys::List,
) {
    // SAFETY: planner structures; the path is allocated in the planner's context.
    unsafe {
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16"))]
        let path = pg_sys::create_foreign_upper_path(
            root,
            rel,
            target,
            rows,
            startup,
            total,
            pathkeys,
            std::ptr::null_mut(),
            fdw_private,
        );
        #[cfg(feature = "pg17")]
        let path = pg_sys::create_foreign_upper_path(
            root,
            rel,
            target,
            rows,
            startup,
            total,
            pathkeys,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            fdw_private,
        );
        #[cfg(feature = "pg18")]
        let path = pg_sys::create_foreign_upper_path(
            root,
            rel,
            target,
            rows,
            0,
            startup,
            total,
            pathkeys,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            fdw_private,
        );
        pg_sys::add_path(output_rel, path.cast());
    }
}

/// `UPPERREL_GROUP_AGG`: the server groups and aggregates the foreign table `input_rel`.
unsafe fn add_grouped_path(
    root: *mut pg_sys::PlannerInfo,
    input_rel: *mut pg_sys::RelOptInfo,
    output_rel: *mut pg_sys::RelOptInfo,
    extra: *mut pg_sys::GroupPathExtraData,
) {
    // SAFETY: planner structures of the query being planned.
    unsafe {
        let Some(upper) = grouping(root, input_rel, output_rel, extra) else { return };
        let input_rows = (*input_rel).rows.max(1.0);
        let groups = if upper.group_by.is_empty() {
            1.0
        } else {
            let mut exprs = PgList::<pg_sys::Node>::new();
            for &expr in &upper.group_exprs {
                exprs.push(expr);
            }
            pg_sys::estimate_num_groups(
                root,
                exprs.into_pg(),
                input_rows,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
            .clamp(1.0, input_rows)
        };
        // Only the groups travel; the server reads the rows where they are.
        let Costs { startup, tuple } = upper.costs;
        let total = startup + groups * tuple + input_rows * tuple * 0.01;
        keep(output_rel, UpperRel::Grouped(upper));
        let target = (*output_rel).reltarget;
        let no_list = std::ptr::null_mut();
        add_upper_path(root, output_rel, output_rel, target, groups, (startup, total), no_list, no_list);
        // The groups sorted by the GROUP BY keys (the server sorts the few groups it sends), as
        // PostgreSQL's own GroupAggregate path is: with few rows estimated, the two cost the same
        // to within the planner's fuzz, and that path's order would win over an unsorted one.
        let group_pathkeys = (*root).group_pathkeys;
        if let Some(upper) = grouped_info(output_rel)
            && !group_pathkeys.is_null()
            && group_sort_keys(upper, group_pathkeys).is_some()
        {
            let sorted = (startup, total + groups * tuple * 0.1);
            add_upper_path(root, output_rel, output_rel, target, groups, sorted, group_pathkeys, no_list);
        }
    }
}

/// `UPPERREL_ORDERED`: the server sorts the groups it computes. (A foreign table's rows were
/// offered sorted already, as a path of the table: [`sort_keys`] of the query's pathkeys.)
unsafe fn add_ordered_path(
    root: *mut pg_sys::PlannerInfo,
    input_rel: *mut pg_sys::RelOptInfo,
    output_rel: *mut pg_sys::RelOptInfo,
) {
    // SAFETY: planner structures of the query being planned.
    unsafe {
        let pathkeys = (*root).sort_pathkeys;
        if is_foreign_table(input_rel) {
            let info = &*((*input_rel).fdw_private as *const RelInfo);
            let pushed = sort_keys(input_rel, info, pathkeys).is_some();
            keep(output_rel, UpperRel::Ordered { input: input_rel, pushed });
            return;
        }
        if let Some(info) = crate::join::join_info(input_rel) {
            // The join's sorted path is among its own (the server sorts the joined rows).
            let pushed = join_sort_keys(info, pathkeys, |_| Some(0)).is_some();
            keep(output_rel, UpperRel::Ordered { input: input_rel, pushed });
            return;
        }
        let Some(upper) = grouped_info(input_rel) else { return };
        let pushed = group_sort_keys(upper, pathkeys).is_some();
        keep(output_rel, UpperRel::Ordered { input: input_rel, pushed });
        if !pushed {
            return;
        }
        // The server sorts the groups (few, next to the data): a little more than sending them.
        // (The grouped relation's own row count is not set: its path's is the estimate.)
        let Some(grouped) = cheapest_foreign_path(input_rel, std::ptr::null_mut()) else { return };
        let groups = (*grouped).rows;
        let startup = (*grouped).total_cost + groups * upper.costs.tuple * 0.1;
        let total = startup + groups * upper.costs.tuple * 0.1;
        let target = (*root).upper_targets[pg_sys::UpperRelationKind::UPPERREL_ORDERED as usize];
        add_upper_path(
            root,
            input_rel,
            output_rel,
            target,
            groups,
            (startup, total),
            pathkeys,
            std::ptr::null_mut(),
        );
    }
}

/// The cheapest unparameterized path of `rel` that pg_kalam made (a foreign scan), sorted by
/// `pathkeys` (NIL: in any order).
unsafe fn cheapest_foreign_path(
    rel: *mut pg_sys::RelOptInfo,
    pathkeys: *mut pg_sys::List,
) -> Option<*mut pg_sys::Path> {
    // SAFETY: planner structures.
    unsafe {
        deparse::list_nodes((*rel).pathlist)
            .into_iter()
            .map(|p| p as *mut pg_sys::Path)
            // (The query's target applied to a join's path is a projection over it.)
            .map(|p| {
                if (*p).type_ == NodeTag::T_ProjectionPath {
                    (*(p as *mut pg_sys::ProjectionPath)).subpath
                } else {
                    p
                }
            })
            .filter(|&p| (*p).pathtype == NodeTag::T_ForeignScan && (*p).param_info.is_null())
            .filter(|&p| pg_sys::pathkeys_contained_in(pathkeys, (*p).pathkeys))
            .min_by(|&a, &b| (*a).total_cost.total_cmp(&(*b).total_cost))
    }
}

/// `UPPERREL_FINAL`: the server applies LIMIT and OFFSET (after its ORDER BY, if the query's
/// order is the server's), when every row it sends is a row of the result: no clause or HAVING
/// left for PostgreSQL, constant bounds PostgreSQL would accept, no WITH TIES.
unsafe fn add_final_path(
    root: *mut pg_sys::PlannerInfo,
    input_rel: *mut pg_sys::RelOptInfo,
    output_rel: *mut pg_sys::RelOptInfo,
    extra: *mut pg_sys::FinalPathExtraData,
) {
    // SAFETY: planner structures of the query being planned.
    unsafe {
        let parse = (*root).parse;
        if extra.is_null()
            || !(*extra).limit_needed
            || (*parse).commandType != pg_sys::CmdType::CMD_SELECT
            || !(*parse).rowMarks.is_null()
            || (*parse).hasTargetSRFs
            || (*parse).limitOption == pg_sys::LimitOption::LIMIT_OPTION_WITH_TIES
        {
            return;
        }
        let Some((limit, offset)) = limit_of(parse) else { return };
        // An ordered relation stands for the relation the server sorts.
        let (mut rel, mut pathkeys) = (input_rel, std::ptr::null_mut());
        if (*rel).reloptkind == pg_sys::RelOptKind::RELOPT_UPPER_REL
            && !(*rel).fdw_private.is_null()
            && let UpperRel::Ordered { input, pushed } = &*((*rel).fdw_private as *const UpperRel)
        {
            if !pushed {
                return;
            }
            (rel, pathkeys) = (*input, (*root).sort_pathkeys);
        }
        let join = crate::join::join_info(rel);
        let (everything_remote, costs) = if is_foreign_table(rel) {
            let info = &*((*rel).fdw_private as *const RelInfo);
            (info.remote.len() == deparse::list_nodes((*rel).baserestrictinfo).len(), info.costs)
        } else if let Some(upper) = grouped_info(rel) {
            (upper.local_conds.is_empty(), upper.costs)
        } else if let Some(join) = join {
            (true, join.costs) // a join is shipped with all its clauses
        } else {
            return;
        };
        if !everything_remote {
            return;
        }
        // A foreign table's sorted rows are a path of the table; a grouped relation's groups are
        // sorted over its one path.
        let sorted_path = !pathkeys.is_null() && (is_foreign_table(rel) || join.is_some());
        let wanted = if sorted_path { pathkeys } else { std::ptr::null_mut() };
        let Some(input) = cheapest_foreign_path(rel, wanted) else { return };
        let input_rows = (*input).rows.max(1.0);
        let rows = match limit {
            Some(limit) => (input_rows - offset as f64).clamp(0.0, limit as f64),
            None => (input_rows - offset as f64).max(0.0),
        };
        let rows = pg_sys::clamp_row_est(rows);
        // The server stops at the limit (past its sort, if any). Costed as PostgreSQL costs its
        // own LIMIT over the same scan, less a share of what that scan would fetch beyond the
        // limit (the batches in flight), so that the planner prefers cutting at the server.
        let mut startup = (*input).startup_cost;
        if !pathkeys.is_null() && !sorted_path {
            startup += input_rows * costs.tuple * 0.1; // the server sorts the groups first
        }
        let run = ((*input).total_cost - (*input).startup_cost).max(0.0) * (rows / input_rows);
        let mut total = startup + run * 0.95;
        if sorted_path && join.is_some() {
            // A join sorted and cut by the server keeps only its first rows (a top-k), where the
            // sorted join under PostgreSQL's Limit sorts them all.
            (startup, total) = (startup * 0.98, total * 0.98);
        }
        let target = (*root).upper_targets[pg_sys::UpperRelationKind::UPPERREL_FINAL as usize];
        // fdw_private marks the path as the one that cuts (the plan reads the bounds again).
        let marker = deparse::make_int_list([1]);
        add_upper_path(root, rel, output_rel, target, rows, (startup, total), pathkeys, marker);
    }
}

/// The query's LIMIT (`None`: every row) and OFFSET, when both are constants PostgreSQL would
/// accept (not negative; NULL meaning no bound).
pub(crate) unsafe fn limit_of(parse: *mut pg_sys::Query) -> Option<(Option<u64>, u64)> {
    // SAFETY: a query's expressions, after the planner folded constants.
    unsafe {
        let bound = |expr: *mut pg_sys::Node| -> Option<Option<u64>> {
            if expr.is_null() {
                return Some(None);
            }
            if (*expr).type_ != NodeTag::T_Const {
                return None;
            }
            let constant = expr as *mut pg_sys::Const;
            if (*constant).constisnull {
                return Some(None);
            }
            if (*constant).consttype != pg_sys::INT8OID {
                return None;
            }
            u64::try_from((*constant).constvalue.value() as i64).ok().map(Some)
        };
        let limit = bound((*parse).limitCount)?;
        let offset = bound((*parse).limitOffset)?.unwrap_or(0);
        Some((limit, offset))
    }
}

/// The server's sort keys (columns) for `pathkeys` over the foreign table `rel`, if the server
/// orders every key as PostgreSQL does: a column of the table, of a type it orders alike,
/// under the type's default ordering and (for text) the C collation. Empty pathkeys: no keys.
pub(crate) unsafe fn sort_keys(
    rel: *mut pg_sys::RelOptInfo,
    info: &RelInfo,
    pathkeys: *mut pg_sys::List,
) -> Option<Vec<SortKey>> {
    // SAFETY: planner structures.
    unsafe {
        let relid = (*rel).relid;
        deparse::list_nodes(pathkeys)
            .into_iter()
            .map(|pathkey| {
                let pathkey = pathkey as *mut pg_sys::PathKey;
                key_of(pathkey, |expr| {
                    if (*expr).type_ != NodeTag::T_Var {
                        return None;
                    }
                    let var = expr as *mut pg_sys::Var;
                    if (*var).varno as pg_sys::Index != relid
                        || (*var).varlevelsup != 0
                        || (*var).varattno <= 0
                    {
                        return None;
                    }
                    let column = (*var).varattno as usize - 1;
                    info.columns.get(column)?.as_ref().filter(|c| c.remote_matches)?;
                    Some((column, (*var).vartypmod))
                })
            })
            .collect()
    }
}

/// The server's sort keys for `pathkeys` over the join `info`, if the server orders every key
/// as PostgreSQL does (as [`sort_keys`]): a column of one of its tables seen above it, whose
/// place among the join's outputs `output` gives.
pub(crate) unsafe fn join_sort_keys(
    info: &crate::join::JoinInfo,
    pathkeys: *mut pg_sys::List,
    output: impl Fn(*mut pg_sys::Var) -> Option<usize>,
) -> Option<Vec<SortKey>> {
    // SAFETY: planner structures; RelInfos live as long as the planner's relations.
    unsafe {
        deparse::list_nodes(pathkeys)
            .into_iter()
            .map(|pathkey| {
                key_of(pathkey as *mut pg_sys::PathKey, |expr| {
                    if (*expr).type_ != NodeTag::T_Var {
                        return None;
                    }
                    let var = expr as *mut pg_sys::Var;
                    let relid = (*var).varno as pg_sys::Index;
                    if (*var).varlevelsup != 0 || (*var).varattno <= 0 || info.hidden.contains(&relid) {
                        return None;
                    }
                    let &(_, table) = info.tables.iter().find(|(r, _)| *r == relid)?;
                    let table: &RelInfo = &*table;
                    table.columns.get((*var).varattno as usize - 1)?.as_ref().filter(|c| c.remote_matches)?;
                    Some((output(var)?, (*var).vartypmod))
                })
            })
            .collect()
    }
}

/// The server's sort keys (outputs) for `pathkeys` over the grouped relation `upper`: each an
/// output the server orders as PostgreSQL does (not an average, computed here).
pub(crate) unsafe fn group_sort_keys(upper: &UpperInfo, pathkeys: *mut pg_sys::List) -> Option<Vec<SortKey>> {
    // SAFETY: planner structures.
    unsafe {
        deparse::list_nodes(pathkeys)
            .into_iter()
            .map(|pathkey| {
                key_of(pathkey.cast(), |expr| {
                    let position =
                        upper.scan_exprs.iter().position(|&e| pg_sys::equal(e.cast(), expr.cast()))?;
                    match upper.outputs[position] {
                        Output::Aggregate {
                            function: Function::Avg | Function::SumRescaled | Function::AvgRescaled,
                            ..
                        } => None,
                        // A computed key is a decimal or an integer on the server: ordered exactly.
                        Output::Group(_) if (*expr).type_ != NodeTag::T_Var => Some((position, 0)),
                        // A sum of numerics is numeric(38, s) on the server: ordered exactly.
                        Output::Aggregate { .. } => Some((position, 0)),
                        Output::Group(_) => Some((position, pg_sys::exprTypmod(expr.cast()))),
                    }
                })
            })
            .collect()
    }
}

/// The sort key of `pathkey`, from the first member of its equivalence class that `key`
/// accepts (giving the key's index and the typmod of its values), if the server orders it as
/// the pathkey says.
unsafe fn key_of(
    pathkey: *mut pg_sys::PathKey,
    key: impl Fn(*mut pg_sys::Node) -> Option<(usize, i32)>,
) -> Option<SortKey> {
    // SAFETY: a pathkey of the query being planned.
    unsafe {
        let class = (*pathkey).pk_eclass;
        if (*class).ec_has_volatile {
            return None;
        }
        #[cfg(not(feature = "pg18"))]
        let descending = match (*pathkey).pk_strategy as u32 {
            pg_sys::BTLessStrategyNumber => false,
            pg_sys::BTGreaterStrategyNumber => true,
            _ => return None,
        };
        #[cfg(feature = "pg18")]
        let descending = match (*pathkey).pk_cmptype {
            pg_sys::CompareType::COMPARE_LT => false,
            pg_sys::CompareType::COMPARE_GT => true,
            _ => return None,
        };
        for member in deparse::list_nodes((*class).ec_members) {
            let member = member as *mut pg_sys::EquivalenceMember;
            if (*member).em_is_child {
                continue;
            }
            let expr = (*member).em_expr.cast::<pg_sys::Node>();
            let Some((index, typmod)) = key(strip_relabel(expr)) else { continue };
            let type_oid = pg_sys::exprType(expr);
            // The type's own ordering (not `USING ~<~` or another operator class's).
            let opclass = pg_sys::GetDefaultOpClass(type_oid, pg_sys::BTREE_AM_OID);
            if opclass == pg_sys::InvalidOid
                || pg_sys::get_opclass_family(opclass) != (*pathkey).pk_opfamily
                || !orders_alike(type_oid, typmod, (*class).ec_collation, true)
            {
                return None;
            }
            return Some(SortKey { key: index, descending, nulls_first: (*pathkey).pk_nulls_first });
        }
        None
    }
}

/// `expr` without the relabelings (binary-compatible casts: varchar as text) above it.
pub(crate) unsafe fn strip_relabel(mut expr: *mut pg_sys::Node) -> *mut pg_sys::Node {
    // SAFETY: an expression tree.
    unsafe {
        while (*expr).type_ == NodeTag::T_RelabelType {
            expr = (*(expr as *mut pg_sys::RelabelType)).arg.cast();
        }
        expr
    }
}

/// The grouped query the server can compute for `output_rel`, if it can.
unsafe fn grouping(
    root: *mut pg_sys::PlannerInfo,
    input_rel: *mut pg_sys::RelOptInfo,
    output_rel: *mut pg_sys::RelOptInfo,
    extra: *mut pg_sys::GroupPathExtraData,
) -> Option<UpperInfo> {
    // SAFETY: planner structures of a query being planned.
    unsafe {
        // The input's tables (range-table index, number of the first column) and costs.
        let (relations, costs, columns, pg_functions) = if let Some(join) = crate::join::join_info(input_rel)
        {
            let mut offset = 0;
            let mut relations = Vec::new();
            for &(relid, info) in &join.tables {
                relations.push((relid, offset));
                offset += (*info).columns.len();
            }
            (relations, join.costs, offset, (*join.tables[0].1).pg_functions)
        } else {
            let info = &*((*input_rel).fdw_private as *const RelInfo);
            // Every clause runs on the server; a pseudoconstant one (a gate PostgreSQL checks
            // above the scan) would not gate the groups.
            let clauses = deparse::list_nodes((*input_rel).baserestrictinfo);
            if clauses.len() != info.remote.len()
                || clauses.iter().any(|&r| (*(r as *mut pg_sys::RestrictInfo)).pseudoconstant)
            {
                return None;
            }
            (vec![((*input_rel).relid, 0)], info.costs, info.columns.len(), info.pg_functions)
        };
        let parse = (*root).parse;
        if !(*parse).groupingSets.is_null()
            || (*parse).hasTargetSRFs
            || (!extra.is_null()
                && (*extra).patype != pg_sys::PartitionwiseAggregateType::PARTITIONWISE_AGGREGATE_NONE)
        {
            return None;
        }
        let column_of = |node: *mut pg_sys::Node| numbered_column(&relations, node);
        // The conditions of CASEs, over the input's columns.
        let mut deparser = match crate::join::join_info(input_rel) {
            Some(join) => join.deparser(),
            None => {
                let info = &*((*input_rel).fdw_private as *const RelInfo);
                Deparser::new((*input_rel).relid, &info.columns, info.pg_functions)
            }
        };
        let mut computed = Vec::new();
        // GROUP BY: every clause a plain column of equality the server shares, or an expression
        // it computes exactly, whose values have one scale (PostgreSQL's numeric equality is
        // by value: 1.0 and 1.00 would be one group, shown as whichever came first).
        let (mut group_by, mut group_exprs) = (Vec::new(), Vec::new());
        for clause in deparse::list_nodes((*parse).groupClause) {
            let expr = pg_sys::get_sortgroupclause_expr(clause.cast(), (*parse).targetList);
            let attr = if let Some((attr, type_oid, typmod, collation)) = column_of(expr.cast()) {
                if !groups_alike(type_oid, typmod, collation) {
                    return None;
                }
                attr
            } else {
                if !pg_functions {
                    return None;
                }
                // (Not a 76-digit value: those are only summed.)
                let value = key_expr(expr.cast(), &column_of, &mut deparser)?;
                if !value.one_scale || matches!(value.data_type, DataType::Decimal256(..)) {
                    return None;
                }
                columns + computed_index(&mut computed, expr.cast())
            };
            group_by.push(attr);
            group_exprs.push(expr.cast());
        }
        // The outputs: grouping columns and aggregates of plain columns; of any other
        // expression (`max(i) - min(i)`, `round(sum(n) / 3, 2)`), the grouping columns and
        // aggregates it reads, PostgreSQL computing the rest from them. One output per distinct
        // expression: the scan target list (add_to_flat_tlist) holds each once.
        let mut upper = UpperInfo {
            input: input_rel,
            group_by,
            group_exprs,
            outputs: Vec::new(),
            scan_exprs: Vec::new(),
            local_conds: Vec::new(),
            costs,
            computed,
        };
        let having = if extra.is_null() { std::ptr::null_mut() } else { (*extra).havingQual };
        let having = deparse::list_nodes(having.cast());
        let targets = deparse::list_nodes((*(*output_rel).reltarget).exprs);
        for &node in targets.iter().chain(having.iter()) {
            let grouped = upper.group_exprs.iter().any(|&g| pg_sys::equal(g.cast(), node.cast()));
            let pieces = if grouped || column_of(node).is_some() || (*node).type_ == NodeTag::T_Aggref {
                vec![node]
            } else {
                deparse::list_nodes(pg_sys::pull_var_clause(node, pg_sys::PVC_INCLUDE_AGGREGATES as i32))
            };
            for piece in pieces {
                if upper.scan_exprs.iter().any(|&s| pg_sys::equal(s.cast(), piece.cast())) {
                    continue;
                }
                let group = upper.group_exprs.iter().position(|&g| pg_sys::equal(g.cast(), piece.cast()));
                let output = if let Some(key) = group {
                    Output::Group(upper.group_by[key])
                } else if let Some((attr, ..)) = column_of(piece) {
                    if !upper.group_by.contains(&attr) {
                        return None;
                    }
                    Output::Group(attr)
                } else if (*piece).type_ == NodeTag::T_Aggref {
                    let mut arguments = Arguments {
                        column_of: &column_of,
                        deparser: &mut deparser,
                        computed: &mut upper.computed,
                        columns,
                    };
                    aggregate(piece.cast(), &mut arguments, pg_functions)?
                } else {
                    return None;
                };
                upper.outputs.push(output);
                upper.scan_exprs.push(piece);
            }
        }
        upper.local_conds = having;
        Some(upper)
    }
}

/// The column `node` is, if it is a plain column of one of `relations` (range-table index,
/// number of its first column): its number among all, type, typmod and collation.
pub(crate) unsafe fn numbered_column(
    relations: &[(pg_sys::Index, usize)],
    node: *mut pg_sys::Node,
) -> Option<(usize, Oid, i32, Oid)> {
    // SAFETY: an expression node (or NULL).
    unsafe {
        if node.is_null() || (*node).type_ != NodeTag::T_Var {
            return None;
        }
        let var = node as *mut pg_sys::Var;
        let &(_, offset) = relations.iter().find(|r| r.0 == (*var).varno as pg_sys::Index)?;
        ((*var).varlevelsup == 0 && (*var).varattno > 0).then(|| {
            (offset + (*var).varattno as usize - 1, (*var).vartype, (*var).vartypmod, (*var).varcollid)
        })
    }
}

/// Whether the server groups values of this type as PostgreSQL does (equal exactly when
/// PostgreSQL's equality says so).
fn groups_alike(type_oid: Oid, typmod: i32, collation: Oid) -> bool {
    match type_oid {
        pg_sys::INT2OID
        | pg_sys::INT4OID
        | pg_sys::INT8OID
        | pg_sys::BOOLOID
        | pg_sys::DATEOID
        | pg_sys::TIMEOID => true,
        pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID | pg_sys::UUIDOID => true,
        pg_sys::NUMERICOID => typmod >= 0,
        // SAFETY: a syscache lookup.
        pg_sys::TEXTOID | pg_sys::VARCHAROID => unsafe {
            collation != pg_sys::InvalidOid && pg_sys::get_collation_isdeterministic(collation)
        },
        _ => false,
    }
}

/// Whether the server orders values of this type as PostgreSQL does (for min and max; and
/// `sorting` by them, which also takes booleans and uuids, with no min or max in PostgreSQL).
/// Not floats: PostgreSQL puts every NaN above infinity, the server a negative NaN below.
fn orders_alike(type_oid: Oid, typmod: i32, collation: Oid, sorting: bool) -> bool {
    match type_oid {
        pg_sys::BOOLOID | pg_sys::UUIDOID => sorting,
        pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID | pg_sys::DATEOID | pg_sys::TIMEOID => true,
        pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => true,
        pg_sys::NUMERICOID => typmod >= 0,
        pg_sys::TEXTOID | pg_sys::VARCHAROID => {
            collation == pg_sys::C_COLLATION_OID
                || collation == pg_sys::POSIX_COLLATION_OID
                || (collation == pg_sys::DEFAULT_COLLATION_OID && deparse::default_locale().collate_is_c)
        }
        _ => false,
    }
}

/// What an aggregate's argument is read with: the input's columns, a deparser of CASE
/// conditions, and the expressions computed so far (after the input's `columns`).
struct Arguments<'a, 'd> {
    column_of: &'a dyn Fn(*mut pg_sys::Node) -> Option<(usize, Oid, i32, Oid)>,
    deparser: &'a mut Deparser<'d>,
    computed: &'a mut Vec<*mut pg_sys::Node>,
    columns: usize,
}

/// The index of `expr` among the `computed` expressions, added if it is not one yet.
unsafe fn computed_index(computed: &mut Vec<*mut pg_sys::Node>, expr: *mut pg_sys::Node) -> usize {
    // SAFETY: expression trees of the query being planned.
    match computed.iter().position(|&c| unsafe { pg_sys::equal(c.cast(), expr.cast()) }) {
        Some(k) => k,
        None => {
            computed.push(expr);
            computed.len() - 1
        }
    }
}

/// The server's aggregate for `aggref`, if its result is PostgreSQL's.
unsafe fn aggregate(
    aggref: *mut pg_sys::Aggref,
    arguments: &mut Arguments,
    checked_sums: bool,
) -> Option<Output> {
    let column_of = arguments.column_of;
    // SAFETY: an Aggref of the grouping target.
    unsafe {
        if !(*aggref).aggorder.is_null()
            || !(*aggref).aggfilter.is_null()
            || !(*aggref).aggdirectargs.is_null()
            || (*aggref).aggvariadic
            // 'n': a plain aggregate (AGGKIND_NORMAL), not an ordered-set or hypothetical one.
            || (*aggref).aggkind != b'n' as std::ffi::c_char
            || (*aggref).agglevelsup != 0
            || (*aggref).aggsplit != pg_sys::AggSplit::AGGSPLIT_SIMPLE
            || pg_sys::get_func_namespace((*aggref).aggfnoid) != pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE)
        {
            return None;
        }
        let name =
            std::ffi::CStr::from_ptr(pg_sys::get_func_name((*aggref).aggfnoid)).to_str().ok()?.to_string();
        let distinct = !(*aggref).aggdistinct.is_null();
        let args = deparse::list_nodes((*aggref).args);
        if (*aggref).aggstar {
            return (name == "count" && args.is_empty() && !distinct).then_some(Output::Aggregate {
                function: Function::CountRows,
                column: 0,
                distinct: false,
            });
        }
        let [arg] = args.as_slice() else { return None };
        let entry = *arg as *mut pg_sys::TargetEntry;
        let argument = (*entry).expr.cast::<pg_sys::Node>();
        if column_of(argument).is_none() {
            // sum and avg of an expression the server computes exactly (and sums with overflow
            // checks); PostgreSQL's sum of integers is bigint, of bigints numeric.
            if !checked_sums || distinct {
                return None;
            }
            let value = row_expr(argument, column_of, arguments.deparser)?;
            let function = match (name.as_str(), &value.data_type) {
                ("sum", DataType::Decimal128(..) | DataType::Decimal256(..)) if value.one_scale => {
                    Function::Sum
                }
                ("sum", DataType::Decimal128(..)) => Function::SumRescaled,
                ("sum", DataType::Int32) => Function::Sum,
                ("sum", _) => Function::SumAsDecimal,
                ("avg", DataType::Decimal128(..)) if !value.one_scale => Function::AvgRescaled,
                ("avg", _) => Function::Avg,
                _ => return None,
            };
            let column = arguments.columns + computed_index(arguments.computed, argument);
            return Some(Output::Aggregate { function, column, distinct });
        }
        let (column, type_oid, typmod, collation) = column_of(argument)?;
        let function = match name.as_str() {
            "count" if !distinct || groups_alike(type_oid, typmod, collation) => Function::Count,
            "sum" => match type_oid {
                pg_sys::INT2OID | pg_sys::INT4OID => Function::Sum,
                pg_sys::INT8OID => Function::SumAsDecimal,
                pg_sys::NUMERICOID
                    if typmod >= 0 && (checked_sums || numeric_digits(typmod) <= SUM_PRECISION_MAX) =>
                {
                    Function::Sum
                }
                _ => return None,
            },
            "min" | "max" if !distinct && orders_alike(type_oid, typmod, collation, false) => {
                if name == "min" { Function::Min } else { Function::Max }
            }
            "avg" => match type_oid {
                pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID => Function::Avg,
                pg_sys::NUMERICOID
                    if typmod >= 0 && (checked_sums || numeric_digits(typmod) <= SUM_PRECISION_MAX) =>
                {
                    Function::Avg
                }
                _ => return None,
            },
            "bool_and" if type_oid == pg_sys::BOOLOID => Function::BoolAnd,
            "bool_or" if type_oid == pg_sys::BOOLOID => Function::BoolOr,
            _ => return None,
        };
        Some(Output::Aggregate { function, column, distinct })
    }
}

/// A grouped scan's plan as [`encode`] wrote it: the foreign table (of a table's grouping), the
/// columns grouped by, the outputs, and the computed expressions.
pub(crate) type Grouping = (Oid, Vec<usize>, Vec<Output>, Vec<*mut pg_sys::Node>);

/// Digits a computed value may have: every value fits the server's 38-digit decimals,
/// computed without rounding (and summed by its checked `pg_numeric_sum`).
const COMPUTED_PRECISION_MAX: u8 = 38;

/// Digits numeric arithmetic may have when its values are only summed or averaged: operands
/// of a result past 38 digits are computed as the server's 76-digit decimals
/// ([`RowExpr::Wide`]), and so is their sum.
const WIDE_PRECISION_MAX: u8 = kalam_pushdown::aggregate::WIDE_PRECISION;

/// The server's type of a numeric of `precision` digits and `scale`.
fn decimal_type(precision: u8, scale: i8) -> DataType {
    if precision > COMPUTED_PRECISION_MAX {
        DataType::Decimal256(precision, scale)
    } else {
        DataType::Decimal128(precision, scale)
    }
}

/// The precision of a numeric(p,s) typmod.
fn numeric_digits(typmod: i32) -> u8 {
    (((typmod - pg_sys::VARHDRSZ as i32) >> 16) & 0xffff) as u8
}

/// An expression the server computes per row as PostgreSQL does ([`row_expr`]).
pub(crate) struct Computed {
    pub(crate) expr: RowExpr,
    /// Its type on the server: a decimal (numeric), Int32 (smallint or integer) or Int64.
    pub(crate) data_type: DataType,
    /// Whether every value has the same scale (not a CASE choosing between scales).
    pub(crate) one_scale: bool,
}

/// `expr` as a value the server computes per row exactly as PostgreSQL does:
/// - numeric arithmetic ([`numeric`]);
/// - `extract(year FROM x)` of a date or timestamp column (numeric, as in PostgreSQL 14 on);
/// - a searched CASE whose conditions the server runs as PostgreSQL does (the WHERE rules of
///   [`Deparser`], with no value computed at scan start) and whose values are numeric
///   arithmetic, or integer columns and constants of the CASE's type (`THEN 1 ELSE 0`).
pub(crate) unsafe fn row_expr(
    expr: *mut pg_sys::Node,
    column_of: &dyn Fn(*mut pg_sys::Node) -> Option<(usize, Oid, i32, Oid)>,
    deparser: &mut Deparser,
) -> Option<Computed> {
    // SAFETY: an expression of the query being planned (or of its plan).
    unsafe {
        match (*expr).type_ {
            NodeTag::T_CaseExpr => case(expr.cast(), column_of, deparser),
            NodeTag::T_FuncExpr => {
                let call = expr as *mut pg_sys::FuncExpr;
                let args = deparse::list_nodes((*call).args);
                let [field, value] = args.as_slice() else { return None };
                let date_or_timestamp = extract_argument_type(u32::from((*call).funcid))?;
                if (**field).type_ != NodeTag::T_Const {
                    return None;
                }
                let field = *field as *mut pg_sys::Const;
                if (*field).constisnull || (*field).consttype != pg_sys::TEXTOID {
                    return None;
                }
                let name = <String as pgrx::FromDatum>::from_datum((*field).constvalue, false)?;
                let (column, type_oid, ..) = column_of(*value)?;
                (name.eq_ignore_ascii_case("year") && type_oid == date_or_timestamp).then(|| Computed {
                    expr: RowExpr::Year(Box::new(RowExpr::Column(column))),
                    data_type: DataType::Decimal128(YEAR_PRECISION, 0),
                    one_scale: true,
                })
            }
            _ => {
                let (expr, precision, scale) = numeric(expr, column_of)?;
                Some(Computed { expr, data_type: decimal_type(precision, scale), one_scale: true })
            }
        }
    }
}

/// A grouping key the server computes as PostgreSQL does: a [`row_expr`], or
/// `substring(t FROM start FOR length)` of a text column with constant bounds (start at least
/// 1, length at least 0: characters counted alike), grouped under a deterministic collation.
pub(crate) unsafe fn key_expr(
    expr: *mut pg_sys::Node,
    column_of: &dyn Fn(*mut pg_sys::Node) -> Option<(usize, Oid, i32, Oid)>,
    deparser: &mut Deparser,
) -> Option<Computed> {
    // SAFETY: an expression of the query being planned (or of its plan).
    unsafe {
        if let Some(computed) = row_expr(expr, column_of, deparser) {
            return Some(computed);
        }
        if (*expr).type_ != NodeTag::T_FuncExpr {
            return None;
        }
        let call = expr as *mut pg_sys::FuncExpr;
        if !deparse::is_substring(call) || !groups_alike(pg_sys::TEXTOID, -1, (*call).funccollid) {
            return None;
        }
        let (text, start, length) = deparse::substring_bounds(call)?;
        let (column, type_oid, ..) = column_of(strip_relabel(text))?;
        if !matches!(type_oid, pg_sys::TEXTOID | pg_sys::VARCHAROID) {
            return None;
        }
        Some(Computed {
            expr: RowExpr::Substring {
                text: Box::new(RowExpr::Column(column)),
                start: i64::from(start),
                length: i64::from(length),
            },
            data_type: DataType::Utf8,
            one_scale: true,
        })
    }
}

/// The argument type of PostgreSQL's numeric `extract(field, x)` (14 on) of a date or a
/// timestamp, if `funcid` is one.
#[cfg(not(feature = "pg13"))]
fn extract_argument_type(funcid: u32) -> Option<Oid> {
    match funcid {
        pg_sys::F_EXTRACT_TEXT_DATE => Some(pg_sys::DATEOID),
        pg_sys::F_EXTRACT_TEXT_TIMESTAMP => Some(pg_sys::TIMESTAMPOID),
        _ => None,
    }
}

/// PostgreSQL 13's `extract` is `date_part`, a double precision: not shipped.
#[cfg(feature = "pg13")]
fn extract_argument_type(_funcid: u32) -> Option<Oid> {
    None
}

/// A searched CASE ([`row_expr`]).
unsafe fn case(
    case: *mut pg_sys::CaseExpr,
    column_of: &dyn Fn(*mut pg_sys::Node) -> Option<(usize, Oid, i32, Oid)>,
    deparser: &mut Deparser,
) -> Option<Computed> {
    // SAFETY: a CaseExpr of the query being planned (or of its plan).
    unsafe {
        // `CASE x WHEN ...` compares with x's `=` operator: not shipped.
        if !(*case).arg.is_null() {
            return None;
        }
        let integer = match (*case).casetype {
            pg_sys::NUMERICOID => false,
            pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID => true,
            _ => return None,
        };
        // A value of a branch, with its digits before the point and its scale.
        let value = |node: *mut pg_sys::Node| -> Option<(RowExpr, i16, i8)> {
            if !integer {
                let (expr, precision, scale) = numeric(node, column_of)?;
                return Some((expr, precision as i16 - scale as i16, scale));
            }
            if pg_sys::exprType(node) != (*case).casetype {
                return None;
            }
            match (*node).type_ {
                NodeTag::T_Var => Some((RowExpr::Column(column_of(node)?.0), 19, 0)),
                NodeTag::T_Const => {
                    let constant = node as *mut pg_sys::Const;
                    let literal =
                        deparse::literal((*constant).constvalue, (*constant).constisnull, (*case).casetype)?;
                    (!matches!(literal, Literal::Null)).then_some((RowExpr::Number(literal), 19, 0))
                }
                _ => None,
            }
        };
        let mut when = Vec::new();
        let (mut whole, mut scales) = (0_i16, Vec::new());
        for arm in deparse::list_nodes((*case).args) {
            let arm = arm as *mut pg_sys::CaseWhen;
            let before = deparser.parameters.len();
            let condition = deparser.clause((*arm).expr).ok()?;
            // (A subquery is the server's in a WHERE or an ON only.)
            if condition.has_subquery() {
                return None;
            }
            if deparser.parameters.len() != before {
                // A value computed at scan start would need a parameter of the aggregate.
                deparser.parameters.truncate(before);
                return None;
            }
            let (result, digits, scale) = value((*arm).result.cast())?;
            whole = whole.max(digits);
            scales.push(scale);
            when.push((condition, result));
        }
        let default = (*case).defresult.cast::<pg_sys::Node>();
        let null_default = default.is_null()
            || ((*default).type_ == NodeTag::T_Const && (*(default as *mut pg_sys::Const)).constisnull);
        let otherwise = if null_default {
            None
        } else {
            let (result, digits, scale) = value(default)?;
            whole = whole.max(digits);
            scales.push(scale);
            Some(Box::new(result))
        };
        let scale = scales.iter().copied().max()?;
        let data_type = match (*case).casetype {
            _ if !integer => {
                let precision = u8::try_from(whole + scale as i16).ok()?;
                if precision > COMPUTED_PRECISION_MAX {
                    return None;
                }
                DataType::Decimal128(precision, scale)
            }
            pg_sys::INT8OID => DataType::Int64,
            _ => DataType::Int32,
        };
        let one_scale = scales.iter().all(|&s| s == scale);
        Some(Computed { expr: RowExpr::Case { when, otherwise }, data_type, one_scale })
    }
}

/// `expr` as arithmetic the server computes exactly as PostgreSQL's numeric does, with its
/// precision and scale: numeric `+`, `-` and `*` of numeric(p,s) columns, integer columns cast
/// to numeric, and finite numeric constants, within [`WIDE_PRECISION_MAX`] digits (the scale of
/// `a * b` is the sum of theirs, of `a + b` the larger, in PostgreSQL as on the server). Every value of it has that
/// scale, as every value of a numeric(p,s) column has scale s.
unsafe fn numeric(
    expr: *mut pg_sys::Node,
    column_of: &dyn Fn(*mut pg_sys::Node) -> Option<(usize, Oid, i32, Oid)>,
) -> Option<(RowExpr, u8, i8)> {
    // SAFETY: an expression of the query being planned (or of its plan).
    unsafe {
        let (arith, precision, scale) = match (*expr).type_ {
            NodeTag::T_Var => {
                let (column, type_oid, typmod, _) = column_of(expr)?;
                if type_oid != pg_sys::NUMERICOID || typmod < 0 {
                    return None;
                }
                let precision = numeric_digits(typmod);
                let scale = i8::try_from(((typmod - pg_sys::VARHDRSZ as i32) & 0xffff) as i16).ok()?;
                (scale >= 0).then_some((RowExpr::Column(column), precision, scale))?
            }
            NodeTag::T_Const => {
                let constant = expr as *mut pg_sys::Const;
                if (*constant).consttype != pg_sys::NUMERICOID || (*constant).constisnull {
                    return None;
                }
                let text = <pgrx::AnyNumeric as pgrx::FromDatum>::from_polymorphic_datum(
                    (*constant).constvalue,
                    false,
                    pg_sys::NUMERICOID,
                )?
                .to_string();
                match Literal::decimal(&text)? {
                    Literal::Decimal { unscaled, precision, scale } if scale >= 0 => {
                        (RowExpr::Number(Literal::Decimal { unscaled, precision, scale }), precision, scale)
                    }
                    _ => return None,
                }
            }
            // An integer column as numeric (`ps_supplycost * ps_availqty`): exact, scale 0.
            NodeTag::T_FuncExpr => {
                let call = expr as *mut pg_sys::FuncExpr;
                // `numeric(smallint)`, `numeric(integer)`, `numeric(bigint)` by their pg_proc OIDs,
                // the same in every version (their fmgroids names changed in PostgreSQL 14).
                let (precision, type_oid) = match u32::from((*call).funcid) {
                    1782 => (5, pg_sys::INT2OID),
                    1740 => (10, pg_sys::INT4OID),
                    1781 => (19, pg_sys::INT8OID),
                    _ => return None,
                };
                let args = deparse::list_nodes((*call).args);
                let [arg] = args.as_slice() else { return None };
                let (column, arg_type, ..) = column_of(*arg)?;
                if arg_type != type_oid {
                    return None;
                }
                (RowExpr::Decimal(Box::new(RowExpr::Column(column)), precision), precision, 0)
            }
            NodeTag::T_OpExpr => {
                let op = expr as *mut pg_sys::OpExpr;
                let args = deparse::list_nodes((*op).args);
                let [left, right] = args.as_slice() else { return None };
                let (a, p1, s1) = numeric(*left, column_of)?;
                let (b, p2, s2) = numeric(*right, column_of)?;
                let whole = (p1 as i16 - s1 as i16).max(p2 as i16 - s2 as i16);
                type Operation = fn(Box<RowExpr>, Box<RowExpr>) -> RowExpr;
                let (operation, precision, scale): (Operation, i16, i8) = match u32::from((*op).opfuncid) {
                    pg_sys::F_NUMERIC_ADD => (RowExpr::Add, whole + s1.max(s2) as i16 + 1, s1.max(s2)),
                    pg_sys::F_NUMERIC_SUB => (RowExpr::Sub, whole + s1.max(s2) as i16 + 1, s1.max(s2)),
                    pg_sys::F_NUMERIC_MUL => (RowExpr::Mul, p1 as i16 + p2 as i16, s1.checked_add(s2)?),
                    _ => return None,
                };
                let precision = u8::try_from(precision).ok()?;
                // Past 38 digits, the operands become 76-digit decimals first (those of 38 or
                // fewer digits: a wider one is one already).
                let widen = |operand: RowExpr, digits: u8| {
                    let wide = precision > COMPUTED_PRECISION_MAX && digits <= COMPUTED_PRECISION_MAX;
                    Box::new(if wide { RowExpr::Wide(Box::new(operand)) } else { operand })
                };
                (operation(widen(a, p1), widen(b, p2)), precision, scale)
            }
            _ => return None,
        };
        (precision <= WIDE_PRECISION_MAX).then_some((arith, precision, scale))
    }
}

/// `fdw_private` entries of a grouped scan, after the table scan's ([`crate::scan`]'s first
/// four, or a join's six): the foreign table's OID, the attributes grouped by, the outputs as
/// quadruples (kind 0 = group column / 1 = aggregate, function code, column, distinct), and the
/// computed expressions aggregated (their Vars name the plan's range-table indexes, as the
/// scan's clauses do).
pub(crate) unsafe fn encode(upper: &UpperInfo, table: Oid, list: *mut pg_sys::List) -> *mut pg_sys::List {
    let mut outputs = Vec::with_capacity(upper.outputs.len() * 4);
    for output in &upper.outputs {
        match output {
            Output::Group(column) => outputs.extend([0, 0, *column as i32, 0]),
            Output::Aggregate { function, column, distinct } => {
                outputs.extend([1, function.code(), *column as i32, *distinct as i32])
            }
        }
    }
    // SAFETY: lists in the planner's memory context.
    unsafe {
        let list = pg_sys::lappend(list, deparse::make_int_list([u32::from(table) as i32]).cast());
        let list =
            pg_sys::lappend(list, deparse::make_int_list(upper.group_by.iter().map(|&a| a as i32)).cast());
        let list = pg_sys::lappend(list, deparse::make_int_list(outputs).cast());
        pg_sys::lappend(list, deparse::make_node_list(upper.computed.iter().copied()).cast())
    }
}

/// The grouped scan `encode` described: (foreign table, grouped attributes, outputs); `None`
/// for a table scan's `fdw_private`.
pub(crate) unsafe fn decode(list: *mut pg_sys::List, from: usize) -> Option<Grouping> {
    // SAFETY: a list made by scan.rs and `encode`.
    unsafe {
        let parts = deparse::list_nodes(list);
        let Some([table, group_by, codes, computed]) = parts.get(from..from + 4) else {
            return None;
        };
        let table = Oid::from(deparse::int_list(table.cast())[0] as u32);
        let group_by = deparse::int_list(group_by.cast()).into_iter().map(|a| a as usize).collect();
        let codes = deparse::int_list(codes.cast());
        let outputs = codes
            .chunks(4)
            .map(|q| match q {
                [0, _, column, _] => Output::Group(*column as usize),
                [_, code, column, distinct] => Output::Aggregate {
                    function: Function::from_code(*code).expect("encoded by `encode`"),
                    column: *column as usize,
                    distinct: *distinct != 0,
                },
                _ => unreachable!("outputs are quadruples"),
            })
            .collect();
        Some((table, group_by, outputs, deparse::list_nodes((*computed).cast())))
    }
}
