//! The client side of every measurement: one Flight SQL connection, statements, bulk ingest and
//! timed full scans.

use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandStatementIngest, TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use futures::TryStreamExt;
use kalam_flight::protocol::MESSAGE_BYTES_MAX;
use tonic::transport::{Channel, Endpoint};

use crate::data;

/// What one full scan measured, from the GetFlightInfo request to the last decoded batch.
#[derive(Clone, Debug)]
pub struct ScanStats {
    pub rows: usize,
    /// Bytes of Arrow buffers decoded (see [`data::batch_bytes`]): more than the table holds
    /// when the server sends extra columns, or slices of view arrays with their whole buffers.
    pub bytes_received: usize,
    pub first_batch: Duration,
    pub total: Duration,
    /// Column names of the result.
    pub columns: Vec<String>,
}

pub struct Client {
    addr: String,
    sql: FlightSqlServiceClient<Channel>,
}

impl Client {
    /// Connects now, so that an unreachable server is reported here with its address.
    pub async fn connect(addr: &str) -> Result<Self, String> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("invalid Flight address {addr:?} ({e}); give HOST:PORT"))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}; is the server running on that port?"))?;
        let inner = FlightServiceClient::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX);
        Ok(Self { addr: addr.to_string(), sql: FlightSqlServiceClient::new_from_inner(inner) })
    }

    /// `CREATE NAMESPACE IF NOT EXISTS`, or DataFusion's `CREATE SCHEMA IF NOT EXISTS` on a
    /// server that does not know namespaces by that name.
    pub async fn create_namespace(&mut self, namespace: &str) -> Result<(), String> {
        let statement = format!("CREATE NAMESPACE IF NOT EXISTS {namespace}");
        let Err(namespace_error) = self.sql.execute_update(statement.clone(), None).await else {
            return Ok(());
        };
        let fallback = format!("CREATE SCHEMA IF NOT EXISTS {namespace}");
        match self.sql.execute_update(fallback.clone(), None).await {
            Ok(_) => Ok(()),
            Err(e) => Err(format!(
                "{} refused both {statement:?} ({}) and {fallback:?} ({})",
                self.addr,
                reason(&namespace_error),
                reason(&e)
            )),
        }
    }

    /// Drops a table left by an earlier run, so that ingest measures creating and filling it.
    pub async fn drop_table(&mut self, table: &str) -> Result<(), String> {
        let statement = format!("DROP TABLE IF EXISTS {table}");
        match self.sql.execute_update(statement.clone(), None).await {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{statement} on {} failed: {}", self.addr, reason(&e))),
        }
    }

    /// Flight SQL bulk ingest (`CommandStatementIngest` over DoPut) into `namespace.table`,
    /// which the first request (`create`) creates and the others append to. Returns the row
    /// count the server reports.
    pub async fn ingest(
        &mut self,
        namespace: &str,
        table: &str,
        batches: &[RecordBatch],
        create: bool,
    ) -> Result<i64, String> {
        let if_exists = if create { TableExistsOption::Fail } else { TableExistsOption::Append };
        let options = TableDefinitionOptions {
            if_not_exist: TableNotExistOption::Create.into(),
            if_exists: if_exists.into(),
        };
        let command = CommandStatementIngest {
            table_definition_options: Some(options),
            table: table.to_string(),
            schema: Some(namespace.to_string()),
            ..Default::default()
        };
        // The request stream must own its batches; cloning them clones only `Arc`s.
        let batches: Vec<RecordBatch> = batches.to_vec();
        let stream = futures::stream::iter(batches.into_iter().map(Ok));
        self.sql.execute_ingest(command, stream).await.map_err(|e| match status_code(&e) {
            Some(tonic::Code::Unimplemented) => format!(
                "{} does not support Flight SQL bulk ingest (CommandStatementIngest, {:?} if the \
                 table exists): {}; run a kalamdb-server build that implements it",
                self.addr,
                if_exists,
                reason(&e)
            ),
            _ => format!("bulk ingest into {namespace}.{table} on {} failed: {}", self.addr, reason(&e)),
        })
    }

    /// Runs `sql` with GetFlightInfo, reads every endpoint with DoGet, decodes every batch and
    /// drops it once counted.
    pub async fn scan(&mut self, sql: &str) -> Result<ScanStats, String> {
        let started = Instant::now();
        let failed = |e: FlightError| format!("{sql} on {} failed: {}", self.addr, reason(&e));
        let info = self.sql.execute(sql.to_string(), None).await.map_err(failed)?;
        let mut first_batch = None;
        let (mut rows, mut bytes_received, mut columns) = (0, 0, Vec::new());
        for endpoint in info.endpoint {
            let ticket = endpoint
                .ticket
                .ok_or_else(|| format!("{sql}: the FlightInfo has an endpoint without ticket"))?;
            let mut batches = self.sql.do_get(ticket).await.map_err(failed)?;
            while let Some(batch) = batches.try_next().await.map_err(failed)? {
                if first_batch.is_none() {
                    first_batch = Some(started.elapsed());
                    columns = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
                }
                rows += batch.num_rows();
                bytes_received += data::batch_bytes(&batch);
            }
        }
        let total = started.elapsed();
        Ok(ScanStats { rows, bytes_received, first_batch: first_batch.unwrap_or(total), total, columns })
    }
}

fn status_code(err: &FlightError) -> Option<tonic::Code> {
    match err {
        FlightError::Tonic(status) => Some(status.code()),
        _ => None,
    }
}

/// The server's own message for a gRPC error, without the wrapping of each layer.
fn reason(err: &FlightError) -> String {
    match err {
        FlightError::Tonic(status) => format!("{:?}: {}", status.code(), status.message()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ceiling::Ceiling;

    /// A server without bulk ingest gets a message that says so, not a bare gRPC status.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ingest_refused_says_why() {
        let batches = data::generate_lineitem(0.001, 1000).unwrap();
        let ceiling = Ceiling::start(batches.clone()).await.unwrap();
        let mut client = Client::connect(&ceiling.addr().to_string()).await.unwrap();
        let err = client.ingest("bench", "lineitem_sf0_001", &batches, true).await.unwrap_err();
        ceiling.stop().await;
        assert!(err.contains("does not support Flight SQL bulk ingest"), "{err}");
    }
}
