//! Upper relations the server computes: `GetForeignUpperPaths` for grouping and aggregation
//! (`UPPERREL_GROUP_AGG`) over one foreign table.
//!
//! A grouped query is shipped when the server's answer is PostgreSQL's, exactly:
//! - every WHERE clause of the table runs on the server (a local clause must see the rows
//!   before they are grouped), none of them a pseudoconstant gate;
//! - it groups by plain columns whose equality the server shares (integers, numeric(p,s),
//!   boolean, date, time, timestamps, uuid, text under a deterministic collation; not floats,
//!   whose -0 and NaN PostgreSQL groups its own way), with no grouping sets;
//! - the aggregates it reads are of plain columns with PostgreSQL's result type and value:
//!   `count(*)`, `count([DISTINCT] x)`, `sum([DISTINCT] x)` of smallint and integer (bigint, as
//!   PostgreSQL), of bigint (numeric: summed as DECIMAL(38,0)) and of numeric(p,s); `min`/`max`
//!   of integers, numeric(p,s), date, time and timestamps, and of text under the C collation (or
//!   a database default that is C); `bool_and`/`bool_or`; no ORDER BY or FILTER inside an
//!   aggregate.
//!
//! The server returns the grouping columns and the aggregates; PostgreSQL computes from them
//! whatever else the query says of a group (`max(i) - min(i)`, `round(sum(n) / 3, 2)`) and
//! filters the groups by HAVING, so those need not be expressible remotely. Anything else is
//! aggregated by PostgreSQL over the scan, as before. The plan is a foreign scan of the upper
//! relation (`scanrelid` 0) whose scan target list (`fdw_scan_tlist`) is the server's outputs;
//! `scan.rs` runs it like a table scan.

use kalam_pushdown::aggregate::{Function, Output};
use pgrx::pg_sys::{self, NodeTag, Oid};
use pgrx::{PgList, PgMemoryContexts, pg_guard};

use crate::deparse;
use crate::scan::{ROW_COST, RelInfo, STARTUP_COST};

