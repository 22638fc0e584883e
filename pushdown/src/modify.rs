//! Changes the server runs: UPDATE and DELETE of a remote table's rows.
//!
//! Two shapes, one renderer:
//! - a change of the rows PostgreSQL found, one row at a time: the row's identity (its primary
//!   key, or `_seq`) is matched with [`Qual::Placeholder`]s and so are the new values, and the
//!   statement is prepared once and run with one parameter row per changed row;
//! - a change the server runs whole (PostgreSQL's direct modify): the scan's own filters (with
//!   the values PostgreSQL computes when it starts, [`Qual::Parameter`]s) and the new values as
//!   placeholders.
//!
//! New values are never literals in the SQL: they are sent as Arrow values converted by the
//! same code that converts the rows of an INSERT, so an UPDATE stores exactly what an INSERT of
//! the same value stores.

use datafusion_sql::sqlparser::ast::{
    Assignment, AssignmentTarget, FromTable, Ident, ObjectName, Statement, TableFactor,
};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;
use datafusion_sql::unparser::Unparser;

use crate::qual::{Literal, Qual, Renderer};
use crate::{Error, KalamDialect, RemoteTable};

/// What a change does to the rows its filters keep.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Sets each column (an index into [`RemoteChange::columns`]) to its value.
    Update(Vec<(usize, Qual)>),
    Delete,
}

/// An UPDATE or DELETE of a remote table.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteChange {
    pub table: RemoteTable,
    /// Names of the foreign table's columns, by attribute index.
    pub columns: Vec<String>,
    pub change: Change,
    /// The rows changed: those all of these keep (every row, when empty).
    pub filters: Vec<Qual>,
}

