//! Correlated scalar subqueries the server computes: `ps_supplycost = (SELECT min(...) FROM
//! ... WHERE ps_partkey = <the outer row's p_partkey>)`, which PostgreSQL runs once per outer
//! row and the server decorrelates into one join.
//!
//! The subquery is a grouped query of one group (no GROUP BY), so it has one row for every
//! outer row, whose value is NULL when no row matches, as PostgreSQL's is. Its parameters
//! (`$1`, `$2`, ... as the subquery's own plan numbers them) stand for values of the outer
//! row: each is replaced with the outer statement's expression for it. Its tables are renamed
//! (`s1`, `s2`, ...) so that no outer name is hidden by an inner one.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{self, Ident, SelectItem, TableFactor, TableWithJoins};
use datafusion_sql::unparser::Unparser;

use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;

use crate::aggregate::{Function, Output, RemoteAggregate};
use crate::qual::{Literal, Qual};
use crate::scan::select_of;
use crate::{Error, KalamDialect};

/// kalamdb-server's average of a sum and a count, rounded as PostgreSQL's `avg` is.
pub const AVERAGE_FUNCTION: &str = "pg_numeric_avg";

/// Decimals `pg_numeric_avg` adds to its sum's scale.
pub const AVERAGE_EXTRA_SCALE: u8 = 40;

/// Whether the value of `function` over no rows is NULL, as the server's join of a subquery
/// gives it (not `count`'s 0), and the server sends it as one column.
pub fn function_is_scalar(function: Function) -> bool {
    matches!(
        function,
        Function::Sum
            | Function::SumAsDecimal
            | Function::Min
            | Function::Max
            | Function::BoolAnd
            | Function::BoolOr
    )
}

/// The value of a grouped query of one group, in a condition of an outer statement.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalarSubquery {
    /// The grouped query: no GROUP BY, no order. `None` while only planned (never rendered
    /// then: the executor finds the subquery's planned scan).
    pub query: Option<RemoteAggregate>,
    /// Which of its outputs is the value (each output before it is one column): an aggregate
    /// [`function_is_scalar`] says is, or an average (`pg_numeric_avg` of its sum and count).
    pub output: usize,
    /// The value is `factor * output` (a decimal whose product keeps every digit).
    pub factor: Option<Literal>,
    /// The outer expression each parameter of the query stands for (`$k` is `correlation[k-1]`),
    /// over the outer statement's columns.
    pub correlation: Vec<Qual>,
}

