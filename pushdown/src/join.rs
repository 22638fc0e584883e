//! Joins the server computes: `SELECT <columns> FROM t1 AS r1 <kind> JOIN t2 AS r2 ON (...)
//! ... WHERE ...`, for foreign tables of one server joined in PostgreSQL's plan.
//!
//! The extension decides which joins may be shipped and where each clause goes (a clause of
//! the nullable side of an outer join belongs in its ON, one of the preserved side in WHERE);
//! this module renders the tree. Columns are numbered across the tables, in order (table 0's
//! columns, then table 1's, ...); every column is qualified by its table's alias `r<n>`, and
//! the outputs are named `c0`, `c1`, ... (read by position).

use std::sync::Arc;

use arrow_schema::Schema;
use datafusion_common::TableReference;
use datafusion_expr::LogicalPlanBuilder;
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_sql::sqlparser::ast::{
    Expr, Ident, Join, JoinConstraint, JoinOperator, SelectItem, Statement, TableAlias, TableFactor,
    TableWithJoins,
};
use datafusion_sql::unparser::Unparser;

use crate::order::OrderLimit;
use crate::qual::{Literal, Qual, Renderer};
use crate::scan::select_of;
use crate::{Error, KalamDialect, RemoteColumn, RemoteTable};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    /// The left side's rows for which some right row makes the ON true (`EXISTS`, `IN
    /// (subquery)`), each once: `LEFT SEMI JOIN`. Only the left side's columns are seen above.
    Semi,
    /// The left side's rows for which no right row makes the ON true (`NOT EXISTS`):
    /// `LEFT ANTI JOIN`. Only the left side's columns are seen above.
    Anti,
}

/// How the tables are joined.
#[derive(Clone, Debug, PartialEq)]
pub enum JoinTree {
    /// `tables[i]`.
    Table(usize),
    Join {
        kind: JoinKind,
        left: Box<JoinTree>,
        right: Box<JoinTree>,
        on: Vec<Qual>,
    },
}

impl JoinTree {
    /// Whether a condition in the ON of a `kind` join of `left` and `right` that reads only
    /// table `table` may filter that table's rows before the join instead: the table is on the
    /// side the join does not preserve, and its rows reach the join unchanged.
    pub fn filters_first(kind: JoinKind, left: &JoinTree, right: &JoinTree, table: usize) -> bool {
        (right.has(table)
            && matches!(kind, JoinKind::Inner | JoinKind::Left | JoinKind::Semi | JoinKind::Anti)
            && right.passes_unchanged(table))
            || (left.has(table)
                && matches!(kind, JoinKind::Inner | JoinKind::Right)
                && left.passes_unchanged(table))
    }

    /// Whether table `table` is in this tree.
    fn has(&self, table: usize) -> bool {
        match self {
            JoinTree::Table(i) => *i == table,
            JoinTree::Join { left, right, .. } => left.has(table) || right.has(table),
        }
    }

    /// Whether each row of `table` that reaches the top of this tree is one of its own rows
    /// (passed through inner joins and the preserved sides of outer, semi and anti joins),
    /// never NULL-extended.
    fn passes_unchanged(&self, table: usize) -> bool {
        match self {
            JoinTree::Table(i) => *i == table,
            JoinTree::Join { kind, left, right, .. } => {
                if left.has(table) {
                    matches!(kind, JoinKind::Inner | JoinKind::Left | JoinKind::Semi | JoinKind::Anti)
                        && left.passes_unchanged(table)
                } else {
                    matches!(kind, JoinKind::Inner | JoinKind::Right) && right.passes_unchanged(table)
                }
            }
        }
    }
}

