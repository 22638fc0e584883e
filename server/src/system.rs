//! The `system` namespace: read-only tables computed from the server's state when a query
//! reads them. Readable by dba and system accounts only, but for `system.columns` (the columns
//! of every table, view and system table with their KalamDB types, what DESCRIBE TABLE shows),
//! which every account may read, as SQL's information_schema.

use std::sync::{Arc, Weak};

use arrow_array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt64Array,
};
use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::auth::Sessions;
use crate::session::RequestContext;
use crate::storage::Store;
use crate::storage::table::{KalamTable, TableDef};
use crate::types;

/// A table's own columns as CREATE TABLE writes them: `id BIGINT NOT NULL DEFAULT SNOWFLAKE_ID(), ...`.
fn column_definitions(def: &TableDef) -> String {
    let columns = def.schema.fields().iter().filter(|f| !TableDef::is_system_column(f.name()));
    columns
        .map(|f| {
            let mut column = format!("{} {}", sql_name(f.name()), types::type_name(f));
            if !f.is_nullable() {
                column.push_str(" NOT NULL");
            }
            if let Some(default) = default_of(def, f.name()) {
                column.push_str(&format!(" DEFAULT {default}"));
            }
            column
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A column name as DDL must write it: quoted unless it is a plain lower-case identifier.
fn sql_name(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { name.to_string() } else { crate::kalamsql::quote_ident(name) }
}

fn default_of(def: &TableDef, column: &str) -> Option<String> {
    def.defaults.iter().find(|(c, _)| c == column).map(|(_, sql)| sql.clone())
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Tables,
    Columns,
    Namespaces,
    Users,
    Sessions,
}

const KINDS: [(&str, Kind); 5] = [
    ("tables", Kind::Tables),
    ("columns", Kind::Columns),
    ("namespaces", Kind::Namespaces),
    ("users", Kind::Users),
    ("sessions", Kind::Sessions),
];

fn time(name: &str) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false)
}

fn schema_of(kind: Kind) -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let fields = match kind {
        Kind::Tables => vec![
            text("namespace_id"),
            text("table_name"),
            text("table_type"),
            Field::new("table_id", DataType::UInt64, false),
            Field::new("primary_key", DataType::Utf8, true),
            text("flush_policy"),
            Field::new("ttl_seconds", DataType::Int64, true),
            text("access_level"),
            Field::new("rows_in_memory", DataType::UInt64, false),
            Field::new("segments", DataType::UInt64, false),
            time("created_at"),
            text("columns"),
        ],
        Kind::Columns => vec![
            text("namespace_id"),
            text("table_name"),
            text("column_name"),
            text("data_type"),
            text("is_nullable"),
            Field::new("column_default", DataType::Utf8, true),
            Field::new("ordinal_position", DataType::Int64, false),
            Field::new("is_primary_key", DataType::Boolean, false),
            text("arrow_type"),
        ],
        Kind::Namespaces => {
            vec![text("namespace_id"), Field::new("table_count", DataType::UInt64, false), time("created_at")]
        }
        Kind::Users => vec![
            text("user_id"),
            text("role"),
            Field::new("can_login", DataType::Boolean, false),
            time("created_at"),
        ],
        Kind::Sessions => vec![
            text("user_id"),
            text("role"),
            time("opened_at"),
            time("last_used_at"),
            Field::new("expires_in_seconds", DataType::UInt64, false),
        ],
    };
    Arc::new(Schema::new(fields))
}

pub struct SystemSchema {
    store: Arc<Store>,
    sessions: Arc<Sessions>,
    /// Every namespace (this one among them), for `system.columns`; weak, because the catalog
    /// holds this schema.
    catalog: Weak<dyn CatalogProvider>,
}

impl std::fmt::Debug for SystemSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemSchema")
    }
}

