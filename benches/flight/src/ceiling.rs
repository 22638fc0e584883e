//! The ceiling: the least a Flight SQL server can do to answer `SELECT * FROM lineitem`. The
//! batches already sit in memory in a DataFusion `MemTable`; the query is planned by a bare
//! `SessionContext` and its stream encoded like kalamdb-server encodes its own (same encoder,
//! same message size), over loopback. No storage, no catalog, no conversion.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery};
use arrow_flight::{FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::{Stream, TryStreamExt};
use kalam_flight::protocol::{FLIGHT_DATA_BYTES_TARGET, MESSAGE_BYTES_MAX};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::data::LINEITEM;

/// A running in-process server; [`Ceiling::stop`] shuts it down.
pub struct Ceiling {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Ceiling {
    /// Serves `batches` as table [`LINEITEM`] on a free loopback port.
    pub async fn start(batches: Vec<RecordBatch>) -> Result<Self, String> {
        let schema = batches.first().ok_or("no batches to serve; use a larger --sf")?.schema();
        let table = MemTable::try_new(schema, vec![batches])
            .map_err(|e| format!("cannot build the ceiling's in-memory table: {e}"))?;
        let ctx = SessionContext::new();
        ctx.register_table(LINEITEM, Arc::new(table))
            .map_err(|e| format!("cannot register the ceiling's table: {e}"))?;

        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on a loopback port for the ceiling server: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("ceiling listener has no address: {e}"))?;
        let service = FlightServiceServer::new(MemTableFlightSql { ctx })
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX);
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let serving = tokio::spawn(
            tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
                incoming,
                async {
                    let _ = stopped.await;
                },
            ),
        );
        Ok(Self { addr, stop, serving })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        match self.serving.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("kalam-bench: the ceiling server failed: {e}"),
            Err(e) => eprintln!("kalam-bench: the ceiling server task failed: {e}"),
        }
    }
}

struct MemTableFlightSql {
    ctx: SessionContext,
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl FlightSqlService for MemTableFlightSql {
    type FlightService = MemTableFlightSql;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let plan = self.ctx.sql(&query.query).await.map_err(internal)?;
        let handle = TicketStatementQuery { statement_handle: query.query.into_bytes().into() };
        let ticket = Ticket::new(handle.as_any().encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(plan.schema().as_arrow())
            .map_err(internal)?
            .with_descriptor(request.into_inner())
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket));
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let sql = std::str::from_utf8(&ticket.statement_handle).map_err(internal)?;
        let batches = self.ctx.sql(sql).await.map_err(internal)?.execute_stream().await.map_err(internal)?;
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(batches.schema())
            .with_max_flight_data_size(FLIGHT_DATA_BYTES_TARGET)
            .build(batches.map_err(|e| FlightError::ExternalError(Box::new(e))))
            .map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;
    use crate::data;

    /// The ceiling serves every generated row and column, and the client decodes exactly the
    /// bytes the table holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_the_whole_table() {
        let batches = data::generate_lineitem(0.001, 1000).unwrap();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let bytes = data::batches_bytes(&batches);
        let ceiling = Ceiling::start(batches).await.unwrap();
        let mut client = Client::connect(&ceiling.addr().to_string()).await.unwrap();
        let stats =
            tokio::time::timeout(std::time::Duration::from_secs(60), client.scan("SELECT * FROM lineitem"))
                .await
                .expect("scan finishes")
                .unwrap();
        ceiling.stop().await;
        assert_eq!(stats.rows, rows);
        assert_eq!(stats.bytes_received, bytes);
        assert_eq!(stats.columns.len(), 16);
        assert!(stats.first_batch <= stats.total);
    }
}
