//! Deparse: which WHERE clauses of a foreign scan run on the server.
//!
//! As in postgres_fdw, the walker decides first and `kalam_pushdown` prints: [`Deparser`]
//! reads a clause's PostgreSQL expression tree and builds a [`Qual`] only when the server
//! computes exactly what PostgreSQL computes, rows and errors alike; otherwise it says why and
//! the clause is checked locally. Speed never buys a wrong row.
//!
//! Shipped:
//! - comparisons `= <> < <= > >=` between values of one class: integers (smallint, integer,
//!   bigint, mixed), numeric, boolean, date, time, timestamp, timestamptz, uuid, bytea, and
//!   text/varchar: `=` and `<>` under a deterministic collation (equal means the same bytes),
//!   the ordering operators only under the C or POSIX collation, where PostgreSQL compares bytes
//!   as DataFusion does;
//! - `IS [NOT] DISTINCT FROM` with the same operators; `IN (...)`/`= ANY(array)` and
//!   `NOT IN`/`<> ALL(array)` of an array constant, with SQL's NULL semantics;
//! - `AND`, `OR`, `NOT`, `IS [NOT] NULL`, `IS [NOT] TRUE/FALSE`, a boolean column alone;
//! - `LIKE`/`NOT LIKE` on text with a constant pattern (PostgreSQL's default escape `\`),
//!   `^@` (starts with) under a deterministic collation;
//! - `ILIKE`/`NOT ILIKE` with a constant pattern where `LC_CTYPE` is C or POSIX (the `C` and
//!   `POSIX` collations, or a database created with that ctype): PostgreSQL lowers `A`-`Z` of
//!   both sides and matches as LIKE, which the server does through `pg_ascii_lower`;
//! - on a server that lists its functions with PostgreSQL's semantics (GetSqlInfo, as
//!   kalamdb-server does): float comparisons through `pg_float`, and the JSON operators on json
//!   and jsonb columns, `->`, `->>`, `#>`, `#>>` (keys, indexes, constant paths; their text
//!   results compared as text) and `?`, `?|`, `?&`, `@>`, through `pg_json_*`/`pg_jsonb_*`, and
//!   `json(b)_extract_path(_text)` with constant steps (PostgreSQL's `#>` and `#>>` call the
//!   same C functions);
//! - as values: the table's columns, constants, and values PostgreSQL computes once when the
//!   scan starts: parameters (`$n`, PL/pgSQL variables, init-plan results, an outer row's values)
//!   and stable expressions without columns (`now()`, `current_date`, `now() - interval '1 day'`);
//!   in a parameterized path, the columns of the outer relations of a join clause (a nested loop
//!   over a small local table fetches only the matching rows).
//!   postgres_fdw keeps stable expressions local; evaluating them once, in PostgreSQL, and
//!   shipping the value gives the same rows, because a stable expression has one value in a scan.
//!
//! Kept local, and why:
//! - real and double precision comparisons, on a server without `pg_float`: DataFusion orders
//!   NaNs by their bits (a NaN with its sign bit set below every number, unequal to a positive
//!   NaN), PostgreSQL has every NaN equal to every other and above all numbers; kalamdb-server's
//!   `pg_float` maps each float to PostgreSQL's order, and comparisons go through it;
//! - char(n) comparisons (PostgreSQL ignores trailing spaces), text ordering under any other
//!   collation, ILIKE under any other `LC_CTYPE` (the locale lowers letters beyond ASCII, some
//!   into ASCII: the Kelvin sign becomes `k`; in Turkish `I` becomes `ı`), regular expressions;
//! - comparisons of json/jsonb values themselves (jsonb compares numbers by value, json cannot
//!   be compared), casts of JSON text (`(payload->>'n')::numeric`);
//! - casts, arithmetic and other functions of columns (overflow, rounding, time zone and
//!   formatting rules differ), volatile functions (they run once per row, in PostgreSQL),
//!   subqueries;
//! - numeric constants the server cannot hold exactly (NaN, ±Infinity, over 38 digits) and
//!   numeric values computed at scan start (their value, unknown when planning, might be such);
//!   a LIKE pattern ending in its escape character (PostgreSQL raises an error for it);
//!   text values in a database whose encoding is not UTF-8;
//! - anything on a column whose remote Arrow type is not of the column's class (a foreign table
//!   declared with another type than the server's): the comparison would not mean the same.

use std::ffi::CStr;

use arrow_schema::DataType;
use kalam_pushdown::aggregate::{Function, Output};
use kalam_pushdown::subquery::function_is_scalar;
use kalam_pushdown::{Comparison, Literal, Qual};
use pgrx::pg_sys::{self, Datum, Node, NodeTag, Oid};
use pgrx::{FromDatum, is_a};

/// The server functions the shipped expressions call; a server must have all of them.
pub const PG_FUNCTIONS_USED: &[&str] = &[
    "pg_numeric_sum",
    "pg_numeric_avg",
    "pg_float",
    "pg_ascii_lower",
    "pg_json_field",
    "pg_json_field_text",
    "pg_json_element",
    "pg_json_element_text",
    "pg_json_path",
    "pg_json_path_text",
    "pg_jsonb_exists",
    "pg_jsonb_exists_any",
    "pg_jsonb_exists_all",
    "pg_jsonb_contains",
];

/// The value classes comparisons are shipped for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Numeric,
    Bool,
    Text,
    Bytes,
    Uuid,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    /// json and jsonb values (JSON text on the server).
    Json,
    Jsonb,
}

impl Class {
    /// The class of values of a PostgreSQL type.
    pub fn of(type_oid: Oid) -> Option<Class> {
        Some(match type_oid {
            pg_sys::INT2OID => Class::Int16,
            pg_sys::INT4OID => Class::Int32,
            pg_sys::INT8OID => Class::Int64,
            pg_sys::FLOAT4OID => Class::Float32,
            pg_sys::FLOAT8OID => Class::Float64,
            pg_sys::NUMERICOID => Class::Numeric,
            pg_sys::BOOLOID => Class::Bool,
            pg_sys::TEXTOID | pg_sys::VARCHAROID => Class::Text,
            pg_sys::BYTEAOID => Class::Bytes,
            pg_sys::UUIDOID => Class::Uuid,
            pg_sys::DATEOID => Class::Date,
            pg_sys::TIMEOID => Class::Time,
            pg_sys::TIMESTAMPOID => Class::Timestamp,
            pg_sys::TIMESTAMPTZOID => Class::TimestampTz,
            pg_sys::JSONOID => Class::Json,
            pg_sys::JSONBOID => Class::Jsonb,
            _ => return None,
        })
    }

    fn is_integer(self) -> bool {
        matches!(self, Class::Int16 | Class::Int32 | Class::Int64)
    }

    fn is_float(self) -> bool {
        matches!(self, Class::Float32 | Class::Float64)
    }

    /// Whether PostgreSQL's comparison of the two classes can be the server's: the same class
    /// (or integers, or floats, of any width), floats only through `pg_float`, and never JSON
    /// (jsonb compares numbers by value, json not at all).
    fn comparable(self, other: Class, pg_functions: bool) -> bool {
        let same = self == other
            || (self.is_integer() && other.is_integer())
            || (self.is_float() && other.is_float());
        same && (!self.is_float() || pg_functions) && !matches!(self, Class::Json | Class::Jsonb)
    }

    /// Whether a remote column of `remote` type holds values of this class, so the server
    /// compares them as PostgreSQL compares this class.
    pub fn holds(self, remote: &DataType) -> bool {
        use DataType::*;
        match self {
            Class::Int16 | Class::Int32 | Class::Int64 => matches!(remote, Int8 | Int16 | Int32 | Int64),
            Class::Float32 | Class::Float64 => matches!(remote, Float32 | Float64),
            Class::Numeric => matches!(remote, Decimal128(..)),
            Class::Bool => matches!(remote, Boolean),
            Class::Text => matches!(remote, Utf8 | LargeUtf8 | Utf8View),
            Class::Bytes => matches!(remote, Binary | LargeBinary | BinaryView),
            Class::Uuid => matches!(remote, FixedSizeBinary(16)),
            Class::Date => matches!(remote, Date32),
            Class::Time => matches!(remote, Time64(_) | Time32(_)),
            Class::Timestamp => matches!(remote, Timestamp(_, None)),
            Class::TimestampTz => matches!(remote, Timestamp(_, Some(_))),
            Class::Json | Class::Jsonb => matches!(remote, Utf8 | LargeUtf8 | Utf8View),
        }
    }
}

/// A column of the foreign table as clauses may use it.
#[derive(Clone, Debug)]
pub struct QualColumn {
    /// Index in the scan's column list.
    pub index: usize,
    /// The class of its declared type, if comparisons of it can be shipped.
    pub class: Option<Class>,
    /// Whether the remote column exists with a type of that class (or, without a class, at all).
    pub remote_matches: bool,
}

/// Why a clause stays local.
pub type Local = &'static str;

/// Decides, clause by clause, what the server runs.
pub struct Deparser<'a> {
    /// The foreign tables whose columns clauses read: range-table index, columns (by attribute
    /// number - 1), and the number of the first column among all (a join numbers the columns
    /// of its tables one after another).
    relations: Vec<(pg_sys::Index, &'a [Option<QualColumn>], usize)>,
    /// How the database's default collation compares and lowers text.
    default_locale: DefaultLocale,
    /// Whether the server has the functions with PostgreSQL's semantics (floats, JSON).
    pg_functions: bool,
    /// Whether columns of other relations count as values computed when the scan starts (a
    /// parameterized path: a nested loop sends the outer row's values at each rescan).
    outer_values: bool,
    /// Expressions PostgreSQL evaluates when the scan starts, in [`Qual::Parameter`] order.
    pub parameters: Vec<*mut pg_sys::Expr>,
    /// The statement's subqueries, for `x [NOT] IN (subquery)` conditions, scalar subqueries
    /// and numeric init plans (none: those stay local).
    subqueries: Option<Subqueries>,
}

