//! Filters shipped to the server, as expressions that know nothing of PostgreSQL.
//!
//! The extension's walker (`src/deparse.rs`) decides what is shippable and builds a [`Qual`];
//! this module turns it into a `datafusion_expr::Expr` whose SQL means, on the server, exactly
//! what the PostgreSQL expression means. The walker only builds what this module renders
//! exactly, so the rules of exactness live here, next to the rendering:
//!
//! - Every literal carries its type: a decimal is `CAST('0.10' AS DECIMAL(3,2))` (a bare `0.10`
//!   is a float to DataFusion), floats are `CAST('NaN' AS DOUBLE)` and the like (the shortest
//!   text that reads back as the same bits), dates and times are cast from ISO text, a timestamp
//!   with time zone is given in UTC (`...Z`), uuids and byte strings are hex literals (`X'...'`,
//!   compared byte for byte, as PostgreSQL orders both), and text is a quoted string.
//! - A value PostgreSQL computes when the scan starts (a parameter, an outer row's value, a
//!   stable expression such as `now()`) is a [`Qual::Parameter`]: `$n` while only planned
//!   (EXPLAIN), its literal once the scan has it.
//! - `IN` of no values is not SQL: `x IN ()` becomes FALSE and `x NOT IN ()` TRUE, as
//!   PostgreSQL's `= ANY('{}')` and `<> ALL('{}')` are, NULL or not.

use std::sync::Arc;

use arrow_schema::DataType;
use datafusion_common::{Column, ScalarValue};
use datafusion_expr::expr::{InList, Like, Placeholder};
use datafusion_expr::{Expr, Operator, cast, lit};
use datafusion_sql::sqlparser::ast;

/// A typed constant, in the units of the server's Arrow types.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Null,
    Boolean(bool),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    /// An exact decimal: `unscaled × 10^-scale`, at most 38 digits.
    Decimal {
        unscaled: i128,
        precision: u8,
        scale: i8,
    },
    Text(String),
    Bytes(Vec<u8>),
    Uuid([u8; 16]),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 1970-01-01 00:00, no time zone.
    Timestamp(i64),
    /// Microseconds since 1970-01-01 00:00 UTC.
    TimestampTz(i64),
    /// A list of text (a JSON path, keys), written as `[...]`.
    TextList(Vec<Option<String>>),
}

