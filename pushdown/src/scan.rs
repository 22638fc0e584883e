//! A foreign scan as the server will run it.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use datafusion_common::TableReference;
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_expr::{LogicalPlanBuilder, col};
use datafusion_sql::sqlparser::ast::{Expr, Ident, Select, SelectItem, SetExpr, Statement};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;
use datafusion_sql::unparser::Unparser;

use crate::order::OrderLimit;
use crate::qual::{Literal, Qual, Renderer};
use crate::{Error, KalamDialect};

/// The remote table a foreign table points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteTable {
    pub namespace: String,
    pub table: String,
}

impl RemoteTable {
    /// `SELECT * FROM "namespace"."table"`: planned by the server (never run) to learn the
    /// table's columns and size.
    pub fn describe_sql(&self) -> Result<String, Error> {
        let source = Arc::new(LogicalTableSource::new(Arc::new(Schema::empty())));
        let table = TableReference::partial(self.namespace.as_str(), self.table.as_str());
        let plan = LogicalPlanBuilder::scan(table, source, None)?.build()?;
        Ok(Unparser::new(&KalamDialect).plan_to_sql(&plan)?.to_string())
    }
}

/// One column of the remote table, with the Arrow type the extension expects for it.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteColumn {
    pub name: String,
    pub data_type: DataType,
}

/// A scan of a remote table: which columns to fetch, and which rows.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteScan {
    pub table: RemoteTable,
    /// All columns of the foreign table, in declaration order.
    pub columns: Vec<RemoteColumn>,
    /// Indexes into `columns` of the columns the query needs, in the order they are fetched.
    pub projection: Vec<usize>,
    /// Filters the server applies, all of them (AND).
    pub filters: Vec<Qual>,
    /// The order and number of the rows sent (sort keys name `columns`).
    pub order: OrderLimit,
}

impl RemoteScan {
    /// The SQL statement the server runs for this scan, with `parameters` as the values of its
    /// [`Qual::Parameter`]s (`None`: shown as `$1`, `$2`, ..., for EXPLAIN).
    ///
    /// The projection is unparsed from a plan; the WHERE clause is unparsed from the filter
    /// expression and set into that statement's syntax tree (DataFusion 55's plan-level
    /// unparsing of filters nests subqueries needlessly).
    pub fn to_sql(&self, parameters: Option<&[Literal]>) -> Result<String, Error> {
        let mut statement = self.statement(parameters)?;
        self.order.apply(&mut statement, |i| {
            let column =
                self.columns.get(i).ok_or_else(|| Error::Internal(format!("no column {i} to sort by")))?;
            Ok(Expr::Identifier(Ident::with_quote('"', &column.name)))
        })?;
        Ok(statement.to_string())
    }

    /// `SELECT count(*) FROM ... WHERE ...`: the rows the scan's filters keep, counted by the
    /// server (the filters must need no parameters).
    pub fn count_sql(&self) -> Result<String, Error> {
        let mut statement = self.statement(None)?;
        let count = Parser::new(&GenericDialect {}).try_with_sql("count(*)")?.parse_expr()?;
        select_of(&mut statement)?.projection = vec![SelectItem::UnnamedExpr(count)];
        Ok(statement.to_string())
    }

    pub(crate) fn statement(&self, parameters: Option<&[Literal]>) -> Result<Statement, Error> {
        let mut statement = self.projection_statement()?;
        if !self.filters.is_empty() {
            let names: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
            // Columns are qualified by the table's name where a subquery could hide them.
            let qualifiers = if self.filters.iter().any(Qual::has_scalar_subquery) {
                vec![self.table.table.clone(); names.len()]
            } else {
                Vec::new()
            };
            let renderer =
                Renderer { columns: &names, qualifiers: &qualifiers, parameters, parameters_from: 0 };
            select_of(&mut statement)?.selection = Some(renderer.condition(&self.filters)?);
        }
        Ok(statement)
    }

    fn projection_statement(&self) -> Result<Statement, Error> {
        let fields: Vec<Field> =
            self.columns.iter().map(|c| Field::new(&c.name, c.data_type.clone(), true)).collect();
        let source = Arc::new(LogicalTableSource::new(Arc::new(Schema::new(fields))));
        let table = TableReference::partial(self.table.namespace.as_str(), self.table.table.as_str());
        let projected = self
            .projection
            .iter()
            .map(|&i| col(datafusion_common::Column::new_unqualified(&self.columns[i].name)));
        let plan = LogicalPlanBuilder::scan(table.clone(), source, None)?.project(projected)?.build()?;
        Unparser::new(&KalamDialect).plan_to_sql(&plan)
    }
}