/// Where a deparser finds the plans of the statement's subqueries: a condition
/// `x [NOT] IN (subquery)` is sent when its subquery is planned as one foreign scan of the
/// same server, all of whose clauses the server runs, read as the same user; a scalar
/// subquery when it is one grouped scan so ([`Subqueries::scalar`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subqueries {
    /// The plans, by `plan_id - 1` (PlannerGlobal's or PlannedStmt's `subplans`).
    pub(crate) plans: *mut pg_sys::List,
    /// The server of the scan whose conditions are deparsed.
    pub(crate) server: pg_sys::Oid,
    /// What else each phase has of the subqueries.
    pub(crate) phase: Phase,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Phase {
    Planning {
        /// Each subquery's own root (PlannerGlobal's `subroots`, by `plan_id - 1`), with its
        /// range table and its relations as pg_kalam planned them.
        subroots: *mut pg_sys::List,
        /// The query level's init plans (SubPlans setting the parameters they compute).
        init_plans: *mut pg_sys::List,
    },
    Executing {
        /// The statement's range table (flattened by the planner).
        range_table: *mut pg_sys::List,
        /// The plans' states (EState's `es_subplanstates`, begun before the statement's own
        /// plan), whose grouped scans hold what scalar subqueries send.
        states: *mut pg_sys::List,
        /// The statement, whose plans hold the init plans.
        statement: *mut pg_sys::PlannedStmt,
    },
}

impl Subqueries {
    /// The subqueries of the statement being planned, for a scan of `server` read as `user`
    /// (none when another user's: the subquery's table would be read with other credentials).
    ///
    /// # Safety
    /// `root` must be the planner's.
    pub(crate) unsafe fn planning(
        root: *mut pg_sys::PlannerInfo,
        server: pg_sys::Oid,
        user: pg_sys::Oid,
    ) -> Option<Self> {
        // SAFETY: per the contract.
        unsafe {
            let glob = (*root).glob;
            (user == pg_sys::InvalidOid && !glob.is_null()).then(|| Subqueries {
                plans: (*glob).subplans,
                server,
                phase: Phase::Planning { subroots: (*glob).subroots, init_plans: (*root).init_plans },
            })
        }
    }

    /// The subqueries of the statement `node` runs in.
    ///
    /// # Safety
    /// `node` must be an initialized ForeignScanState of `plan`.
    pub(crate) unsafe fn executing(
        node: *mut pg_sys::ForeignScanState,
        plan: *mut pg_sys::ForeignScan,
    ) -> Option<Self> {
        // SAFETY: per the contract.
        unsafe {
            let estate = (*node).ss.ps.state;
            let statement = (*estate).es_plannedstmt;
            (!statement.is_null()).then(|| Subqueries {
                plans: (*statement).subplans,
                server: (*plan).fs_server,
                phase: Phase::Executing {
                    range_table: (*estate).es_range_table,
                    states: (*estate).es_subplanstates,
                    statement,
                },
            })
        }
    }

    /// Subquery `plan_id`'s plan (and its index among the plans), if it is one foreign scan
    /// of this server.
    unsafe fn foreign_scan(&self, plan_id: i32) -> Result<(usize, *mut pg_sys::ForeignScan), Local> {
        // SAFETY: the statement's list of plans; the node tag is checked before the cast.
        unsafe {
            let index = usize::try_from(plan_id - 1).map_err(|_| "a subquery without a plan")?;
            let plan = *list_nodes(self.plans).get(index).ok_or("a subquery without a plan")?;
            if !is_a(plan, NodeTag::T_ForeignScan) {
                return Err("a subquery that is not one foreign scan");
            }
            let scan = plan as *mut pg_sys::ForeignScan;
            if (*scan).fs_server != self.server {
                return Err("a subquery of another server");
            }
            Ok((index, scan))
        }
    }

    /// The foreign scan of subquery `plan_id` as the server runs it, reading `pg_functions`
    /// as the outer scan does.
    unsafe fn scan(&self, plan_id: i32, pg_functions: bool) -> Result<kalam_pushdown::RemoteScan, Local> {
        // SAFETY: plan and range-table lists of the statement.
        unsafe {
            let (index, scan) = self.foreign_scan(plan_id)?;
            let relid = (*scan).scan.scanrelid;
            if relid == 0 {
                return Err("a subquery that is not a scan of one table");
            }
            if !(*scan).scan.plan.qual.is_null()
                || !(*scan).scan.plan.initPlan.is_null()
                || !(*scan).fdw_exprs.is_null()
            {
                return Err("a subquery with clauses or values PostgreSQL computes");
            }
            // While planning, also the subquery's relation as pg_kalam planned it.
            let (rte, planned) = match self.phase {
                Phase::Planning { subroots, .. } => {
                    let subroot = subroot(subroots, index)?;
                    let rel = if (relid as i32) < (*subroot).simple_rel_array_size {
                        *(*subroot).simple_rel_array.add(relid as usize)
                    } else {
                        std::ptr::null_mut()
                    };
                    if rel.is_null() || (*rel).fdw_private.is_null() {
                        return Err("a subquery scan without its planned table");
                    }
                    let planned = &*((*rel).fdw_private as *const crate::scan::RelInfo);
                    (subroot_table(subroot, relid)?, Some(planned))
                }
                Phase::Executing { range_table, .. } => (range_entry(range_table, relid)?, None),
            };
            if scan_user(scan, rte) != pg_sys::InvalidOid {
                return Err("a subquery read as another user");
            }
            // Its one output: a column of its table.
            let var = only_output(scan)?;
            if !is_a(var, NodeTag::T_Var) {
                return Err("a subquery of a computed value");
            }
            let var = var as *mut pg_sys::Var;
            if (*var).varno as pg_sys::Index != relid || (*var).varattno <= 0 {
                return Err("a subquery of a value other than its table's column");
            }
            // Its column holds on the server what its declared type says (checked when
            // planned: the executor sends what was planned).
            let column = planned.map(|p| p.columns.get((*var).varattno as usize - 1).cloned().flatten());
            if let Some(column) = column
                && !column.is_some_and(|c| c.remote_matches && c.class.is_some())
            {
                return Err("a subquery of a column whose remote type is not of its declared class");
            }
            crate::scan::subquery_scan(scan, (*rte).relid, (*var).varattno as usize - 1, pg_functions)
        }
    }
}

/// A correlated scalar subquery's grouped scan, ready to be sent inside an outer statement.
pub(crate) struct ScalarPlan {
    /// What it sends (when executing; `None` while planning).
    pub(crate) query: Option<kalam_pushdown::aggregate::RemoteAggregate>,
    /// Which output is the value.
    pub(crate) output: usize,
    /// The value is `factor * output`.
    pub(crate) factor: Option<Literal>,
    /// For each parameter of the scan (in its order), the index of the SubPlan's argument
    /// (the outer value) it stands for.
    pub(crate) arguments: Vec<usize>,
}