impl Literal {
    /// A decimal's text (`-12.340`, as PostgreSQL prints a numeric) as an exact decimal of at
    /// most 38 digits; `None` for NaN, ±Infinity and longer numbers, which the server cannot hold.
    pub fn decimal(text: &str) -> Option<Literal> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let whole = whole.trim_start_matches('0');
        let precision = (whole.len() + fraction.len()).max(1);
        if precision > 38 {
            return None;
        }
        let unscaled: i128 = format!("{whole}{fraction}").parse().unwrap_or(0);
        Some(Literal::Decimal {
            unscaled: if negative { -unscaled } else { unscaled },
            precision: precision as u8,
            scale: fraction.len() as i8,
        })
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl Comparison {
    /// The operator with its operands swapped: `a < b` is `b > a`.
    pub fn commuted(self) -> Comparison {
        match self {
            Comparison::Lt => Comparison::Gt,
            Comparison::LtEq => Comparison::GtEq,
            Comparison::Gt => Comparison::Lt,
            Comparison::GtEq => Comparison::LtEq,
            other => other,
        }
    }
}

/// A shippable filter expression over the columns of a [`crate::RemoteScan`].
#[derive(Clone, Debug, PartialEq)]
pub enum Qual {
    /// A column, by its index in the scan's `columns`.
    Column(usize),
    Literal(Literal),
    /// The `index`-th value the scan computes when it starts (0-based; shown as `$index+1`).
    Parameter(usize),
    /// The `index`-th parameter of a prepared statement (0-based; always sent as `$index+1`):
    /// a value sent apart from the SQL, as an Arrow value.
    Placeholder(usize),
    Compare {
        op: Comparison,
        left: Box<Qual>,
        right: Box<Qual>,
    },
    /// `left IS [NOT] DISTINCT FROM right`.
    Distinct {
        negated: bool,
        left: Box<Qual>,
        right: Box<Qual>,
    },
    And(Vec<Qual>),
    Or(Vec<Qual>),
    Not(Box<Qual>),
    IsNull(Box<Qual>),
    IsNotNull(Box<Qual>),
    IsTrue(Box<Qual>),
    IsNotTrue(Box<Qual>),
    IsFalse(Box<Qual>),
    IsNotFalse(Box<Qual>),
    /// `expr [NOT] IN (list)`, with SQL's NULL semantics.
    InList {
        expr: Box<Qual>,
        list: Vec<Qual>,
        negated: bool,
    },
    /// `expr [NOT] LIKE pattern`, `\` escaping as in PostgreSQL.
    Like {
        expr: Box<Qual>,
        pattern: Box<Qual>,
        negated: bool,
    },
    /// A function of the server, by name (the `pg_*` functions with PostgreSQL's semantics).
    Function {
        name: &'static str,
        args: Vec<Qual>,
    },
    /// `expr [NOT] IN (SELECT column FROM ... WHERE ...)`, the subquery a scan of one column
    /// with filters of its own (over its own columns, with no parameters), with SQL's NULL
    /// semantics: `NOT IN` is false for a value the subquery has, NULL (not true) for a NULL
    /// value or when the subquery has a NULL, true otherwise; true for every value, NULL too,
    /// when the subquery has no rows. Only a whole condition (or one of the conditions ANDed at
    /// the top of a WHERE or ON).
    InSubquery {
        expr: Box<Qual>,
        subquery: Box<crate::RemoteScan>,
        negated: bool,
    },
    /// An integer as a decimal of this many digits, scale 0 (PostgreSQL's `x::numeric`).
    Decimal(Box<Qual>, u8),
    /// The value of a correlated scalar subquery: `(SELECT min(...) FROM ... WHERE t.k = <an
    /// outer column>)`. Only in a WHERE or an ON ([`Renderer::condition`]).
    ScalarSubquery(Box<crate::subquery::ScalarSubquery>),
}

impl Qual {
    /// Calls `f` on this qual and on every qual inside it (not inside subqueries).
    pub fn walk<'q>(&'q self, f: &mut dyn FnMut(&'q Qual)) {
        f(self);
        match self {
            Qual::Column(_)
            | Qual::Literal(_)
            | Qual::Parameter(_)
            | Qual::Placeholder(_)
            | Qual::ScalarSubquery(_) => {}
            Qual::Compare { left, right, .. } | Qual::Distinct { left, right, .. } => {
                left.walk(f);
                right.walk(f);
            }
            Qual::And(quals) | Qual::Or(quals) => quals.iter().for_each(|q| q.walk(f)),
            Qual::Function { args, .. } => args.iter().for_each(|q| q.walk(f)),
            Qual::Not(q)
            | Qual::IsNull(q)
            | Qual::IsNotNull(q)
            | Qual::IsTrue(q)
            | Qual::IsNotTrue(q)
            | Qual::IsFalse(q)
            | Qual::IsNotFalse(q)
            | Qual::Decimal(q, _) => q.walk(f),
            Qual::InList { expr, list, .. } => {
                expr.walk(f);
                list.iter().for_each(|q| q.walk(f));
            }
            Qual::Like { expr, pattern, .. } => {
                expr.walk(f);
                pattern.walk(f);
            }
            Qual::InSubquery { expr, .. } => expr.walk(f),
        }
    }

    /// Whether a scalar subquery is part of this qual.
    pub fn has_scalar_subquery(&self) -> bool {
        let mut found = false;
        self.walk(&mut |q| found |= matches!(q, Qual::ScalarSubquery(_)));
        found
    }

    /// Whether a subquery of any kind (scalar, or `[NOT] IN`) is part of this qual: the server
    /// runs those in a WHERE or an ON only.
    pub fn has_subquery(&self) -> bool {
        let mut found = false;
        self.walk(&mut |q| found |= matches!(q, Qual::ScalarSubquery(_) | Qual::InSubquery { .. }));
        found
    }
}

/// Renders quals given the scan's column names and the values of its parameters (`None` while
/// only planned: parameters are shown as `$n`).
pub struct Renderer<'a> {
    pub columns: &'a [String],
    /// The table alias of each column (a join's); empty: columns are not qualified.
    pub qualifiers: &'a [String],
    pub parameters: Option<&'a [Literal]>,
    /// Where the numbers of parameters shown as `$n` start after (the placeholders of the
    /// statement come first).
    pub parameters_from: usize,
}