/// What planning decided for a grouped relation (its `RelOptInfo.fdw_private`).
pub(crate) struct UpperInfo {
    /// The range-table index of the foreign table grouped.
    pub(crate) relid: pg_sys::Index,
    /// 0-based attribute indexes grouped by.
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
        if stage != pg_sys::UpperRelationKind::UPPERREL_GROUP_AGG
            || (*input_rel).reloptkind != pg_sys::RelOptKind::RELOPT_BASEREL
            || (*input_rel).fdw_private.is_null()
            || !(*output_rel).fdw_private.is_null()
        {
            return;
        }
        let Some(upper) = grouping(root, input_rel, output_rel, extra.cast()) else { return };
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
        let total = STARTUP_COST + groups * ROW_COST + input_rows * ROW_COST * 0.01;
        let upper = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(upper);
        (*output_rel).fdw_private = upper.cast();
        let target = (*output_rel).reltarget;
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16"))]
        let path = pg_sys::create_foreign_upper_path(
            root,
            output_rel,
            target,
            groups,
            STARTUP_COST,
            total,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        #[cfg(feature = "pg17")]
        let path = pg_sys::create_foreign_upper_path(
            root,
            output_rel,
            target,
            groups,
            STARTUP_COST,
            total,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        #[cfg(feature = "pg18")]
        let path = pg_sys::create_foreign_upper_path(
            root,
            output_rel,
            target,
            groups,
            0,
            STARTUP_COST,
            total,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        pg_sys::add_path(output_rel, path.cast());
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
        let info = &*((*input_rel).fdw_private as *const RelInfo);
        // Every clause runs on the server; a pseudoconstant one (a gate PostgreSQL checks above
        // the scan) would not gate the groups.
        let clauses = deparse::list_nodes((*input_rel).baserestrictinfo);
        if clauses.len() != info.remote.len()
            || clauses.iter().any(|&r| (*(r as *mut pg_sys::RestrictInfo)).pseudoconstant)
        {
            return None;
        }
        let parse = (*root).parse;
        if !(*parse).groupingSets.is_null()
            || (*parse).hasTargetSRFs
            || (!extra.is_null()
                && (*extra).patype != pg_sys::PartitionwiseAggregateType::PARTITIONWISE_AGGREGATE_NONE)
        {
            return None;
        }
        let relid = (*input_rel).relid;
        let column_of = |node: *mut pg_sys::Node| -> Option<(usize, Oid, i32, Oid)> {
            if node.is_null() || (*node).type_ != NodeTag::T_Var {
                return None;
            }
            let var = node as *mut pg_sys::Var;
            ((*var).varno as pg_sys::Index == relid && (*var).varlevelsup == 0 && (*var).varattno > 0)
                .then(|| ((*var).varattno as usize - 1, (*var).vartype, (*var).vartypmod, (*var).varcollid))
        };
        // GROUP BY: every clause a plain column of equality the server shares.
        let (mut group_by, mut group_exprs) = (Vec::new(), Vec::new());
        for clause in deparse::list_nodes((*parse).groupClause) {
            let expr = pg_sys::get_sortgroupclause_expr(clause.cast(), (*parse).targetList);
            let (attr, type_oid, typmod, collation) = column_of(expr.cast())?;
            if !groups_alike(type_oid, typmod, collation) {
                return None;
            }
            group_by.push(attr);
            group_exprs.push(expr.cast());
        }
        // The outputs: grouping columns and aggregates of plain columns; of any other
        // expression (`max(i) - min(i)`, `round(sum(n) / 3, 2)`), the grouping columns and
        // aggregates it reads, PostgreSQL computing the rest from them. One output per distinct
        // expression: the scan target list (add_to_flat_tlist) holds each once.
        let mut upper = UpperInfo {
            relid,
            group_by,
            group_exprs,
            outputs: Vec::new(),
            scan_exprs: Vec::new(),
            local_conds: Vec::new(),
        };
        let having = if extra.is_null() { std::ptr::null_mut() } else { (*extra).havingQual };
        let having = deparse::list_nodes(having.cast());
        let targets = deparse::list_nodes((*(*output_rel).reltarget).exprs);
        for &node in targets.iter().chain(having.iter()) {
            let pieces = if column_of(node).is_some() || (*node).type_ == NodeTag::T_Aggref {
                vec![node]
            } else {
                deparse::list_nodes(pg_sys::pull_var_clause(node, pg_sys::PVC_INCLUDE_AGGREGATES as i32))
            };
            for piece in pieces {
                if upper.scan_exprs.iter().any(|&s| pg_sys::equal(s.cast(), piece.cast())) {
                    continue;
                }
                let output = if let Some((attr, ..)) = column_of(piece) {
                    if !upper.group_by.contains(&attr) {
                        return None;
                    }
                    Output::Group(attr)
                } else if (*piece).type_ == NodeTag::T_Aggref {
                    aggregate(piece.cast(), &column_of)?
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

/// Whether the server orders values of this type as PostgreSQL does (for min and max).
fn orders_alike(type_oid: Oid, typmod: i32, collation: Oid) -> bool {
    match type_oid {
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

/// The server's aggregate for `aggref`, if its result is PostgreSQL's.
unsafe fn aggregate(
    aggref: *mut pg_sys::Aggref,
    column_of: &dyn Fn(*mut pg_sys::Node) -> Option<(usize, Oid, i32, Oid)>,
) -> Option<Output> {
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
        let (column, type_oid, typmod, collation) = column_of((*entry).expr.cast())?;
        let function = match name.as_str() {
            "count" if !distinct || groups_alike(type_oid, typmod, collation) => Function::Count,
            "sum" => match type_oid {
                pg_sys::INT2OID | pg_sys::INT4OID => Function::Sum,
                pg_sys::INT8OID => Function::SumAsDecimal,
                pg_sys::NUMERICOID if typmod >= 0 => Function::Sum,
                _ => return None,
            },
            "min" | "max" if !distinct && orders_alike(type_oid, typmod, collation) => {
                if name == "min" {
                    Function::Min
                } else {
                    Function::Max
                }
            }
            "avg" => match type_oid {
                pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID => Function::Avg,
                pg_sys::NUMERICOID if typmod >= 0 => Function::Avg,
                _ => return None,
            },
            "bool_and" if type_oid == pg_sys::BOOLOID => Function::BoolAnd,
            "bool_or" if type_oid == pg_sys::BOOLOID => Function::BoolOr,
            _ => return None,
        };
        Some(Output::Aggregate { function, column, distinct })
    }
}

/// `fdw_private` entries of a grouped scan, after the table scan's ([`crate::scan`]'s first
/// three): the foreign table's OID, the attributes grouped by, and the outputs as quadruples
/// (kind 0 = group column / 1 = aggregate, function code, column, distinct).
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
        pg_sys::lappend(list, deparse::make_int_list(outputs).cast())
    }
}

/// The grouped scan `encode` described: (foreign table, grouped attributes, outputs); `None`
/// for a table scan's `fdw_private`.
pub(crate) unsafe fn decode(list: *mut pg_sys::List) -> Option<(Oid, Vec<usize>, Vec<Output>)> {
    // SAFETY: a list made by scan.rs and `encode`.
    unsafe {
        let parts = deparse::list_nodes(list);
        if parts.len() < 6 {
            return None;
        }
        let table = Oid::from(deparse::int_list(parts[3].cast())[0] as u32);
        let group_by = deparse::int_list(parts[4].cast()).into_iter().map(|a| a as usize).collect();
        let codes = deparse::int_list(parts[5].cast());
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
        Some((table, group_by, outputs))
    }
}
