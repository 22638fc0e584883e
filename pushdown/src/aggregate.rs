//! Aggregates the server computes: `SELECT <group columns and aggregates> FROM t WHERE ...
//! GROUP BY <group columns>`, for a grouped query PostgreSQL would otherwise compute from every
//! row of the scan.
//!
//! The extension decides what may be shipped (PostgreSQL's result types and values exactly);
//! this module renders it. Each aggregate is written so that the server's result has the type
//! PostgreSQL's has: every sum adds the column as `DECIMAL(38, its scale)`, exactly, with no
//! wrap-around (`sum(bigint)` is numeric in PostgreSQL; `sum(integer)` is bigint, so that one
//! is cast back).

use datafusion_sql::sqlparser::ast::{Expr, GroupByExpr, Ident, SelectItem};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;

use arrow_schema::DataType;
use datafusion_sql::unparser::Unparser;

use crate::join::RemoteJoin;
use crate::order::OrderLimit;
use crate::qual::Literal;
use crate::{Error, KalamDialect, RemoteColumn, RemoteScan};

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
    /// `avg` of integers and numeric(p,s): the server sends the exact sum and the count (two
    /// columns); PostgreSQL divides them, as its own `avg` does, for its numeric scale.
    Avg,
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
            Function::Avg,
        ]
        .into_iter()
        .find(|f| f.code() == code)
    }
}

/// An exact numeric expression of a row, an aggregate's argument (`sum(l_price * (1 - l_discount))`):
/// PostgreSQL's numeric `+`, `-` and `*`, exact on the server's decimals too (the extension
/// only ships expressions whose digits fit: no rounding, no overflow).
#[derive(Clone, Debug, PartialEq)]
pub enum Arith {
    /// A column of the rows (a decimal).
    Column(usize),
    /// A [`Literal::Decimal`].
    Number(Literal),
    Add(Box<Arith>, Box<Arith>),
    Sub(Box<Arith>, Box<Arith>),
    Mul(Box<Arith>, Box<Arith>),
}

/// Digits of the decimals DataFusion's `sum` may add: 10^10 of them still fit its 38 digits.
pub const SUM_PRECISION_MAX: u8 = 28;

/// One output column of a grouped query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// A grouping column (an index into the scan's columns).
    Group(usize),
    /// `function(column)` (the column is ignored by `count(*)`), with DISTINCT or not.
    Aggregate { function: Function, column: usize, distinct: bool },
}

/// The rows a grouped query groups: a table's (its columns and filters; the projection is not
/// used), or a join's (its columns numbered across its tables; its outputs are not used).
#[derive(Clone, Debug)]
pub enum AggregateInput {
    Scan(RemoteScan),
    Join(RemoteJoin),
}

impl AggregateInput {
    /// Column number `i` of the rows.
    pub fn column(&self, i: usize) -> Option<&RemoteColumn> {
        match self {
            AggregateInput::Scan(scan) => scan.columns.get(i),
            AggregateInput::Join(join) => join.column(i).map(|(_, column)| column),
        }
    }

    /// How many columns the rows have.
    pub fn column_count(&self) -> usize {
        match self {
            AggregateInput::Scan(scan) => scan.columns.len(),
            AggregateInput::Join(join) => join.tables.iter().map(|t| t.columns.len()).sum(),
        }
    }

    /// Column number `i` as a DataFusion expression (qualified in a join).
    fn column_df(&self, i: usize) -> Result<datafusion_expr::Expr, Error> {
        let missing = || Error::Internal(format!("no column {i} for the aggregate"));
        Ok(match self {
            AggregateInput::Scan(scan) => datafusion_expr::Expr::Column(
                datafusion_common::Column::new_unqualified(&scan.columns.get(i).ok_or_else(missing)?.name),
            ),
            AggregateInput::Join(join) => {
                let (table, column) = join.column(i).ok_or_else(missing)?;
                datafusion_expr::Expr::Column(datafusion_common::Column::new(
                    Some(format!("r{}", table + 1)),
                    &column.name,
                ))
            }
        })
    }

    /// Column number `i` as the statement names it.
    fn column_expr(&self, i: usize) -> Result<Expr, Error> {
        match self {
            AggregateInput::Scan(scan) => {
                let column = scan
                    .columns
                    .get(i)
                    .ok_or_else(|| Error::Internal(format!("no column {i} for the aggregate")))?;
                Ok(Expr::Identifier(Ident::with_quote('"', &column.name)))
            }
            AggregateInput::Join(join) => join.column_expr(i),
        }
    }