impl Renderer<'_> {
    pub fn expr(&self, qual: &Qual) -> Result<Expr, crate::Error> {
        let boxed = |q: &Qual| self.expr(q).map(Box::new);
        Ok(match qual {
            Qual::Column(i) => {
                let name = self.columns.get(*i).ok_or_else(|| {
                    datafusion_common::DataFusionError::Internal(format!("no column {i} in the scan"))
                })?;
                match self.qualifiers.get(*i) {
                    Some(alias) => Expr::Column(Column::new(Some(alias.as_str()), name)),
                    None => Expr::Column(Column::new_unqualified(name)),
                }
            }
            Qual::Literal(value) => literal(value),
            Qual::Placeholder(i) => {
                Expr::Placeholder(Placeholder::new_with_field(format!("${}", i + 1), None))
            }
            Qual::Parameter(i) => match self.parameters {
                None => Expr::Placeholder(Placeholder::new_with_field(
                    format!("${}", self.parameters_from + i + 1),
                    None,
                )),
                Some(values) => literal(values.get(*i).ok_or_else(|| {
                    datafusion_common::DataFusionError::Internal(format!("no value for parameter {}", i + 1))
                })?),
            },
            Qual::Compare { op, left, right } => {
                let op = match op {
                    Comparison::Eq => Operator::Eq,
                    Comparison::NotEq => Operator::NotEq,
                    Comparison::Lt => Operator::Lt,
                    Comparison::LtEq => Operator::LtEq,
                    Comparison::Gt => Operator::Gt,
                    Comparison::GtEq => Operator::GtEq,
                };
                Expr::BinaryExpr(datafusion_expr::BinaryExpr::new(boxed(left)?, op, boxed(right)?))
            }
            Qual::Distinct { negated, left, right } => {
                let op = if *negated { Operator::IsNotDistinctFrom } else { Operator::IsDistinctFrom };
                Expr::BinaryExpr(datafusion_expr::BinaryExpr::new(boxed(left)?, op, boxed(right)?))
            }
            Qual::And(quals) => self.fold(quals, Operator::And, true)?,
            Qual::Or(quals) => self.fold(quals, Operator::Or, false)?,
            Qual::Not(q) => Expr::Not(boxed(q)?),
            Qual::IsNull(q) => Expr::IsNull(boxed(q)?),
            Qual::IsNotNull(q) => Expr::IsNotNull(boxed(q)?),
            Qual::IsTrue(q) => Expr::IsTrue(boxed(q)?),
            Qual::IsNotTrue(q) => Expr::IsNotTrue(boxed(q)?),
            Qual::IsFalse(q) => Expr::IsFalse(boxed(q)?),
            Qual::IsNotFalse(q) => Expr::IsNotFalse(boxed(q)?),
            Qual::InList { list, negated, .. } if list.is_empty() => lit(*negated),
            Qual::InList { expr, list, negated } => Expr::InList(InList::new(
                boxed(expr)?,
                list.iter().map(|q| self.expr(q)).collect::<Result<_, _>>()?,
                *negated,
            )),
            Qual::Like { expr, pattern, negated } => {
                Expr::Like(Like::new(*negated, boxed(expr)?, boxed(pattern)?, None, false))
            }
            Qual::Function { name, args } => {
                remote_call(name, args.iter().map(|q| self.expr(q)).collect::<Result<_, _>>()?)
            }
            Qual::InSubquery { .. } => {
                return Err(crate::Error::Internal("a subquery inside an expression".into()));
            }
            Qual::Decimal(q, precision) => cast(self.expr(q)?, DataType::Decimal128(*precision, 0)),
            // A marker that `condition` replaces with the subquery's statement.
            Qual::ScalarSubquery(subquery) => {
                Expr::Placeholder(Placeholder::new_with_field(subquery_marker(subquery), None))
            }
        })
    }

    /// The conditions `quals`, ANDed: the SQL of a WHERE or an ON. A subquery condition is
    /// rendered into the syntax tree as `x [NOT] IN (<its statement>)`.
    pub fn condition(&self, quals: &[Qual]) -> Result<ast::Expr, crate::Error> {
        let mut plain = Vec::with_capacity(quals.len());
        let mut subqueries = Vec::new();
        let mut flat = Vec::with_capacity(quals.len());
        flatten_and(quals, &mut flat);
        for qual in flat {
            match qual {
                Qual::InSubquery { expr, subquery, negated } => subqueries.push((expr, subquery, *negated)),
                other => plain.push(other.clone()),
            }
        }
        let unparser = datafusion_sql::unparser::Unparser::new(&crate::KalamDialect);
        let rendered = (!plain.is_empty() || subqueries.is_empty()).then_some(Qual::And(plain));
        let mut condition = rendered
            .as_ref()
            .map(|plain| -> Result<ast::Expr, crate::Error> {
                Ok(parenthesized(unparser.expr_to_sql(&self.expr(plain)?)?))
            })
            .transpose()?;
        // Scalar subqueries are rendered as markers (by their address) and then placed.
        let mut scalar = Vec::new();
        if let Some(plain) = &rendered {
            scalar_subqueries(plain, &mut scalar);
        }
        for (expr, _, _) in &subqueries {
            scalar_subqueries(expr, &mut scalar);
        }
        for (expr, subquery, negated) in subqueries {
            if subquery.projection.len() != 1 || subquery.order != crate::OrderLimit::default() {
                return Err(crate::Error::Internal("a subquery of other than one column's rows".into()));
            }
            let ast::Statement::Query(query) = subquery.statement(None)? else {
                return Err(crate::Error::Internal("a subquery that is not a query".into()));
            };
            let test = ast::Expr::InSubquery {
                expr: Box::new(ast::Expr::Nested(Box::new(unparser.expr_to_sql(&self.expr(expr)?)?))),
                subquery: query,
                negated,
            };
            condition = Some(match condition {
                None => test,
                Some(left) => ast::Expr::BinaryOp {
                    left: Box::new(ast::Expr::Nested(Box::new(left))),
                    op: ast::BinaryOperator::And,
                    right: Box::new(ast::Expr::Nested(Box::new(test))),
                },
            });
        }
        let mut condition = condition.ok_or_else(|| crate::Error::Internal("no condition".into()))?;
        if !scalar.is_empty() {
            self.place_subqueries(&mut condition, &scalar)?;
        }
        Ok(condition)
    }

    /// Replaces the markers of `subqueries` in `condition` with their statements, whose outer
    /// values are this renderer's.
    fn place_subqueries(
        &self,
        condition: &mut ast::Expr,
        subqueries: &[&crate::subquery::ScalarSubquery],
    ) -> Result<(), crate::Error> {
        let unparser = datafusion_sql::unparser::Unparser::new(&crate::KalamDialect);
        let outer = |q: &Qual| -> Result<ast::Expr, crate::Error> {
            Ok(ast::Expr::Nested(Box::new(parenthesized(unparser.expr_to_sql(&self.expr(q)?)?))))
        };
        let mut statements = Vec::with_capacity(subqueries.len());
        for subquery in subqueries {
            statements.push((subquery_marker(subquery), subquery.query(self.qualifiers, &outer)?));
        }
        let mut missing = None;
        let _ = ast::visit_expressions_mut(condition, |expr| {
            if let ast::Expr::Value(value) = expr
                && let ast::Value::Placeholder(name) = &value.value
                && name.starts_with("$subquery")
            {
                match statements.iter().find(|(marker, _)| marker == name) {
                    Some((_, query)) => *expr = ast::Expr::Subquery(query.clone()),
                    None => missing = Some(name.clone()),
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        match missing {
            Some(name) => Err(crate::Error::Internal(format!("no subquery for {name}"))),
            None => Ok(()),
        }
    }

    /// `a AND b AND ...` (or OR), left-deep; an empty list is its identity.
    fn fold(&self, quals: &[Qual], op: Operator, identity: bool) -> Result<Expr, crate::Error> {
        let mut exprs = quals.iter().map(|q| self.expr(q));
        let Some(first) = exprs.next() else { return Ok(lit(identity)) };
        exprs.try_fold(first?, |acc, next| {
            Ok(Expr::BinaryExpr(datafusion_expr::BinaryExpr::new(Box::new(acc), op, Box::new(next?))))
        })
    }
}

/// The placeholder that stands for `subquery` until [`Renderer::condition`] places it (unique
/// while the qual holding it is borrowed).
fn subquery_marker(subquery: &crate::subquery::ScalarSubquery) -> String {
    format!("$subquery{:p}", subquery as *const _)
}

/// The scalar subqueries of `qual`, added to `into`.
fn scalar_subqueries<'q>(qual: &'q Qual, into: &mut Vec<&'q crate::subquery::ScalarSubquery>) {
    qual.walk(&mut |q| {
        if let Qual::ScalarSubquery(subquery) = q {
            into.push(subquery);
        }
    });
}

/// The conditions ANDed at the top of `quals`, nested ANDs flattened.
fn flatten_and<'q>(quals: &'q [Qual], into: &mut Vec<&'q Qual>) {
    for qual in quals {
        match qual {
            Qual::And(inner) => flatten_and(inner, into),
            other => into.push(other),
        }
    }
}

/// `expr` with every operand of an operator that is not a single term in parentheses. The
/// unparser leaves out some that precedence needs: `NOT "ok" IS NOT TRUE` reads as
/// `NOT ("ok" IS NOT TRUE)`, which is not `(NOT "ok") IS NOT TRUE`.
pub fn parenthesized(expr: ast::Expr) -> ast::Expr {
    use ast::Expr as E;
    let operand = |e: Box<E>| -> Box<E> {
        let e = parenthesized(*e);
        Box::new(match e {
            E::Identifier(_)
            | E::CompoundIdentifier(_)
            | E::Value(_)
            | E::Nested(_)
            | E::Function(_)
            | E::Cast { .. } => e,
            other => E::Nested(Box::new(other)),
        })
    };
    match expr {
        E::BinaryOp { left, op, right } => E::BinaryOp { left: operand(left), op, right: operand(right) },
        E::UnaryOp { op, expr } => E::UnaryOp { op, expr: operand(expr) },
        E::IsNull(e) => E::IsNull(operand(e)),
        E::IsNotNull(e) => E::IsNotNull(operand(e)),
        E::IsTrue(e) => E::IsTrue(operand(e)),
        E::IsNotTrue(e) => E::IsNotTrue(operand(e)),
        E::IsFalse(e) => E::IsFalse(operand(e)),
        E::IsNotFalse(e) => E::IsNotFalse(operand(e)),
        E::IsDistinctFrom(a, b) => E::IsDistinctFrom(operand(a), operand(b)),
        E::IsNotDistinctFrom(a, b) => E::IsNotDistinctFrom(operand(a), operand(b)),
        E::InList { expr, list, negated } => E::InList {
            expr: operand(expr),
            list: list.into_iter().map(|e| *operand(Box::new(e))).collect(),
            negated,
        },
        E::Like { negated, any, expr, pattern, escape_char } => {
            E::Like { negated, any, expr: operand(expr), pattern: operand(pattern), escape_char }
        }
        E::Nested(e) => E::Nested(Box::new(parenthesized(*e))),
        E::Case { case_token, end_token, operand: subject, conditions, else_result } => E::Case {
            case_token,
            end_token,
            operand: subject.map(operand),
            conditions: conditions
                .into_iter()
                .map(|w| ast::CaseWhen {
                    condition: parenthesized(w.condition),
                    result: parenthesized(w.result),
                })
                .collect(),
            else_result: else_result.map(|e| Box::new(parenthesized(*e))),
        },
        E::Cast { kind, expr, data_type, array, format } => {
            E::Cast { kind, expr: Box::new(parenthesized(*expr)), data_type, array, format }
        }
        other => other,
    }
}

/// A literal whose SQL reads back on the server as exactly this value and type.
pub(crate) fn literal(value: &Literal) -> Expr {
    let typed = |text: String, data_type: DataType| cast(lit(text), data_type);
    match value {
        Literal::Null => lit(ScalarValue::Null),
        Literal::TextList(items) => remote_call(
            "make_array",
            items.iter().map(|i| i.as_deref().map_or_else(|| lit(ScalarValue::Utf8(None)), lit)).collect(),
        ),
        Literal::Boolean(b) => lit(*b),
        Literal::Int16(i) => typed(i.to_string(), DataType::Int16),
        Literal::Int32(i) => lit(*i),
        // i64::MIN has no positive counterpart: as `-9223372036854775808` it would be parsed
        // as the negation of a number too large for BIGINT.
        Literal::Int64(i) => typed(i.to_string(), DataType::Int64),
        Literal::Float32(f) => typed(float_text(f64::from(*f), f.is_nan()), DataType::Float32),
        Literal::Float64(f) => typed(float_text(*f, f.is_nan()), DataType::Float64),
        Literal::Decimal { unscaled, precision, scale } => {
            typed(decimal_text(*unscaled, *scale), DataType::Decimal128(*precision, *scale))
        }
        Literal::Text(s) => lit(s.as_str()),
        Literal::Bytes(b) => lit(ScalarValue::Binary(Some(b.clone()))),
        Literal::Uuid(u) => lit(ScalarValue::Binary(Some(u.to_vec()))),
        Literal::Date(days) if in_iso_range(i64::from(*days)) => typed(date_text(*days), DataType::Date32),
        // Outside the years 1 to 9999 ISO text is not portable; days since 1970 are exact.
        Literal::Date(days) => cast(typed(days.to_string(), DataType::Int32), DataType::Date32),
        // The unparser has no SQL name for a cast to Time64; it writes this scalar as
        // `CAST('hh:mm:ss.ffffff' AS TIME)` itself.
        Literal::Time(micros) => lit(ScalarValue::Time64Microsecond(Some(*micros))),
        Literal::Timestamp(micros) | Literal::TimestampTz(micros)
            if !in_iso_range(micros.div_euclid(DAY_MICROS)) =>
        {
            // Outside the years 1 to 9999 (PostgreSQL's ±infinity among them, as the extreme
            // microseconds): the exact count, given its Arrow type by DataFusion's arrow_cast.
            let utc = matches!(value, Literal::TimestampTz(_)).then(|| Arc::from("UTC"));
            let to = DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, utc);
            let micros = typed(micros.to_string(), DataType::Int64);
            remote_call("arrow_cast", vec![micros, lit(to.to_string())])
        }
        Literal::Timestamp(micros) => {
            typed(timestamp_text(*micros), DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None))
        }
        Literal::TimestampTz(micros) => typed(
            format!("{}Z", timestamp_text(*micros)),
            DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some(Arc::from("UTC"))),
        ),
    }
}