impl ScalarSubquery {
    /// The subquery's statement, its tables named apart from `outer_names` (the outer
    /// statement's qualifiers), its parameters the outer expressions `outer` renders.
    pub(crate) fn query(
        &self,
        outer_names: &[String],
        outer: &dyn Fn(&Qual) -> Result<ast::Expr, Error>,
    ) -> Result<Box<ast::Query>, Error> {
        let query =
            self.query.as_ref().ok_or_else(|| Error::Internal("a subquery not yet planned".into()))?;
        if !query.group_by.is_empty() || query.order != crate::OrderLimit::default() {
            return Err(Error::Internal("a subquery of more than one group".into()));
        }
        if query.outputs[..self.output].iter().any(|o| o.width() != 1) {
            return Err(Error::Internal("a subquery whose value is not one column".into()));
        }
        let mut statement = query.statement(None)?;
        let select = select_of(&mut statement)?;
        let item = select
            .projection
            .get(self.output)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("no output {} in the subquery", self.output)))?;
        let SelectItem::ExprWithAlias { expr, alias } = item else {
            return Err(Error::Internal("a subquery output without its name".into()));
        };
        let Some(&Output::Aggregate { function, .. }) = query.outputs.get(self.output) else {
            return Err(Error::Internal("a subquery whose value is not one aggregate".into()));
        };
        let average = function == Function::Avg;
        // An average arrives as its sum and count: the server divides them as PostgreSQL does.
        let expr = match function {
            Function::Avg => {
                let Some(SelectItem::ExprWithAlias { expr: count, .. }) =
                    select.projection.get(self.output + 1)
                else {
                    return Err(Error::Internal("an average without its count".into()));
                };
                let call = format!("{}({expr}, {count})", AVERAGE_FUNCTION);
                Parser::new(&GenericDialect {}).try_with_sql(&call)?.parse_expr()?
            }
            function if function_is_scalar(function) => expr,
            _ => return Err(Error::Internal("a subquery whose value is not one aggregate".into())),
        };
        let expr = match &self.factor {
            None => expr,
            Some(factor) => ast::Expr::BinaryOp {
                left: Box::new(Unparser::new(&KalamDialect).expr_to_sql(&factor_expr(factor, average))?),
                op: ast::BinaryOperator::Multiply,
                right: Box::new(ast::Expr::Nested(Box::new(expr))),
            },
        };
        select.projection = vec![SelectItem::ExprWithAlias { expr, alias }];
        rename_tables(select, outer_names)?;
        // The parameters, now that no inner name can capture an outer one.
        let mut failed = None;
        let _ = ast::visit_expressions_mut(&mut statement, |expr| {
            if let ast::Expr::Value(value) = expr
                && let ast::Value::Placeholder(name) = &value.value
            {
                let qual = name
                    .strip_prefix('$')
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| self.correlation.get(n.wrapping_sub(1)));
                match qual.map(outer) {
                    Some(Ok(value)) => *expr = value,
                    Some(Err(e)) => failed = Some(e),
                    None => failed = Some(Error::Internal(format!("no outer value for {name}"))),
                }
            }
            ControlFlow::<()>::Continue(())
        });
        if let Some(e) = failed {
            return Err(e);
        }
        match statement {
            ast::Statement::Query(query) => Ok(query),
            other => Err(Error::Internal(format!("unexpected statement for a subquery: {other}"))),
        }
    }
}

/// The constant an average is multiplied by, as a 256-bit decimal of its own scale: the server
/// would otherwise widen it to the average's type, whose product's scale it cannot hold.
fn factor_expr(factor: &Literal, average: bool) -> datafusion_expr::Expr {
    match factor {
        Literal::Decimal { unscaled, precision, scale } if average => datafusion_expr::cast(
            datafusion_expr::lit(crate::qual::decimal_text(*unscaled, *scale)),
            arrow_schema::DataType::Decimal256((*precision).max(39), *scale),
        ),
        other => crate::qual::literal(other),
    }
}

