//! `IMPORT FOREIGN SCHEMA ns [LIMIT TO | EXCEPT (...)] FROM SERVER s INTO local`: one foreign
//! table per remote table of the namespace, from Flight SQL GetTables with schemas. Columns get
//! the PostgreSQL types of SURFACE §3 (JSON and FILE as jsonb, EMBEDDING(n) as real[]), keep
//! NOT NULL, and include the system columns `_seq` (and `_userid` on user and stream tables);
//! each table's options name the remote table and its kind.

use std::ffi::{CStr, CString};

use arrow_schema::{DataType, Field};
use kalam_flight::TableListing;
use kalam_flight::protocol::TABLE_KIND_METADATA;
use pgrx::pg_sys::{self, Oid};
use pgrx::{PgList, PgSqlErrorCode, pg_guard};

use crate::connection::Server;
use crate::error::{KalamError, Result};
use crate::runtime;

#[pg_guard]
pub unsafe extern "C-unwind" fn import_foreign_schema(
    stmt: *mut pg_sys::ImportForeignSchemaStmt,
    server_oid: Oid,
) -> *mut pg_sys::List {
    // SAFETY: PostgreSQL passes the statement and the server it names.
    unsafe {
        let text = |p: *const std::ffi::c_char| CStr::from_ptr(p).to_string_lossy().into_owned();
        let request = Request {
            namespace: text((*stmt).remote_schema),
            local_schema: text((*stmt).local_schema),
            server_name: text((*stmt).server_name),
            filter: match (*stmt).list_type {
                pg_sys::ImportForeignSchemaType::FDW_IMPORT_SCHEMA_LIMIT_TO => {
                    Filter::LimitTo(names((*stmt).table_list))
                }
                pg_sys::ImportForeignSchemaType::FDW_IMPORT_SCHEMA_EXCEPT => {
                    Filter::Except(names((*stmt).table_list))
                }
                _ => Filter::All,
            },
        };
        if let Some(option) = PgList::<pg_sys::DefElem>::from_pg((*stmt).options).iter_ptr().next() {
            KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
                format!("invalid IMPORT FOREIGN SCHEMA option \"{}\"", text((*option).defname)),
            )
            .with_hint("pg_kalam's IMPORT FOREIGN SCHEMA takes no options.")
            .report();
        }
        let commands = commands(&request, server_oid).unwrap_or_else(|e| e.report());
        let mut list = PgList::<std::ffi::c_char>::new();
        for command in commands {
            let c = CString::new(command).expect("no NUL in generated SQL");
            list.push(pg_sys::pstrdup(c.as_ptr()));
        }
        list.into_pg()
    }
}

unsafe fn names(list: *mut pg_sys::List) -> Vec<String> {
    // SAFETY: a list of RangeVars.
    unsafe {
        PgList::<pg_sys::RangeVar>::from_pg(list)
            .iter_ptr()
            .map(|rv| CStr::from_ptr((*rv).relname).to_string_lossy().into_owned())
            .collect()
    }
}

struct Request {
    namespace: String,
    local_schema: String,
    server_name: String,
    filter: Filter,
}

enum Filter {
    All,
    LimitTo(Vec<String>),
    Except(Vec<String>),
}

impl Filter {
    fn keeps(&self, name: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::LimitTo(names) => names.iter().any(|n| n == name),
            Filter::Except(names) => !names.iter().any(|n| n == name),
        }
    }
}