impl Subqueries {
    /// Scalar subquery `plan_id` (correlated through the parameters `param_ids`): sent when it
    /// is one grouped scan of this server with no GROUP BY (one row for every outer row), of
    /// shared tables read as the current user, whose every clause and output the server
    /// computes; whose outer values are compared with `=` to columns in its WHERE only (the
    /// server turns those into a join); and whose value is an aggregate that is NULL over no
    /// rows (min, max, sum, bool_and, bool_or: not count), or a decimal constant times it.
    unsafe fn scalar(&self, plan_id: i32, param_ids: &[i32]) -> Result<ScalarPlan, Local> {
        // SAFETY: plan and range-table lists of the statement; node tags checked before casts.
        unsafe {
            let (index, scan) = self.foreign_scan(plan_id)?;
            if !(*scan).scan.plan.qual.is_null() || !(*scan).scan.plan.initPlan.is_null() {
                return Err("a subquery with clauses PostgreSQL computes");
            }
            let grouped = crate::scan::grouped_subquery(scan)?;
            if !grouped.group_by.is_empty() || grouped.order != kalam_pushdown::OrderLimit::default() {
                return Err("a subquery of groups, or ordered");
            }
            // Shared tables, read as the current user (a user table's rows are scoped by the
            // statement's user, which the outer statement may not have).
            for &(relid, oid) in &grouped.tables {
                let relation = pgrx::PgRelation::with_lock(oid, pg_sys::NoLock as pg_sys::LOCKMODE);
                crate::scan::shared_table_options(&relation)?;
                if let Phase::Planning { subroots, .. } = self.phase {
                    let rte = subroot_table(subroot(subroots, index)?, relid)?;
                    if scan_user(scan, rte) != pg_sys::InvalidOid {
                        return Err("a subquery read as another user");
                    }
                }
            }
            // Outer values only in `column = value` conditions of its WHERE.
            let ids = make_int_list(param_ids.iter().copied());
            let correlated = |node: *mut Node| pg_sys::contain_exec_param(node, ids);
            let nested = |node: *mut Node| pg_sys::contain_subplans(node);
            if grouped.on.iter().chain(&grouped.computed).any(|&c| correlated(c) || nested(c))
                || correlated((*scan).fdw_scan_tlist.cast())
                || nested((*scan).fdw_scan_tlist.cast())
            {
                return Err("a subquery using outer values other than in its WHERE");
            }
            for &clause in &grouped.filters {
                if nested(clause) {
                    return Err("a subquery with a subquery of its own");
                }
                if correlated(clause) && !column_equals_parameter(clause) {
                    return Err("a subquery comparing outer values other than with =");
                }
            }
            // Its parameters are the outer values, nothing else.
            let mut arguments = Vec::new();
            for expr in list_nodes((*scan).fdw_exprs) {
                let position = is_a(expr, NodeTag::T_Param)
                    .then(|| expr as *mut pg_sys::Param)
                    .filter(|p| (**p).paramkind == pg_sys::ParamKind::PARAM_EXEC)
                    .and_then(|p| param_ids.iter().position(|&id| id == (*p).paramid))
                    .ok_or("a subquery with values PostgreSQL computes")?;
                arguments.push(position);
            }
            // Its value: one output, or a decimal constant times it.
            let (value, factor) = split_factor(only_output(scan)?);
            let scan_tlist = list_nodes((*scan).fdw_scan_tlist);
            let position = if is_a(value, NodeTag::T_Var)
                && (*(value as *mut pg_sys::Var)).varno == pg_sys::INDEX_VAR as i32
            {
                usize::try_from((*(value as *mut pg_sys::Var)).varattno - 1).ok()
            } else {
                scan_tlist.iter().position(|&t| {
                    pg_sys::equal((*(t as *mut pg_sys::TargetEntry)).expr.cast(), value.cast())
                })
            }
            .ok_or("a subquery whose value is computed by PostgreSQL")?;
            let Some(&Output::Aggregate { function, .. }) = grouped.outputs.get(position) else {
                return Err("a subquery whose value is no aggregate");
            };
            if !function_is_scalar(function) && function != Function::Avg {
                return Err("a subquery whose aggregate is not NULL over no rows, or computed here");
            }
            if grouped.outputs[..position].iter().any(|o| o.width() != 1) {
                return Err("a subquery whose outputs the server sends in several columns");
            }
            let aggregate = (*(scan_tlist[position] as *mut pg_sys::TargetEntry)).expr;
            let factor = value_digits(factor, aggregate.cast(), function)?;
            let query = if let Phase::Executing { states, .. } = self.phase {
                let state = *list_nodes(states).get(index).ok_or("a subquery without its state")?;
                let (query, parameters) = crate::scan::planned_aggregate(state.cast())
                    .ok_or("a subquery whose scan was not begun")?;
                if parameters != arguments.len() {
                    return Err("a subquery whose scan has other parameters than planned");
                }
                Some(query)
            } else {
                None
            };
            Ok(ScalarPlan { query, output: position, factor, arguments })
        }
    }
}

/// Whether `call` is `substring(text FROM a FOR b)` (or `substr(text, a, b)`).
pub(crate) unsafe fn is_substring(call: *mut pg_sys::FuncExpr) -> bool {
    // SAFETY: a FuncExpr.
    unsafe {
        matches!(
            u32::from((*call).funcid),
            pg_sys::F_SUBSTRING_TEXT_INT4_INT4 | pg_sys::F_SUBSTR_TEXT_INT4_INT4
        )
    }
}

/// The text argument and the bounds of a [`is_substring`] call the server computes alike:
/// constant, the start at least 1 and the length at least 0 (both count characters).
pub(crate) unsafe fn substring_bounds(call: *mut pg_sys::FuncExpr) -> Option<(*mut Node, i32, i32)> {
    // SAFETY: a FuncExpr.
    unsafe {
        let [text, start, length] = list_nodes((*call).args)[..] else { return None };
        let (start, length) = (int4_constant(start)?, int4_constant(length)?);
        (start >= 1 && length >= 0).then_some((text, start, length))
    }
}

/// The value of `node`, an int4 constant that is not NULL.
unsafe fn int4_constant(node: *mut Node) -> Option<i32> {
    // SAFETY: the node tag is checked before the cast.
    unsafe {
        if !is_a(node, NodeTag::T_Const) {
            return None;
        }
        let constant = node as *mut pg_sys::Const;
        ((*constant).consttype == pg_sys::INT4OID && !(*constant).constisnull)
            .then(|| (*constant).constvalue.value() as i32)
    }
}

impl Subqueries {
    /// The plan of the uncorrelated scalar subquery (init plan) that computes parameter
    /// `param_id`, if it is one.
    unsafe fn init_plan(&self, param_id: i32) -> Option<i32> {
        // SAFETY: lists and plans of the statement being planned or run.
        unsafe {
            let sets = |subplan: *mut Node| -> Option<i32> {
                let subplan = subplan as *mut pg_sys::SubPlan;
                (is_a(subplan.cast(), NodeTag::T_SubPlan)
                    && (*subplan).subLinkType == pg_sys::SubLinkType::EXPR_SUBLINK
                    && int_list((*subplan).setParam) == [param_id])
                .then(|| (*subplan).plan_id)
            };
            match self.phase {
                Phase::Planning { init_plans, .. } => list_nodes(init_plans).into_iter().find_map(sets),
                Phase::Executing { statement, .. } => {
                    let mut plans = vec![(*statement).planTree];
                    plans.extend(list_nodes((*statement).subplans).into_iter().map(|p| p.cast()));
                    plans.into_iter().find_map(|plan| find_init_plan(plan, &sets))
                }
            }
        }
    }
}

/// The init plan under `plan` (its own and its children's) that `sets` picks.
unsafe fn find_init_plan(plan: *mut pg_sys::Plan, sets: &dyn Fn(*mut Node) -> Option<i32>) -> Option<i32> {
    // SAFETY: a plan tree; node tags are checked before each cast.
    unsafe {
        if plan.is_null() {
            return None;
        }
        if let Some(found) = list_nodes((*plan).initPlan).into_iter().find_map(sets) {
            return Some(found);
        }
        let node = plan.cast::<Node>();
        let mut children = vec![(*plan).lefttree, (*plan).righttree];
        if is_a(node, NodeTag::T_Append) {
            children.extend(
                list_nodes((*(plan as *mut pg_sys::Append)).appendplans).into_iter().map(|p| p.cast()),
            );
        } else if is_a(node, NodeTag::T_MergeAppend) {
            children.extend(
                list_nodes((*(plan as *mut pg_sys::MergeAppend)).mergeplans).into_iter().map(|p| p.cast()),
            );
        } else if is_a(node, NodeTag::T_SubqueryScan) {
            children.push((*(plan as *mut pg_sys::SubqueryScan)).subplan);
        }
        children.into_iter().find_map(|child| find_init_plan(child, sets))
    }
}

/// The expression of a subquery's one output column.
unsafe fn only_output(scan: *mut pg_sys::ForeignScan) -> Result<*mut Node, Local> {
    // SAFETY: a plan's target list of TargetEntry nodes.
    unsafe {
        let outputs: Vec<_> = list_nodes((*scan).scan.plan.targetlist)
            .into_iter()
            .map(|t| t as *mut pg_sys::TargetEntry)
            .filter(|t| !(**t).resjunk)
            .collect();
        let [output] = outputs[..] else { return Err("a subquery of more than one column") };
        Ok((*output).expr.cast())
    }
}

/// Whether `clause` is `column = parameter` (either way round) with a built-in `=`.
unsafe fn column_equals_parameter(clause: *mut Node) -> bool {
    // SAFETY: node tags are checked before each cast.
    unsafe {
        if !is_a(clause, NodeTag::T_OpExpr) {
            return false;
        }
        let expr = clause as *mut pg_sys::OpExpr;
        let args: Vec<_> =
            list_nodes((*expr).args).into_iter().map(|a| crate::upper::strip_relabel(a)).collect();
        let equality =
            BuiltinOperator::lookup((*expr).opno).and_then(|o| o.comparison()) == Some(Comparison::Eq);
        // The server joins on a column as it is (a float is compared through `pg_float`, which
        // it cannot join on).
        let plain = |var: *mut Node| {
            is_a(var, NodeTag::T_Var) && Class::of(pg_sys::exprType(var)).is_some_and(|c| !c.is_float())
        };
        equality
            && matches!(args[..], [a, b] if (plain(a) && is_a(b, NodeTag::T_Param))
                || (is_a(a, NodeTag::T_Param) && plain(b)))
    }
}

/// `constant * value` (or `value * constant`) with numeric `*`: (value, constant); else
/// (`expr`, none).
unsafe fn split_factor(expr: *mut Node) -> (*mut Node, Option<*mut pg_sys::Const>) {
    // SAFETY: node tags are checked before each cast.
    unsafe {
        if is_a(expr, NodeTag::T_OpExpr)
            && (*(expr as *mut pg_sys::OpExpr)).opfuncid == pg_sys::Oid::from(pg_sys::F_NUMERIC_MUL)
        {
            let args = list_nodes((*(expr as *mut pg_sys::OpExpr)).args);
            match args[..] {
                [a, b] if is_a(a, NodeTag::T_Const) => return (b, Some(a as *mut pg_sys::Const)),
                [a, b] if is_a(b, NodeTag::T_Const) => return (a, Some(b as *mut pg_sys::Const)),
                _ => {}
            }
        }
        (expr, None)
    }
}