/// Gives each table of `select` a name no outer name starts with (`s1`, `s2`, ... or with a
/// longer prefix), and qualifies its columns with it.
fn rename_tables(select: &mut ast::Select, outer_names: &[String]) -> Result<(), Error> {
    let mut prefix = "s".to_string();
    while outer_names.iter().any(|n| n.starts_with(prefix.as_str())) {
        prefix.push('_');
    }
    let mut renamed: Vec<(String, String)> = Vec::new();
    let mut rename = |factor: &mut TableFactor| -> Result<(), Error> {
        let TableFactor::Table { name, alias, .. } = factor else {
            return Err(Error::Internal("a subquery reading other than tables".into()));
        };
        // A table without alias is named by its own name.
        let old = match alias {
            Some(alias) => alias.name.value.clone(),
            None => {
                name.0.last().and_then(|part| part.as_ident()).map(|i| i.value.clone()).unwrap_or_default()
            }
        };
        let new = format!("{prefix}{}", renamed.len() + 1);
        *alias = Some(ast::TableAlias {
            explicit: true,
            name: Ident::with_quote('"', &new),
            columns: Vec::new(),
            at: None,
        });
        renamed.push((old, new));
        Ok(())
    };
    fn each_table(
        from: &mut TableWithJoins,
        rename: &mut dyn FnMut(&mut TableFactor) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut factors = vec![&mut from.relation];
        factors.extend(from.joins.iter_mut().map(|j| &mut j.relation));
        for factor in factors {
            match factor {
                TableFactor::NestedJoin { table_with_joins, .. } => each_table(table_with_joins, rename)?,
                table => rename(table)?,
            }
        }
        Ok(())
    }
    for from in &mut select.from {
        each_table(from, &mut rename)?;
    }
    let _ = ast::visit_expressions_mut(select, |expr| {
        if let ast::Expr::CompoundIdentifier(parts) = expr
            && let [qualifier, _] = &mut parts[..]
            && let Some((_, new)) = renamed.iter().find(|(old, _)| *old == qualifier.value)
        {
            *qualifier = Ident::with_quote('"', new);
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use super::*;
    use crate::aggregate::AggregateInput;
    use crate::join::{JoinKind, JoinTree, JoinedTable, RemoteJoin};
    use crate::{Comparison, OrderLimit, RemoteColumn, RemoteScan, RemoteTable};

    fn columns(names: &[(&str, DataType)]) -> Vec<RemoteColumn> {
        names.iter().map(|(n, t)| RemoteColumn { name: n.to_string(), data_type: t.clone() }).collect()
    }

    fn cmp(op: Comparison, left: Qual, right: Qual) -> Qual {
        Qual::Compare { op, left: Box::new(left), right: Box::new(right) }
    }

    /// `SELECT <function>(qty) FROM app.lines WHERE part = $1`, one group.
    fn lines_aggregate(function: Function) -> RemoteAggregate {
        let lines = RemoteScan {
            table: RemoteTable { namespace: "app".into(), table: "lines".into() },
            columns: columns(&[("part", DataType::Int64), ("qty", DataType::Decimal128(15, 2))]),
            projection: Vec::new(),
            filters: vec![cmp(Comparison::Eq, Qual::Column(0), Qual::Parameter(0))],
            order: OrderLimit::default(),
        };
        RemoteAggregate {
            input: AggregateInput::Scan(lines),
            computed: Vec::new(),
            group_by: Vec::new(),
            outputs: vec![Output::Aggregate { function, column: 1, distinct: false }],
            order: OrderLimit::default(),
        }
    }

    fn outer_scan(filters: Vec<Qual>) -> RemoteScan {
        RemoteScan {
            table: RemoteTable { namespace: "app".into(), table: "lines".into() },
            columns: columns(&[("part", DataType::Int64), ("qty", DataType::Decimal128(15, 2))]),
            projection: vec![0],
            filters,
            order: OrderLimit::default(),
        }
    }

    // Goal: a scalar subquery renders as its statement of one value, its tables renamed so
    // that an outer table of the same name stays the outer one, its parameters the outer
    // values; an average is the server's `pg_numeric_avg` of its sum and count, a constant
    // times it a 256-bit decimal; other aggregates as they are.
    #[test]
    fn scalar_subqueries_render_inside_the_outer_statement() {
        let tenth = Literal::Decimal { unscaled: 2, precision: 1, scale: 1 };
        let cases = [
            (
                Function::Min,
                None,
                r#"SELECT "lines"."part" FROM "app"."lines" WHERE ("lines"."qty" < (SELECT min("qty") AS a0 FROM "app"."lines" AS "s1" WHERE ("part" = ("lines"."part"))))"#,
            ),
            (
                Function::Sum,
                Some(tenth.clone()),
                r#"SELECT "lines"."part" FROM "app"."lines" WHERE ("lines"."qty" < (SELECT CAST('0.2' AS DECIMAL(1,1)) * (sum(CAST("qty" AS DECIMAL(38,2)))) AS a0 FROM "app"."lines" AS "s1" WHERE ("part" = ("lines"."part"))))"#,
            ),
            (
                Function::Avg,
                Some(tenth),
                r#"SELECT "lines"."part" FROM "app"."lines" WHERE ("lines"."qty" < (SELECT CAST('0.2' AS DECIMAL(39,1)) * (pg_numeric_avg(sum(CAST("qty" AS DECIMAL(38,2))), count("qty"))) AS a0 FROM "app"."lines" AS "s1" WHERE ("part" = ("lines"."part"))))"#,
            ),
        ];
        for (function, factor, expected) in cases {
            let subquery = ScalarSubquery {
                query: Some(lines_aggregate(function)),
                output: 0,
                factor,
                correlation: vec![Qual::Column(0)],
            };
            let outer = outer_scan(vec![cmp(
                Comparison::Lt,
                Qual::Column(1),
                Qual::ScalarSubquery(Box::new(subquery)),
            )]);
            assert_eq!(outer.to_sql(None).unwrap(), expected, "{function:?}");
        }
    }

    // Goal: a subquery only planned (no statement yet), grouped, or whose value is a count
    // (0, not NULL, over no rows) is never rendered.
    #[test]
    fn unsendable_subqueries_fail_to_render() {
        let mut grouped = lines_aggregate(Function::Max);
        grouped.group_by = vec![0];
        for query in [None, Some(grouped), Some(lines_aggregate(Function::Count))] {
            let subquery =
                ScalarSubquery { query, output: 0, factor: None, correlation: vec![Qual::Column(0)] };
            let outer = outer_scan(vec![cmp(
                Comparison::Eq,
                Qual::Column(1),
                Qual::ScalarSubquery(Box::new(subquery)),
            )]);
            assert!(outer.to_sql(None).is_err());
        }
    }

    // Goal: in a join, a scalar subquery of a semi join's ON that reads one table of its right
    // side filters that table first (a derived table under the same alias); one that reads
    // the preserved side of a LEFT JOIN stays in the ON.
    #[test]
    fn join_conditions_with_subqueries_filter_their_table_first() {
        let table = |name: &str| JoinedTable {
            table: RemoteTable { namespace: "app".into(), table: name.into() },
            columns: columns(&[("part", DataType::Int64), ("qty", DataType::Decimal128(15, 2))]),
        };
        let subquery = |column: usize| {
            Qual::ScalarSubquery(Box::new(ScalarSubquery {
                query: Some(lines_aggregate(Function::Max)),
                output: 0,
                factor: None,
                correlation: vec![Qual::Column(column)],
            }))
        };
        let join = |kind: JoinKind, on: Vec<Qual>| RemoteJoin {
            tables: vec![table("orders"), table("lines")],
            tree: JoinTree::Join {
                kind,
                left: Box::new(JoinTree::Table(0)),
                right: Box::new(JoinTree::Table(1)),
                on,
            },
            filters: Vec::new(),
            outputs: vec![(0, 0)],
            order: OrderLimit::default(),
        };
        let semi = join(
            JoinKind::Semi,
            vec![
                cmp(Comparison::Eq, Qual::Column(0), Qual::Column(2)),
                cmp(Comparison::Gt, Qual::Column(3), subquery(2)),
            ],
        );
        assert_eq!(
            semi.to_sql(None).unwrap(),
            r#"SELECT "r1"."part" AS c0 FROM "app"."orders" AS "r1" LEFT SEMI JOIN (SELECT * FROM "app"."lines" AS "r2" WHERE ("r2"."qty" > (SELECT max("qty") AS a0 FROM "app"."lines" AS "s1" WHERE ("part" = ("r2"."part"))))) AS "r2" ON ("r1"."part" = "r2"."part")"#
        );
        let left = join(JoinKind::Left, vec![cmp(Comparison::Gt, Qual::Column(1), subquery(0))]);
        let sql = left.to_sql(None).unwrap();
        assert!(sql.contains(r#"LEFT OUTER JOIN "app"."lines" AS "r2" ON ("r1"."qty" > (SELECT"#), "{sql}");
    }
}