fn commands(request: &Request, server_oid: Oid) -> Result<Vec<String>> {
    let client = Server::lookup(server_oid)?.client()?;
    let namespace = request.namespace.clone();
    let (tables, namespaces) = runtime::call(async move {
        let tables = client.tables(&namespace).await?;
        let namespaces = if tables.is_empty() { client.namespaces().await? } else { Vec::new() };
        Ok::<_, kalam_flight::Error>((tables, namespaces))
    })
    .map_err(KalamError::from)?;
    if tables.is_empty() && !namespaces.contains(&request.namespace) {
        return Err(KalamError::new(
            PgSqlErrorCode::ERRCODE_FDW_SCHEMA_NOT_FOUND,
            format!(
                "namespace \"{}\" does not exist on KalamDB server \"{}\"",
                request.namespace, request.server_name
            ),
        )
        .with_hint(format!("The server's namespaces: {}.", namespaces.join(", "))));
    }
    tables.iter().filter(|t| request.filter.keeps(&t.name)).map(|t| create_statement(request, t)).collect()
}

/// `CREATE FOREIGN TABLE local.t (...) SERVER s OPTIONS (...)` for one remote table.
fn create_statement(request: &Request, table: &TableListing) -> Result<String> {
    let mut columns = Vec::new();
    for field in table.schema.fields() {
        if field.name() == "_deleted" {
            continue;
        }
        let data_type = pg_type(field).ok_or_else(|| {
            KalamError::new(
                PgSqlErrorCode::ERRCODE_FDW_INVALID_DATA_TYPE,
                format!(
                    "column \"{}\" of KalamDB table {}.{} has type {}, which has no PostgreSQL counterpart",
                    field.name(),
                    request.namespace,
                    table.name,
                    field.data_type()
                ),
            )
            .with_hint(format!(
                "Leave the table out with EXCEPT ({}), or map it by hand with CREATE FOREIGN TABLE.",
                table.name
            ))
        })?;
        let not_null = if field.is_nullable() { "" } else { " NOT NULL" };
        columns.push(format!("{} {data_type}{not_null}", quote_ident(field.name())));
    }
    let kind = table.schema.metadata().get(TABLE_KIND_METADATA).map(|k| k.to_ascii_lowercase());
    let kind = kind
        .filter(|k| matches!(k.as_str(), "shared" | "user" | "stream"))
        .unwrap_or_else(|| "shared".into());
    Ok(format!(
        "CREATE FOREIGN TABLE {}.{} ({}) SERVER {} OPTIONS (namespace {}, \"table\" {}, table_type {})",
        quote_ident(&request.local_schema),
        quote_ident(&table.name),
        columns.join(", "),
        quote_ident(&request.server_name),
        quote_literal(&request.namespace),
        quote_literal(&table.name),
        quote_literal(&kind),
    ))
}

/// The PostgreSQL type of a remote column (SURFACE §3), or `None` when there is none.
fn pg_type(field: &Field) -> Option<String> {
    let extension = field.metadata().get("ARROW:extension:name").map(String::as_str);
    Some(match field.data_type() {
        DataType::Boolean => "boolean".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if extension == Some("arrow.json") => {
            "jsonb".into()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea".into(),
        DataType::FixedSizeBinary(16) if extension == Some("arrow.uuid") => "uuid".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp".into(),
        DataType::Timestamp(_, Some(_)) => "timestamptz".into(),
        DataType::Time64(_) => "time".into(),
        DataType::Decimal128(p, s) if *s >= 0 => format!("numeric({p},{s})"),
        DataType::FixedSizeList(item, _) if item.data_type() == &DataType::Float32 => "real[]".into(),
        DataType::List(item) | DataType::LargeList(item) => {
            let element = pg_type(item)?;
            if element.ends_with("[]") {
                return None;
            }
            format!("{element}[]")
        }
        _ => return None,
    })
}

fn quote_ident(name: &str) -> String {
    let c = CString::new(name).expect("names have no NUL");
    // SAFETY: quote_identifier returns its argument or a palloc'd quoted copy.
    unsafe { CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr())).to_string_lossy().into_owned() }
}

fn quote_literal(text: &str) -> String {
    let c = CString::new(text).expect("names have no NUL");
    // SAFETY: returns a palloc'd quoted copy.
    unsafe { CStr::from_ptr(pg_sys::quote_literal_cstr(c.as_ptr())).to_string_lossy().into_owned() }
}