/// The SELECT of a scan's statement.
pub(crate) fn select_of(statement: &mut Statement) -> Result<&mut Select, Error> {
    let Statement::Query(query) = statement else {
        return Err(Error::Internal(format!("unexpected statement for a scan: {statement}")));
    };
    match query.body.as_mut() {
        SetExpr::Select(select) => Ok(select),
        other => Err(Error::Internal(format!("unexpected query for a scan: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(namespace: &str, table: &str, names: &[&str], projection: Vec<usize>) -> RemoteScan {
        RemoteScan {
            table: RemoteTable { namespace: namespace.into(), table: table.into() },
            columns: names
                .iter()
                .map(|n| RemoteColumn { name: n.to_string(), data_type: DataType::Int64 })
                .collect(),
            projection,
            filters: Vec::new(),
            order: OrderLimit::default(),
        }
    }

    // Goal: the rendered statement is exactly the projection asked for, every identifier quoted.
    #[test]
    fn renders_projection_with_quoted_identifiers() {
        let cases = [
            (
                scan("app", "trips", &["id", "fare"], vec![0, 1]),
                r#"SELECT "trips"."id", "trips"."fare" FROM "app"."trips""#,
            ),
            (scan("app", "trips", &["id", "fare"], vec![1]), r#"SELECT "trips"."fare" FROM "app"."trips""#),
            // A query that reads no column (count(*)) fetches rows without columns.
            (scan("app", "trips", &["id", "fare"], vec![]), r#"SELECT FROM "app"."trips""#),
        ];
        for (scan, expected) in cases {
            assert_eq!(scan.to_sql(None).unwrap(), expected);
        }
    }

    // Goal: the count the planner asks for keeps the scan's filters and counts every row.
    #[test]
    fn count_keeps_the_filters() {
        let mut counted = scan("app", "trips", &["id", "fare"], vec![0, 1]);
        assert_eq!(counted.count_sql().unwrap(), r#"SELECT count(*) FROM "app"."trips""#);
        counted.filters = vec![Qual::Compare {
            op: crate::Comparison::Gt,
            left: Box::new(Qual::Column(1)),
            right: Box::new(Qual::Literal(Literal::Int64(7))),
        }];
        assert_eq!(
            counted.count_sql().unwrap(),
            r#"SELECT count(*) FROM "app"."trips" WHERE ("fare" > CAST('7' AS BIGINT))"#
        );
    }

    // Goal: `x [NOT] IN (subquery)` conditions render as IN over the subquery's statement
    // (its one column, its own WHERE), ANDed after the plain conditions; alone, as the WHERE.
    #[test]
    fn subquery_conditions_render() {
        let mut suppliers = scan("tpch", "supplier", &["s_suppkey", "s_comment"], vec![0]);
        suppliers.filters = vec![Qual::Like {
            expr: Box::new(Qual::Column(1)),
            pattern: Box::new(Qual::Literal(Literal::Text("%Customer%Complaints%".into()))),
            negated: false,
        }];
        let mut outer = scan("tpch", "partsupp", &["ps_partkey", "ps_suppkey"], vec![0]);
        let not_in = Qual::InSubquery {
            expr: Box::new(Qual::Column(1)),
            subquery: Box::new(suppliers),
            negated: true,
        };
        outer.filters = vec![not_in.clone()];
        assert_eq!(
            outer.to_sql(None).unwrap(),
            r#"SELECT "partsupp"."ps_partkey" FROM "tpch"."partsupp" WHERE ("ps_suppkey") NOT IN (SELECT "supplier"."s_suppkey" FROM "tpch"."supplier" WHERE "s_comment" LIKE '%Customer%Complaints%')"#
        );
        let positive = |q: &Qual| Qual::Compare {
            op: crate::Comparison::Gt,
            left: Box::new(q.clone()),
            right: Box::new(Qual::Literal(Literal::Int64(0))),
        };
        outer.filters = vec![Qual::And(vec![positive(&Qual::Column(0)), not_in]), positive(&Qual::Column(1))];
        assert_eq!(
            outer.to_sql(None).unwrap(),
            r#"SELECT "partsupp"."ps_partkey" FROM "tpch"."partsupp" WHERE ((("ps_partkey" > CAST('0' AS BIGINT)) AND ("ps_suppkey" > CAST('0' AS BIGINT)))) AND (("ps_suppkey") NOT IN (SELECT "supplier"."s_suppkey" FROM "tpch"."supplier" WHERE "s_comment" LIKE '%Customer%Complaints%'))"#
        );
    }

    // Goal: the statement that describes a table reads every column, names quoted.
    #[test]
    fn describe_reads_every_column() {
        let table = RemoteTable { namespace: "app".into(), table: "My \"T\" x".into() };
        assert_eq!(table.describe_sql().unwrap(), r#"SELECT * FROM "app"."My ""T"" x""#);
    }

    // Goal: names that are keywords, mixed case or contain quotes cannot alter the statement.
    #[test]
    fn hostile_identifiers_stay_identifiers() {
        let sql = scan("My NS", "t\"; DROP TABLE x; --", &["select", "Id"], vec![0, 1]).to_sql(None).unwrap();
        assert_eq!(
            sql,
            r#"SELECT "t""; DROP TABLE x; --"."select", "t""; DROP TABLE x; --"."Id" FROM "My NS"."t""; DROP TABLE x; --""#
        );
    }
}
