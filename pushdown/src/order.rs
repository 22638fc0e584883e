//! ORDER BY, LIMIT and OFFSET of a remote statement.
//!
//! The extension decides what may be sorted remotely (the server orders those values as
//! PostgreSQL does) and spells every key's direction and NULL placement out, so that no default
//! of the server's matters: PostgreSQL puts NULLs last ascending and first descending unless
//! told otherwise, and so does the statement, in words.

use datafusion_sql::sqlparser::ast::{
    Expr, LimitClause, Offset, OffsetRows, OrderBy, OrderByExpr, OrderByKind, OrderByOptions, Statement,
    Value,
};

use crate::Error;

/// One sort key: `key` names a column of the scan or an output of a grouped query (what the
/// statement it belongs to says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortKey {
    pub key: usize,
    pub descending: bool,
    pub nulls_first: bool,
}

/// The rows of a statement, sorted and cut: empty (the default) leaves them as they come.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderLimit {
    pub order_by: Vec<SortKey>,
    /// `LIMIT`; `None`: every row.
    pub limit: Option<u64>,
    pub offset: u64,
}

impl OrderLimit {
    pub fn is_empty(&self) -> bool {
        self.order_by.is_empty() && self.limit.is_none() && self.offset == 0
    }

    /// Sets the clauses of `statement`, each key written as `key_expr` gives it.
    pub(crate) fn apply(
        &self,
        statement: &mut Statement,
        key_expr: impl Fn(usize) -> Result<Expr, Error>,
    ) -> Result<(), Error> {
        if self.is_empty() {
            return Ok(());
        }
        let Statement::Query(query) = statement else {
            return Err(Error::Internal(format!("unexpected statement to order: {statement}")));
        };
        if !self.order_by.is_empty() {
            let keys = self
                .order_by
                .iter()
                .map(|key| {
                    Ok(OrderByExpr {
                        expr: key_expr(key.key)?,
                        options: OrderByOptions {
                            asc: Some(!key.descending),
                            nulls_first: Some(key.nulls_first),
                        },
                        with_fill: None,
                    })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            query.order_by = Some(OrderBy { kind: OrderByKind::Expressions(keys), interpolate: None });
        }
        let number = |n: u64| Expr::value(Value::Number(n.to_string(), false));
        if self.limit.is_some() || self.offset > 0 {
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: self.limit.map(number),
                offset: (self.offset > 0)
                    .then(|| Offset { value: number(self.offset), rows: OffsetRows::None }),
                limit_by: Vec::new(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use super::*;
    use crate::aggregate::{AggregateInput, Function, Output, RemoteAggregate};
    use crate::{RemoteColumn, RemoteScan, RemoteTable};

    fn scan(order: OrderLimit) -> RemoteScan {
        RemoteScan {
            table: RemoteTable { namespace: "app".into(), table: "t".into() },
            columns: ["id", "Name"]
                .iter()
                .map(|n| RemoteColumn { name: n.to_string(), data_type: DataType::Int64 })
                .collect(),
            projection: vec![0],
            filters: Vec::new(),
            order,
        }
    }

    fn key(key: usize, descending: bool, nulls_first: bool) -> SortKey {
        SortKey { key, descending, nulls_first }
    }

    // Goal: every key says its direction and NULL placement; LIMIT and OFFSET appear only when
    // set; a key may be a column the scan does not fetch.
    #[test]
    fn scans_render_order_and_limit() {
        let cases = [
            (OrderLimit::default(), r#"SELECT "t"."id" FROM "app"."t""#),
            (
                OrderLimit { order_by: vec![key(1, false, false)], limit: None, offset: 0 },
                r#"SELECT "t"."id" FROM "app"."t" ORDER BY "Name" ASC NULLS LAST"#,
            ),
            (
                OrderLimit {
                    order_by: vec![key(0, true, true), key(1, false, true)],
                    limit: Some(10),
                    offset: 0,
                },
                r#"SELECT "t"."id" FROM "app"."t" ORDER BY "id" DESC NULLS FIRST, "Name" ASC NULLS FIRST LIMIT 10"#,
            ),
            (
                OrderLimit { order_by: vec![], limit: Some(0), offset: 5 },
                r#"SELECT "t"."id" FROM "app"."t" LIMIT 0 OFFSET 5"#,
            ),
            (
                OrderLimit { order_by: vec![], limit: None, offset: 18446744073709551615 },
                r#"SELECT "t"."id" FROM "app"."t" OFFSET 18446744073709551615"#,
            ),
        ];
        for (order, expected) in cases {
            assert_eq!(scan(order).to_sql(None).unwrap(), expected);
        }
    }

    // Goal: a grouped query orders by its outputs' aliases (an average takes two columns, so
    // the later aliases shift); an average itself is no key the server can sort by.
    #[test]
    fn grouped_queries_order_by_aliases() {
        let aggregate = RemoteAggregate {
            input: AggregateInput::Scan(scan(OrderLimit::default())),
            computed: Vec::new(),
            group_by: vec![1],
            outputs: vec![
                Output::Aggregate { function: Function::Avg, column: 0, distinct: false },
                Output::Group(1),
                Output::Aggregate { function: Function::CountRows, column: 0, distinct: false },
            ],
            order: OrderLimit {
                order_by: vec![key(2, true, false), key(1, false, false)],
                limit: Some(3),
                offset: 1,
            },
        };
        assert_eq!(
            aggregate.to_sql(None).unwrap(),
            r#"SELECT sum(CAST("id" AS DECIMAL(38,0))) AS a0, count("id") AS a1, "Name" AS a2, count(*) AS a3 FROM "app"."t" GROUP BY "Name" ORDER BY a3 DESC NULLS LAST, a2 ASC NULLS LAST LIMIT 3 OFFSET 1"#
        );
        let by_average = RemoteAggregate {
            order: OrderLimit { order_by: vec![key(0, false, false)], limit: None, offset: 0 },
            ..aggregate
        };
        assert!(by_average.to_sql(None).is_err());
    }
}