    fn statement(
        &self,
        parameters: Option<&[Literal]>,
    ) -> Result<datafusion_sql::sqlparser::ast::Statement, Error> {
        match self {
            AggregateInput::Scan(scan) => scan.statement(parameters),
            AggregateInput::Join(join) => join.statement(parameters),
        }
    }
}

/// A grouped query over a table's or a join's rows.
#[derive(Clone, Debug)]
pub struct RemoteAggregate {
    pub input: AggregateInput,
    /// Expressions aggregated, each with its type (a decimal's precision and scale, as
    /// PostgreSQL's numeric arithmetic gives them): an output's column `n + k`, `n` being the
    /// number of the input's columns, is `computed[k]`.
    pub computed: Vec<(Arith, DataType)>,
    /// Indexes into the scan's columns; empty: one group of every row.
    pub group_by: Vec<usize>,
    /// The columns of the result, in order.
    pub outputs: Vec<Output>,
    /// The order and number of the groups sent (sort keys index `outputs`; an average is no
    /// key).
    pub order: OrderLimit,
}

impl Output {
    /// How many columns of the server's result it takes: two for `avg` (sum and count).
    pub fn width(&self) -> usize {
        match self {
            Output::Aggregate { function: Function::Avg, .. } => 2,
            _ => 1,
        }
    }
}

impl RemoteAggregate {
    /// The statement, with `parameters` as the values of the filters' parameters (`None`:
    /// shown as `$n`, for EXPLAIN). Output columns are named `a0`, `a1`, ... (read by position).
    pub fn to_sql(&self, parameters: Option<&[Literal]>) -> Result<String, Error> {
        let mut statement = self.input.statement(parameters)?;
        let select = crate::scan::select_of(&mut statement)?;
        let columns = self.input.column_count();
        let name = |i: usize| -> Result<Expr, Error> {
            if i < columns {
                return self.input.column_expr(i);
            }
            let (arith, _) = self
                .computed
                .get(i - columns)
                .ok_or_else(|| Error::Internal(format!("no computed column {i}")))?;
            let expr = self.arith(arith)?;
            Ok(crate::qual::parenthesized(Unparser::new(&KalamDialect).expr_to_sql(&expr)?))
        };
        let data_type = |i: usize| -> Option<&DataType> {
            if i < columns {
                self.input.column(i).map(|c| &c.data_type)
            } else {
                self.computed.get(i - columns).map(|(_, t)| t)
            }
        };
        let mut projection = Vec::with_capacity(self.outputs.len());
        let parse = |text: &str| -> Result<Expr, Error> {
            Ok(Parser::new(&GenericDialect {}).try_with_sql(text)?.parse_expr()?)
        };
        for output in &self.outputs {
            let mut alias = |expr: Expr| {
                let alias = Ident::new(format!("a{}", projection.len()));
                projection.push(SelectItem::ExprWithAlias { expr, alias });
            };
            // Every sum is of the column as DECIMAL(38, its scale): exact, and one expression
            // per column, so that a sum and an average of the same column share it (the server
            // names a cast by its argument: two casts of one column would clash).
            // A sum that could leave 38 digits (of a computed expression, or of decimals of
            // more than 28 digits) is the server's checked `pg_numeric_sum`: DataFusion's own
            // wraps around.
            let exact_sum = |column: usize, distinct: &str| -> Result<String, Error> {
                let (precision, scale) = match data_type(column) {
                    Some(arrow_schema::DataType::Decimal128(precision, scale)) => (*precision, *scale),
                    _ => (19, 0),
                };
                let function =
                    if column >= columns || precision > SUM_PRECISION_MAX { "pg_numeric_sum" } else { "sum" };
                Ok(format!("{function}({distinct}CAST({} AS DECIMAL(38,{scale})))", name(column)?))
            };
            if let Output::Aggregate { function: Function::Avg, column, distinct } = output {
                let distinct = if *distinct { "DISTINCT " } else { "" };
                alias(parse(&exact_sum(*column, distinct)?)?);
                alias(parse(&format!("count({distinct}{})", name(*column)?))?);
                continue;
            }
            let expr = match output {
                Output::Group(column) => name(*column)?,
                Output::Aggregate { function, column, distinct } => {
                    let distinct = if *distinct { "DISTINCT " } else { "" };
                    // The column is printed by the syntax tree (quoted), then read back.
                    let text = match function {
                        Function::CountRows => "count(*)".to_string(),
                        Function::Count => format!("count({distinct}{})", name(*column)?),
                        // PostgreSQL's sum of smallint and integer is bigint.
                        Function::Sum
                            if !matches!(
                                data_type(*column),
                                Some(arrow_schema::DataType::Decimal128(..))
                            ) =>
                        {
                            format!("CAST({} AS BIGINT)", exact_sum(*column, distinct)?)
                        }
                        Function::Sum | Function::SumAsDecimal => exact_sum(*column, distinct)?,
                        Function::Min => format!("min({})", name(*column)?),
                        Function::Max => format!("max({})", name(*column)?),
                        Function::BoolAnd => format!("bool_and({})", name(*column)?),
                        Function::BoolOr => format!("bool_or({})", name(*column)?),
                        Function::Avg => unreachable!("rendered above"),
                    };
                    parse(&text)?
                }
            };
            alias(expr);
        }
        select.projection = projection;
        select.group_by = GroupByExpr::Expressions(
            self.group_by.iter().map(|&c| name(c)).collect::<Result<_, _>>()?,
            Vec::new(),
        );
        // A key is its output's alias: the position of its first column.
        self.order.apply(&mut statement, |key| {
            match self.outputs.get(key) {
                Some(Output::Aggregate { function: Function::Avg, .. }) | None => {
                    return Err(Error::Internal(format!("output {key} is no sort key")));
                }
                Some(_) => {}
            }
            let position: usize = self.outputs[..key].iter().map(Output::width).sum();
            Ok(Expr::Identifier(Ident::new(format!("a{position}"))))
        })?;
        Ok(statement.to_string())
    }
}