/// A table of the join: its remote name and all its columns (by attribute index).
#[derive(Clone, Debug, PartialEq)]
pub struct JoinedTable {
    pub table: RemoteTable,
    pub columns: Vec<RemoteColumn>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RemoteJoin {
    pub tables: Vec<JoinedTable>,
    pub tree: JoinTree,
    /// WHERE, over the numbered columns (ANDed).
    pub filters: Vec<Qual>,
    /// The columns sent, as (table, column).
    pub outputs: Vec<(usize, usize)>,
    /// Sort keys index `outputs`.
    pub order: OrderLimit,
}

impl RemoteJoin {
    /// The number of table `table`'s first column among all columns.
    pub fn column_offset(&self, table: usize) -> usize {
        self.tables[..table].iter().map(|t| t.columns.len()).sum()
    }

    fn alias(table: usize) -> String {
        format!("r{}", table + 1)
    }

    /// The table and the column that column number `i` is.
    pub fn column(&self, i: usize) -> Option<(usize, &RemoteColumn)> {
        let mut first = 0;
        for (table, joined) in self.tables.iter().enumerate() {
            if i < first + joined.columns.len() {
                return Some((table, &joined.columns[i - first]));
            }
            first += joined.columns.len();
        }
        None
    }

    /// Column number `i`, qualified by its table's alias.
    pub(crate) fn column_expr(&self, i: usize) -> Result<Expr, Error> {
        let (table, column) =
            self.column(i).ok_or_else(|| Error::Internal(format!("no column {i} in the join")))?;
        Ok(Expr::CompoundIdentifier(vec![
            Ident::with_quote('"', Self::alias(table)),
            Ident::with_quote('"', &column.name),
        ]))
    }

    /// The statement, with `parameters` as the values of the clauses' parameters (`None`:
    /// shown as `$n`, for EXPLAIN).
    pub fn to_sql(&self, parameters: Option<&[Literal]>) -> Result<String, Error> {
        let mut statement = self.statement(parameters)?;
        self.order.apply(&mut statement, |key| {
            if key >= self.outputs.len() {
                return Err(Error::Internal(format!("output {key} is no sort key")));
            }
            Ok(Expr::Identifier(Ident::new(format!("c{key}"))))
        })?;
        Ok(statement.to_string())
    }

    /// The name of each column, and the alias of its table, in the numbering of the join.
    pub(crate) fn names(&self) -> (Vec<String>, Vec<String>) {
        let names = self.tables.iter().flat_map(|t| t.columns.iter().map(|c| c.name.clone())).collect();
        let qualifiers = self
            .tables
            .iter()
            .enumerate()
            .flat_map(|(i, t)| std::iter::repeat_n(Self::alias(i), t.columns.len()))
            .collect();
        (names, qualifiers)
    }

    /// The statement without its order: the join, its WHERE and its outputs.
    pub(crate) fn statement(&self, parameters: Option<&[Literal]>) -> Result<Statement, Error> {
        let (names, qualifiers) = self.names();
        let renderer = Renderer { columns: &names, qualifiers: &qualifiers, parameters, parameters_from: 0 };
        let condition = |quals: &[Qual]| renderer.condition(quals);
        // A subquery in an ON is the server's only as a filter of one table's rows.
        let mut tree = self.tree.clone();
        let mut prefilters = vec![Vec::new(); self.tables.len()];
        self.take_subquery_conditions(&mut tree, &mut prefilters);
        let mut factors = Vec::with_capacity(self.tables.len());
        for (i, prefilter) in prefilters.iter().enumerate() {
            factors.push(self.table_factor(i, prefilter, &condition)?);
        }
        let from = self.joined(&tree, &factors, &condition)?;
        // The statement of the first table, whose FROM and projection are replaced.
        let mut statement = self.table_statement(0)?;
        let select = select_of(&mut statement)?;
        select.from = vec![from];
        select.projection = self
            .outputs
            .iter()
            .enumerate()
            .map(|(k, &(table, column))| {
                let name = &self
                    .tables
                    .get(table)
                    .and_then(|t| t.columns.get(column))
                    .ok_or_else(|| {
                        Error::Internal(format!("no column {column} in table {table} of the join"))
                    })?
                    .name;
                Ok(SelectItem::ExprWithAlias {
                    expr: Expr::CompoundIdentifier(vec![
                        Ident::with_quote('"', Self::alias(table)),
                        Ident::with_quote('"', name),
                    ]),
                    alias: Ident::new(format!("c{k}")),
                })
            })
            .collect::<Result<_, Error>>()?;
        if !self.filters.is_empty() {
            select.selection = Some(condition(&self.filters)?);
        }
        Ok(statement)
    }

