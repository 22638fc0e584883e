//! Aggregates the server computes: `SELECT <group columns and aggregates> FROM t WHERE ...
//! GROUP BY <group columns>`, for a grouped query PostgreSQL would otherwise compute from every
//! row of the scan.
//!
//! The extension decides what may be shipped (PostgreSQL's result types and values exactly);
//! this module renders it. Each aggregate is written so that the server's result has the type
//! PostgreSQL's has: `sum(bigint)` is numeric in PostgreSQL, so its argument is cast to
//! `DECIMAL(38,0)` first, and the server adds exactly, with no wrap-around.

use datafusion_sql::sqlparser::ast::{Expr, GroupByExpr, Ident, SelectItem};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;

use crate::qual::Literal;
use crate::{Error, RemoteScan};

/// An aggregate function the server computes as PostgreSQL does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// `count(*)`
    CountRows,
    Count,
    Sum,
    /// `sum` of a bigint: PostgreSQL's result is numeric.
    SumAsDecimal,
    Min,
    Max,
    BoolAnd,
    BoolOr,
}

impl Function {
    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<Function> {
        [
            Function::CountRows,
            Function::Count,
            Function::Sum,
            Function::SumAsDecimal,
            Function::Min,
            Function::Max,
            Function::BoolAnd,
            Function::BoolOr,
        ]
        .into_iter()
        .find(|f| f.code() == code)
    }
}

/// One output column of a grouped query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// A grouping column (an index into the scan's columns).
    Group(usize),
    /// `function(column)` (the column is ignored by `count(*)`), with DISTINCT or not.
    Aggregate { function: Function, column: usize, distinct: bool },
}

/// A grouped query over a scan's rows (its table, columns and filters; its projection is not
/// used).
#[derive(Clone, Debug)]
pub struct RemoteAggregate {
    pub scan: RemoteScan,
    /// Indexes into the scan's columns; empty: one group of every row.
    pub group_by: Vec<usize>,
    /// The columns of the result, in order.
    pub outputs: Vec<Output>,
}

impl RemoteAggregate {
    /// The statement, with `parameters` as the values of the filters' parameters (`None`:
    /// shown as `$n`, for EXPLAIN). Output columns are named `a0`, `a1`, ... (read by position).
    pub fn to_sql(&self, parameters: Option<&[Literal]>) -> Result<String, Error> {
        let mut statement = self.scan.statement(parameters)?;
        let select = crate::scan::select_of(&mut statement)?;
        let name = |i: usize| -> Result<Ident, Error> {
            let column = self
                .scan
                .columns
                .get(i)
                .ok_or_else(|| Error::Internal(format!("no column {i} for the aggregate")))?;
            Ok(Ident::with_quote('"', &column.name))
        };
        let mut projection = Vec::with_capacity(self.outputs.len());
        for (i, output) in self.outputs.iter().enumerate() {
            let expr = match output {
                Output::Group(column) => Expr::Identifier(name(*column)?),
                Output::Aggregate { function, column, distinct } => {
                    let distinct = if *distinct { "DISTINCT " } else { "" };
                    // The column is printed by the syntax tree (quoted), then read back.
                    let text = match function {
                        Function::CountRows => "count(*)".to_string(),
                        Function::Count => format!("count({distinct}{})", name(*column)?),
                        Function::Sum => format!("sum({distinct}{})", name(*column)?),
                        Function::SumAsDecimal => {
                            format!("sum({distinct}CAST({} AS DECIMAL(38,0)))", name(*column)?)
                        }
                        Function::Min => format!("min({})", name(*column)?),
                        Function::Max => format!("max({})", name(*column)?),
                        Function::BoolAnd => format!("bool_and({})", name(*column)?),
                        Function::BoolOr => format!("bool_or({})", name(*column)?),
                    };
                    Parser::new(&GenericDialect {}).try_with_sql(&text)?.parse_expr()?
                }
            };
            projection.push(SelectItem::ExprWithAlias { expr, alias: Ident::new(format!("a{i}")) });
        }
        select.projection = projection;
        select.group_by = GroupByExpr::Expressions(
            self.group_by.iter().map(|&c| name(c).map(Expr::Identifier)).collect::<Result<_, _>>()?,
            Vec::new(),
        );
        Ok(statement.to_string())
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use super::*;
    use crate::{Comparison, Qual, RemoteColumn, RemoteTable};

    fn scan(names: &[&str], filters: Vec<Qual>) -> RemoteScan {
        RemoteScan {
            table: RemoteTable { namespace: "app".into(), table: "t\"x".into() },
            columns: names
                .iter()
                .map(|n| RemoteColumn { name: n.to_string(), data_type: DataType::Int64 })
                .collect(),
            projection: vec![],
            filters,
        }
    }

    // Goal: grouped queries render with quoted names, exact-typed sums, DISTINCT, positional
    // aliases and the scan's filters.
    #[test]
    fn grouped_queries_render() {
        let cases = [
            (
                RemoteAggregate {
                    scan: scan(&["id", "city"], vec![]),
                    group_by: vec![],
                    outputs: vec![Output::Aggregate {
                        function: Function::CountRows,
                        column: 0,
                        distinct: false,
                    }],
                },
                r#"SELECT count(*) AS a0 FROM "app"."t""x""#,
            ),
            (
                RemoteAggregate {
                    scan: scan(
                        &["id", "ci\"ty", "n"],
                        vec![Qual::Compare {
                            op: Comparison::Gt,
                            left: Box::new(Qual::Column(0)),
                            right: Box::new(Qual::Literal(crate::Literal::Int64(5))),
                        }],
                    ),
                    group_by: vec![1],
                    outputs: vec![
                        Output::Group(1),
                        Output::Aggregate { function: Function::SumAsDecimal, column: 0, distinct: false },
                        Output::Aggregate { function: Function::Count, column: 2, distinct: true },
                        Output::Aggregate { function: Function::Max, column: 2, distinct: false },
                    ],
                },
                r#"SELECT "ci""ty" AS a0, sum(CAST("id" AS DECIMAL(38,0))) AS a1, count(DISTINCT "n") AS a2, max("n") AS a3 FROM "app"."t""x" WHERE ("id" > CAST('5' AS BIGINT)) GROUP BY "ci""ty""#,
            ),
        ];
        for (aggregate, expected) in cases {
            assert_eq!(aggregate.to_sql(None).unwrap(), expected);
        }
        for code in 0..8 {
            assert_eq!(Function::from_code(code).map(Function::code), Some(code));
        }
        assert_eq!(Function::from_code(8), None);
    }
}