impl SystemSchema {
    pub fn new(store: Arc<Store>, sessions: Arc<Sessions>, catalog: Weak<dyn CatalogProvider>) -> Self {
        Self { store, sessions, catalog }
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        KINDS.iter().map(|(name, _)| name.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(KINDS.iter().find(|(n, _)| *n == name).map(|(_, kind)| {
            Arc::new(SystemTable {
                kind: *kind,
                store: self.store.clone(),
                sessions: self.sessions.clone(),
                catalog: self.catalog.clone(),
            }) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        KINDS.iter().any(|(n, _)| *n == name)
    }
}

struct SystemTable {
    kind: Kind,
    store: Arc<Store>,
    sessions: Arc<Sessions>,
    catalog: Weak<dyn CatalogProvider>,
}

/// One row of `system.columns`.
struct ColumnRow {
    namespace: String,
    table: String,
    field: FieldRef,
    default: Option<String>,
    in_primary_key: bool,
}

/// The columns of every table, view and system table, by namespace and table name.
async fn column_rows(catalog: &dyn CatalogProvider) -> Vec<(ColumnRow, usize)> {
    let mut rows = Vec::new();
    let mut namespaces = catalog.schema_names();
    namespaces.sort();
    for namespace in namespaces {
        let Some(schema) = catalog.schema(&namespace) else { continue };
        let mut tables = schema.table_names();
        tables.sort();
        for table in tables {
            // A table dropped since it was listed is left out.
            let Ok(Some(provider)) = schema.table(&table).await else { continue };
            let def = provider.downcast_ref::<KalamTable>().map(|t| t.def.clone());
            for (position, field) in provider.schema().fields().iter().enumerate() {
                let row = ColumnRow {
                    namespace: namespace.clone(),
                    table: table.clone(),
                    field: field.clone(),
                    default: def.as_ref().and_then(|d| default_of(d, field.name())),
                    in_primary_key: def.as_ref().is_some_and(|d| d.primary_key.contains(field.name())),
                };
                rows.push((row, position + 1));
            }
        }
    }
    rows
}

impl std::fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SystemTable({:?})", self.kind)
    }
}

fn strings(values: impl IntoIterator<Item = String>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn times(values: impl IntoIterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from_iter_values(values).with_timezone("UTC"))
}

impl SystemTable {
    async fn rows(&self) -> Result<RecordBatch> {
        let schema = schema_of(self.kind);
        let columns: Vec<ArrayRef> = match self.kind {
            Kind::Tables => {
                let catalog = self.store.catalog();
                let tables: Vec<_> = catalog.tables.values().cloned().collect();
                drop(catalog);
                let stats: Vec<(u64, u64)> = tables
                    .iter()
                    .map(|(_, shared)| {
                        let data = shared.lock();
                        let rows = data.partitions.values().map(|p| p.hot_rows as u64).sum();
                        let segments = data.partitions.values().map(|p| p.segments.len() as u64).sum();
                        (rows, segments)
                    })
                    .collect();
                vec![
                    strings(tables.iter().map(|(d, _)| d.namespace.clone())),
                    strings(tables.iter().map(|(d, _)| d.name.clone())),
                    strings(tables.iter().map(|(d, _)| d.kind.name().to_string())),
                    Arc::new(UInt64Array::from_iter_values(tables.iter().map(|(d, _)| d.id))),
                    Arc::new(StringArray::from_iter(
                        tables
                            .iter()
                            .map(|(d, _)| (!d.primary_key.is_empty()).then(|| d.primary_key.join(","))),
                    )),
                    strings(tables.iter().map(|(d, _)| d.flush.to_text())),
                    Arc::new(Int64Array::from_iter(
                        tables.iter().map(|(d, _)| d.ttl_seconds.map(|t| t as i64)),
                    )),
                    strings(tables.iter().map(|(d, _)| format!("{:?}", d.access).to_lowercase())),
                    Arc::new(UInt64Array::from_iter_values(stats.iter().map(|s| s.0))),
                    Arc::new(UInt64Array::from_iter_values(stats.iter().map(|s| s.1))),
                    times(tables.iter().map(|(d, _)| d.created_ms)),
                    strings(tables.iter().map(|(d, _)| column_definitions(d))),
                ]
            }
            Kind::Columns => {
                let columns = match self.catalog.upgrade() {
                    Some(catalog) => column_rows(catalog.as_ref()).await,
                    None => Vec::new(),
                };
                let yes_no = |yes: bool| if yes { "YES" } else { "NO" }.to_string();
                vec![
                    strings(columns.iter().map(|(c, _)| c.namespace.clone())),
                    strings(columns.iter().map(|(c, _)| c.table.clone())),
                    strings(columns.iter().map(|(c, _)| c.field.name().clone())),
                    strings(columns.iter().map(|(c, _)| types::type_name(&c.field))),
                    strings(columns.iter().map(|(c, _)| yes_no(c.field.is_nullable()))),
                    Arc::new(StringArray::from_iter(columns.iter().map(|(c, _)| c.default.clone()))),
                    Arc::new(Int64Array::from_iter_values(columns.iter().map(|(_, p)| *p as i64))),
                    Arc::new(BooleanArray::from_iter(columns.iter().map(|(c, _)| Some(c.in_primary_key)))),
                    strings(columns.iter().map(|(c, _)| c.field.data_type().to_string())),
                ]
            }
            Kind::Namespaces => {
                let catalog = self.store.catalog();
                let count =
                    |ns: &str| catalog.tables.values().filter(|(d, _)| d.namespace == ns).count() as u64;
                vec![
                    strings(catalog.namespaces.keys().cloned()),
                    Arc::new(UInt64Array::from_iter_values(catalog.namespaces.keys().map(|ns| count(ns)))),
                    times(catalog.namespaces.values().map(|n| n.created_ms)),
                ]
            }
            Kind::Users => {
                let catalog = self.store.catalog();
                vec![
                    strings(catalog.users.keys().cloned()),
                    strings(catalog.users.values().map(|u| u.role.name().to_string())),
                    Arc::new(BooleanArray::from_iter(
                        catalog.users.values().map(|u| Some(!u.password_hash.is_empty())),
                    )),
                    times(catalog.users.values().map(|u| u.created_ms)),
                ]
            }
            Kind::Sessions => {
                let sessions = self.sessions.list();
                vec![
                    strings(sessions.iter().map(|s| s.user.clone())),
                    strings(sessions.iter().map(|s| s.role.name().to_string())),
                    times(sessions.iter().map(|s| s.opened_ms)),
                    times(sessions.iter().map(|s| s.last_used_ms)),
                    Arc::new(UInt64Array::from_iter_values(sessions.iter().map(|s| s.expires_in_secs))),
                ]
            }
        };
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        schema_of(self.kind)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let request = RequestContext::of(state.config());
        if !request.principal.role.is_admin() && !matches!(self.kind, Kind::Columns) {
            return Err(DataFusionError::Plan(format!(
                "permission denied: system tables are readable by dba and system accounts; '{}' is {}",
                request.principal.user,
                request.principal.role.name()
            )));
        }
        let batch = self.rows().await?;
        let source = MemorySourceConfig::try_new(&[vec![batch]], self.schema(), projection.cloned())?;
        Ok(DataSourceExec::from_data_source(source))
    }
}
