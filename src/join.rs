//! Joins the server computes: `GetForeignJoinPaths` for INNER, LEFT, RIGHT and FULL joins of
//! foreign tables of one server (and joins of such joins), and the semi and anti joins
//! PostgreSQL makes of `EXISTS`, `IN (subquery)` and `NOT EXISTS` (on kalamdb-server, as
//! `LEFT SEMI JOIN` / `LEFT ANTI JOIN`), one remote statement for the whole tree.
//!
//! A join is shipped when the server's answer is PostgreSQL's, exactly:
//! - PostgreSQL offers it only for relations of one server and one user mapping, and every
//!   user table of a statement is read as the session's one `kalam.user_id`;
//! - every clause of every table and of every join in the tree runs on the server (none is
//!   left for PostgreSQL, none is a pseudoconstant gate);
//! - the join needs only plain columns of its tables (no whole-row or system column, no
//!   placeholder of a lower outer join);
//! - it is a plain SELECT (no FOR UPDATE, which would need rows of each table rechecked).
//!
//! Where a clause goes: a join's own clauses in its ON; a table's (or a lower join's) WHERE
//! clauses in the WHERE when its rows are preserved by the joins above (inner joins, the left
//! side of a LEFT join), in the ON of the outer join that makes it nullable otherwise (the same
//! rows: an outer join keeps a preserved row whatever its ON says of the other side); the
//! clauses PostgreSQL applies above an outer join in the WHERE. A semi or anti join keeps rows
//! of its left side only, so its own clauses and its right side's go in its ON. A FULL join of tables with
//! WHERE clauses of their own is left to PostgreSQL (neither side may be filtered after it).

use kalam_pushdown::join::{JoinKind, JoinTree};
use pgrx::pg_sys::{self, NodeTag};
use pgrx::{PgMemoryContexts, pg_guard};

use crate::deparse::{self, Deparser, QualColumn};
use crate::options::Costs;
use crate::scan::RelInfo;

/// How the tables of a join are joined, with the clauses of each join (planner expressions).
pub(crate) enum Tree {
    /// The join's `tables[i]`.
    Table(usize),
    Join {
        kind: JoinKind,
        left: Box<Tree>,
        right: Box<Tree>,
        on: Vec<*mut pg_sys::Expr>,
    },
}

/// What planning decided for a join relation (its `RelOptInfo.fdw_private`).
pub(crate) struct JoinInfo {
    /// The foreign tables joined, in column-numbering order: range-table index and what planning
    /// learned of each.
    pub(crate) tables: Vec<(pg_sys::Index, *const RelInfo)>,
    pub(crate) tree: Tree,
    /// The clauses over the whole join, for the WHERE (or the ON of an outer join above).
    pub(crate) filters: Vec<*mut pg_sys::Expr>,
    pub(crate) costs: Costs,
    /// The tables (range-table indexes) whose columns are not seen above the join: the right
    /// sides of its semi and anti joins.
    pub(crate) hidden: Vec<pg_sys::Index>,
}

impl JoinInfo {
    /// A deparser of clauses over the join's tables, their columns numbered one table after
    /// another.
    pub(crate) fn deparser(&self) -> Deparser<'_> {
        // SAFETY: RelInfos live as long as the planner's relations.
        unsafe {
            let (first, info) = self.tables[0];
            let info = &*info;
            let mut deparser = info.deparser(first, false);
            let mut offset = info.columns.len();
            for &(relid, other) in &self.tables[1..] {
                let other: &RelInfo = &*other;
                let columns: &[Option<QualColumn>] = &other.columns;
                deparser = deparser.with_relation(relid, columns, offset);
                offset += columns.len();
            }
            deparser
        }
    }
}