impl RemoteAggregate {
    /// `arith` as a DataFusion expression over the input's columns.
    fn arith(&self, arith: &Arith) -> Result<datafusion_expr::Expr, Error> {
        use datafusion_expr::{Operator, binary_expr};
        let pair = |a: &Arith, b: &Arith| -> Result<_, Error> { Ok((self.arith(a)?, self.arith(b)?)) };
        Ok(match arith {
            Arith::Column(i) => self.input.column_df(*i)?,
            Arith::Number(value) => crate::qual::literal(value),
            Arith::Add(a, b) => {
                let (a, b) = pair(a, b)?;
                binary_expr(a, Operator::Plus, b)
            }
            Arith::Sub(a, b) => {
                let (a, b) = pair(a, b)?;
                binary_expr(a, Operator::Minus, b)
            }
            Arith::Mul(a, b) => {
                let (a, b) = pair(a, b)?;
                binary_expr(a, Operator::Multiply, b)
            }
        })
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
            order: OrderLimit::default(),
        }
    }

    // Goal: grouped queries render with quoted names, exact-typed sums, DISTINCT, positional
    // aliases and the scan's filters.
    #[test]
    fn grouped_queries_render() {
        let cases = [
            (
                RemoteAggregate {
                    input: AggregateInput::Scan(scan(&["id", "city"], vec![])),
                    computed: Vec::new(),
                    group_by: vec![],
                    outputs: vec![Output::Aggregate {
                        function: Function::CountRows,
                        column: 0,
                        distinct: false,
                    }],
                    order: OrderLimit::default(),
                },
                r#"SELECT count(*) AS a0 FROM "app"."t""x""#,
            ),
            (
                RemoteAggregate {
                    input: AggregateInput::Scan(scan(
                        &["id", "ci\"ty", "n"],
                        vec![Qual::Compare {
                            op: Comparison::Gt,
                            left: Box::new(Qual::Column(0)),
                            right: Box::new(Qual::Literal(crate::Literal::Int64(5))),
                        }],
                    )),
                    computed: Vec::new(),
                    group_by: vec![1],
                    outputs: vec![
                        Output::Group(1),
                        Output::Aggregate { function: Function::SumAsDecimal, column: 0, distinct: false },
                        Output::Aggregate { function: Function::Count, column: 2, distinct: true },
                        Output::Aggregate { function: Function::Max, column: 2, distinct: false },
                    ],
                    order: OrderLimit::default(),
                },
                r#"SELECT "ci""ty" AS a0, sum(CAST("id" AS DECIMAL(38,0))) AS a1, count(DISTINCT "n") AS a2, max("n") AS a3 FROM "app"."t""x" WHERE ("id" > CAST('5' AS BIGINT)) GROUP BY "ci""ty""#,
            ),
        ];
        for (aggregate, expected) in cases {
            assert_eq!(aggregate.to_sql(None).unwrap(), expected);
        }
        for code in 0..9 {
            assert_eq!(Function::from_code(code).map(Function::code), Some(code));
        }
        assert_eq!(Function::from_code(9), None);
        let avg = RemoteAggregate {
            input: AggregateInput::Scan(scan(&["id"], vec![])),
            computed: Vec::new(),
            group_by: vec![],
            outputs: vec![
                Output::Aggregate { function: Function::Avg, column: 0, distinct: true },
                Output::Aggregate { function: Function::CountRows, column: 0, distinct: false },
            ],
            order: OrderLimit::default(),
        };
        assert_eq!(
            avg.to_sql(None).unwrap(),
            r#"SELECT sum(DISTINCT CAST("id" AS DECIMAL(38,0))) AS a0, count(DISTINCT "id") AS a1, count(*) AS a2 FROM "app"."t""x""#
        );
    }

    // Goal: a grouped join names its columns by table alias, sums exactly and groups by
    // columns of either table.
    #[test]
    fn grouped_joins_render() {
        use crate::join::{JoinKind, JoinTree, JoinedTable, RemoteJoin};
        let table = |name: &str, columns: &[(&str, DataType)]| JoinedTable {
            table: RemoteTable { namespace: "tpch".into(), table: name.into() },
            columns: columns
                .iter()
                .map(|(n, t)| RemoteColumn { name: n.to_string(), data_type: t.clone() })
                .collect(),
        };
        let join = RemoteJoin {
            tables: vec![
                table("orders", &[("o_orderkey", DataType::Int64), ("o_status", DataType::Utf8)]),
                table(
                    "lineitem",
                    &[("l_orderkey", DataType::Int64), ("l_price", DataType::Decimal128(15, 2))],
                ),
            ],
            tree: JoinTree::Join {
                kind: JoinKind::Inner,
                left: Box::new(JoinTree::Table(0)),
                right: Box::new(JoinTree::Table(1)),
                on: vec![Qual::Compare {
                    op: Comparison::Eq,
                    left: Box::new(Qual::Column(0)),
                    right: Box::new(Qual::Column(2)),
                }],
            },
            filters: Vec::new(),
            outputs: Vec::new(),
            order: OrderLimit::default(),
        };
        let aggregate = RemoteAggregate {
            input: AggregateInput::Join(join),
            computed: Vec::new(),
            group_by: vec![1],
            outputs: vec![
                Output::Group(1),
                Output::Aggregate { function: Function::Sum, column: 3, distinct: false },
                Output::Aggregate { function: Function::CountRows, column: 0, distinct: false },
            ],
            order: OrderLimit::default(),
        };
        assert_eq!(
            aggregate.to_sql(None).unwrap(),
            r#"SELECT "r1"."o_status" AS a0, sum(CAST("r2"."l_price" AS DECIMAL(38,2))) AS a1, count(*) AS a2 FROM "tpch"."orders" AS "r1" INNER JOIN "tpch"."lineitem" AS "r2" ON ("r1"."o_orderkey" = "r2"."l_orderkey") GROUP BY "r1"."o_status""#
        );
    }

    // Goal: an aggregate of a computed expression renders the arithmetic over quoted columns
    // and typed literals, summed exactly at the expression's scale.
    #[test]
    fn computed_arguments_render() {
        let mut input = scan(&["price", "discount"], vec![]);
        for column in &mut input.columns {
            column.data_type = DataType::Decimal128(15, 2);
        }
        let one = Literal::Decimal { unscaled: 1, precision: 1, scale: 0 };
        let revenue = Arith::Mul(
            Box::new(Arith::Column(0)),
            Box::new(Arith::Sub(Box::new(Arith::Number(one)), Box::new(Arith::Column(1)))),
        );
        let aggregate = RemoteAggregate {
            input: AggregateInput::Scan(input),
            computed: vec![(revenue, DataType::Decimal128(32, 4))],
            group_by: vec![],
            outputs: vec![
                Output::Aggregate { function: Function::Sum, column: 2, distinct: false },
                Output::Aggregate { function: Function::Avg, column: 2, distinct: false },
            ],
            order: OrderLimit::default(),
        };
        assert_eq!(
            aggregate.to_sql(None).unwrap(),
            r#"SELECT pg_numeric_sum(CAST(("price" * (CAST('1' AS DECIMAL(1,0)) - "discount")) AS DECIMAL(38,4))) AS a0, pg_numeric_sum(CAST(("price" * (CAST('1' AS DECIMAL(1,0)) - "discount")) AS DECIMAL(38,4))) AS a1, count(("price" * (CAST('1' AS DECIMAL(1,0)) - "discount"))) AS a2 FROM "app"."t""x""#
        );
    }
}
