//! Statements that author KalamDB tables from PostgreSQL (`CREATE TABLE ... USING kalamdb`,
//! `DROP TABLE`, `ALTER TABLE ... ADD/DROP COLUMN` of such a table).
//!
//! The extension reads PostgreSQL's parse tree into a [`CreateTable`] (names, KalamDB column
//! types, keys, defaults, options); this module renders it as kalamdb-server's statement. Every
//! name is a double-quoted identifier and every value a literal of the SQL syntax tree, so
//! nothing a user names or writes can change the statement: keywords are the only text here.

use datafusion_sql::sqlparser::ast::{
    AlterTableOperation, ColumnDef, ColumnOption, ColumnOptionDef, CreateTableOptions, DataType, Expr, Ident,
    IndexColumn, ObjectName, SqlOption, Statement, TableConstraint, Value,
};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;

use crate::{Error, RemoteTable};

/// A KalamDB column type.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnType {
    Boolean,
    SmallInt,
    Int,
    BigInt,
    Real,
    Double,
    /// DECIMAL(precision, scale), precision at most 38.
    Decimal(u8, i8),
    Text,
    Bytes,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
    Json,
    /// A FileRef JSON object.
    File,
    /// EMBEDDING(dimensions): a fixed-size list of float4.
    Embedding(u32),
    /// An array of the element type.
    List(Box<ColumnType>),
}

impl ColumnType {
    fn sql(&self) -> String {
        match self {
            ColumnType::Boolean => "BOOLEAN".into(),
            ColumnType::SmallInt => "SMALLINT".into(),
            ColumnType::Int => "INT".into(),
            ColumnType::BigInt => "BIGINT".into(),
            ColumnType::Real => "REAL".into(),
            ColumnType::Double => "DOUBLE".into(),
            ColumnType::Decimal(p, s) => format!("DECIMAL({p},{s})"),
            ColumnType::Text => "TEXT".into(),
            ColumnType::Bytes => "BYTEA".into(),
            ColumnType::Date => "DATE".into(),
            ColumnType::Time => "TIME".into(),
            ColumnType::Timestamp => "TIMESTAMP".into(),
            ColumnType::TimestampTz => "TIMESTAMPTZ".into(),
            ColumnType::Uuid => "UUID".into(),
            ColumnType::Json => "JSON".into(),
            ColumnType::File => "FILE".into(),
            ColumnType::Embedding(n) => format!("EMBEDDING({n})"),
            ColumnType::List(item) => format!("{}[]", item.sql()),
        }
    }

    /// The type in the syntax tree: built from keywords and numbers only.
    fn data_type(&self) -> Result<DataType, Error> {
        Ok(Parser::new(&GenericDialect {}).try_with_sql(&self.sql())?.parse_data_type()?)
    }
}

/// A column's DEFAULT, as the server computes it for rows that leave the column out.
#[derive(Clone, Debug, PartialEq)]
pub enum Default {
    SnowflakeId,
    Now,
    Null,
    Boolean(bool),
    /// A number as PostgreSQL's lexer read it (digits, sign, point, exponent).
    Number(String),
    Text(String),
}

impl Default {
    fn expr(&self) -> Result<Expr, Error> {
        Ok(match self {
            Default::SnowflakeId => parse_expr("SNOWFLAKE_ID()")?,
            Default::Now => parse_expr("NOW()")?,
            Default::Null => Expr::value(Value::Null),
            Default::Boolean(b) => Expr::value(Value::Boolean(*b)),
            Default::Number(n) => {
                let numeric = !n.is_empty()
                    && n.chars().all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
                if !numeric {
                    return Err(Error::Plan(format!("{n} is not a number")));
                }
                Expr::value(Value::Number(n.clone(), false))
            }
            Default::Text(s) => Expr::value(Value::SingleQuotedString(s.clone())),
        })
    }
}

/// A column of a new table.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub data_type: ColumnType,
    pub not_null: bool,
    pub default: Option<Default>,
}

impl Column {
    fn def(&self) -> Result<ColumnDef, Error> {
        let mut options = Vec::new();
        if self.not_null {
            options.push(ColumnOptionDef { name: None, option: ColumnOption::NotNull });
        }
        if let Some(default) = &self.default {
            options.push(ColumnOptionDef { name: None, option: ColumnOption::Default(default.expr()?) });
        }
        Ok(ColumnDef { name: quoted(&self.name), data_type: self.data_type.data_type()?, options })
    }
}

/// The kind of a KalamDB table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    Shared,
    User,
    Stream,
}

impl TableKind {
    pub fn parse(text: &str) -> Option<TableKind> {
        match text.to_ascii_lowercase().as_str() {
            "shared" => Some(TableKind::Shared),
            "user" => Some(TableKind::User),
            "stream" => Some(TableKind::Stream),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TableKind::Shared => "shared",
            TableKind::User => "user",
            TableKind::Stream => "stream",
        }
    }
}