/// The constant a subquery's aggregate is multiplied by, if any, when every digit of the
/// value fits the server's decimals: the aggregate of a numeric(p, s) (or integer) column has
/// at most p digits (min, max), p + 10 (a sum, of fewer than 10^10 rows) of 38, or, as an
/// average, p - s whole digits and s + 40 decimals ([`kalam_pushdown::subquery::AVERAGE_FUNCTION`])
/// of 76.
unsafe fn value_digits(
    constant: Option<*mut pg_sys::Const>,
    aggregate: *mut Node,
    function: Function,
) -> Result<Option<Literal>, Local> {
    // SAFETY: node tags are checked before each cast.
    unsafe {
        let (factor, factor_digits, factor_scale) = match constant {
            None => (None, 0, 0),
            Some(constant) => {
                match literal((*constant).constvalue, (*constant).constisnull, (*constant).consttype) {
                    Some(value @ Literal::Decimal { precision, scale, .. }) => {
                        (Some(value), i32::from(precision), i32::from(scale))
                    }
                    _ => return Err("a subquery's value times a constant that is not a finite decimal"),
                }
            }
        };
        if !is_a(aggregate, NodeTag::T_Aggref) {
            return Err("a subquery's value that is not an aggregate");
        }
        let args = list_nodes((*(aggregate as *mut pg_sys::Aggref)).args);
        let [argument] = args[..] else { return Err("an aggregate of other than one argument") };
        let argument = (*(argument as *mut pg_sys::TargetEntry)).expr.cast::<Node>();
        let typmod = pg_sys::exprTypmod(argument);
        let (precision, scale) = match pg_sys::exprType(argument) {
            pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID => (19, 0),
            pg_sys::NUMERICOID if typmod >= pg_sys::VARHDRSZ as i32 => (
                ((typmod - pg_sys::VARHDRSZ as i32) >> 16) & 0xffff,
                (typmod - pg_sys::VARHDRSZ as i32) & 0x7ff,
            ),
            _ if factor.is_none() && function != Function::Avg => return Ok(None),
            _ => return Err("a subquery's value of a numeric without precision"),
        };
        let extra = i32::from(kalam_pushdown::subquery::AVERAGE_EXTRA_SCALE);
        let fits = match function {
            Function::Avg => precision + extra + factor_digits <= 76 && scale + extra + factor_scale <= 76,
            Function::Sum | Function::SumAsDecimal => {
                factor.is_none() || (precision + 10 + factor_digits <= 38 && scale + factor_scale <= 38)
            }
            _ => factor.is_none() || (precision + factor_digits <= 38 && scale + factor_scale <= 38),
        };
        if !fits {
            return Err("a subquery's value past the server's digits");
        }
        Ok(factor)
    }
}

/// Subquery `index`'s root, while planning.
unsafe fn subroot(subroots: *mut pg_sys::List, index: usize) -> Result<*mut pg_sys::PlannerInfo, Local> {
    // SAFETY: PlannerGlobal's list of subroots.
    unsafe { list_nodes(subroots).get(index).map(|&r| r.cast()).ok_or("a subquery without a plan") }
}

/// Entry `relid` of a subquery's own range table, while planning.
unsafe fn subroot_table(
    subroot: *mut pg_sys::PlannerInfo,
    relid: pg_sys::Index,
) -> Result<*mut pg_sys::RangeTblEntry, Local> {
    // SAFETY: a subquery's root.
    unsafe {
        let rtable = (*subroot).parse.as_ref().map_or(std::ptr::null_mut(), |q| q.rtable);
        range_entry(rtable, relid)
    }
}

/// Entry `relid` (1-based) of `range_table`.
unsafe fn range_entry(
    range_table: *mut pg_sys::List,
    relid: pg_sys::Index,
) -> Result<*mut pg_sys::RangeTblEntry, Local> {
    // SAFETY: a range table.
    unsafe {
        let index = (relid as usize).checked_sub(1).ok_or("a subquery scan without its table")?;
        list_nodes(range_table).get(index).map(|&e| e.cast()).ok_or("a subquery scan without its table")
    }
}

/// The user a subquery's foreign scan reads as (InvalidOid: the current user).
#[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
unsafe fn scan_user(_scan: *mut pg_sys::ForeignScan, rte: *mut pg_sys::RangeTblEntry) -> pg_sys::Oid {
    // SAFETY: a range-table entry of the statement.
    unsafe { (*rte).checkAsUser }
}

/// The user a subquery's foreign scan reads as (InvalidOid: the current user).
#[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
unsafe fn scan_user(scan: *mut pg_sys::ForeignScan, _rte: *mut pg_sys::RangeTblEntry) -> pg_sys::Oid {
    // SAFETY: a foreign scan of the statement.
    unsafe { (*scan).checkAsUser }
}

impl<'a> Deparser<'a> {
    pub fn new(relid: pg_sys::Index, columns: &'a [Option<QualColumn>], pg_functions: bool) -> Self {
        Self {
            relations: vec![(relid, columns, 0)],
            default_locale: default_locale(),
            pg_functions,
            outer_values: false,
            parameters: Vec::new(),
            subqueries: None,
        }
    }

    /// Sends the `x [NOT] IN (subquery)` conditions and scalar subqueries whose plans
    /// `subqueries` has.
    pub(crate) fn with_subqueries(mut self, subqueries: Option<Subqueries>) -> Self {
        self.subqueries = subqueries;
        self
    }

    /// Reads the columns of one more foreign table (of a join), numbered from `offset`.
    pub fn with_relation(
        mut self,
        relid: pg_sys::Index,
        columns: &'a [Option<QualColumn>],
        offset: usize,
    ) -> Self {
        self.relations.push((relid, columns, offset));
        self
    }

    /// Reads columns of other relations as values computed when the scan starts.
    pub fn with_outer_values(mut self) -> Self {
        self.outer_values = true;
        self
    }

    /// The qual of one clause, or why it stays local. A clause that stays local adds no
    /// parameter.
    ///
    /// # Safety
    /// `clause` must be a valid expression tree of the planner or of a plan.
    pub unsafe fn clause(&mut self, clause: *mut pg_sys::Expr) -> Result<Qual, Local> {
        let before = self.parameters.len();
        // SAFETY: per the contract.
        let result = unsafe {
            match self.subquery_condition(clause.cast()) {
                Some(result) => result,
                None => self.boolean(clause.cast()),
            }
        };
        if result.is_err() {
            self.parameters.truncate(before);
        }
        result
    }

    /// `x [NOT] IN (subquery)` as PostgreSQL plans it (a hashed SubPlan testing
    /// `x = <its column>`; an unhashed one reads a Material node, and stays local), if `node` is one: sent when the subquery is uncorrelated and is one
    /// foreign scan of this server ([`Subqueries`]), and `=` compares as on the server. The
    /// server's `NOT IN` follows SQL's NULL rules, as PostgreSQL's does.
    unsafe fn subquery_condition(&mut self, node: *mut Node) -> Option<Result<Qual, Local>> {
        // SAFETY: node tags are checked before each cast.
        unsafe {
            let (subplan, negated) = if is_a(node, NodeTag::T_SubPlan) {
                (node, false)
            } else if is_a(node, NodeTag::T_BoolExpr)
                && (*(node as *mut pg_sys::BoolExpr)).boolop == pg_sys::BoolExprType::NOT_EXPR
            {
                let args = list_nodes((*(node as *mut pg_sys::BoolExpr)).args);
                match args[..] {
                    [arg] if is_a(arg, NodeTag::T_SubPlan) => (arg, true),
                    _ => return None,
                }
            } else {
                return None;
            };
            Some(self.in_subquery(subplan as *mut pg_sys::SubPlan, negated))
        }
    }

    unsafe fn in_subquery(&mut self, subplan: *mut pg_sys::SubPlan, negated: bool) -> Result<Qual, Local> {
        // SAFETY: a SubPlan of the clause; node tags are checked before each cast.
        unsafe {
            // kalamdb-server's `NOT IN` follows SQL's NULL rules (a null-aware anti join); a
            // server without PostgreSQL's functions is not assumed to.
            let subqueries = self.subqueries.filter(|_| self.pg_functions).ok_or("a subquery")?;
            if (*subplan).subLinkType != pg_sys::SubLinkType::ANY_SUBLINK {
                return Err("a subquery other than IN");
            }
            if !(*subplan).parParam.is_null() || !(*subplan).args.is_null() {
                return Err("a correlated subquery");
            }
            let ids = int_list((*subplan).paramIds);
            let [param_id] = ids[..] else { return Err("IN of a row") };
            let test = (*subplan).testexpr;
            if !is_a(test, NodeTag::T_OpExpr) {
                return Err("IN with a test other than one operator");
            }
            let args = list_nodes((*(test as *mut pg_sys::OpExpr)).args);
            let is_column_param = |node: *mut Node| {
                is_a(node, NodeTag::T_Param) && {
                    let param = node as *mut pg_sys::Param;
                    (*param).paramkind == pg_sys::ParamKind::PARAM_EXEC && (*param).paramid == param_id
                }
            };
            if !matches!(args[..], [_, right] if is_column_param(right)) {
                return Err("IN with a test other than x = <the subquery's column>");
            }
            // The test as any comparison (its operator, classes and collation checked), the
            // subquery's column standing as a value known at scan start.
            let before = self.parameters.len();
            let comparison = self.operator(test as *mut pg_sys::OpExpr);
            let column_value = self.parameters.len() == before + 1;
            self.parameters.truncate(before);
            let Qual::Compare { op: Comparison::Eq, left, right } = comparison? else {
                return Err("IN with an operator other than =");
            };
            if !column_value || *right != Qual::Parameter(before) {
                return Err("IN whose column the server would compare differently");
            }
            let subquery = subqueries.scan((*subplan).plan_id, self.pg_functions)?;
            Ok(Qual::InSubquery { expr: left, subquery: Box::new(subquery), negated })
        }
    }

