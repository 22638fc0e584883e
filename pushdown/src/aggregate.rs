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
use datafusion_common::ScalarValue;
use datafusion_expr::lit;
use datafusion_sql::unparser::Unparser;

use crate::join::RemoteJoin;
use crate::order::OrderLimit;
use crate::qual::{Literal, Renderer};
use crate::{Error, KalamDialect, Qual, RemoteColumn, RemoteScan};

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
    /// `sum` of a computed decimal whose values differ in scale (a CASE whose branches have
    /// different scales): PostgreSQL's sum shows the largest scale of the values it added, so
    /// the server sends the exact sum and that scale (two columns), and PostgreSQL rounds the
    /// sum to it (exactly: no value added had more digits).
    SumRescaled,
    /// `avg` of such a decimal: the sum, the count and the largest scale (three columns).
    AvgRescaled,
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
            Function::SumRescaled,
            Function::AvgRescaled,
        ]
        .into_iter()
        .find(|f| f.code() == code)
    }
}

/// A value computed from each row: an aggregate's argument (`sum(l_price * (1 - l_discount))`,
/// `sum(CASE WHEN p_type LIKE 'PROMO%' THEN ... ELSE 0 END)`) or a grouping key
/// (`extract(year FROM o_orderdate)`). Each is exactly PostgreSQL's value on the server's types:
/// numeric `+`, `-` and `*` of decimals whose digits fit (no rounding, no overflow), integers
/// only as they are (no integer arithmetic: PostgreSQL errors on overflow where DataFusion
/// wraps).
#[derive(Clone, Debug, PartialEq)]
pub enum RowExpr {
    /// A column of the rows (a decimal or an integer).
    Column(usize),
    /// A [`Literal::Decimal`] or an integer literal.
    Number(Literal),
    Add(Box<RowExpr>, Box<RowExpr>),
    Sub(Box<RowExpr>, Box<RowExpr>),
    Mul(Box<RowExpr>, Box<RowExpr>),
    /// An integer as a decimal of this many digits, scale 0 (PostgreSQL's `numeric(integer)`).
    Decimal(Box<RowExpr>, u8),
    /// A decimal as a 76-digit one of the same scale (`DECIMAL(76, s)`, 256 bits on the
    /// server), so that arithmetic whose result needs more than 38 digits stays exact:
    /// `price * (1 - discount) * (1 + tax)` declares 47. Sums of such values are 76-digit too.
    Wide(Box<RowExpr>),
    /// `CASE WHEN c1 THEN v1 ... ELSE e END` (no ELSE: NULL): the first condition that is true
    /// picks its value, as in PostgreSQL (a NULL condition is not true). The values are not
    /// CASEs themselves, so that each has one scale.
    Case {
        when: Vec<(Qual, RowExpr)>,
        otherwise: Option<Box<RowExpr>>,
    },
    /// PostgreSQL's `extract(year FROM x)` of a date or timestamp: a numeric with no year 0
    /// (the year 1 BC is -1, where the server's calendar counts it as 0).
    Year(Box<RowExpr>),
    /// `substring(text FROM start FOR length)` of a text column, `start` at least 1: its
    /// characters `start` to `start + length - 1` (fewer where the text ends), as the server's
    /// `substr` counts them. Only as a grouping key.
    Substring {
        text: Box<RowExpr>,
        start: i64,
        length: i64,
    },
}

