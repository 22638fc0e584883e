//! What the server changes in a parsed INSERT or UPDATE before DataFusion plans it.
//!
//! - `INSERT INTO t VALUES ...` without a column list means the table's own columns (the
//!   system columns are filled by the server).
//! - Values written to a UUID column are given to `to_uuid(...)`: DataFusion cannot cast text
//!   to FixedSizeBinary(16), and PostgreSQL users write UUIDs as text. Parameters of
//!   `INSERT ... VALUES` stay as they are (they take the column's type; the write converts
//!   text then), and so does NULL.
//!
//! The rewrite works on the AST, never on SQL text.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Insert, ObjectName,
    SelectItem, SetExpr, TableFactor, TableObject, Update, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::storage::table::TableDef;
use crate::types::{self, ToUuid};

/// Looks a table up by (namespace, name); the namespace is `None` when the statement left it out.
pub type FindTable<'a> = &'a dyn Fn(Option<&str>, &str) -> Option<Arc<TableDef>>;

pub fn insert(insert: &mut Insert, find: FindTable) {
    let TableObject::TableName(name) = &insert.table else { return };
    let Some(def) = table_of(name, find) else { return };
    if insert.columns.is_empty() {
        insert.columns = def
            .schema
            .fields()
            .iter()
            .filter(|f| !TableDef::is_system_column(f.name()))
            .map(|f| ObjectName::from(vec![Ident::with_quote('"', f.name())]))
            .collect();
    }
    let uuid_positions: Vec<usize> = insert
        .columns
        .iter()
        .enumerate()
        .filter(|(_, column)| is_uuid_column(&def, column))
        .map(|(i, _)| i)
        .collect();
    let Some(source) = insert.source.as_mut() else { return };
    if uuid_positions.is_empty() {
        return;
    }
    match source.body.as_mut() {
        SetExpr::Values(values) => {
            for row in &mut values.rows {
                for &i in &uuid_positions {
                    if let Some(value) = row.content.get_mut(i)
                        && !matches!(value, Expr::Value(v) if matches!(v.value, Value::Placeholder(_)))
                    {
                        wrap_in_to_uuid(value);
                    }
                }
            }
        }
        SetExpr::Select(select) => {
            let positional = select
                .projection
                .iter()
                .all(|item| matches!(item, SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }));
            if !positional {
                return;
            }
            for &i in &uuid_positions {
                match select.projection.get_mut(i) {
                    Some(SelectItem::UnnamedExpr(expr)) | Some(SelectItem::ExprWithAlias { expr, .. }) => {
                        wrap_in_to_uuid(expr)
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

pub fn update(update: &mut Update, find: FindTable) {
    let TableFactor::Table { name, .. } = &update.table.relation else { return };
    let Some(def) = table_of(name, find) else { return };
    for assignment in &mut update.assignments {
        if let AssignmentTarget::ColumnName(column) = &assignment.target
            && is_uuid_column(&def, column)
        {
            wrap_in_to_uuid(&mut assignment.value);
        }
    }
}

fn table_of(name: &ObjectName, find: FindTable) -> Option<Arc<TableDef>> {
    let parts: Vec<String> = name.0.iter().map(|p| p.as_ident().map(ident_name)).collect::<Option<_>>()?;
    match parts.as_slice() {
        [table] => find(None, table),
        [namespace, table] => find(Some(namespace), table),
        _ => None,
    }
}

/// An identifier as DataFusion resolves it: unquoted ones are lower-cased.
fn ident_name(ident: &Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() }
}

fn is_uuid_column(def: &TableDef, column: &ObjectName) -> bool {
    let Some(name) = column.0.last().and_then(|p| p.as_ident()).map(ident_name) else { return false };
    def.schema.field_with_name(&name).is_ok_and(types::is_uuid)
}

/// Replaces `expr` with `to_uuid(expr)`; NULL stays as it is.
fn wrap_in_to_uuid(expr: &mut Expr) {
    if matches!(expr, Expr::Value(v) if matches!(v.value, Value::Null)) {
        return;
    }
    let mut call = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&format!("{}(NULL)", ToUuid::NAME))
        .and_then(|mut parser| parser.parse_expr())
        .expect("a function call of a fixed name parses");
    if let Expr::Function(function) = &mut call
        && let FunctionArguments::List(list) = &mut function.args
    {
        list.args[0] =
            FunctionArg::Unnamed(FunctionArgExpr::Expr(std::mem::replace(expr, Expr::value(Value::Null))));
    }
    *expr = call;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::table::{TableKind, schema_with_system_columns};
    use arrow_schema::{DataType, Field};
    use datafusion::sql::sqlparser::ast::Statement;

    fn table() -> Arc<TableDef> {
        let fields = vec![Field::new("id", DataType::Int64, false), types::uuid_field("u")];
        Arc::new(TableDef {
            id: 1,
            namespace: "app".into(),
            name: "t".into(),
            kind: TableKind::Shared,
            schema: schema_with_system_columns(fields, TableKind::Shared),
            primary_key: vec![],
            defaults: vec![],
            flush: Default::default(),
            ttl_seconds: None,
            access: crate::storage::table::AccessLevel::Public,
            created_ms: 0,
        })
    }

    fn rewritten(sql: &str) -> String {
        let def = table();
        let find = |ns: Option<&str>, name: &str| (ns == Some("app") && name == "t").then(|| def.clone());
        let mut statement =
            Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).unwrap().parse_statement().unwrap();
        match &mut statement {
            Statement::Insert(i) => insert(i, &find),
            Statement::Update(u) => update(u, &find),
            _ => {}
        }
        statement.to_string()
    }

    // Goal: values bound for a UUID column go through to_uuid, in VALUES, SELECT and SET; the
    // column list is filled in; parameters and NULL of VALUES, other columns and other tables
    // are left alone.
    #[test]
    fn uuid_values_are_converted() {
        assert_eq!(
            rewritten(
                "INSERT INTO app.t VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), (2, NULL), (3, $1)"
            ),
            "INSERT INTO app.t (\"id\", \"u\") VALUES (1, to_uuid('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')), (2, NULL), (3, $1)"
        );
        assert_eq!(
            rewritten("INSERT INTO APP.T (U, id) SELECT s, 1 FROM x"),
            "INSERT INTO APP.T (U, id) SELECT to_uuid(s), 1 FROM x"
        );
        assert_eq!(
            rewritten("UPDATE app.t SET u = $1, id = 2 WHERE id = 1"),
            "UPDATE app.t SET u = to_uuid($1), id = 2 WHERE id = 1"
        );
        assert_eq!(rewritten("INSERT INTO app.other VALUES ('x')"), "INSERT INTO app.other VALUES ('x')");
        assert_eq!(
            rewritten("INSERT INTO app.t SELECT * FROM x"),
            "INSERT INTO app.t (\"id\", \"u\") SELECT * FROM x"
        );
    }
}