/// `CREATE TABLE "ns"."t" (...) WITH (TYPE = '...', ...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateTable {
    pub table: RemoteTable,
    pub kind: TableKind,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    /// Other table options, under KalamDB's names (`FLUSH_POLICY`, `TTL_SECONDS`, ...).
    pub options: Vec<(String, String)>,
}

impl CreateTable {
    pub fn to_sql(&self) -> Result<String, Error> {
        let mut statement = parse(r#"CREATE TABLE "t" ("c" INT, PRIMARY KEY ("c")) WITH (TYPE = 'SHARED')"#)?;
        let Statement::CreateTable(create) = &mut statement else {
            return Err(Error::Internal("template is not CREATE TABLE".into()));
        };
        create.name = self.table.name();
        create.columns = self.columns.iter().map(Column::def).collect::<Result<_, _>>()?;
        if self.primary_key.is_empty() {
            create.constraints.clear();
        } else if let Some(TableConstraint::PrimaryKey(key)) = create.constraints.first_mut() {
            key.columns = self.primary_key.iter().map(|c| IndexColumn::from(quoted(c))).collect();
        }
        let mut options = vec![option("TYPE", self.kind.name().to_ascii_uppercase())];
        options.extend(self.options.iter().map(|(k, v)| option(&k.to_ascii_uppercase(), v.clone())));
        create.table_options = CreateTableOptions::With(options);
        Ok(statement.to_string())
    }
}

impl RemoteTable {
    fn name(&self) -> ObjectName {
        ObjectName::from(vec![quoted(&self.namespace), quoted(&self.table)])
    }

    /// `DROP TABLE [IF EXISTS] "ns"."t"`.
    pub fn drop_sql(&self, if_exists: bool) -> Result<String, Error> {
        let mut statement = parse(r#"DROP TABLE IF EXISTS "t""#)?;
        if let Statement::Drop { names, if_exists: exists, .. } = &mut statement {
            *names = vec![self.name()];
            *exists = if_exists;
        }
        Ok(statement.to_string())
    }

    /// `ALTER TABLE "ns"."t" ADD COLUMN [IF NOT EXISTS] ...`.
    pub fn add_column_sql(&self, column: &Column, if_not_exists: bool) -> Result<String, Error> {
        self.alter(r#"ALTER TABLE "t" ADD COLUMN "c" INT"#, |op| {
            if let AlterTableOperation::AddColumn { column_def, if_not_exists: exists, .. } = op {
                *column_def = column.def()?;
                *exists = if_not_exists;
            }
            Ok(())
        })
    }

    /// `ALTER TABLE "ns"."t" DROP COLUMN [IF EXISTS] "c"`.
    pub fn drop_column_sql(&self, column: &str, if_exists: bool) -> Result<String, Error> {
        self.alter(r#"ALTER TABLE "t" DROP COLUMN IF EXISTS "c""#, |op| {
            if let AlterTableOperation::DropColumn { column_names, if_exists: exists, .. } = op {
                *column_names = vec![quoted(column)];
                *exists = if_exists;
            }
            Ok(())
        })
    }

    fn alter(
        &self,
        template: &str,
        edit: impl FnOnce(&mut AlterTableOperation) -> Result<(), Error>,
    ) -> Result<String, Error> {
        let mut statement = parse(template)?;
        let Statement::AlterTable(alter) = &mut statement else {
            return Err(Error::Internal("template is not ALTER TABLE".into()));
        };
        alter.name = self.name();
        let op =
            alter.operations.first_mut().ok_or_else(|| Error::Internal("ALTER without operation".into()))?;
        edit(op)?;
        Ok(statement.to_string())
    }
}

/// `CREATE NAMESPACE "ns"` (`IF NOT EXISTS`: a no-op when it exists).
pub fn create_namespace_sql(namespace: &str, if_not_exists: bool) -> String {
    let exists = if if_not_exists { "IF NOT EXISTS " } else { "" };
    format!("CREATE NAMESPACE {exists}{}", quoted(namespace))
}

/// `DROP NAMESPACE "ns"` (only when it holds nothing).
pub fn drop_namespace_sql(namespace: &str) -> String {
    format!("DROP NAMESPACE IF EXISTS {}", quoted(namespace))
}

fn option(key: &str, value: String) -> SqlOption {
    SqlOption::KeyValue { key: Ident::new(key), value: Expr::value(Value::SingleQuotedString(value)) }
}