/// Text that parses back to the same float: Rust prints the shortest such digits.
fn float_text(f: f64, nan: bool) -> String {
    if nan {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity".into() } else { "-Infinity".into() }
    } else {
        format!("{f:e}")
    }
}

/// `unscaled × 10^-scale` as decimal text: `-12.340`.
pub fn decimal_text(unscaled: i128, scale: i8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale <= 0 {
        return format!("{sign}{digits}{}", "0".repeat(scale.unsigned_abs() as usize));
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// A civil date from days since 1970-01-01 (proleptic Gregorian), as `YYYY-MM-DD`.
fn date_text(days: i32) -> String {
    // Howard Hinnant's days_from_civil, inverted.
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn time_text(micros: i64) -> String {
    let (seconds, fraction) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    format!("{:02}:{:02}:{:02}.{fraction:06}", seconds / 3600, seconds / 60 % 60, seconds % 60)
}

fn timestamp_text(micros: i64) -> String {
    let day_micros = 86_400_000_000;
    let days = micros.div_euclid(day_micros);
    format!("{}T{}", date_text(days as i32), time_text(micros.rem_euclid(day_micros)))
}

const DAY_MICROS: i64 = 86_400_000_000;

/// Days (since 1970-01-01) in the years 1 to 9999, which every server parses from ISO text.
fn in_iso_range(days: i64) -> bool {
    (-719_162..=2_932_896).contains(&days)
}

/// A call of the server's function `name`.
pub(crate) fn remote_call(name: &'static str, args: Vec<Expr>) -> Expr {
    let function = datafusion_expr::ScalarUDF::new_from_impl(RemoteFunction::new(name));
    Expr::ScalarFunction(datafusion_expr::expr::ScalarFunction::new_udf(Arc::new(function), args))
}

/// A function of the server, named for rendering only: the unparser writes it by name, and
/// nothing here ever runs it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RemoteFunction {
    name: &'static str,
    signature: datafusion_expr::Signature,
}

impl RemoteFunction {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            signature: datafusion_expr::Signature::variadic_any(datafusion_expr::Volatility::Immutable),
        }
    }
}