    /// `SELECT * FROM "namespace"."table" AS "r<n>"`, unparsed from a plan.
    fn table_statement(&self, table: usize) -> Result<Statement, Error> {
        let remote = &self.tables[table].table;
        let source = Arc::new(LogicalTableSource::new(Arc::new(Schema::empty())));
        let name = TableReference::partial(remote.namespace.as_str(), remote.table.as_str());
        let plan = LogicalPlanBuilder::scan(name, source, None)?.alias(Self::alias(table))?.build()?;
        Unparser::new(&KalamDialect).plan_to_sql(&plan)
    }

    /// Table `table` in the FROM: `"ns"."t" AS "r<n>"`, or, with `prefilter` conditions,
    /// `(SELECT * FROM "ns"."t" AS "r<n>" WHERE ...) AS "r<n>"`.
    fn table_factor(
        &self,
        table: usize,
        prefilter: &[Qual],
        condition: &dyn Fn(&[Qual]) -> Result<Expr, Error>,
    ) -> Result<TableFactor, Error> {
        let mut statement = self.table_statement(table)?;
        let select = select_of(&mut statement)?;
        if !prefilter.is_empty() {
            select.selection = Some(condition(prefilter)?);
            let Statement::Query(query) = statement else {
                return Err(Error::Internal("a table statement that is not a query".into()));
            };
            let alias = TableAlias {
                explicit: true,
                name: Ident::with_quote('"', Self::alias(table)),
                columns: Vec::new(),
                at: None,
            };
            return Ok(TableFactor::Derived {
                lateral: false,
                subquery: query,
                alias: Some(alias),
                sample: None,
            });
        }
        let from = select.from.pop().ok_or_else(|| Error::Internal("a table without FROM".into()))?;
        Ok(from.relation)
    }

    /// Moves the ON conditions of `tree` that hold a scalar subquery and read one table whose
    /// rows reach that join unchanged (not NULL-extended, on the side the join does not
    /// preserve) into that table's `prefilters`: filtering the table first is the same.
    fn take_subquery_conditions(&self, tree: &mut JoinTree, prefilters: &mut [Vec<Qual>]) {
        let JoinTree::Join { kind, left, right, on } = tree else { return };
        let mut kept = Vec::with_capacity(on.len());
        for qual in on.drain(..) {
            let tables = self.tables_read(&qual);
            let movable = qual.has_scalar_subquery()
                && matches!(tables[..], [t] if JoinTree::filters_first(*kind, left, right, t));
            match tables[..] {
                [t] if movable => prefilters[t].push(qual),
                _ => kept.push(qual),
            }
        }
        *on = kept;
        self.take_subquery_conditions(left, prefilters);
        self.take_subquery_conditions(right, prefilters);
    }

    /// The tables whose columns `qual` reads (its scalar subqueries' outer values too).
    fn tables_read(&self, qual: &Qual) -> Vec<usize> {
        let mut columns = Vec::new();
        qual.walk(&mut |q| match q {
            Qual::Column(i) => columns.push(*i),
            Qual::ScalarSubquery(subquery) => subquery.correlation.iter().for_each(|value| {
                value.walk(&mut |v| {
                    if let Qual::Column(i) = v {
                        columns.push(*i);
                    }
                })
            }),
            _ => {}
        });
        let mut tables: Vec<usize> = columns.into_iter().filter_map(|c| Some(self.column(c)?.0)).collect();
        tables.sort_unstable();
        tables.dedup();
        tables
    }