    /// `substring(t FROM start FOR length)` of a text value with constant bounds, start at least
    /// 1 and length at least 0 (the server's `substr` counts characters alike); `None`: not
    /// such a call.
    unsafe fn substring(&mut self, call: *mut pg_sys::FuncExpr) -> Result<Option<Qual>, Local> {
        // SAFETY: a FuncExpr of the clause.
        unsafe {
            if !is_substring(call) {
                return Ok(None);
            }
            let (text, start, length) = substring_bounds(call)
                .ok_or("substring from a place or of a length that is not a positive constant")?;
            let (text, class) = self.value(text, false)?;
            if class != Some(Class::Text) {
                return Err("substring of other than text");
            }
            let bound = |v: i32| Qual::Literal(Literal::Int64(i64::from(v)));
            Ok(Some(Qual::Function { name: "substr", args: vec![text, bound(start), bound(length)] }))
        }
    }

    /// A correlated scalar subquery as a value ([`Subqueries::scalar`] says which are sent): the
    /// subquery's statement, each outer value it reads deparsed here.
    unsafe fn scalar_subquery(
        &mut self,
        subplan: *mut pg_sys::SubPlan,
    ) -> Result<(Qual, Option<Class>), Local> {
        // SAFETY: a SubPlan of the clause.
        unsafe {
            let subqueries = self.subqueries.filter(|_| self.pg_functions).ok_or("a subquery")?;
            if (*subplan).subLinkType != pg_sys::SubLinkType::EXPR_SUBLINK {
                return Err("a subquery other than a scalar one");
            }
            let class = Class::of((*subplan).firstColType).ok_or("a subquery of an unsupported type")?;
            let param_ids = int_list((*subplan).parParam);
            let arguments = list_nodes((*subplan).args);
            if param_ids.len() != arguments.len() {
                return Err("a subquery whose outer values are not its arguments");
            }
            let plan = subqueries.scalar((*subplan).plan_id, &param_ids)?;
            let mut correlation = Vec::with_capacity(plan.arguments.len());
            for &argument in &plan.arguments {
                let (value, _) = self.value(arguments[argument], false)?;
                correlation.push(value);
            }
            let subquery = kalam_pushdown::subquery::ScalarSubquery {
                query: plan.query,
                output: plan.output,
                factor: plan.factor,
                correlation,
            };
            Ok((Qual::ScalarSubquery(Box::new(subquery)), Some(class)))
        }
    }

    /// A boolean expression.
    unsafe fn boolean(&mut self, node: *mut Node) -> Result<Qual, Local> {
        // SAFETY: the node tags are checked before each cast.
        unsafe {
            if is_a(node, NodeTag::T_BoolExpr) {
                let expr = node as *mut pg_sys::BoolExpr;
                let args = list_nodes((*expr).args);
                let mut quals = Vec::with_capacity(args.len());
                for arg in args {
                    quals.push(self.boolean(arg)?);
                }
                return match (*expr).boolop {
                    pg_sys::BoolExprType::AND_EXPR => Ok(Qual::And(quals)),
                    pg_sys::BoolExprType::OR_EXPR => Ok(Qual::Or(quals)),
                    _ => Ok(Qual::Not(Box::new(quals.pop().ok_or("NOT without an argument")?))),
                };
            }
            if is_a(node, NodeTag::T_OpExpr) {
                return self.operator(node as *mut pg_sys::OpExpr);
            }
            if is_a(node, NodeTag::T_DistinctExpr) {
                let expr = node as *mut pg_sys::OpExpr;
                let Qual::Compare { op: Comparison::Eq, left, right } = self.operator(expr)? else {
                    return Err("IS DISTINCT FROM with an operator other than =");
                };
                return Ok(Qual::Distinct { negated: false, left, right });
            }
            if is_a(node, NodeTag::T_ScalarArrayOpExpr) {
                return self.array_operator(node as *mut pg_sys::ScalarArrayOpExpr);
            }
            if is_a(node, NodeTag::T_NullTest) {
                let test = node as *mut pg_sys::NullTest;
                if (*test).argisrow {
                    return Err("IS NULL of a row");
                }
                let (arg, _) = self.value((*test).arg.cast(), true)?;
                return Ok(match (*test).nulltesttype {
                    pg_sys::NullTestType::IS_NULL => Qual::IsNull(Box::new(arg)),
                    _ => Qual::IsNotNull(Box::new(arg)),
                });
            }
            if is_a(node, NodeTag::T_BooleanTest) {
                let test = node as *mut pg_sys::BooleanTest;
                let arg = Box::new(self.boolean((*test).arg.cast())?);
                return Ok(match (*test).booltesttype {
                    pg_sys::BoolTestType::IS_TRUE => Qual::IsTrue(arg),
                    pg_sys::BoolTestType::IS_NOT_TRUE => Qual::IsNotTrue(arg),
                    pg_sys::BoolTestType::IS_FALSE => Qual::IsFalse(arg),
                    pg_sys::BoolTestType::IS_NOT_FALSE => Qual::IsNotFalse(arg),
                    pg_sys::BoolTestType::IS_UNKNOWN => Qual::IsNull(arg),
                    _ => Qual::IsNotNull(arg),
                });
            }
            // A boolean value: a column, a constant, a parameter.
            let (value, class) = self.value(node, false)?;
            if class != Some(Class::Bool) {
                return Err("a non-boolean value used as a condition");
            }
            Ok(value)
        }
    }

    /// A comparison or LIKE.
    unsafe fn operator(&mut self, expr: *mut pg_sys::OpExpr) -> Result<Qual, Local> {
        // SAFETY: `expr` is a valid OpExpr (or DistinctExpr, the same struct).
        unsafe {
            let args = list_nodes((*expr).args);
            let [left, right] = args[..] else { return Err("an operator that is not binary") };
            let operator = BuiltinOperator::lookup((*expr).opno).ok_or("an operator that is not built in")?;
            if let Some((qual, class)) = self.json_operator(&operator, left, right)? {
                if class != Some(Class::Bool) {
                    return Err("a JSON value used as a condition");
                }
                return Ok(qual);
            }
            if operator.name == "^@" {
                // starts_with: a prefix of the bytes, under a deterministic collation.
                if (Class::of(operator.left), Class::of(operator.right))
                    != (Some(Class::Text), Some(Class::Text))
                    || !pg_sys::get_collation_isdeterministic((*expr).inputcollid)
                {
                    return Err("^@ on another type than text, or under a nondeterministic collation");
                }
                let (subject, class) = self.value(left, false)?;
                let (prefix, prefix_class) = self.value(right, false)?;
                if class != Some(Class::Text) || prefix_class != Some(Class::Text) {
                    return Err("^@ on another type than text");
                }
                return Ok(Qual::Function { name: "starts_with", args: vec![subject, prefix] });
            }
            if let Some((negated, case_insensitive)) = operator.like() {
                if (Class::of(operator.left), Class::of(operator.right))
                    != (Some(Class::Text), Some(Class::Text))
                {
                    return Err("LIKE or ILIKE on another type than text");
                }
                if case_insensitive && (!self.pg_functions || !self.ctype_is_c((*expr).inputcollid)) {
                    return Err(
                        "ILIKE where LC_CTYPE is not C or POSIX, or on a server without pg_ascii_lower",
                    );
                }
                let (subject, class) = self.value(left, false)?;
                let pattern =
                    like_pattern(right).ok_or("LIKE or ILIKE with a pattern that is not a plain constant")?;
                if class != Some(Class::Text) {
                    return Err("LIKE or ILIKE on another type than text");
                }
                // ILIKE lowers both sides, the pattern before its escapes are read.
                let (subject, pattern) = if case_insensitive {
                    let subject = Qual::Function { name: "pg_ascii_lower", args: vec![subject] };
                    (subject, pattern.to_ascii_lowercase())
                } else {
                    (subject, pattern)
                };
                let pattern = Box::new(Qual::Literal(Literal::Text(pattern)));
                return Ok(Qual::Like { expr: Box::new(subject), pattern, negated });
            }
            let op = operator.comparison().ok_or("an operator other than a comparison")?;
            if let Some(qual) = self.date_against_timestamp(op, &operator, left, right)? {
                return Ok(qual);
            }
            let (left_class, right_class) = (
                Class::of(operator.left).ok_or("a comparison of an unsupported type")?,
                Class::of(operator.right).ok_or("a comparison of an unsupported type")?,
            );
            if !left_class.comparable(right_class, self.pg_functions) {
                return Err("a comparison whose semantics differ on the server");
            }
            if left_class == Class::Text && !self.text_comparison_ships(op, (*expr).inputcollid) {
                return Err("a text comparison under a collation the server does not follow");
            }
            let (left, class) = self.value(left, false)?;
            if class != Some(left_class) {
                return Err("an operand of another class than the operator's");
            }
            let (right, class) = self.value(right, false)?;
            if class != Some(right_class) {
                return Err("an operand of another class than the operator's");
            }
            let (left, right) = (self.ordered(left, left_class), self.ordered(right, right_class));
            Ok(Qual::Compare { op, left: Box::new(left), right: Box::new(right) })
        }
    }