/// The join planning saw for `rel`, if pg_kalam ships it.
pub(crate) unsafe fn join_info<'a>(rel: *mut pg_sys::RelOptInfo) -> Option<&'a JoinInfo> {
    // SAFETY: a join relation's fdw_private is NULL or a JoinInfo set here.
    unsafe {
        ((*rel).reloptkind == pg_sys::RelOptKind::RELOPT_JOINREL && !(*rel).fdw_private.is_null())
            .then(|| &*((*rel).fdw_private as *const JoinInfo))
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_join_paths(
    root: *mut pg_sys::PlannerInfo,
    joinrel: *mut pg_sys::RelOptInfo,
    outerrel: *mut pg_sys::RelOptInfo,
    innerrel: *mut pg_sys::RelOptInfo,
    jointype: pg_sys::JoinType::Type,
    extra: *mut pg_sys::JoinPathExtraData,
) {
    // SAFETY: the planner passes its structures; what is kept is allocated in its context.
    unsafe {
        if !(*joinrel).fdw_private.is_null() {
            return; // planned for an earlier pair of the same relations
        }
        let Some(info) = plan_join(root, joinrel, outerrel, innerrel, jointype, extra) else { return };
        let (outer_rows, inner_rows) = ((*outerrel).rows, (*innerrel).rows);
        let rows = (*joinrel).rows;
        // One round trip; the server reads both inputs where they are, and sends the result.
        let Costs { startup, tuple } = info.costs;
        let total = startup + rows * tuple + (outer_rows + inner_rows) * tuple * 0.01;
        let info = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(info);
        (*joinrel).fdw_private = info.cast();
        add_join_path(root, joinrel, rows, (startup, total), std::ptr::null_mut());
        // Sorted by the server in the query's ORDER BY (and cut by its LIMIT after it), for the
        // join of all the query's tables when nothing is grouped: a sorted input for a local
        // grouping would invite a plan that stops early on paper and runs a statement per row.
        let parse = (*root).parse;
        let ordered_rows = (*parse).groupClause.is_null()
            && !(*parse).hasAggs
            && !(*parse).hasWindowFuncs
            && (*parse).distinctClause.is_null()
            && pg_sys::bms_equal((*joinrel).relids, (*root).all_baserels);
        let pathkeys = (*root).sort_pathkeys;
        if ordered_rows
            && !pathkeys.is_null()
            && crate::upper::join_sort_keys(&*info, pathkeys, |_| Some(0)).is_some()
        {
            // The server joins and sorts before its first row, then sends them.
            add_join_path(root, joinrel, rows, (total, total + rows * tuple * 0.05), pathkeys);
        }
    }
}

/// Adds a path of the join the server computes, sorted by `pathkeys` (NIL: unsorted).
unsafe fn add_join_path(
    root: *mut pg_sys::PlannerInfo,
    joinrel: *mut pg_sys::RelOptInfo,
    rows: f64,
    (startup, total): (f64, f64),
    pathkeys: *mut pg_sys::List,
) {
    // SAFETY: planner structures; the path is allocated in the planner's context.
    unsafe {
        let (target, required_outer) = (std::ptr::null_mut(), std::ptr::null_mut());
        let (outer_path, fdw_private) = (std::ptr::null_mut(), std::ptr::null_mut());
        #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16"))]
        let path = pg_sys::create_foreign_join_path(
            root,
            joinrel,
            target,
            rows,
            startup,
            total,
            pathkeys,
            required_outer,
            outer_path,
            fdw_private,
        );
        #[cfg(feature = "pg17")]
        let path = pg_sys::create_foreign_join_path(
            root,
            joinrel,
            target,
            rows,
            startup,
            total,
            pathkeys,
            required_outer,
            outer_path,
            std::ptr::null_mut(),
            fdw_private,
        );
        #[cfg(feature = "pg18")]
        let path = pg_sys::create_foreign_join_path(
            root,
            joinrel,
            target,
            rows,
            0,
            startup,
            total,
            pathkeys,
            required_outer,
            outer_path,
            std::ptr::null_mut(),
            fdw_private,
        );
        pg_sys::add_path(joinrel, path.cast());
    }
}

/// One side of a join: a foreign table planned by pg_kalam, or a join pg_kalam ships.
struct Side {
    tables: Vec<(pg_sys::Index, *const RelInfo)>,
    tree: Tree,
    filters: Vec<*mut pg_sys::Expr>,
    costs: Costs,
    hidden: Vec<pg_sys::Index>,
}

unsafe fn side(rel: *mut pg_sys::RelOptInfo) -> Option<Side> {
    // SAFETY: planner structures.
    unsafe {
        if (*rel).reloptkind == pg_sys::RelOptKind::RELOPT_BASEREL && !(*rel).fdw_private.is_null() {
            let info = (*rel).fdw_private as *const RelInfo;
            let clauses = deparse::list_nodes((*rel).baserestrictinfo);
            // Every clause of the table runs on the server (the remote ones exclude gates).
            if clauses.len() != (*info).remote.len() {
                return None;
            }
            let filters = (*info).remote.iter().map(|&r| (*r).clause).collect();
            return Some(Side {
                tables: vec![((*rel).relid, info)],
                tree: Tree::Table(0),
                filters,
                costs: (*info).costs,
                hidden: Vec::new(),
            });
        }
        let join = join_info(rel)?;
        Some(Side {
            tables: join.tables.clone(),
            tree: copy_tree(&join.tree, 0),
            filters: join.filters.clone(),
            costs: join.costs,
            hidden: join.hidden.clone(),
        })
    }
}

/// The shape of `tree` (its ON clauses left out).
fn shape_of(tree: &Tree) -> JoinTree {
    match tree {
        Tree::Table(i) => JoinTree::Table(*i),
        Tree::Join { kind, left, right, .. } => JoinTree::Join {
            kind: *kind,
            left: Box::new(shape_of(left)),
            right: Box::new(shape_of(right)),
            on: Vec::new(),
        },
    }
}

/// `tree` with its table numbers moved up by `shift`.
fn copy_tree(tree: &Tree, shift: usize) -> Tree {
    match tree {
        Tree::Table(i) => Tree::Table(i + shift),
        Tree::Join { kind, left, right, on } => Tree::Join {
            kind: *kind,
            left: Box::new(copy_tree(left, shift)),
            right: Box::new(copy_tree(right, shift)),
            on: on.clone(),
        },
    }
}

unsafe fn plan_join(
    root: *mut pg_sys::PlannerInfo,
    joinrel: *mut pg_sys::RelOptInfo,
    outerrel: *mut pg_sys::RelOptInfo,
    innerrel: *mut pg_sys::RelOptInfo,
    jointype: pg_sys::JoinType::Type,
    extra: *mut pg_sys::JoinPathExtraData,
) -> Option<JoinInfo> {
    // SAFETY: planner structures of the query being planned.
    unsafe {
        let parse = (*root).parse;
        if (*parse).commandType != pg_sys::CmdType::CMD_SELECT || !(*parse).rowMarks.is_null() {
            return None;
        }
        let kind = match jointype {
            pg_sys::JoinType::JOIN_INNER => JoinKind::Inner,
            pg_sys::JoinType::JOIN_LEFT => JoinKind::Left,
            pg_sys::JoinType::JOIN_RIGHT => JoinKind::Right,
            pg_sys::JoinType::JOIN_FULL => JoinKind::Full,
            pg_sys::JoinType::JOIN_SEMI => JoinKind::Semi,
            pg_sys::JoinType::JOIN_ANTI => JoinKind::Anti,
            _ => return None,
        };
        let (outer, inner) = (side(outerrel)?, side(innerrel)?);
        // LEFT SEMI / LEFT ANTI JOIN are the syntax of DataFusion's SQL: servers that list
        // PostgreSQL's functions (kalamdb-server) take them.
        if matches!(kind, JoinKind::Semi | JoinKind::Anti) && !(*outer.tables[0].1).pg_functions {
            return None;
        }
        // The join reads plain columns of its tables only.
        for expr in deparse::list_nodes((*(*joinrel).reltarget).exprs) {
            if (*expr).type_ != NodeTag::T_Var || (*(expr as *mut pg_sys::Var)).varattno <= 0 {
                return None;
            }
        }
        // Tables whose columns nothing may read from here on: those hidden below, and the right
        // side of a semi or anti join (PostgreSQL may still name its columns, as NULLs, over a
        // LEFT JOIN it turned into an anti join; the server's LEFT ANTI JOIN has no such columns).
        let mut hidden: Vec<pg_sys::Index> = outer.hidden.iter().chain(&inner.hidden).copied().collect();
        let below = hidden.len();
        if matches!(kind, JoinKind::Semi | JoinKind::Anti) {
            hidden.extend(inner.tables.iter().map(|&(relid, _)| relid));
        }
        let reads_hidden = |node: *mut pg_sys::Node, hidden: &[pg_sys::Index]| {
            let flags = pg_sys::PVC_RECURSE_AGGREGATES
                | pg_sys::PVC_RECURSE_WINDOWFUNCS
                | pg_sys::PVC_RECURSE_PLACEHOLDERS;
            deparse::list_nodes(pg_sys::pull_var_clause(node, flags as i32)).into_iter().any(|var| {
                (*var).type_ == NodeTag::T_Var
                    && hidden.contains(&((*(var as *mut pg_sys::Var)).varno as pg_sys::Index))
            })
        };
        if reads_hidden((*(*joinrel).reltarget).exprs.cast(), &hidden) {
            return None;
        }
        let mut tables = outer.tables;
        let shift = tables.len();
        tables.extend(inner.tables);
        let mut info = JoinInfo {
            tables,
            tree: Tree::Table(0),
            filters: Vec::new(),
            costs: outer.costs,
            hidden: Vec::new(),
        };
        // The join's clauses: its own (ON), and, over an outer join, those PostgreSQL applies
        // above it (WHERE).
        let (mut own, mut above) = (Vec::new(), Vec::new());
        // A semi join's clauses are all its own (PostgreSQL marks them pushed down, as an inner
        // join's): they read the inner side, so they go in its ON.
        let outer_join = matches!(kind, JoinKind::Left | JoinKind::Right | JoinKind::Full | JoinKind::Anti);
        for rinfo in deparse::list_nodes((*extra).restrictlist) {
            let rinfo = rinfo as *mut pg_sys::RestrictInfo;
            if (*rinfo).pseudoconstant {
                return None;
            }
            let pushed_down = (*rinfo).is_pushed_down
                || !pg_sys::bms_is_subset((*rinfo).required_relids, (*joinrel).relids);
            if outer_join && pushed_down {
                above.push((*rinfo).clause);
            } else {
                own.push((*rinfo).clause);
            }
        }
        let (outer_filters, inner_filters) = (outer.filters, inner.filters);
        let (mut on, mut filters) = (own, above);
        match kind {
            JoinKind::Inner => {
                filters.extend(outer_filters);
                filters.extend(inner_filters);
            }
            // The inner side of a semi or anti join is not seen above it: its filters go in the ON.
            JoinKind::Left | JoinKind::Semi | JoinKind::Anti => {
                on.extend(inner_filters);
                filters.extend(outer_filters);
            }
            JoinKind::Right => {
                on.extend(outer_filters);
                filters.extend(inner_filters);
            }
            JoinKind::Full => {
                if !outer_filters.is_empty() || !inner_filters.is_empty() {
                    return None;
                }
            }
        }
        // No clause reads a table hidden below it (nor, in the WHERE, the right side of this
        // semi or anti join).
        if on.iter().any(|&c| reads_hidden(c.cast(), &hidden[..below]))
            || filters.iter().any(|&c| reads_hidden(c.cast(), &hidden))
        {
            return None;
        }
        // A subquery goes in a WHERE only: in an ON it could stay in the server's join
        // condition, which cannot hold a subquery. An inner join's own clauses are as good in
        // the WHERE above it; a scalar subquery reading one table whose rows reach the join
        // unchanged, on the side it does not preserve, filters that table first (as
        // kalam_pushdown renders it).
        if kind == JoinKind::Inner {
            let (subqueries, plain) = on.into_iter().partition(|&c| pg_sys::contain_subplans(c.cast()));
            on = plain;
            filters.extend::<Vec<_>>(subqueries);
        }
        let right = copy_tree(&inner.tree, shift);
        let (left_shape, right_shape) = (shape_of(&outer.tree), shape_of(&right));
        // Every clause is the server's.
        let mut deparser = info.deparser();
        for &clause in &on {
            let qual = deparser.clause(clause).ok()?;
            if pg_sys::contain_subplans(clause.cast()) {
                let mut relid = 0;
                let one_table =
                    pg_sys::bms_get_singleton_member(pg_sys::pull_varnos(root, clause.cast()), &mut relid);
                let table = info.tables.iter().position(|&(r, _)| r as i32 == relid);
                let first = matches!(table, Some(t)
                    if one_table && JoinTree::filters_first(kind, &left_shape, &right_shape, t));
                if !first
                    || !qual.has_scalar_subquery()
                    || matches!(qual, kalam_pushdown::Qual::InSubquery { .. })
                {
                    return None;
                }
            }
        }
        for &clause in &filters {
            deparser.clause(clause).ok()?;
        }
        drop(deparser);
        info.hidden = hidden;
        info.tree = Tree::Join { kind, left: Box::new(outer.tree), right: Box::new(right), on };
        info.filters = filters;
        Some(info)
    }
}

/// `(s.a r1) INNER JOIN (s.b r2)`, as EXPLAIN names the join's relations (with the aliases of
/// the Remote SQL).
pub(crate) fn relations_label(tree: &kalam_pushdown::join::JoinTree, names: &[String]) -> String {
    use kalam_pushdown::join::JoinTree;
    match tree {
        JoinTree::Table(i) => format!("({})", names[*i]),
        JoinTree::Join { kind, left, right, .. } => {
            let kind = match kind {
                JoinKind::Inner => "INNER JOIN",
                JoinKind::Left => "LEFT JOIN",
                JoinKind::Right => "RIGHT JOIN",
                JoinKind::Full => "FULL JOIN",
                JoinKind::Semi => "SEMI JOIN",
                JoinKind::Anti => "ANTI JOIN",
            };
            let side = |t: &JoinTree| match t {
                JoinTree::Table(_) => relations_label(t, names),
                _ => format!("({})", relations_label(t, names)),
            };
            format!("{} {kind} {}", side(left), side(right))
        }
    }
}
