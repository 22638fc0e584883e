//! Flight SQL metadata: catalogs, schemas (KalamDB namespaces), tables with their Arrow
//! schemas, table types and SQL info, as the standard commands describe them. Filters in a
//! request (catalog, LIKE patterns, table types) are applied by arrow-flight's builders.
//!
//! Each answer is small and computed when DoGet asks for it; GetFlightInfo only announces the
//! result schema and hands back the command as the ticket.

use arrow_array::RecordBatch;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    ProstMessageExt, SqlInfo, SqlNullOrdering, SqlSupportedCaseSensitivity, SqlSupportedTransaction,
};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use arrow_schema::Schema;
use prost::Message;
use tonic::Status;

use kalam_flight::protocol::TABLE_KIND_METADATA;

use crate::engine::Engine;

/// Table types the server reports.
pub const TABLE_TYPES: [&str; 2] = ["TABLE", "VIEW"];

/// What the server tells clients about itself (the answer to GetSqlInfo).
pub fn sql_info() -> SqlInfoData {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "kalamdb-server");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    info.append(SqlInfo::FlightSqlServerReadOnly, false);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    info.append(SqlInfo::SqlIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32);
    info.append(SqlInfo::SqlNullOrdering, SqlNullOrdering::SqlNullsSortedHigh as i32);
    info.append(SqlInfo::SqlDdlCatalog, false);
    info.append(SqlInfo::SqlDdlSchema, true);
    info.append(SqlInfo::SqlDdlTable, true);
    info.append(SqlInfo::FlightSqlServerTransaction, SqlSupportedTransaction::Savepoint as i32);
    info.append(SqlInfo::FlightSqlServerBulkIngestion, true);
    info.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, true);
    info.append(kalam_flight::protocol::PG_FUNCTIONS_INFO, crate::pg_functions::names());
    info.build().expect("static SQL info is well formed")
}

/// A FlightInfo whose single endpoint's ticket is the metadata command itself.
pub fn flight_info(
    command: &impl ProstMessageExt,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode metadata schema: {e}")))?
        .with_descriptor(descriptor)
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket)))
}

fn built<E: std::fmt::Display>(result: Result<RecordBatch, E>) -> Result<RecordBatch, Status> {
    result.map_err(|e| Status::internal(format!("cannot build metadata: {e}")))
}

pub fn catalogs(engine: &Engine, command: CommandGetCatalogs) -> Result<RecordBatch, Status> {
    let mut builder = command.into_builder();
    for catalog in engine.catalog_names() {
        builder.append(catalog);
    }
    built(builder.build())
}

pub fn schemas(engine: &Engine, command: CommandGetDbSchemas) -> Result<RecordBatch, Status> {
    let mut builder = command.into_builder();
    for (catalog, schema) in engine.namespaces() {
        builder.append(catalog, schema);
    }
    built(builder.build())
}

pub async fn tables(engine: &Engine, command: CommandGetTables) -> Result<RecordBatch, Status> {
    let mut builder = command.into_builder();
    for table in engine.tables().await {
        let table_type = if table.is_view { "VIEW" } else { "TABLE" };
        // Flight SQL's table types are TABLE and VIEW; KalamDB's kind rides in the schema.
        let schema = match table.kind {
            Some(kind) => {
                let metadata = [(TABLE_KIND_METADATA.to_string(), kind.name().to_string())].into();
                Schema::new_with_metadata(table.schema.fields().clone(), metadata)
            }
            None => table.schema.as_ref().clone(),
        };
        builder
            .append(&table.catalog, &table.namespace, &table.name, table_type, &schema)
            .map_err(|e| Status::internal(format!("cannot encode the schema of {}: {e}", table.name)))?;
    }
    built(builder.build())
}

pub fn table_types(command: CommandGetTableTypes) -> Result<RecordBatch, Status> {
    let mut builder = command.into_builder();
    for table_type in TABLE_TYPES {
        builder.append(table_type);
    }
    built(builder.build())
}

pub fn sql_info_batch(info: &SqlInfoData, command: CommandGetSqlInfo) -> Result<RecordBatch, Status> {
    built(command.into_builder(info).build())
}