    /// `date OP timestamp` (or `timestamp OP date`) with a constant timestamp, such as
    /// `l_shipdate < date '1994-01-01' + interval '1' year`: PostgreSQL compares the date's
    /// midnight with the timestamp, which is comparing the date with the timestamp's day (its
    /// `d < '1995-01-01 12:00'` is `d <= '1995-01-01'`). `None`: not such a comparison.
    unsafe fn date_against_timestamp(
        &mut self,
        op: Comparison,
        operator: &BuiltinOperator,
        left: *mut Node,
        right: *mut Node,
    ) -> Result<Option<Qual>, Local> {
        // SAFETY: node tags are checked before each cast.
        unsafe {
            let (date, timestamp, op) = match (Class::of(operator.left), Class::of(operator.right)) {
                (Some(Class::Date), Some(Class::Timestamp)) => (left, right, op),
                (Some(Class::Timestamp), Some(Class::Date)) => (right, left, op.commuted()),
                _ => return Ok(None),
            };
            if !is_a(timestamp, NodeTag::T_Const) || (*(timestamp as *mut pg_sys::Const)).constisnull {
                return Err("a date compared with a timestamp that is not a constant");
            }
            let constant = timestamp as *mut pg_sys::Const;
            let Some(Literal::Timestamp(micros)) =
                literal((*constant).constvalue, false, pg_sys::TIMESTAMPOID)
            else {
                return Err("a date compared with a timestamp the server cannot hold");
            };
            if micros == i64::MIN || micros == i64::MAX {
                return Err("a date compared with an infinite timestamp");
            }
            let day = i32::try_from(micros.div_euclid(DAY_MICROS)).map_err(|_| "a timestamp beyond dates")?;
            let midnight = micros.rem_euclid(DAY_MICROS) == 0;
            let op = match op {
                Comparison::Lt if !midnight => Comparison::LtEq,
                Comparison::GtEq if !midnight => Comparison::Gt,
                Comparison::Eq | Comparison::NotEq if !midnight => {
                    return Err("a date compared for equality with a timestamp after midnight");
                }
                op => op,
            };
            let (value, class) = self.value(date, false)?;
            if class != Some(Class::Date) {
                return Err("an operand of another class than the operator's");
            }
            Ok(Some(Qual::Compare {
                op,
                left: Box::new(value),
                right: Box::new(Qual::Literal(Literal::Date(day))),
            }))
        }
    }

    /// `x = ANY(array)` (IN) and `x <> ALL(array)` (NOT IN) of an array constant.
    unsafe fn array_operator(&mut self, expr: *mut pg_sys::ScalarArrayOpExpr) -> Result<Qual, Local> {
        // SAFETY: `expr` is a valid ScalarArrayOpExpr.
        unsafe {
            let args = list_nodes((*expr).args);
            let [left, right] = args[..] else { return Err("an array operator that is not binary") };
            let operator = BuiltinOperator::lookup((*expr).opno).ok_or("an operator that is not built in")?;
            let negated = match (operator.comparison(), (*expr).useOr) {
                (Some(Comparison::Eq), true) => false,
                (Some(Comparison::NotEq), false) => true,
                _ => return Err("an array operator other than = ANY or <> ALL"),
            };
            let class = Class::of(operator.left).ok_or("a comparison of an unsupported type")?;
            let element_class = Class::of(operator.right).ok_or("a comparison of an unsupported type")?;
            if !class.comparable(element_class, self.pg_functions) {
                return Err("a comparison whose semantics differ on the server");
            }
            if class == Class::Text && !self.text_comparison_ships(Comparison::Eq, (*expr).inputcollid) {
                return Err("a text comparison under a collation the server does not follow");
            }
            let (subject, subject_class) = self.value(left, false)?;
            if subject_class != Some(class) {
                return Err("an operand of another class than the operator's");
            }
            if !is_a(right, NodeTag::T_Const) {
                return Err("an array that is not a constant");
            }
            let array = right as *mut pg_sys::Const;
            if (*array).constisnull {
                return Err("a NULL array");
            }
            let element_type = pg_sys::get_element_type((*array).consttype);
            if Class::of(element_type) != Some(element_class) {
                return Err("an array of another class than the operator's");
            }
            let mut list = Vec::new();
            for (datum, is_null) in array_elements((*array).constvalue, element_type) {
                let value =
                    literal(datum, is_null, element_type).ok_or("an array element the server cannot hold")?;
                list.push(self.ordered(Qual::Literal(value), element_class));
            }
            Ok(Qual::InList { expr: Box::new(self.ordered(subject, class)), list, negated })
        }
    }

    /// A value (operand): a column, a constant, or a value computed when the scan starts.
    /// `any_column` admits columns of any type (for IS NULL), else only columns of a class.
    unsafe fn value(&mut self, node: *mut Node, any_column: bool) -> Result<(Qual, Option<Class>), Local> {
        // SAFETY: node tags are checked before each cast; lists and catalogs are read only.
        unsafe {
            if is_a(node, NodeTag::T_RelabelType) {
                // A binary-compatible cast (varchar to text): the same value.
                let relabel = node as *mut pg_sys::RelabelType;
                let (value, class) = self.value((*relabel).arg.cast(), any_column)?;
                if class.is_some() && class != Class::of((*relabel).resulttype) {
                    return Err("a cast between classes");
                }
                return Ok((value, class));
            }
            if is_a(node, NodeTag::T_Var) {
                let var = node as *mut pg_sys::Var;
                if (*var).varlevelsup != 0 {
                    return Err("a column of an outer query");
                }
                let relation = self.relations.iter().find(|r| r.0 == (*var).varno as pg_sys::Index);
                let Some(&(_, columns, offset)) = relation else {
                    if !self.outer_values {
                        return Err("a column of another relation");
                    }
                    let class = Class::of((*var).vartype).ok_or("an outer column of an unsupported type")?;
                    match class {
                        Class::Numeric => {
                            return Err("a numeric value known only at run time (it may be NaN)");
                        }
                        Class::Text if !crate::runtime::database_is_utf8() => {
                            return Err("a text value in a database that is not UTF-8");
                        }
                        _ => {}
                    }
                    self.parameters.push(node.cast());
                    return Ok((Qual::Parameter(self.parameters.len() - 1), Some(class)));
                };
                let attno = (*var).varattno;
                let column = usize::try_from(attno - 1)
                    .ok()
                    .and_then(|i| columns.get(i).cloned().flatten())
                    .ok_or("a system or whole-row column")?;
                if !column.remote_matches {
                    return Err("a column whose remote type is not of its declared class");
                }
                if column.class.is_none() && !any_column {
                    return Err("a column of a type comparisons are not shipped for");
                }
                return Ok((Qual::Column(offset + column.index), column.class));
            }
            if is_a(node, NodeTag::T_SubPlan) {
                return self.scalar_subquery(node as *mut pg_sys::SubPlan);
            }
            if is_a(node, NodeTag::T_FuncExpr) && pg_sys::contain_var_clause(node) {
                let function = node as *mut pg_sys::FuncExpr;
                // An integer as numeric (`ps_availqty::numeric`): exact, scale 0.
                let digits = match u32::from((*function).funcid) {
                    pg_sys::F_NUMERIC_INT2 => Some(5),
                    pg_sys::F_NUMERIC_INT4 => Some(10),
                    pg_sys::F_NUMERIC_INT8 => Some(19),
                    _ => None,
                };
                if let Some(digits) = digits {
                    let [argument] = list_nodes((*function).args)[..] else {
                        return Err("a cast of other than one value");
                    };
                    let (value, class) = self.value(argument, false)?;
                    if !class.is_some_and(Class::is_integer) {
                        return Err("a cast to numeric of other than an integer");
                    }
                    return Ok((Qual::Decimal(Box::new(value), digits), Some(Class::Numeric)));
                }
                if let Some(qual) = self.substring(function)? {
                    return Ok((qual, Some(Class::Text)));
                }
                return self.json_function(function);
            }
            if is_a(node, NodeTag::T_OpExpr) && pg_sys::contain_var_clause(node) {
                // A JSON value of a column (`payload -> 'a'`, `payload ->> 'kind'`).
                let expr = node as *mut pg_sys::OpExpr;
                let args = list_nodes((*expr).args);
                if let (Some(operator), [left, right]) = (BuiltinOperator::lookup((*expr).opno), &args[..])
                    && let Some((qual, class)) = self.json_operator(&operator, *left, *right)?
                {
                    return Ok((qual, class));
                }
                return Err("an operator of a column other than the JSON operators");
            }
            let type_oid = pg_sys::exprType(node);
            let class = Class::of(type_oid);
            if is_a(node, NodeTag::T_Const) {
                let constant = node as *mut pg_sys::Const;
                let value = literal((*constant).constvalue, (*constant).constisnull, (*constant).consttype)
                    .ok_or("a constant the server cannot hold exactly")?;
                return Ok((Qual::Literal(value), class));
            }
            if class.is_none() {
                return Err("a value of a type comparisons are not shipped for");
            }
            // A numeric computed by an init plan the server can run (an uncorrelated scalar
            // subquery): sent as the subquery itself (its value, never NaN on the server, is
            // not known before the scan starts).
            if class == Some(Class::Numeric)
                && is_a(node, NodeTag::T_Param)
                && (*(node as *mut pg_sys::Param)).paramkind == pg_sys::ParamKind::PARAM_EXEC
                && let Some(subqueries) = self.subqueries.filter(|_| self.pg_functions)
                && let Some(plan_id) = subqueries.init_plan((*(node as *mut pg_sys::Param)).paramid)
            {
                let plan = subqueries.scalar(plan_id, &[])?;
                let subquery = kalam_pushdown::subquery::ScalarSubquery {
                    query: plan.query,
                    output: plan.output,
                    factor: plan.factor,
                    correlation: Vec::new(),
                };
                return Ok((Qual::ScalarSubquery(Box::new(subquery)), class));
            }
            let scan_start_value = is_a(node, NodeTag::T_Param)
                || (!pg_sys::contain_var_clause(node)
                    && !pg_sys::contain_volatile_functions(node)
                    && !pg_sys::contain_subplans(node));
            if !scan_start_value {
                return Err("an expression the server would compute differently");
            }
            // Its value is known only when the scan starts, so its class must be one whose every
            // value the server can hold.
            match class {
                Some(Class::Numeric) => return Err("a numeric value known only at run time (it may be NaN)"),
                Some(Class::Text) if !crate::runtime::database_is_utf8() => {
                    return Err("a text value in a database that is not UTF-8");
                }
                _ => {}
            }
            self.parameters.push(node.cast());
            Ok((Qual::Parameter(self.parameters.len() - 1), class))
        }
    }