/// Digits of the server's widest decimals (`DECIMAL(76, s)`, [`RowExpr::Wide`]).
pub const WIDE_PRECISION: u8 = 76;

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
#[derive(Clone, Debug, PartialEq)]
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

    /// The name of each column, and the alias of its table (a join's; none for a table's).
    fn names(&self) -> (Vec<String>, Vec<String>) {
        match self {
            AggregateInput::Scan(scan) => (scan.columns.iter().map(|c| c.name.clone()).collect(), Vec::new()),
            AggregateInput::Join(join) => join.names(),
        }
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
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteAggregate {
    pub input: AggregateInput,
    /// Expressions aggregated or grouped by, each with its type (a decimal's precision and
    /// scale, as PostgreSQL's numeric arithmetic gives them; an integer): an output's or a
    /// grouping key's column `n + k`, `n` being the number of the input's columns, is
    /// `computed[k]`.
    pub computed: Vec<(RowExpr, DataType)>,
    /// Indexes into the scan's columns; empty: one group of every row.
    pub group_by: Vec<usize>,
    /// The columns of the result, in order.
    pub outputs: Vec<Output>,
    /// The order and number of the groups sent (sort keys index `outputs`; an average is no
    /// key).
    pub order: OrderLimit,
}

impl Output {
    /// How many columns of the server's result it takes: two for `avg` (sum and count) and
    /// for a rescaled sum (sum and scale), three for a rescaled `avg`.
    pub fn width(&self) -> usize {
        match self {
            Output::Aggregate { function: Function::Avg | Function::SumRescaled, .. } => 2,
            Output::Aggregate { function: Function::AvgRescaled, .. } => 3,
            _ => 1,
        }
    }
}

impl RemoteAggregate {
    /// The statement, with `parameters` as the values of the filters' parameters (`None`:
    /// shown as `$n`, for EXPLAIN). Output columns are named `a0`, `a1`, ... (read by position).
    pub fn to_sql(&self, parameters: Option<&[Literal]>) -> Result<String, Error> {
        let mut statement = self.statement(parameters)?;
        // A key is its output's alias: the position of its first column.
        self.order.apply(&mut statement, |key| {
            match self.outputs.get(key) {
                Some(Output::Aggregate {
                    function: Function::Avg | Function::SumRescaled | Function::AvgRescaled,
                    ..
                })
                | None => {
                    return Err(Error::Internal(format!("output {key} is no sort key")));
                }
                Some(_) => {}
            }
            let position: usize = self.outputs[..key].iter().map(Output::width).sum();
            Ok(Expr::Identifier(Ident::new(format!("a{position}"))))
        })?;
        Ok(statement.to_string())
    }

    /// The statement without its order.
    pub(crate) fn statement(
        &self,
        parameters: Option<&[Literal]>,
    ) -> Result<datafusion_sql::sqlparser::ast::Statement, Error> {
        let mut statement = self.input.statement(parameters)?;
        let select = crate::scan::select_of(&mut statement)?;
        let columns = self.input.column_count();
        let name = |i: usize| -> Result<Expr, Error> {
            if i < columns {
                return self.input.column_expr(i);
            }
            let (computed, _) = self
                .computed
                .get(i - columns)
                .ok_or_else(|| Error::Internal(format!("no computed column {i}")))?;
            let expr = self.row_expr(computed)?;
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
                let (precision, scale, digits) = match data_type(column) {
                    Some(arrow_schema::DataType::Decimal128(precision, scale)) => (*precision, *scale, 38),
                    Some(arrow_schema::DataType::Decimal256(precision, scale)) => {
                        (*precision, *scale, WIDE_PRECISION)
                    }
                    _ => (19, 0, 38),
                };
                let function =
                    if column >= columns || precision > SUM_PRECISION_MAX { "pg_numeric_sum" } else { "sum" };
                Ok(format!("{function}({distinct}CAST({} AS DECIMAL({digits},{scale})))", name(column)?))
            };
            // The largest scale of the values a rescaled sum adds.
            let largest_scale = |column: usize| -> Result<Expr, Error> {
                let (computed, _) = self
                    .computed
                    .get(column.wrapping_sub(columns))
                    .ok_or_else(|| Error::Internal(format!("no computed column {column} to rescale")))?;
                let scale = Unparser::new(&KalamDialect).expr_to_sql(&self.scale_expr(computed)?)?;
                parse(&format!("max({})", crate::qual::parenthesized(scale)))
            };
            if let Output::Aggregate {
                function: function @ (Function::Avg | Function::SumRescaled | Function::AvgRescaled),
                column,
                distinct,
            } = output
            {
                let distinct = if *distinct { "DISTINCT " } else { "" };
                alias(parse(&exact_sum(*column, distinct)?)?);
                if *function != Function::SumRescaled {
                    alias(parse(&format!("count({distinct}{})", name(*column)?))?);
                }
                if *function != Function::Avg {
                    alias(largest_scale(*column)?);
                }
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
                                Some(
                                    arrow_schema::DataType::Decimal128(..)
                                        | arrow_schema::DataType::Decimal256(..)
                                )
                            ) =>
                        {
                            format!("CAST({} AS BIGINT)", exact_sum(*column, distinct)?)
                        }
                        Function::Sum | Function::SumAsDecimal => exact_sum(*column, distinct)?,
                        Function::Min => format!("min({})", name(*column)?),
                        Function::Max => format!("max({})", name(*column)?),
                        Function::BoolAnd => format!("bool_and({})", name(*column)?),
                        Function::BoolOr => format!("bool_or({})", name(*column)?),
                        Function::Avg | Function::SumRescaled | Function::AvgRescaled => {
                            unreachable!("rendered above")
                        }
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
        Ok(statement)
    }
}

impl RemoteAggregate {
    /// `expr` as a DataFusion expression over the input's columns.
    fn row_expr(&self, expr: &RowExpr) -> Result<datafusion_expr::Expr, Error> {
        use datafusion_expr::{Operator, binary_expr};
        let pair =
            |a: &RowExpr, b: &RowExpr| -> Result<_, Error> { Ok((self.row_expr(a)?, self.row_expr(b)?)) };
        Ok(match expr {
            RowExpr::Column(i) => self.input.column_df(*i)?,
            RowExpr::Number(value) => crate::qual::literal(value),
            RowExpr::Add(a, b) => {
                let (a, b) = pair(a, b)?;
                binary_expr(a, Operator::Plus, b)
            }
            RowExpr::Sub(a, b) => {
                let (a, b) = pair(a, b)?;
                binary_expr(a, Operator::Minus, b)
            }
            RowExpr::Mul(a, b) => {
                let (a, b) = pair(a, b)?;
                binary_expr(a, Operator::Multiply, b)
            }
            RowExpr::Decimal(integer, precision) => {
                datafusion_expr::cast(self.row_expr(integer)?, DataType::Decimal128(*precision, 0))
            }
            RowExpr::Wide(decimal) => datafusion_expr::cast(
                self.row_expr(decimal)?,
                DataType::Decimal256(WIDE_PRECISION, self.fixed_scale(decimal)?),
            ),
            RowExpr::Case { when, otherwise } => {
                self.case(when, otherwise.as_deref(), |v| self.row_expr(v))?
            }
            RowExpr::Substring { text, start, length } => {
                crate::qual::remote_call("substr", vec![self.row_expr(text)?, lit(*start), lit(*length)])
            }
            RowExpr::Year(date) => {
                // The server's year of 1 BC is 0, PostgreSQL's -1: years before 1 are one less.
                let year = datafusion_expr::cast(
                    crate::qual::remote_call("date_part", vec![lit("year"), self.row_expr(date)?]),
                    DataType::Int64,
                );
                let before_one = binary_expr(year.clone(), Operator::LtEq, lit(0_i64));
                let shifted = binary_expr(year.clone(), Operator::Minus, lit(1_i64));
                datafusion_expr::cast(
                    datafusion_expr::when(before_one, shifted).otherwise(year)?,
                    DataType::Decimal128(YEAR_PRECISION, 0),
                )
            }
        })
    }

    /// The scale of every value of `expr`, which is no CASE (each has one scale).
    fn fixed_scale(&self, expr: &RowExpr) -> Result<i8, Error> {
        Ok(match expr {
            RowExpr::Column(i) => match self.input.column(*i).map(|c| &c.data_type) {
                Some(DataType::Decimal128(_, scale)) => *scale,
                Some(_) => 0,
                None => return Err(Error::Internal(format!("no column {i} for the aggregate"))),
            },
            RowExpr::Number(Literal::Decimal { scale, .. }) => *scale,
            RowExpr::Number(_) | RowExpr::Year(_) | RowExpr::Decimal(..) | RowExpr::Substring { .. } => 0,
            RowExpr::Add(a, b) | RowExpr::Sub(a, b) => self.fixed_scale(a)?.max(self.fixed_scale(b)?),
            RowExpr::Mul(a, b) => self.fixed_scale(a)?.saturating_add(self.fixed_scale(b)?),
            RowExpr::Wide(decimal) => self.fixed_scale(decimal)?,
            RowExpr::Case { .. } => return Err(Error::Internal("a CASE has no one scale".into())),
        })
    }

    /// The scale of each row's value of `expr` (NULL where the value is NULL): the scale of
    /// the CASE branch the row takes.
    fn scale_expr(&self, expr: &RowExpr) -> Result<datafusion_expr::Expr, Error> {
        let scale_of = |value: &RowExpr| -> Result<datafusion_expr::Expr, Error> {
            let scale = i32::from(self.fixed_scale(value)?);
            Ok(datafusion_expr::when(self.row_expr(value)?.is_null(), lit(ScalarValue::Int32(None)))
                .otherwise(lit(scale))?)
        };
        let RowExpr::Case { when, otherwise } = expr else { return scale_of(expr) };
        self.case(when, otherwise.as_deref(), scale_of)
    }

    /// `CASE WHEN <condition> THEN value(v) ... ELSE value(otherwise) END` over the input's
    /// columns: the computed value itself, or the scale of each row's value.
    fn case(
        &self,
        when: &[(Qual, RowExpr)],
        otherwise: Option<&RowExpr>,
        value: impl Fn(&RowExpr) -> Result<datafusion_expr::Expr, Error>,
    ) -> Result<datafusion_expr::Expr, Error> {
        let (names, qualifiers) = self.input.names();
        let renderer =
            Renderer { columns: &names, qualifiers: &qualifiers, parameters: None, parameters_from: 0 };
        let when_then_expr = when
            .iter()
            .map(|(condition, v)| Ok((Box::new(renderer.expr(condition)?), Box::new(value(v)?))))
            .collect::<Result<_, Error>>()?;
        let else_expr = otherwise.map(value).transpose()?.map(Box::new);
        Ok(datafusion_expr::Expr::Case(datafusion_expr::expr::Case { expr: None, when_then_expr, else_expr }))
    }
}

/// Digits of a year the server sends (PostgreSQL's timestamps end in the year 294276).
pub const YEAR_PRECISION: u8 = 10;

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
        for code in 0..11 {
            assert_eq!(Function::from_code(code).map(Function::code), Some(code));
        }
        assert_eq!(Function::from_code(11), None);
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
        let revenue = RowExpr::Mul(
            Box::new(RowExpr::Column(0)),
            Box::new(RowExpr::Sub(Box::new(RowExpr::Number(one)), Box::new(RowExpr::Column(1)))),
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

    // Goal: a product needing more than 38 digits is computed and summed as 76-digit
    // decimals of its operands' scales.
    #[test]
    fn wide_products_render() {
        let mut input = scan(&["price", "discount", "tax"], vec![]);
        for column in &mut input.columns {
            column.data_type = DataType::Decimal128(15, 2);
        }
        let one = || Box::new(RowExpr::Number(Literal::Decimal { unscaled: 1, precision: 1, scale: 0 }));
        let net = RowExpr::Mul(
            Box::new(RowExpr::Column(0)),
            Box::new(RowExpr::Sub(one(), Box::new(RowExpr::Column(1)))),
        );
        let charge = RowExpr::Mul(
            Box::new(RowExpr::Wide(Box::new(net))),
            Box::new(RowExpr::Wide(Box::new(RowExpr::Add(one(), Box::new(RowExpr::Column(2)))))),
        );
        let aggregate = RemoteAggregate {
            input: AggregateInput::Scan(input),
            computed: vec![(charge, DataType::Decimal256(47, 6))],
            group_by: vec![],
            outputs: vec![Output::Aggregate { function: Function::Sum, column: 3, distinct: false }],
            order: OrderLimit::default(),
        };
        assert_eq!(
            aggregate.to_sql(None).unwrap(),
            r#"SELECT pg_numeric_sum(CAST((CAST(("price" * (CAST('1' AS DECIMAL(1,0)) - "discount")) AS DECIMAL(76,4)) * CAST((CAST('1' AS DECIMAL(1,0)) + "tax") AS DECIMAL(76,2))) AS DECIMAL(76,6))) AS a0 FROM "app"."t""x""#
        );
    }

    // Goal: CASE, years and sums of several scales render as the server computes them exactly:
    // each case the table gives, its SQL.
    #[test]
    fn computed_values_render() {
        let columns = [
            ("price", DataType::Decimal128(15, 2)),
            ("kind", DataType::Utf8),
            ("shipped", DataType::Date32),
            ("qty", DataType::Int32),
        ];
        let mut input = scan(&["price", "kind", "shipped", "qty"], vec![]);
        for (column, (_, data_type)) in input.columns.iter_mut().zip(&columns) {
            column.data_type = data_type.clone();
        }
        let zero = RowExpr::Number(Literal::Decimal { unscaled: 0, precision: 1, scale: 0 });
        let promo = Qual::Like {
            expr: Box::new(Qual::Column(1)),
            pattern: Box::new(Qual::Literal(Literal::Text("PROMO%".into()))),
            negated: false,
        };
        let price_squared = RowExpr::Mul(Box::new(RowExpr::Column(0)), Box::new(RowExpr::Column(0)));
        let several_scales = RowExpr::Case {
            when: vec![
                (promo.clone(), price_squared),
                (Qual::Not(Box::new(promo.clone())), RowExpr::Column(0)),
            ],
            otherwise: Some(Box::new(zero)),
        };
        let counted = RowExpr::Case {
            when: vec![(promo, RowExpr::Number(Literal::Int32(1)))],
            otherwise: Some(Box::new(RowExpr::Number(Literal::Int32(0)))),
        };
        let year = RowExpr::Year(Box::new(RowExpr::Column(2)));
        let value = RowExpr::Mul(
            Box::new(RowExpr::Column(0)),
            Box::new(RowExpr::Decimal(Box::new(RowExpr::Column(3)), 10)),
        );
        let aggregate = |outputs: Vec<Output>, group_by: Vec<usize>| RemoteAggregate {
            input: AggregateInput::Scan(input.clone()),
            computed: vec![
                (several_scales.clone(), DataType::Decimal128(34, 4)),
                (counted.clone(), DataType::Int32),
                (year.clone(), DataType::Decimal128(YEAR_PRECISION, 0)),
                (value.clone(), DataType::Decimal128(25, 2)),
            ],
            group_by,
            outputs,
            order: OrderLimit::default(),
        };
        let sum = |function, column| Output::Aggregate { function, column, distinct: false };
        let cases = [
            (
                aggregate(vec![Output::Group(6), sum(Function::Sum, 5)], vec![6]),
                r#"SELECT CAST(CASE WHEN (CAST(date_part('year', "shipped") AS BIGINT) <= 0) THEN (CAST(date_part('year', "shipped") AS BIGINT) - 1) ELSE CAST(date_part('year', "shipped") AS BIGINT) END AS DECIMAL(10,0)) AS a0, CAST(pg_numeric_sum(CAST(CASE WHEN "kind" LIKE 'PROMO%' THEN 1 ELSE 0 END AS DECIMAL(38,0))) AS BIGINT) AS a1 FROM "app"."t""x" GROUP BY CAST(CASE WHEN (CAST(date_part('year', "shipped") AS BIGINT) <= 0) THEN (CAST(date_part('year', "shipped") AS BIGINT) - 1) ELSE CAST(date_part('year', "shipped") AS BIGINT) END AS DECIMAL(10,0))"#,
            ),
            (
                aggregate(vec![sum(Function::SumRescaled, 4), sum(Function::AvgRescaled, 4)], vec![]),
                r#"SELECT pg_numeric_sum(CAST(CASE WHEN "kind" LIKE 'PROMO%' THEN ("price" * "price") WHEN NOT ("kind" LIKE 'PROMO%') THEN "price" ELSE CAST('0' AS DECIMAL(1,0)) END AS DECIMAL(38,4))) AS a0, max(CASE WHEN "kind" LIKE 'PROMO%' THEN CASE WHEN ("price" * "price") IS NULL THEN NULL ELSE 4 END WHEN NOT ("kind" LIKE 'PROMO%') THEN CASE WHEN "price" IS NULL THEN NULL ELSE 2 END ELSE CASE WHEN CAST('0' AS DECIMAL(1,0)) IS NULL THEN NULL ELSE 0 END END) AS a1, pg_numeric_sum(CAST(CASE WHEN "kind" LIKE 'PROMO%' THEN ("price" * "price") WHEN NOT ("kind" LIKE 'PROMO%') THEN "price" ELSE CAST('0' AS DECIMAL(1,0)) END AS DECIMAL(38,4))) AS a2, count(CASE WHEN "kind" LIKE 'PROMO%' THEN ("price" * "price") WHEN NOT ("kind" LIKE 'PROMO%') THEN "price" ELSE CAST('0' AS DECIMAL(1,0)) END) AS a3, max(CASE WHEN "kind" LIKE 'PROMO%' THEN CASE WHEN ("price" * "price") IS NULL THEN NULL ELSE 4 END WHEN NOT ("kind" LIKE 'PROMO%') THEN CASE WHEN "price" IS NULL THEN NULL ELSE 2 END ELSE CASE WHEN CAST('0' AS DECIMAL(1,0)) IS NULL THEN NULL ELSE 0 END END) AS a4 FROM "app"."t""x""#,
            ),
            (
                aggregate(vec![sum(Function::Sum, 7)], vec![]),
                r#"SELECT pg_numeric_sum(CAST(("price" * CAST("qty" AS DECIMAL(10,0))) AS DECIMAL(38,2))) AS a0 FROM "app"."t""x""#,
            ),
        ];
        for (aggregate, expected) in cases {
            assert_eq!(aggregate.to_sql(None).unwrap(), expected);
        }
        // A rescaled sum takes two columns, a rescaled average three: sort keys count them.
        assert_eq!(sum(Function::SumRescaled, 4).width(), 2);
        assert_eq!(sum(Function::AvgRescaled, 4).width(), 3);
        for code in 0..11 {
            assert_eq!(Function::from_code(code).map(Function::code), Some(code));
        }
    }
}