impl datafusion_expr::ScalarUDFImpl for RemoteFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &datafusion_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion_common::Result<DataType> {
        Ok(DataType::Null)
    }

    fn invoke_with_args(
        &self,
        _: datafusion_expr::ScalarFunctionArgs,
    ) -> datafusion_common::Result<datafusion_expr::ColumnarValue> {
        datafusion_common::not_impl_err!("{} runs on the server", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RemoteColumn, RemoteScan, RemoteTable};
    use arrow_array::Array;
    use datafusion_sql::unparser::Unparser;

    fn col(i: usize) -> Box<Qual> {
        Box::new(Qual::Column(i))
    }

    fn val(value: Literal) -> Box<Qual> {
        Box::new(Qual::Literal(value))
    }

    fn cmp(op: Comparison, left: Box<Qual>, right: Box<Qual>) -> Qual {
        Qual::Compare { op, left, right }
    }

    fn sql(qual: &Qual) -> String {
        let columns = ["id".to_string(), "name".to_string(), "ok".to_string()];
        let renderer = Renderer { columns: &columns, qualifiers: &[], parameters: None, parameters_from: 0 };
        let expr = Unparser::new(&crate::KalamDialect).expr_to_sql(&renderer.expr(qual).unwrap()).unwrap();
        parenthesized(expr).to_string()
    }

    // Goal: each literal is written with its type, so the server reads the same value back.
    #[test]
    fn literals_carry_their_types() {
        let cases = [
            (Literal::Null, "NULL"),
            (Literal::Boolean(true), "true"),
            (Literal::Int16(-32768), "CAST('-32768' AS SMALLINT)"),
            (Literal::Int32(-2147483648), "-2147483648"),
            (Literal::Int64(i64::MIN), "CAST('-9223372036854775808' AS BIGINT)"),
            (Literal::Float64(0.1), "CAST('1e-1' AS DOUBLE)"),
            (Literal::Float64(-0.0), "CAST('-0e0' AS DOUBLE)"),
            (Literal::Float64(f64::NAN), "CAST('NaN' AS DOUBLE)"),
            (Literal::Float64(f64::NEG_INFINITY), "CAST('-Infinity' AS DOUBLE)"),
            (Literal::Float32(1.5), "CAST('1.5e0' AS FLOAT)"),
            (Literal::Decimal { unscaled: 10, precision: 3, scale: 2 }, "CAST('0.10' AS DECIMAL(3,2))"),
            (
                Literal::Decimal { unscaled: -12340, precision: 5, scale: 3 },
                "CAST('-12.340' AS DECIMAL(5,3))",
            ),
            (Literal::Text("it's a \\ ü".into()), "'it''s a \\ ü'"),
            (Literal::Bytes(vec![0, 255, 16]), "X'00ff10'"),
            (Literal::Uuid([0xa0; 16]), "X'a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0'"),
            (Literal::Date(0), "CAST('1970-01-01' AS DATE)"),
            (Literal::Date(-719_162), "CAST('0001-01-01' AS DATE)"),
            (Literal::Date(2_932_896), "CAST('9999-12-31' AS DATE)"),
            (Literal::Date(i32::MAX), "CAST(CAST('2147483647' AS INTEGER) AS DATE)"),
            (
                Literal::Timestamp(i64::MAX),
                "arrow_cast(CAST('9223372036854775807' AS BIGINT), 'Timestamp(µs)')",
            ),
            (
                Literal::TimestampTz(i64::MIN),
                "arrow_cast(CAST('-9223372036854775808' AS BIGINT), 'Timestamp(µs, \"UTC\")')",
            ),
            (Literal::Time(86_399_999_999), "CAST('23:59:59.999999' AS TIME)"),
            (Literal::Timestamp(-1), "CAST('1969-12-31T23:59:59.999999' AS TIMESTAMP)"),
            (
                Literal::TimestampTz(1_714_979_289_123_456),
                "CAST('2024-05-06T07:08:09.123456Z' AS TIMESTAMP WITH TIME ZONE)",
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(sql(&Qual::Literal(value.clone())), expected, "{value:?}");
        }
    }

    // Goal: the text of every literal parses back, with the cast the server applies, to the
    // same value: floats bit for bit, decimals digit for digit, dates and times to the microsecond.
    #[test]
    fn literal_text_reads_back_exactly() {
        use arrow_array::cast::AsArray;
        use arrow_array::types::*;
        let read = |text: String, to: DataType| {
            let array = arrow_array::StringArray::from(vec![text.clone()]);
            let options = arrow_cast::CastOptions { safe: false, ..Default::default() };
            arrow_cast::cast_with_options(&array, &to, &options)
                .unwrap_or_else(|e| panic!("{text} as {to}: {e}"))
        };
        for f in [
            0.1,
            -0.0,
            1e300,
            -1e-300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            123456789.123456789,
            f64::INFINITY,
        ] {
            let back = read(float_text(f, false), DataType::Float64);
            assert_eq!(back.as_primitive::<Float64Type>().value(0).to_bits(), f.to_bits(), "{f}");
        }
        assert!(
            read(float_text(f64::NAN, true), DataType::Float64)
                .as_primitive::<Float64Type>()
                .value(0)
                .is_nan()
        );
        for f in [0.1f32, -0.0, 3.4e38, 1e-45, f32::NEG_INFINITY] {
            let back = read(float_text(f64::from(f), false), DataType::Float32);
            assert_eq!(back.as_primitive::<Float32Type>().value(0).to_bits(), f.to_bits(), "{f}");
        }
        for (unscaled, precision, scale) in [
            (10i128, 3u8, 2i8),
            (-1, 38, 37),
            (99999999999999999999999999999999999999, 38, 0),
            (5, 1, 0),
            (-7, 10, 10),
        ] {
            let back = read(decimal_text(unscaled, scale), DataType::Decimal128(precision, scale));
            assert_eq!(back.as_primitive::<Decimal128Type>().value(0), unscaled, "{unscaled}e-{scale}");
        }
        for days in [-719_162, -1, 0, 11_016, 19_782, 2_932_896] {
            let back = read(date_text(days), DataType::Date32);
            assert_eq!(back.as_primitive::<Date32Type>().value(0), days, "{days}");
        }
        for micros in [0i64, 1, 86_399_999_999, 45_296_000_001] {
            let back = read(time_text(micros), DataType::Time64(arrow_schema::TimeUnit::Microsecond));
            assert_eq!(back.as_primitive::<Time64MicrosecondType>().value(0), micros, "{micros}");
        }
        for micros in [-62_135_596_800_000_000i64, -1, 0, 1_714_979_289_123_456, 253_402_300_799_999_999] {
            let plain =
                read(timestamp_text(micros), DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None));
            assert_eq!(plain.as_primitive::<TimestampMicrosecondType>().value(0), micros, "{micros}");
            let utc = read(
                format!("{}Z", timestamp_text(micros)),
                DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into())),
            );
            assert_eq!(utc.as_primitive::<TimestampMicrosecondType>().value(0), micros, "{micros}");
            assert!(!plain.is_null(0));
        }
    }

    // Goal: numeric text becomes an exact decimal, or nothing when the server cannot hold it.
    #[test]
    fn numerics_become_exact_decimals() {
        let cases = [
            ("0.10", Some((10, 2, 2))),
            ("-12.340", Some((-12340, 5, 3))),
            ("0", Some((0, 1, 0))),
            ("007", Some((7, 1, 0))),
            ("-0.0001", Some((-1, 4, 4))),
            ("12345678901234567890123456789012345678", Some((12345678901234567890123456789012345678, 38, 0))),
            ("123456789012345678901234567890123456789", None),
            ("NaN", None),
            ("Infinity", None),
            ("-Infinity", None),
        ];
        for (text, expected) in cases {
            let got = Literal::decimal(text).map(|l| match l {
                Literal::Decimal { unscaled, precision, scale } => (unscaled, precision, scale),
                other => panic!("{other:?}"),
            });
            assert_eq!(got, expected, "{text}");
        }
    }

    // Goal: the operators and their combinations render as SQL that means the same thing:
    // comparisons, IS [NOT] DISTINCT FROM, AND/OR/NOT, the IS tests, IN (with the empty list
    // folded), LIKE, and parameters as $n until bound.
    #[test]
    fn quals_render_as_sql() {
        use Comparison::*;
        let cases = [
            (cmp(Eq, col(0), val(Literal::Int64(5))), r#"("id" = CAST('5' AS BIGINT))"#),
            (cmp(LtEq, col(1), val(Literal::Text("b".into()))), r#"("name" <= 'b')"#),
            (
                Qual::Distinct { negated: false, left: col(0), right: val(Literal::Int32(1)) },
                r#"("id" IS DISTINCT FROM 1)"#,
            ),
            (
                Qual::Or(vec![Qual::Column(2), Qual::Not(Box::new(Qual::IsNull(col(0))))]),
                r#"("ok" OR (NOT ("id" IS NULL)))"#,
            ),
            (
                Qual::And(vec![Qual::IsNotTrue(col(2)), Qual::IsFalse(col(2)), Qual::IsNotNull(col(1))]),
                r#"((("ok" IS NOT TRUE) AND ("ok" IS FALSE)) AND ("name" IS NOT NULL))"#,
            ),
            (
                Qual::InList {
                    expr: col(0),
                    list: vec![Qual::Literal(Literal::Int32(1)), Qual::Literal(Literal::Null)],
                    negated: true,
                },
                r#""id" NOT IN (1, NULL)"#,
            ),
            (Qual::InList { expr: col(0), list: vec![], negated: false }, "false"),
            (Qual::InList { expr: col(0), list: vec![], negated: true }, "true"),
            (
                Qual::Like { expr: col(1), pattern: val(Literal::Text("a\\_%".into())), negated: true },
                r#""name" NOT LIKE 'a\_%'"#,
            ),
            (cmp(Gt, col(0), Box::new(Qual::Parameter(1))), r#"("id" > $2)"#),
            (Qual::IsNotTrue(Box::new(Qual::Not(col(2)))), r#"(NOT "ok") IS NOT TRUE"#),
            (Qual::Not(Box::new(Qual::IsNotTrue(col(2)))), r#"NOT ("ok" IS NOT TRUE)"#),
            (Qual::IsNull(Box::new(Qual::Not(col(2)))), r#"(NOT "ok") IS NULL"#),
            (
                Qual::Function {
                    name: "pg_json_path_text",
                    args: vec![
                        Qual::Column(1),
                        Qual::Literal(Literal::TextList(vec![Some("a".into()), None])),
                        Qual::Literal(Literal::Boolean(true)),
                    ],
                },
                r#"pg_json_path_text("name", ['a', NULL], true)"#,
            ),
            (Qual::And(vec![]), "true"),
        ];
        for (qual, expected) in cases {
            assert_eq!(sql(&qual), expected, "{qual:?}");
        }
    }

    // Goal: a scan with filters is one flat SELECT ... FROM ... WHERE, with parameters bound
    // when their values are known and shown as $n when not.
    #[test]
    fn scan_with_filters_is_one_flat_statement() {
        let scan = RemoteScan {
            table: RemoteTable { namespace: "app".into(), table: "t".into() },
            columns: ["id", "name"]
                .iter()
                .map(|n| RemoteColumn { name: n.to_string(), data_type: DataType::Int64 })
                .collect(),
            projection: vec![1],
            filters: vec![
                cmp(Comparison::Gt, col(0), Box::new(Qual::Parameter(0))),
                Qual::Or(vec![
                    Qual::IsNull(col(1)),
                    cmp(Comparison::Eq, col(1), val(Literal::Text("x".into()))),
                ]),
            ],
            order: crate::OrderLimit::default(),
        };
        assert_eq!(
            scan.to_sql(None).unwrap(),
            r#"SELECT "t"."name" FROM "app"."t" WHERE (("id" > $1) AND (("name" IS NULL) OR ("name" = 'x')))"#
        );
        assert_eq!(
            scan.to_sql(Some(&[Literal::Int64(7)])).unwrap(),
            r#"SELECT "t"."name" FROM "app"."t" WHERE (("id" > CAST('7' AS BIGINT)) AND (("name" IS NULL) OR ("name" = 'x')))"#
        );
        assert!(scan.to_sql(Some(&[])).is_err(), "a missing parameter value is an error, not a guess");
    }
}