    /// A value as the server must compare it: floats through `pg_float`.
    fn ordered(&self, value: Qual, class: Class) -> Qual {
        if class.is_float() { Qual::Function { name: "pg_float", args: vec![value] } } else { value }
    }

    /// The JSON operators, through the server's functions with PostgreSQL's semantics:
    /// `->`, `->>`, `#>`, `#>>` (a JSON or text value) and `?`, `?|`, `?&`, `@>` (booleans).
    /// `Ok(None)` for any other operator.
    unsafe fn json_operator(
        &mut self,
        operator: &BuiltinOperator,
        left: *mut Node,
        right: *mut Node,
    ) -> Result<Option<(Qual, Option<Class>)>, Local> {
        let doc_class = match Class::of(operator.left) {
            Some(class @ (Class::Json | Class::Jsonb)) => class,
            _ => return Ok(None),
        };
        let name = operator.name.as_str();
        if !matches!(name, "->" | "->>" | "#>" | "#>>" | "?" | "?|" | "?&" | "@>") {
            return Ok(None);
        }
        if !self.pg_functions {
            return Err("a JSON operator, and the server has no functions with PostgreSQL's semantics");
        }
        // SAFETY: the operands are nodes of the operator being read.
        unsafe {
            let (doc, class) = self.value(left, false)?;
            if class != Some(doc_class) {
                return Err("a JSON operator on another class of value");
            }
            let jsonb = Qual::Literal(Literal::Boolean(doc_class == Class::Jsonb));
            let right_class = Class::of(operator.right);
            let call = |name: &'static str, args: Vec<Qual>| Qual::Function { name, args };
            Ok(Some(match (name, right_class) {
                ("->" | "->>", Some(key_class @ (Class::Text | Class::Int32))) => {
                    let (key, class) = self.value(right, false)?;
                    if class != Some(key_class) {
                        return Err("a JSON key of another class than the operator's");
                    }
                    let function = match (name, key_class) {
                        ("->", Class::Text) => "pg_json_field",
                        ("->", _) => "pg_json_element",
                        (_, Class::Text) => "pg_json_field_text",
                        _ => "pg_json_element_text",
                    };
                    let class = if name == "->" { doc_class } else { Class::Text };
                    (call(function, vec![doc, key, jsonb]), Some(class))
                }
                ("#>" | "#>>", None) if operator.right == pg_sys::TEXTARRAYOID => {
                    let path = text_array(right).ok_or("a JSON path that is not a constant")?;
                    let (function, class) = if name == "#>" {
                        ("pg_json_path", doc_class)
                    } else {
                        ("pg_json_path_text", Class::Text)
                    };
                    (call(function, vec![doc, Qual::Literal(path), jsonb]), Some(class))
                }
                ("?", Some(Class::Text)) => {
                    let (key, class) = self.value(right, false)?;
                    if class != Some(Class::Text) {
                        return Err("a JSON key of another class than the operator's");
                    }
                    (call("pg_jsonb_exists", vec![doc, key]), Some(Class::Bool))
                }
                ("?|" | "?&", None) if operator.right == pg_sys::TEXTARRAYOID => {
                    let keys = text_array(right).ok_or("JSON keys that are not a constant")?;
                    let function = if name == "?|" { "pg_jsonb_exists_any" } else { "pg_jsonb_exists_all" };
                    (call(function, vec![doc, Qual::Literal(keys)]), Some(Class::Bool))
                }
                ("@>", Some(Class::Jsonb)) => {
                    let (other, class) = self.value(right, false)?;
                    if class != Some(Class::Jsonb) {
                        return Err("a containment of another class than jsonb");
                    }
                    (call("pg_jsonb_contains", vec![doc, other]), Some(Class::Bool))
                }
                _ => return Err("a JSON operator of a form that is not shipped"),
            }))
        }
    }

    /// `json_extract_path(doc, VARIADIC steps)` and its `_text` and jsonb kin: `#>` and `#>>`
    /// by another name (the parser gathers the steps into one array).
    unsafe fn json_function(&mut self, expr: *mut pg_sys::FuncExpr) -> Result<(Qual, Option<Class>), Local> {
        // SAFETY: `expr` is a valid FuncExpr; its arguments are nodes.
        unsafe {
            let (doc_class, name) = match (*expr).funcid.to_u32() {
                pg_sys::F_JSON_EXTRACT_PATH => (Class::Json, "#>"),
                pg_sys::F_JSON_EXTRACT_PATH_TEXT => (Class::Json, "#>>"),
                pg_sys::F_JSONB_EXTRACT_PATH => (Class::Jsonb, "#>"),
                pg_sys::F_JSONB_EXTRACT_PATH_TEXT => (Class::Jsonb, "#>>"),
                _ => return Err("a function of a column other than the JSON path functions"),
            };
            let args = list_nodes((*expr).args);
            let [doc, steps] = args[..] else { return Err("a JSON path function without its two arguments") };
            let doc_type = if doc_class == Class::Json { pg_sys::JSONOID } else { pg_sys::JSONBOID };
            let operator = BuiltinOperator { name: name.into(), left: doc_type, right: pg_sys::TEXTARRAYOID };
            self.json_operator(&operator, doc, steps)?
                .ok_or("a JSON path function of a form that is not shipped")
        }
    }

    /// Whether text under `collation` is lowered as PostgreSQL lowers it where `LC_CTYPE` is C
    /// or POSIX: `A`-`Z` only.
    fn ctype_is_c(&self, collation: Oid) -> bool {
        collation == pg_sys::C_COLLATION_OID
            || collation == pg_sys::POSIX_COLLATION_OID
            || (collation == pg_sys::DEFAULT_COLLATION_OID && self.default_locale.ctype_is_c)
    }

    /// Text comparisons: equality under a deterministic collation, ordering only where
    /// PostgreSQL compares bytes.
    fn text_comparison_ships(&self, op: Comparison, collation: Oid) -> bool {
        match op {
            // SAFETY: a syscache lookup of a collation the parser resolved.
            Comparison::Eq | Comparison::NotEq => unsafe { pg_sys::get_collation_isdeterministic(collation) },
            _ => {
                collation == pg_sys::C_COLLATION_OID
                    || collation == pg_sys::POSIX_COLLATION_OID
                    || (collation == pg_sys::DEFAULT_COLLATION_OID && self.default_locale.collate_is_c)
            }
        }
    }
}

/// A built-in operator, by name and input types.
struct BuiltinOperator {
    name: String,
    left: Oid,
    right: Oid,
}

impl BuiltinOperator {
    /// Operators defined by PostgreSQL itself (an extension's operator of the same name may
    /// mean anything).
    unsafe fn lookup(opno: Oid) -> Option<Self> {
        if opno.to_u32() >= pg_sys::FirstGenbkiObjectId {
            return None;
        }
        // SAFETY: syscache lookups of an operator the parser resolved.
        unsafe {
            let name = pg_sys::get_opname(opno);
            if name.is_null() {
                return None;
            }
            let name = CStr::from_ptr(name).to_string_lossy().into_owned();
            let (mut left, mut right) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
            pg_sys::op_input_types(opno, &mut left, &mut right);
            Some(Self { name, left, right })
        }
    }

    fn comparison(&self) -> Option<Comparison> {
        Some(match self.name.as_str() {
            "=" => Comparison::Eq,
            "<>" => Comparison::NotEq,
            "<" => Comparison::Lt,
            "<=" => Comparison::LtEq,
            ">" => Comparison::Gt,
            ">=" => Comparison::GtEq,
            _ => return None,
        })
    }

    /// `Some((negated, case_insensitive))` for LIKE (`~~`), NOT LIKE (`!~~`), ILIKE (`~~*`)
    /// and NOT ILIKE (`!~~*`).
    fn like(&self) -> Option<(bool, bool)> {
        match self.name.as_str() {
            "~~" => Some((false, false)),
            "!~~" => Some((true, false)),
            "~~*" => Some((false, true)),
            "!~~*" => Some((true, true)),
            _ => None,
        }
    }
}