impl RemoteChange {
    /// The statement, with `parameters` as the values of its [`Qual::Parameter`]s (`None`:
    /// shown as `$n`, numbered after its placeholders, for EXPLAIN).
    pub fn to_sql(&self, parameters: Option<&[Literal]>) -> Result<String, Error> {
        let placeholders = self.placeholders();
        let renderer =
            Renderer { columns: &self.columns, qualifiers: &[], parameters, parameters_from: placeholders };
        let selection = if self.filters.is_empty() {
            None
        } else {
            let filter = renderer.expr(&Qual::And(self.filters.clone()))?;
            Some(crate::qual::parenthesized(Unparser::new(&KalamDialect).expr_to_sql(&filter)?))
        };
        let name = ObjectName::from(vec![quoted(&self.table.namespace), quoted(&self.table.table)]);
        let mut statement = match &self.change {
            Change::Update(_) => parse(r#"UPDATE "t" SET "c" = 1"#)?,
            Change::Delete => parse(r#"DELETE FROM "t""#)?,
        };
        match (&mut statement, &self.change) {
            (Statement::Update(update), Change::Update(set)) => {
                set_table_name(&mut update.table.relation, name)?;
                update.assignments =
                    set.iter()
                        .map(|(column, value)| {
                            let name = self.columns.get(*column).ok_or_else(|| {
                                Error::Internal(format!("no column {column} for the change"))
                            })?;
                            let value = Unparser::new(&KalamDialect).expr_to_sql(&renderer.expr(value)?)?;
                            Ok(Assignment {
                                target: AssignmentTarget::ColumnName(ObjectName::from(vec![quoted(name)])),
                                value,
                            })
                        })
                        .collect::<Result<_, Error>>()?;
                update.selection = selection;
            }
            (Statement::Delete(delete), Change::Delete) => {
                let (FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables)) =
                    &mut delete.from;
                let table =
                    tables.first_mut().ok_or_else(|| Error::Internal("DELETE without a table".into()))?;
                set_table_name(&mut table.relation, name)?;
                delete.selection = selection;
            }
            (other, _) => return Err(Error::Internal(format!("unexpected statement for a change: {other}"))),
        }
        Ok(statement.to_string())
    }

    /// How many placeholders the statement has (the highest index used, plus one).
    pub fn placeholders(&self) -> usize {
        let mut count = 0;
        let mut visit = |q: &Qual| max_placeholder(q, &mut count);
        if let Change::Update(set) = &self.change {
            set.iter().for_each(|(_, q)| visit(q));
        }
        self.filters.iter().for_each(visit);
        count
    }
}

fn max_placeholder(qual: &Qual, count: &mut usize) {
    qual.walk(&mut |q| match q {
        Qual::Placeholder(i) => *count = (*count).max(i + 1),
        Qual::InSubquery { subquery, .. } => subquery.filters.iter().for_each(|f| max_placeholder(f, count)),
        // A scalar subquery's parameters are its own.
        _ => {}
    });
}

fn quoted(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

fn parse(sql: &str) -> Result<Statement, Error> {
    let mut statements = Parser::parse_sql(&GenericDialect {}, sql)?;
    statements.pop().ok_or_else(|| Error::Internal(format!("no statement in {sql}")))
}

fn set_table_name(relation: &mut TableFactor, name: ObjectName) -> Result<(), Error> {
    match relation {
        TableFactor::Table { name: table, .. } => {
            *table = name;
            Ok(())
        }
        other => Err(Error::Internal(format!("unexpected table in a change: {other}"))),
    }
}

/// `column = $n` for each identity column and its placeholder: the one row a change targets.
pub fn identity_filter(identity: &[(usize, usize)]) -> Vec<Qual> {
    identity
        .iter()
        .map(|&(column, placeholder)| Qual::Compare {
            op: crate::Comparison::Eq,
            left: Box::new(Qual::Column(column)),
            right: Box::new(Qual::Placeholder(placeholder)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Comparison;

    fn table(namespace: &str, name: &str) -> RemoteTable {
        RemoteTable { namespace: namespace.into(), table: name.into() }
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    // Goal: each change renders to the statement the server runs, identifiers quoted, new
    // values and row identities as placeholders, scan-start values as literals once known.
    #[test]
    fn renders_changes() {
        let by_key = RemoteChange {
            table: table("app", "trips"),
            columns: names(&["id", "fare", "note"]),
            change: Change::Update(vec![(1, Qual::Placeholder(0)), (2, Qual::Placeholder(1))]),
            filters: identity_filter(&[(0, 2)]),
        };
        let delete_by_key =
            RemoteChange { change: Change::Delete, filters: identity_filter(&[(0, 0)]), ..by_key.clone() };
        let direct = RemoteChange {
            change: Change::Update(vec![(2, Qual::Placeholder(0))]),
            filters: vec![Qual::Compare {
                op: Comparison::Gt,
                left: Box::new(Qual::Column(1)),
                right: Box::new(Qual::Parameter(0)),
            }],
            ..by_key.clone()
        };
        let delete_all = RemoteChange { change: Change::Delete, filters: Vec::new(), ..by_key.clone() };
        let cases: Vec<(&RemoteChange, Option<Vec<Literal>>, &str)> = vec![
            (&by_key, None, r#"UPDATE "app"."trips" SET "fare" = $1, "note" = $2 WHERE ("id" = $3)"#),
            (&delete_by_key, None, r#"DELETE FROM "app"."trips" WHERE ("id" = $1)"#),
            // For EXPLAIN, scan-start values are numbered after the placeholders.
            (&direct, None, r#"UPDATE "app"."trips" SET "note" = $1 WHERE ("fare" > $2)"#),
            (
                &direct,
                Some(vec![Literal::Int64(7)]),
                r#"UPDATE "app"."trips" SET "note" = $1 WHERE ("fare" > CAST('7' AS BIGINT))"#,
            ),
            (&delete_all, None, r#"DELETE FROM "app"."trips""#),
        ];
        for (change, parameters, expected) in cases {
            assert_eq!(change.to_sql(parameters.as_deref()).unwrap(), expected);
        }
        assert_eq!(by_key.placeholders(), 3);
        assert_eq!(direct.placeholders(), 1);
        assert_eq!(delete_all.placeholders(), 0);
    }

    // Goal: hostile names stay identifiers in UPDATE and DELETE too.
    #[test]
    fn hostile_identifiers_stay_identifiers() {
        let change = RemoteChange {
            table: table("My NS", "t\"; DROP TABLE x; --"),
            columns: names(&["select", "a\"b"]),
            change: Change::Update(vec![(1, Qual::Placeholder(0))]),
            filters: identity_filter(&[(0, 1)]),
        };
        assert_eq!(
            change.to_sql(None).unwrap(),
            r#"UPDATE "My NS"."t""; DROP TABLE x; --" SET "a""b" = $1 WHERE ("select" = $2)"#
        );
        let delete = RemoteChange { change: Change::Delete, filters: identity_filter(&[(0, 0)]), ..change };
        assert_eq!(
            delete.to_sql(None).unwrap(),
            r#"DELETE FROM "My NS"."t""; DROP TABLE x; --" WHERE ("select" = $1)"#
        );
    }
}
