//! [`KalamClient`]: one gRPC connection to a KalamDB server, and [`QueryStream`], the result of
//! a statement query read batch by batch.

use std::collections::VecDeque;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::sql::{CommandStatementQuery, CommandStatementUpdate, DoPutUpdateResult, ProstMessageExt};
use arrow_flight::{FlightClient, FlightData, FlightDescriptor, FlightInfo, Ticket};
use arrow_schema::SchemaRef;
use futures::StreamExt;
use prost::Message;
use tonic::transport::{Channel, Endpoint};

use crate::error::Error;
use crate::protocol::MESSAGE_BYTES_MAX;

/// Where and how to reach a server. Built by the caller from its own options.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub host: String,
    pub port: u16,
    /// Bound on establishing the connection.
    pub connect_timeout: Duration,
    /// Bound on each request, and on the silence between two messages of a result stream: a
    /// server that dies or a network that goes quiet surfaces as [`Error::Timeout`].
    pub request_timeout: Duration,
    /// Largest message accepted from the server.
    pub message_bytes_max: usize,
}

impl ClientConfig {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            message_bytes_max: MESSAGE_BYTES_MAX,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self.request_timeout = timeout;
        self
    }

    /// `host:port`, as shown in messages (IPv6 literals bracketed).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A connection to one KalamDB server. Cheap to clone: clones share the HTTP/2 connection.
#[derive(Clone, Debug)]
pub struct KalamClient {
    channel: Channel,
    config: ClientConfig,
}

impl KalamClient {
    /// Connects now, so that an unreachable server is reported here, with its address.
    pub async fn connect(config: ClientConfig) -> Result<Self, Error> {
        let addr = config.addr();
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Error::Config(format!("invalid KalamDB server address {addr}: {e}")))?
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // No HTTP/2 keep-alive pings: a caller may drive the runtime only while it waits
            // on a request, and an unanswered ping found late would drop a healthy connection.
            // Silence is bounded by `request_timeout` instead.
            .tcp_nodelay(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| Error::Unreachable { addr: addr.clone(), reason: transport_reason(&e) })?;
        Ok(Self { channel, config })
    }

    fn flight(&self) -> FlightClient {
        let inner = arrow_flight::flight_service_client::FlightServiceClient::new(self.channel.clone())
            .max_decoding_message_size(self.config.message_bytes_max)
            .max_encoding_message_size(self.config.message_bytes_max);
        FlightClient::new_from_inner(inner)
    }

    /// Runs a statement query: GetFlightInfo, then DoGet on each endpoint in order. Returns as
    /// soon as the server has planned the query; batches are read with [`QueryStream::next_batch`].
    pub async fn query(&self, sql: &str) -> Result<QueryStream, Error> {
        let command = CommandStatementQuery { query: sql.to_string(), transaction_id: None };
        let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
        let mut flight = self.flight();
        let info = self.bounded(flight.get_flight_info(descriptor)).await?;
        QueryStream::new(flight, info, self.clone())
    }

    /// Runs a statement that returns no rows (DDL, INSERT/UPDATE/DELETE) and returns the number
    /// of rows it changed, as the server reports it.
    pub async fn execute_update(&self, sql: &str) -> Result<i64, Error> {
        let command = CommandStatementUpdate { query: sql.to_string(), transaction_id: None };
        let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
        let request = futures::stream::iter([Ok(FlightData::new().with_descriptor(descriptor))]);
        let mut flight = self.flight();
        let mut results = self.bounded(flight.do_put(request)).await?;
        let first = match tokio::time::timeout(self.config.request_timeout, results.next()).await {
            Err(_) => return Err(self.timeout_error()),
            Ok(None) => {
                return Err(Error::Protocol("the server sent no result for an update".into()));
            }
            Ok(Some(result)) => result.map_err(Error::from_flight)?,
        };
        let result = DoPutUpdateResult::decode(first.app_metadata)
            .map_err(|e| Error::Protocol(format!("invalid update result: {e}")))?;
        Ok(result.record_count)
    }

    async fn bounded<T>(
        &self,
        request: impl Future<Output = Result<T, arrow_flight::error::FlightError>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.config.request_timeout, request).await {
            Ok(result) => result.map_err(Error::from_flight),
            Err(_) => Err(self.timeout_error()),
        }
    }

    fn timeout_error(&self) -> Error {
        Error::Timeout { addr: self.config.addr(), timeout: self.config.request_timeout }
    }
}

/// The batches of one query, fetched lazily: at most one Flight message is buffered here.
pub struct QueryStream {
    client: KalamClient,
    flight: FlightClient,
    schema: SchemaRef,
    tickets: VecDeque<Ticket>,
    current: Option<FlightRecordBatchStream>,
}

impl QueryStream {
    fn new(flight: FlightClient, info: FlightInfo, client: KalamClient) -> Result<Self, Error> {
        let schema = info
            .clone()
            .try_decode_schema()
            .map_err(|e| Error::Protocol(format!("FlightInfo carries no valid schema: {e}")))?;
        let mut tickets = VecDeque::with_capacity(info.endpoint.len());
        for endpoint in info.endpoint {
            // Every endpoint is fetched over this same connection: kalamdb-server serves all of
            // them itself. Endpoints that name other locations are not supported yet.
            let ticket =
                endpoint.ticket.ok_or_else(|| Error::Protocol("FlightInfo endpoint has no ticket".into()))?;
            tickets.push_back(ticket);
        }
        Ok(Self { client, flight, schema: schema.into(), tickets, current: None })
    }

    /// Schema announced by the server before any batch arrived.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The next non-empty batch, or `None` at the end of the result.
    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>, Error> {
        loop {
            if self.current.is_none() {
                let Some(ticket) = self.tickets.pop_front() else {
                    return Ok(None);
                };
                let stream = self.client.bounded(self.flight.do_get(ticket)).await?;
                self.current = Some(stream);
            }
            let stream = self.current.as_mut().expect("set above");
            let next = tokio::time::timeout(self.client.config.request_timeout, stream.next()).await;
            match next {
                Err(_) => return Err(self.client.timeout_error()),
                Ok(None) => self.current = None,
                Ok(Some(Err(e))) => return Err(Error::from_flight(e)),
                Ok(Some(Ok(batch))) if batch.num_rows() == 0 => continue,
                Ok(Some(Ok(batch))) => return Ok(Some(batch)),
            }
        }
    }
}

/// The innermost cause of a transport error ("Connection refused"), without tonic's wrapping.
fn transport_reason(err: &tonic::transport::Error) -> String {
    let mut source: &dyn std::error::Error = err;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}