/// A constant text array, as a text list.
unsafe fn text_array(node: *mut Node) -> Option<Literal> {
    // SAFETY: the tag is checked before the cast; the array is a text[] by the operator.
    unsafe {
        if !is_a(node, NodeTag::T_Const) {
            return None;
        }
        let constant = node as *mut pg_sys::Const;
        if (*constant).constisnull {
            return None;
        }
        let mut items = Vec::new();
        for (datum, is_null) in array_elements((*constant).constvalue, pg_sys::TEXTOID) {
            items.push(match literal(datum, is_null, pg_sys::TEXTOID)? {
                Literal::Text(s) => Some(s),
                _ => None,
            });
        }
        Some(Literal::TextList(items))
    }
}

/// The elements of an array datum.
unsafe fn array_elements(array: Datum, element_type: Oid) -> Vec<(Datum, bool)> {
    // SAFETY: `array` is a valid array of `element_type`, detoasted here.
    unsafe {
        let array = pg_sys::pg_detoast_datum(array.cast_mut_ptr()) as *mut pg_sys::ArrayType;
        let (mut length, mut by_value, mut align) = (0i16, false, 0 as std::ffi::c_char);
        pg_sys::get_typlenbyvalalign(element_type, &mut length, &mut by_value, &mut align);
        let (mut values, mut nulls, mut count) = (std::ptr::null_mut(), std::ptr::null_mut(), 0);
        pg_sys::deconstruct_array(
            array,
            element_type,
            length.into(),
            by_value,
            align,
            &mut values,
            &mut nulls,
            &mut count,
        );
        (0..count as usize).map(|i| (*values.add(i), *nulls.add(i))).collect()
    }
}

/// A LIKE pattern PostgreSQL would accept as it is: a text constant not ending in the escape
/// character.
unsafe fn like_pattern(node: *mut Node) -> Option<String> {
    // SAFETY: the tag is checked before the cast.
    unsafe {
        if !is_a(node, NodeTag::T_Const) {
            return None;
        }
        let constant = node as *mut pg_sys::Const;
        let Some(Literal::Text(pattern)) =
            literal((*constant).constvalue, (*constant).constisnull, (*constant).consttype)
        else {
            return None;
        };
        let trailing_escapes = pattern.chars().rev().take_while(|c| *c == '\\').count();
        (trailing_escapes % 2 == 0).then_some(pattern)
    }
}

/// Days between 1970-01-01 (Arrow's epoch) and 2000-01-01 (PostgreSQL's).
const PG_EPOCH_DAYS: i64 = 10_957;
const DAY_MICROS: i64 = 86_400_000_000;

/// The literal of a datum of `type_oid`, if the server can hold the value exactly.
///
/// # Safety
/// `datum` must be a valid datum of `type_oid` (or `is_null`).
pub unsafe fn literal(datum: Datum, is_null: bool, type_oid: Oid) -> Option<Literal> {
    if is_null {
        return Some(Literal::Null);
    }
    // SAFETY: per the contract; FromDatum reads a datum of the matching type.
    let value = unsafe {
        match type_oid {
            pg_sys::INT2OID => Literal::Int16(i16::from_datum(datum, false)?),
            pg_sys::INT4OID => Literal::Int32(i32::from_datum(datum, false)?),
            pg_sys::INT8OID => Literal::Int64(i64::from_datum(datum, false)?),
            pg_sys::FLOAT4OID => Literal::Float32(f32::from_datum(datum, false)?),
            pg_sys::FLOAT8OID => Literal::Float64(f64::from_datum(datum, false)?),
            pg_sys::BOOLOID => Literal::Boolean(bool::from_datum(datum, false)?),
            pg_sys::NUMERICOID => Literal::decimal(&pgrx::AnyNumeric::from_datum(datum, false)?.to_string())?,
            pg_sys::TEXTOID | pg_sys::VARCHAROID => {
                if !crate::runtime::database_is_utf8() {
                    return None;
                }
                Literal::Text(String::from_datum(datum, false)?)
            }
            pg_sys::BYTEAOID => Literal::Bytes(Vec::<u8>::from_datum(datum, false)?),
            // JSON constants go as their text (jsonb's canonical text), which the server's
            // JSON functions parse.
            pg_sys::JSONOID | pg_sys::JSONBOID => {
                if !crate::runtime::database_is_utf8() {
                    return None;
                }
                let (mut output, mut varlena) = (pg_sys::InvalidOid, false);
                pg_sys::getTypeOutputInfo(type_oid, &mut output, &mut varlena);
                let text = pg_sys::OidOutputFunctionCall(output, datum);
                Literal::Text(CStr::from_ptr(text).to_string_lossy().into_owned())
            }
            pg_sys::UUIDOID => Literal::Uuid(*pgrx::Uuid::from_datum(datum, false)?.as_bytes()),
            // ±infinity (the extreme values) and dates beyond Arrow's range saturate: they still
            // compare as they do in PostgreSQL with every date a remote column can hold.
            pg_sys::DATEOID => {
                let days = datum.value() as i32;
                let days = match days {
                    i32::MIN | i32::MAX => days,
                    days => days.saturating_add(PG_EPOCH_DAYS as i32),
                };
                Literal::Date(days)
            }
            pg_sys::TIMEOID => Literal::Time(datum.value() as i64),
            pg_sys::TIMESTAMPOID | pg_sys::TIMESTAMPTZOID => {
                let micros = datum.value() as i64;
                let micros = match micros {
                    i64::MIN | i64::MAX => micros,
                    micros => micros.saturating_add(PG_EPOCH_DAYS * DAY_MICROS),
                };
                if type_oid == pg_sys::TIMESTAMPOID {
                    Literal::Timestamp(micros)
                } else {
                    Literal::TimestampTz(micros)
                }
            }
            _ => return None,
        }
    };
    Some(value)
}

/// A PostgreSQL integer list of `values`, in the current memory context.
///
/// # Safety
/// Must run in a backend, in a memory context that lives as long as the list is used.
pub unsafe fn make_int_list(values: impl IntoIterator<Item = i32>) -> *mut pg_sys::List {
    let mut list = std::ptr::null_mut();
    for value in values {
        // SAFETY: per the contract.
        list = unsafe { pg_sys::lappend_int(list, value) };
    }
    list
}

/// A PostgreSQL list of the nodes `nodes`, in the current memory context.
///
/// # Safety
/// As [`make_int_list`]; the nodes must live as long as the list.
pub unsafe fn make_node_list<T>(nodes: impl IntoIterator<Item = *mut T>) -> *mut pg_sys::List {
    let mut list = std::ptr::null_mut();
    for node in nodes {
        // SAFETY: per the contract.
        list = unsafe { pg_sys::lappend(list, node.cast()) };
    }
    list
}

/// The 0-based attribute indexes in a set of attribute numbers offset by
/// `FirstLowInvalidHeapAttributeNumber` (as `pull_varattnos` and `updatedCols` hold them),
/// in order; system attributes and the whole row (0) are left out.
///
/// # Safety
/// `set` must be NULL (empty) or a valid bitmapset.
pub unsafe fn attribute_indexes(set: *const pg_sys::Bitmapset) -> Vec<usize> {
    let mut indexes = Vec::new();
    let mut member = -1;
    loop {
        // SAFETY: per the contract.
        member = unsafe { pg_sys::bms_next_member(set, member) };
        if member < 0 {
            return indexes;
        }
        let attno = member + pg_sys::FirstLowInvalidHeapAttributeNumber;
        if attno > 0 {
            indexes.push(attno as usize - 1);
        }
    }
}

/// The values of a PostgreSQL integer list (NULL: empty).
///
/// # Safety
/// `list` must be NULL or a valid integer list.
pub unsafe fn int_list(list: *mut pg_sys::List) -> Vec<i32> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: per the contract.
    unsafe { (0..(*list).length as usize).map(|i| (*(*list).elements.add(i)).int_value).collect() }
}

/// The nodes of a PostgreSQL list.
///
/// # Safety
/// `list` must be NULL or a valid pointer list.
pub unsafe fn list_nodes(list: *mut pg_sys::List) -> Vec<*mut Node> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: per the contract.
    unsafe { (0..(*list).length as usize).map(|i| (*(*list).elements.add(i)).ptr_value.cast()).collect() }
}

/// How the database's default collation compares (`LC_COLLATE`) and lowers (`LC_CTYPE`) text.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultLocale {
    /// Whether it compares bytes: libc's C or POSIX.
    pub collate_is_c: bool,
    /// Whether it lowers `A`-`Z` only: libc's C or POSIX.
    pub ctype_is_c: bool,
}

/// The database's [`DefaultLocale`], read once per backend (a backend serves one database).
pub fn default_locale() -> DefaultLocale {
    thread_local! {
        static LOCALE: std::cell::OnceCell<DefaultLocale> = const { std::cell::OnceCell::new() };
    }
    LOCALE.with(|locale| {
        *locale.get_or_init(|| {
            #[cfg(any(feature = "pg13", feature = "pg14"))]
            let sql = "SELECT datcollate IN ('C', 'POSIX'), datctype IN ('C', 'POSIX') FROM pg_database \
                       WHERE datname = current_database()";
            #[cfg(not(any(feature = "pg13", feature = "pg14")))]
            let sql = "SELECT datlocprovider = 'c' AND datcollate IN ('C', 'POSIX'), \
                       datlocprovider = 'c' AND datctype IN ('C', 'POSIX') FROM pg_database \
                       WHERE datname = current_database()";
            pgrx::Spi::get_two::<bool, bool>(sql)
                .map(|(collate, ctype)| DefaultLocale {
                    collate_is_c: collate.unwrap_or(false),
                    ctype_is_c: ctype.unwrap_or(false),
                })
                .unwrap_or_default()
        })
    })
}
