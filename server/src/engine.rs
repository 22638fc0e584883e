//! The query engine: one DataFusion session shared by every protocol front end.
//!
//! KalamDB namespaces are DataFusion schemas of the catalog [`CATALOG`]. Reads are planned with
//! DDL and DML refused, so a query request can never change data; statements go through
//! [`Engine::execute`].

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;

use crate::config::Config;

/// Catalog that holds every namespace.
pub const CATALOG: &str = "kalam";
/// Namespace of unqualified table names.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A failed statement, classified so each front end can answer with the right status.
#[derive(Debug)]
pub enum EngineError {
    /// The statement is wrong: bad SQL, unknown table or column, wrong types.
    InvalidStatement(String),
    /// The statement is valid but exceeds a limit of the server.
    LimitExceeded(String),
    /// Something failed inside the server.
    Internal(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::InvalidStatement(m) | EngineError::LimitExceeded(m) | EngineError::Internal(m) => {
                f.write_str(m)
            }
        }
    }
}

impl From<DataFusionError> for EngineError {
    fn from(err: DataFusionError) -> Self {
        let message = err.strip_backtrace();
        match err.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(..)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(..)
            | DataFusionError::Execution(..)
            | DataFusionError::ArrowError(..) => EngineError::InvalidStatement(message),
            DataFusionError::ResourcesExhausted(..) => EngineError::LimitExceeded(message),
            _ => EngineError::Internal(message),
        }
    }
}

/// The result of [`Engine::execute`]: the batches of a query (bounded by the caller's limit),
/// or the number of rows a DML statement changed.
pub struct StatementResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl StatementResult {
    /// Rows changed by INSERT/UPDATE/DELETE (DataFusion reports them as a single `count`
    /// value), 0 for DDL.
    pub fn affected_rows(&self) -> i64 {
        use arrow_array::cast::AsArray;
        use arrow_array::types::UInt64Type;
        match (self.schema.fields().len(), self.batches.first()) {
            (1, Some(batch)) if self.schema.field(0).name() == "count" => batch
                .column(0)
                .as_primitive_opt::<UInt64Type>()
                .map(|a| a.values().iter().sum::<u64>() as i64)
                .unwrap_or(0),
            _ => 0,
        }
    }
}

pub struct Engine {
    ctx: SessionContext,
}

/// A table as metadata requests list it.
pub struct TableEntry {
    pub catalog: String,
    pub namespace: String,
    pub name: String,
    pub is_view: bool,
    pub schema: SchemaRef,
}

/// DataFusion's own schema of SQL-standard views; not a KalamDB namespace.
const INFORMATION_SCHEMA: &str = "information_schema";

impl Engine {
    pub fn new(config: &Config) -> Self {
        // PostgreSQL's dialect: it parses the JSON key operator `?` (the generic one reads `?` as
        // a placeholder) and treats identifiers as PostgreSQL users expect.
        let session = SessionConfig::new()
            .set_str("datafusion.sql_parser.dialect", "PostgreSQL")
            .with_default_catalog_and_schema(CATALOG, DEFAULT_NAMESPACE)
            .with_create_default_catalog_and_schema(true)
            .with_information_schema(true)
            .with_batch_size(config.limits.batch_rows);
        let mut ctx = SessionContext::new_with_config(session);
        // JSON operators (`->`, `->>`, `?`) and functions (json_get, json_as_text, ...).
        datafusion_functions_json::register_all(&mut ctx).expect("JSON functions register on a new session");
        ctx.register_udf(crate::snowflake::SnowflakeId::udf());
        Self { ctx }
    }

    fn read_only() -> SQLOptions {
        SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
    }

    /// Plans a read-only query and returns the schema of its result, without running it.
    pub async fn query_schema(&self, sql: &str) -> Result<SchemaRef, EngineError> {
        let frame = self.ctx.sql_with_options(sql, Self::read_only()).await?;
        Ok(Arc::new(frame.schema().as_arrow().clone()))
    }

    /// Runs a read-only query as a stream: batches are produced as the consumer pulls them.
    pub async fn query(&self, sql: &str) -> Result<SendableRecordBatchStream, EngineError> {
        let frame = self.ctx.sql_with_options(sql, Self::read_only()).await?;
        Ok(frame.execute_stream().await?)
    }

    pub fn catalog_names(&self) -> Vec<String> {
        self.ctx.catalog_names()
    }

    /// Every (catalog, namespace) pair.
    pub fn namespaces(&self) -> Vec<(String, String)> {
        let mut namespaces = Vec::new();
        for catalog_name in self.ctx.catalog_names() {
            let Some(catalog) = self.ctx.catalog(&catalog_name) else { continue };
            for schema in catalog.schema_names() {
                if schema != INFORMATION_SCHEMA {
                    namespaces.push((catalog_name.clone(), schema));
                }
            }
        }
        namespaces
    }

    /// Every table and view of every namespace, with its Arrow schema.
    pub async fn tables(&self) -> Vec<TableEntry> {
        let mut tables = Vec::new();
        for (catalog_name, namespace) in self.namespaces() {
            let Some(schema) = self.ctx.catalog(&catalog_name).and_then(|c| c.schema(&namespace)) else {
                continue;
            };
            for name in schema.table_names() {
                // A table dropped since it was listed is simply left out.
                let Ok(Some(table)) = schema.table(&name).await else { continue };
                tables.push(TableEntry {
                    catalog: catalog_name.clone(),
                    namespace: namespace.clone(),
                    is_view: table.table_type() == datafusion::datasource::TableType::View,
                    schema: table.schema(),
                    name,
                });
            }
        }
        tables
    }

    /// Runs any statement and collects its result, refusing results over `rows_max` rows.
    pub async fn execute(&self, sql: &str, rows_max: usize) -> Result<StatementResult, EngineError> {
        let frame = self.ctx.sql(sql).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let mut stream = frame.execute_stream().await?;
        let mut batches = Vec::new();
        let mut rows = 0usize;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows();
            if rows > rows_max {
                return Err(EngineError::LimitExceeded(format!(
                    "the result has more than {rows_max} rows; add a LIMIT or read it through Flight SQL"
                )));
            }
            batches.push(batch);
        }
        Ok(StatementResult { schema, batches })
    }
}