fn quoted(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

fn parse(sql: &str) -> Result<Statement, Error> {
    let mut statements = Parser::parse_sql(&GenericDialect {}, sql)?;
    statements.pop().ok_or_else(|| Error::Internal(format!("no statement in {sql}")))
}

fn parse_expr(sql: &str) -> Result<Expr, Error> {
    Ok(Parser::new(&GenericDialect {}).try_with_sql(sql)?.parse_expr()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(ns: &str, t: &str) -> RemoteTable {
        RemoteTable { namespace: ns.into(), table: t.into() }
    }

    fn column(name: &str, data_type: ColumnType, not_null: bool, default: Option<Default>) -> Column {
        Column { name: name.into(), data_type, not_null, default }
    }

    // Goal: a table renders with every name quoted, KalamDB's type names, NOT NULL, defaults,
    // the key and the options; hostile names and values stay names and values.
    #[test]
    fn create_table_statements() {
        let cases: Vec<(CreateTable, &str)> = vec![
            (
                CreateTable {
                    table: table("app", "shared_items"),
                    kind: TableKind::User,
                    columns: vec![
                        column("id", ColumnType::BigInt, false, Some(Default::SnowflakeId)),
                        column("title", ColumnType::Text, true, None),
                        column("value", ColumnType::Int, false, None),
                        column("created_at", ColumnType::Timestamp, false, Some(Default::Now)),
                    ],
                    primary_key: vec!["id".into()],
                    options: vec![("flush_policy".into(), "rows:1000,interval:60".into())],
                },
                r#"CREATE TABLE "app"."shared_items" ("id" BIGINT DEFAULT SNOWFLAKE_ID(), "title" TEXT NOT NULL, "value" INT, "created_at" TIMESTAMP DEFAULT NOW(), PRIMARY KEY ("id")) WITH (TYPE = 'USER', FLUSH_POLICY = 'rows:1000,interval:60')"#,
            ),
            (
                CreateTable {
                    table: table("we\"ird", "a b"),
                    kind: TableKind::Stream,
                    columns: vec![
                        column(
                            "x\"); DROP",
                            ColumnType::Decimal(10, 2),
                            false,
                            Some(Default::Number("-1.5".into())),
                        ),
                        column("f", ColumnType::File, false, None),
                        column("e", ColumnType::Embedding(3), false, None),
                        column("l", ColumnType::List(Box::new(ColumnType::BigInt)), false, None),
                        column("s", ColumnType::Text, false, Some(Default::Text("it's".into()))),
                        column("b", ColumnType::Boolean, false, Some(Default::Boolean(true))),
                        column("n", ColumnType::Uuid, false, Some(Default::Null)),
                    ],
                    primary_key: vec![],
                    options: vec![("ttl_seconds".into(), "60') , (x".into())],
                },
                r#"CREATE TABLE "we""ird"."a b" ("x""); DROP" DECIMAL(10,2) DEFAULT -1.5, "f" FILE, "e" EMBEDDING(3), "l" BIGINT[], "s" TEXT DEFAULT 'it''s', "b" BOOLEAN DEFAULT true, "n" UUID DEFAULT NULL) WITH (TYPE = 'STREAM', TTL_SECONDS = '60'') , (x')"#,
            ),
        ];
        for (create, expected) in cases {
            assert_eq!(create.to_sql().unwrap(), expected);
        }
    }

    // Goal: a default that is not a number is refused rather than printed.
    #[test]
    fn numbers_are_numbers() {
        let c = column("x", ColumnType::Int, false, Some(Default::Number("1) ; DROP".into())));
        assert!(table("a", "b").add_column_sql(&c, false).is_err());
    }

    // Goal: DROP TABLE and ALTER TABLE ADD/DROP COLUMN quote the names.
    #[test]
    fn drop_and_alter_statements() {
        let t = table("app", "o\"rders");
        let cases = [
            (t.drop_sql(false).unwrap(), r#"DROP TABLE "app"."o""rders""#),
            (t.drop_sql(true).unwrap(), r#"DROP TABLE IF EXISTS "app"."o""rders""#),
            (
                t.add_column_sql(
                    &column("priority", ColumnType::Int, false, Some(Default::Number("0".into()))),
                    true,
                )
                .unwrap(),
                r#"ALTER TABLE "app"."o""rders" ADD COLUMN IF NOT EXISTS "priority" INT DEFAULT 0"#,
            ),
            (
                t.drop_column_sql("pri\"ority", false).unwrap(),
                r#"ALTER TABLE "app"."o""rders" DROP COLUMN "pri""ority""#,
            ),
            (create_namespace_sql("a\"pp", true), r#"CREATE NAMESPACE IF NOT EXISTS "a""pp""#),
            (drop_namespace_sql("app"), r#"DROP NAMESPACE IF EXISTS "app""#),
        ];
        for (sql, expected) in cases {
            assert_eq!(sql, expected);
        }
    }
}