    /// The FROM item of `tree`: left-deep joins in one list, a join on the right nested in
    /// parentheses.
    fn joined(
        &self,
        tree: &JoinTree,
        factors: &[TableFactor],
        condition: &dyn Fn(&[Qual]) -> Result<Expr, Error>,
    ) -> Result<TableWithJoins, Error> {
        match tree {
            JoinTree::Table(i) => Ok(TableWithJoins {
                relation: factors.get(*i).cloned().ok_or_else(|| Error::Internal(format!("no table {i}")))?,
                joins: Vec::new(),
            }),
            JoinTree::Join { kind, left, right, on } => {
                let mut joined = self.joined(left, factors, condition)?;
                let relation = match right.as_ref() {
                    JoinTree::Table(i) => {
                        factors.get(*i).cloned().ok_or_else(|| Error::Internal(format!("no table {i}")))?
                    }
                    nested => TableFactor::NestedJoin {
                        table_with_joins: Box::new(self.joined(nested, factors, condition)?),
                        alias: None,
                    },
                };
                let constraint = JoinConstraint::On(if on.is_empty() {
                    condition(&[Qual::And(Vec::new())])?
                } else {
                    condition(on)?
                });
                let join_operator = match kind {
                    JoinKind::Inner => JoinOperator::Inner(constraint),
                    JoinKind::Left => JoinOperator::LeftOuter(constraint),
                    JoinKind::Right => JoinOperator::RightOuter(constraint),
                    JoinKind::Full => JoinOperator::FullOuter(constraint),
                    JoinKind::Semi => JoinOperator::LeftSemi(constraint),
                    JoinKind::Anti => JoinOperator::LeftAnti(constraint),
                };
                joined.joins.push(Join { relation, global: false, join_operator });
                Ok(joined)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use super::*;
    use crate::{Comparison, SortKey};

    fn table(name: &str, columns: &[&str]) -> JoinedTable {
        JoinedTable {
            table: RemoteTable { namespace: "app".into(), table: name.into() },
            columns: columns
                .iter()
                .map(|c| RemoteColumn { name: c.to_string(), data_type: DataType::Int64 })
                .collect(),
        }
    }

    fn eq(left: usize, right: usize) -> Qual {
        Qual::Compare {
            op: Comparison::Eq,
            left: Box::new(Qual::Column(left)),
            right: Box::new(Qual::Column(right)),
        }
    }

    // Goal: every kind of join renders with qualified, quoted columns, its ON clause, the WHERE
    // over the whole join, positional output names and the order asked for.
    #[test]
    fn joins_render() {
        let tables = vec![table("orders", &["id", "cust"]), table("line\"items", &["order_id", "qty"])];
        let mut join = RemoteJoin {
            tables,
            tree: JoinTree::Join {
                kind: JoinKind::Inner,
                left: Box::new(JoinTree::Table(0)),
                right: Box::new(JoinTree::Table(1)),
                on: vec![eq(0, 2)],
            },
            filters: vec![Qual::Compare {
                op: Comparison::Gt,
                left: Box::new(Qual::Column(3)),
                right: Box::new(Qual::Parameter(0)),
            }],
            outputs: vec![(0, 1), (1, 1)],
            order: OrderLimit {
                order_by: vec![SortKey { key: 1, descending: true, nulls_first: false }],
                limit: Some(2),
                offset: 0,
            },
        };
        assert_eq!(
            join.to_sql(None).unwrap(),
            r#"SELECT "r1"."cust" AS c0, "r2"."qty" AS c1 FROM "app"."orders" AS "r1" INNER JOIN "app"."line""items" AS "r2" ON ("r1"."id" = "r2"."order_id") WHERE ("r2"."qty" > $1) ORDER BY c1 DESC NULLS LAST LIMIT 2"#
        );
        assert_eq!(
            join.to_sql(Some(&[Literal::Int64(4)])).unwrap(),
            r#"SELECT "r1"."cust" AS c0, "r2"."qty" AS c1 FROM "app"."orders" AS "r1" INNER JOIN "app"."line""items" AS "r2" ON ("r1"."id" = "r2"."order_id") WHERE ("r2"."qty" > CAST('4' AS BIGINT)) ORDER BY c1 DESC NULLS LAST LIMIT 2"#
        );
        // A join of joins: (r1 LEFT r2) FULL (r3 RIGHT r4), the right one nested.
        join.tables.push(table("c", &["k"]));
        join.tables.push(table("d", &["k"]));
        join.tree = JoinTree::Join {
            kind: JoinKind::Full,
            left: Box::new(JoinTree::Join {
                kind: JoinKind::Left,
                left: Box::new(JoinTree::Table(0)),
                right: Box::new(JoinTree::Table(1)),
                on: vec![eq(0, 2)],
            }),
            right: Box::new(JoinTree::Join {
                kind: JoinKind::Right,
                left: Box::new(JoinTree::Table(2)),
                right: Box::new(JoinTree::Table(3)),
                on: vec![],
            }),
            on: vec![eq(1, 4)],
        };
        join.filters.clear();
        join.order = OrderLimit::default();
        join.outputs = vec![(2, 0)];
        assert_eq!(
            join.to_sql(None).unwrap(),
            r#"SELECT "r3"."k" AS c0 FROM "app"."orders" AS "r1" LEFT OUTER JOIN "app"."line""items" AS "r2" ON ("r1"."id" = "r2"."order_id") FULL JOIN ("app"."c" AS "r3" RIGHT OUTER JOIN "app"."d" AS "r4" ON true) ON ("r1"."cust" = "r3"."k")"#
        );
        join.outputs = vec![(3, 1)];
        assert!(join.to_sql(None).is_err());
    }

    // Goal: semi and anti joins render as the server's LEFT SEMI / LEFT ANTI joins, the right
    // side's filters in their ON, and joins above them reading the left side's columns.
    #[test]
    fn semi_and_anti_joins_render() {
        let tables =
            vec![table("orders", &["id", "cust"]), table("lines", &["order_id", "qty"]), table("c", &["k"])];
        let qty_over = |value: i64| Qual::Compare {
            op: Comparison::Gt,
            left: Box::new(Qual::Column(3)),
            right: Box::new(Qual::Literal(Literal::Int64(value))),
        };
        let join = RemoteJoin {
            tables,
            tree: JoinTree::Join {
                kind: JoinKind::Inner,
                left: Box::new(JoinTree::Join {
                    kind: JoinKind::Semi,
                    left: Box::new(JoinTree::Table(0)),
                    right: Box::new(JoinTree::Table(1)),
                    on: vec![eq(0, 2), qty_over(5)],
                }),
                right: Box::new(JoinTree::Table(2)),
                on: vec![eq(1, 4)],
            },
            filters: Vec::new(),
            outputs: vec![(0, 0), (2, 0)],
            order: OrderLimit::default(),
        };
        assert_eq!(
            join.to_sql(None).unwrap(),
            r#"SELECT "r1"."id" AS c0, "r3"."k" AS c1 FROM "app"."orders" AS "r1" LEFT SEMI JOIN "app"."lines" AS "r2" ON (("r1"."id" = "r2"."order_id") AND ("r2"."qty" > CAST('5' AS BIGINT))) INNER JOIN "app"."c" AS "r3" ON ("r1"."cust" = "r3"."k")"#
        );
        let anti = RemoteJoin {
            tree: JoinTree::Join {
                kind: JoinKind::Anti,
                left: Box::new(JoinTree::Table(0)),
                right: Box::new(JoinTree::Table(1)),
                on: vec![eq(0, 2)],
            },
            outputs: vec![(0, 1)],
            ..join
        };
        assert_eq!(
            anti.to_sql(None).unwrap(),
            r#"SELECT "r1"."cust" AS c0 FROM "app"."orders" AS "r1" LEFT ANTI JOIN "app"."lines" AS "r2" ON ("r1"."id" = "r2"."order_id")"#
        );
    }
}
