//! The Arrow Flight SQL front end. Implements what the server supports; every other request
//! keeps arrow-flight's default `Unimplemented` answer.
//!
//! Every call is authenticated from its `authorization` header ([`crate::auth`]); the
//! `kalam-user-id` header names the user a dba or system account acts for. Transactions and
//! prepared statements are server-side handles, bounded in number and tied to the account that
//! opened them.
//!
//! Any statement may be sent as a statement query or a prepared-statement query, the way DBAPI,
//! JDBC and BI tools send everything:
//! - A query (SELECT, SHOW, DESCRIBE, EXPLAIN, ...) is planned at GetFlightInfo and run at DoGet;
//!   its ticket carries the statement (and the transaction), so nothing is held in between and
//!   DoGet re-plans it.
//! - A statement that changes something (DDL, INSERT/UPDATE/DELETE, accounts) runs at
//!   GetFlightInfo, exactly once per GetFlightInfo call: a client that retries GetFlightInfo runs
//!   it again. Its ticket carries the result, so DoGet (retried or not) runs nothing. INSERT,
//!   UPDATE and DELETE answer one row `rows_affected` (Int64), and the FlightInfo's total_records
//!   is that count (what DBAPI and JDBC drivers report as the row count); other statements
//!   answer no columns and no rows. Inside a Flight SQL transaction INSERT, UPDATE and DELETE
//!   join it; DDL and account statements take effect at once, as they do sent as updates.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_array::{ArrayRef, Int32Array, Int64Array, StringArray};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::SqlInfoData;
use arrow_flight::sql::server::{DoPutError, FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginSavepointResult, ActionBeginTransactionRequest,
    ActionBeginTransactionResult, ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, ActionEndSavepointRequest, ActionEndTransactionRequest,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest,
    CommandStatementQuery, CommandStatementUpdate, DoPutPreparedStatementResult, EndTransaction,
    ProstMessageExt, SqlInfo, TableExistsOption, TableNotExistOption, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use futures::{Stream, StreamExt, TryStreamExt};
use kalam_flight::protocol::{
    END_SAVEPOINT_RELEASE, END_SAVEPOINT_ROLLBACK, FLIGHT_DATA_BYTES_TARGET, MESSAGE_BYTES_MAX,
    RESERVE_IDS_ACTION, RESERVE_IDS_MAX, SESSION_LEASE_HEADER, USER_ID_HEADER,
};
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::engine::{CATALOG, DEFAULT_NAMESPACE, Engine, EngineError, Outcome, rows_affected_schema};
use crate::metadata;
use crate::session::{Principal, RequestContext, Savepoint, Transaction};

/// A transaction begun by a client: its owner and when it was last used.
struct OpenTransaction {
    owner: String,
    tx: Arc<Transaction>,
    last_used: Instant,
    /// Open savepoints, oldest first: (number, name, what the transaction held when it began).
    savepoints: Vec<(u64, String, Savepoint)>,
    next_savepoint: u64,
}

/// Most savepoints open in one transaction.
const SAVEPOINTS_MAX: usize = 10_000;

/// A transaction left unused this long is rolled back (its client went away).
const TRANSACTION_IDLE_MAX: Duration = Duration::from_secs(600);

/// A prepared statement: its SQL and the parameter rows bound last.
struct Prepared {
    owner: String,
    sql: String,
    params: Vec<Vec<ScalarValue>>,
    transaction: Option<u64>,
}

pub struct KalamFlightSql {
    engine: Arc<Engine>,
    sql_info: SqlInfoData,
    transactions: Mutex<HashMap<u64, OpenTransaction>>,
    prepared: Mutex<HashMap<u64, Prepared>>,
    handles_max: usize,
    /// Rows per batch the tables keep (ingested slices are combined up to this).
    batch_rows: usize,
}

pub(crate) fn status(err: EngineError) -> Status {
    match err {
        EngineError::InvalidStatement(m) => Status::invalid_argument(m),
        EngineError::PermissionDenied(m) => Status::permission_denied(m),
        EngineError::Conflict(m) => Status::aborted(m),
        EngineError::LimitExceeded(m) => Status::resource_exhausted(m),
        EngineError::Internal(m) => Status::internal(m),
        EngineError::Violation(v) => {
            let mut status = Status::invalid_argument(v.message);
            let metadata = status.metadata_mut();
            metadata.insert(kalam_flight::protocol::SQLSTATE_HEADER, v.sqlstate.parse().expect("ASCII"));
            if let Some(detail) = v.detail {
                metadata.insert_bin(
                    kalam_flight::protocol::DETAIL_HEADER,
                    tonic::metadata::MetadataValue::from_bytes(detail.as_bytes()),
                );
            }
            status
        }
    }
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;
type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

/// A DoGet answer of one batch (metadata results are small).
fn one_batch(batch: RecordBatch) -> Response<DoGetStream> {
    let schema = batch.schema();
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Response::new(Box::pin(stream))
}

/// Streams a query result. Batches are cut here, by the bytes their rows use, into pieces of
/// about [`FLIGHT_DATA_BYTES_TARGET`]: the encoder would cut by buffer capacity instead, and a
/// piece of a string view column would carry all of its parent's data buffers.
fn stream_batches(batches: datafusion::execution::SendableRecordBatchStream) -> Response<DoGetStream> {
    let schema = batches.schema();
    let pieces = batches
        .map_ok(|batch| {
            futures::stream::iter(message_pieces(batch).into_iter().map(Ok::<_, DataFusionError>))
        })
        .try_flatten()
        .map_err(|e| FlightError::from(status(EngineError::from(e))));
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .with_max_flight_data_size(MESSAGE_BYTES_MAX / 2)
        .build(pieces)
        .map_err(Status::from);
    Response::new(Box::pin(stream))
}

fn message_pieces(batch: RecordBatch) -> Vec<RecordBatch> {
    use crate::storage::table::{batch_bytes, compact_views};
    let batch = compact_views(batch);
    let (bytes, rows) = (batch_bytes(&batch), batch.num_rows());
    if bytes <= FLIGHT_DATA_BYTES_TARGET || rows <= 1 {
        return vec![batch];
    }
    let rows_per_piece = rows.div_ceil(bytes.div_ceil(FLIGHT_DATA_BYTES_TARGET)).max(1);
    (0..rows)
        .step_by(rows_per_piece)
        .map(|start| compact_views(batch.slice(start, rows_per_piece.min(rows - start))))
        .collect()
}

fn schema_bytes(schema: &Schema) -> Result<Bytes, Status> {
    let message = IpcMessage::try_from(SchemaAsIpc::new(schema, &Default::default()))
        .map_err(|e| Status::internal(format!("cannot encode a schema: {e}")))?;
    Ok(message.0)
}

/// What a statement that changes something did.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Changed {
    /// INSERT, UPDATE, DELETE: rows changed.
    Rows(i64),
    /// DDL and account statements.
    Done,
}

impl Changed {
    fn add(self, outcome: Outcome) -> Result<Self, Status> {
        Ok(match (self, outcome) {
            (Changed::Rows(a), Outcome::Count(b)) => Changed::Rows(a + b),
            (Changed::Done, Outcome::Count(b)) => Changed::Rows(b),
            (changed, Outcome::Done) => changed,
            (_, Outcome::Rows(_)) => {
                return Err(Status::invalid_argument("this statement returns rows: run it as a query"));
            }
        })
    }

    /// The number an update reports.
    fn count(self) -> i64 {
        match self {
            Changed::Rows(n) => n,
            Changed::Done => 0,
        }
    }
}

/// What a statement ticket redeems.
#[derive(Debug, PartialEq)]
enum StatementTicket<'a> {
    /// A query to plan and stream, in its transaction (if any).
    Query { transaction: Option<u64>, sql: &'a str },
    /// The result of a statement that ran at GetFlightInfo.
    Ran(Changed),
}

const QUERY_TICKET: u8 = b'q';
const RESULT_TICKET: u8 = b'r';
/// [`Changed::Done`] in a result ticket (a row count is never negative).
const DONE_IN_TICKET: i64 = -1;

/// Query ticket: `q`, transaction id (0 = none), then the SQL text.
fn encode_ticket(sql: &str, transaction: Option<u64>) -> Bytes {
    let mut bytes = vec![QUERY_TICKET];
    bytes.extend_from_slice(&transaction.unwrap_or(0).to_le_bytes());
    bytes.extend_from_slice(sql.as_bytes());
    bytes.into()
}

/// Result ticket: `r`, then the row count ([`DONE_IN_TICKET`] for DDL).
fn encode_result_ticket(changed: Changed) -> Bytes {
    let count = match changed {
        Changed::Rows(n) => n,
        Changed::Done => DONE_IN_TICKET,
    };
    let mut bytes = vec![RESULT_TICKET];
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes.into()
}

fn decode_ticket(handle: &[u8]) -> Result<StatementTicket<'_>, Status> {
    let bad = || Status::invalid_argument("malformed statement ticket; request a new FlightInfo");
    let (&kind, rest) = handle.split_first().ok_or_else(bad)?;
    let (number, sql) = rest.split_at_checked(8).ok_or_else(bad)?;
    let number = u64::from_le_bytes(number.try_into().expect("8 bytes"));
    match kind {
        QUERY_TICKET => Ok(StatementTicket::Query {
            transaction: (number != 0).then_some(number),
            sql: std::str::from_utf8(sql).map_err(|_| bad())?,
        }),
        RESULT_TICKET if sql.is_empty() => Ok(StatementTicket::Ran(match number as i64 {
            DONE_IN_TICKET => Changed::Done,
            n if n >= 0 => Changed::Rows(n),
            _ => return Err(bad()),
        })),
        _ => Err(bad()),
    }
}

/// The FlightInfo of a statement that already ran: its result is in the ticket.
fn ran_info(changed: Changed, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
    let (schema, total_records) = match changed {
        Changed::Rows(n) => (rows_affected_schema(), n),
        Changed::Done => (Arc::new(Schema::empty()), 0),
    };
    let handle = TicketStatementQuery { statement_handle: encode_result_ticket(changed) };
    let ticket = Ticket::new(handle.as_any().encode_to_vec());
    Ok(FlightInfo::new()
        .try_with_schema(&schema)
        .map_err(|e| Status::internal(format!("cannot encode result schema: {e}")))?
        .with_descriptor(descriptor)
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_total_records(total_records)
        .with_ordered(true))
}

/// The DoGet answer of a statement that already ran.
fn ran_result(changed: Changed) -> Result<Response<DoGetStream>, Status> {
    match changed {
        Changed::Rows(n) => {
            let batch =
                RecordBatch::try_new(rows_affected_schema(), vec![Arc::new(Int64Array::from(vec![n]))])
                    .map_err(|e| Status::internal(e.to_string()))?;
            Ok(one_batch(batch))
        }
        Changed::Done => {
            let stream = FlightDataEncoderBuilder::new()
                .with_schema(Arc::new(Schema::empty()))
                .build(futures::stream::empty())
                .map_err(Status::from);
            Ok(Response::new(Box::pin(stream)))
        }
    }
}

fn handle_id(bytes: &[u8], what: &str) -> Result<u64, Status> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Status::invalid_argument(format!("malformed {what} handle; open a new one")))?;
    Ok(u64::from_le_bytes(bytes))
}

/// The open transaction `id` of `principal`'s.
fn owned<'a>(
    transactions: &'a mut HashMap<u64, OpenTransaction>,
    id: u64,
    principal: &Principal,
) -> Result<&'a mut OpenTransaction, Status> {
    match transactions.get_mut(&id) {
        Some(open) if open.owner == principal.user => Ok(open),
        _ => {
            Err(Status::not_found("unknown transaction (ended, rolled back or never begun); begin a new one"))
        }
    }
}

fn header<'a>(metadata: &'a MetadataMap, name: &str) -> Option<&'a str> {
    metadata.get(name).and_then(|v| v.to_str().ok())
}

/// The record batches of a DoPut. A message without an IPC header (a client that sends only
/// the command descriptor) carries no data and is skipped.
fn record_batches(stream: PeekableFlightDataStream) -> FlightRecordBatchStream {
    let messages = stream
        .map_err(FlightError::from)
        .try_filter(|message| futures::future::ready(!message.data_header.is_empty()));
    FlightRecordBatchStream::new_from_flight_data(messages)
}

/// The one parameter row of a query.
fn query_params(rows: Vec<Vec<ScalarValue>>) -> Result<Vec<ScalarValue>, Status> {
    match rows.len() {
        0 | 1 => Ok(rows.into_iter().next().unwrap_or_default()),
        n => Err(Status::invalid_argument(format!("a query takes one row of parameters, got {n}"))),
    }
}

impl KalamFlightSql {
    pub fn new(engine: Arc<Engine>, handles_max: usize, batch_rows: usize) -> Self {
        Self {
            batch_rows,
            engine,
            sql_info: metadata::sql_info(),
            transactions: Mutex::new(HashMap::new()),
            prepared: Mutex::new(HashMap::new()),
            handles_max,
        }
    }

    fn principal(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        let catalog = self.engine.store().catalog();
        self.engine
            .sessions
            .authenticate(&catalog, header(metadata, "authorization"))
            .map_err(|e| Status::unauthenticated(e.0))
    }

    /// The context of a call: who, for whom, in which transaction.
    fn context(
        &self,
        metadata: &MetadataMap,
        transaction: Option<u64>,
    ) -> Result<Arc<RequestContext>, Status> {
        let principal = self.principal(metadata)?;
        let transaction = match transaction {
            None => None,
            Some(id) => Some(self.transaction(id, &principal)?),
        };
        self.request_for(metadata, principal, transaction)
    }

    /// `principal`, acting for the user the call's header names, inside `transaction`.
    fn request_for(
        &self,
        metadata: &MetadataMap,
        principal: Principal,
        transaction: Option<Arc<Transaction>>,
    ) -> Result<Arc<RequestContext>, Status> {
        let acting_user = header(metadata, USER_ID_HEADER).map(str::to_string);
        self.engine.request(principal, acting_user, transaction).map_err(status)
    }

    fn transaction(&self, id: u64, principal: &Principal) -> Result<Arc<Transaction>, Status> {
        let mut transactions = self.transactions.lock().unwrap_or_else(|p| p.into_inner());
        let open = owned(&mut transactions, id, principal)?;
        open.last_used = Instant::now();
        Ok(open.tx.clone())
    }

    fn transaction_id(bytes: &Option<Bytes>) -> Result<Option<u64>, Status> {
        bytes.as_ref().filter(|b| !b.is_empty()).map(|b| handle_id(b, "transaction")).transpose()
    }

    /// Runs `f` inside the call's transaction, or inside its own one committed at the end.
    async fn in_transaction<T>(
        &self,
        metadata: &MetadataMap,
        transaction: Option<u64>,
        f: impl AsyncFnOnce(Arc<RequestContext>) -> Result<T, Status>,
    ) -> Result<T, Status> {
        if transaction.is_some() {
            return f(self.context(metadata, transaction)?).await;
        }
        let tx = Arc::new(Transaction::new());
        let request = self.request_for(metadata, self.principal(metadata)?, Some(tx.clone()))?;
        let value = f(request).await?;
        self.engine.commit(&tx).map_err(status)?;
        Ok(value)
    }

    /// Runs a statement that changes something: once per parameter row (once if there are
    /// none), all inside the call's transaction or inside one of its own, committed at the end.
    async fn run_change(
        &self,
        metadata: &MetadataMap,
        transaction: Option<u64>,
        sql: &str,
        mut rows: Vec<Vec<ScalarValue>>,
    ) -> Result<Changed, Status> {
        if rows.is_empty() {
            rows.push(Vec::new());
        }
        self.in_transaction(metadata, transaction, async |context| {
            // Each row runs as a statement of its own: in the client's transaction, the rows
            // before a failing one would stay staged, so they are taken back.
            let tx = context.transaction.clone().expect("in_transaction runs inside a transaction");
            let savepoint = (rows.len() > 1).then(|| tx.savepoint());
            let mut changed = Changed::Done;
            for params in rows {
                let outcome = match self.engine.run_with_params(context.clone(), sql, params).await {
                    Ok(outcome) => changed.add(outcome),
                    Err(e) => Err(status(e)),
                };
                match outcome {
                    Ok(more) => changed = more,
                    Err(e) => {
                        if let Some(savepoint) = savepoint {
                            tx.rollback_to(savepoint);
                        }
                        return Err(e);
                    }
                }
            }
            Ok(changed)
        })
        .await
    }

    /// Drops the prepared statements of the transactions `ended` picks: they cannot run again.
    fn forget_prepared(&self, ended: impl Fn(u64) -> bool) {
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        prepared.retain(|_, p| !p.transaction.is_some_and(&ended));
    }

    fn prepared(
        &self,
        handle: &[u8],
        principal: &Principal,
    ) -> Result<(String, Vec<Vec<ScalarValue>>, Option<u64>), Status> {
        let id = handle_id(handle, "prepared statement")?;
        let prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        match prepared.get(&id) {
            Some(p) if p.owner == principal.user => Ok((p.sql.clone(), p.params.clone(), p.transaction)),
            _ => Err(Status::not_found(
                "unknown prepared statement (closed or never created); prepare it again",
            )),
        }
    }

    async fn ingest_pending(
        &self,
        context: &Arc<RequestContext>,
        namespace: &str,
        table: &str,
        pending: &mut Vec<RecordBatch>,
    ) -> Result<i64, Status> {
        if pending.is_empty() {
            return Ok(0);
        }
        let batch = arrow_select::concat::concat_batches(&pending[0].schema(), pending.iter())
            .map_err(|e| Status::invalid_argument(format!("bad ingest batch: {e}")))?;
        pending.clear();
        self.engine.ingest(context, namespace, table, batch).await.map_err(status)
    }

    /// Parameter rows sent with a DoPut, one value list per row.
    async fn parameter_rows(stream: PeekableFlightDataStream) -> Result<Vec<Vec<ScalarValue>>, Status> {
        let mut batches = record_batches(stream);
        let mut rows = Vec::new();
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| Status::invalid_argument(format!("bad parameter batch: {e}")))?;
            for row in 0..batch.num_rows() {
                let values = batch
                    .columns()
                    .iter()
                    .map(|c| ScalarValue::try_from_array(c, row))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Status::invalid_argument(format!("bad parameter value: {e}")))?;
                rows.push(values);
            }
        }
        Ok(rows)
    }
}

#[tonic::async_trait]
impl FlightSqlService for KalamFlightSql {
    type FlightService = KalamFlightSql;

    /// Login: Basic credentials open a session whose token comes back as
    /// `authorization: Bearer <token>` (and as the payload); a valid session token renews it.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>, Status> {
        let authorization = header(request.metadata(), "authorization");
        let token = match authorization.map(crate::auth::bearer_token) {
            Some(Some(token)) => {
                self.principal(request.metadata())?;
                token.to_string()
            }
            Some(None) => {
                let principal = self.principal(request.metadata())?;
                self.engine.sessions.open_session(principal).map_err(|e| Status::resource_exhausted(e.0))?
            }
            None => {
                return Err(Status::unauthenticated(
                    "log in with 'authorization: Basic base64(user:password)' on the handshake",
                ));
            }
        };
        let payload = Bytes::from(token.clone().into_bytes());
        let stream =
            futures::stream::once(async move { Ok(HandshakeResponse { protocol_version: 0, payload }) });
        let mut response: Response<HandshakeStream> = Response::new(Box::pin(stream));
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("session token is not a valid header value"))?;
        response.metadata_mut().insert("authorization", value);
        // The lease lets a client renew its session before it runs out instead of failing once.
        let lease_ms = self.engine.sessions.lease().as_millis().to_string();
        let lease_ms = lease_ms.parse().map_err(|_| Status::internal("lease is not a valid header value"))?;
        response.metadata_mut().insert(SESSION_LEASE_HEADER, lease_ms);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let transaction = Self::transaction_id(&query.transaction_id)?;
        let context = self.context(request.metadata(), transaction)?;
        let Some((ctx, plan)) = self.engine.plan_if_query(context, &query.query).await.map_err(status)?
        else {
            let changed = self.run_change(request.metadata(), transaction, &query.query, Vec::new()).await?;
            return Ok(Response::new(ran_info(changed, request.into_inner())?));
        };
        let rows = Engine::estimate_rows(&ctx, &plan).await.unwrap_or(-1);
        let handle = TicketStatementQuery { statement_handle: encode_ticket(&query.query, transaction) };
        let ticket = Ticket::new(handle.as_any().encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(plan.schema().as_arrow())
            .map_err(|e| Status::internal(format!("cannot encode result schema: {e}")))?
            .with_descriptor(request.into_inner())
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_total_records(rows)
            .with_ordered(true);
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        match decode_ticket(&ticket.statement_handle)? {
            StatementTicket::Query { transaction, sql } => {
                let context = self.context(request.metadata(), transaction)?;
                let batches = self.engine.query(context, sql).await.map_err(status)?;
                Ok(stream_batches(batches))
            }
            StatementTicket::Ran(changed) => {
                self.principal(request.metadata())?;
                ran_result(changed)
            }
        }
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let transaction = Self::transaction_id(&command.transaction_id)?;
        let context = self.context(request.metadata(), transaction)?;
        self.engine.update(context, &command.query).await.map_err(status)
    }

    /// Bulk ingest: every batch of the stream is appended, all or nothing.
    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        if command.temporary {
            return Err(Status::invalid_argument("temporary tables are not supported"));
        }
        if command.catalog.as_deref().is_some_and(|c| c != CATALOG) {
            return Err(Status::not_found(format!("unknown catalog; this server has one: {CATALOG}")));
        }
        let transaction = Self::transaction_id(&command.transaction_id)?;
        let namespace =
            command.schema.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_NAMESPACE.into());
        let options = command.table_definition_options.unwrap_or_default();
        let metadata = request.metadata().clone();
        let mut batches = record_batches(request.into_inner());
        self.in_transaction(&metadata, transaction, async |context| {
            let exists = self.engine.store().catalog().find_table(&namespace, &command.table).is_some();
            match (
                exists,
                TableExistsOption::try_from(options.if_exists).unwrap_or(TableExistsOption::Unspecified),
            ) {
                (true, TableExistsOption::Fail) => {
                    return Err(Status::already_exists(format!(
                        "table {namespace}.{} already exists",
                        command.table
                    )));
                }
                (true, TableExistsOption::Replace) => {
                    return Err(Status::unimplemented(
                        "ingest with replace is not supported: drop the table or append",
                    ));
                }
                _ => {}
            }
            let create_option =
                TableNotExistOption::try_from(options.if_not_exist).unwrap_or(TableNotExistOption::Fail);
            let create = |schema: &Schema| {
                if create_option != TableNotExistOption::Create {
                    return Err(Status::not_found(format!(
                        "table {namespace}.{} does not exist; create it or ingest with the create option",
                        command.table
                    )));
                }
                self.engine.create_table_for(&context, &namespace, &command.table, schema).map_err(status)
            };
            let (mut rows, mut created) = (0i64, exists);
            let (mut pending, mut pending_rows) = (Vec::new(), 0usize);
            while let Some(batch) = batches.next().await {
                let batch = batch.map_err(|e| Status::invalid_argument(format!("bad ingest batch: {e}")))?;
                if !created {
                    create(&batch.schema())?;
                    created = true;
                }
                // Clients send small slices; the table keeps batches of about `batch_rows` rows.
                pending_rows += batch.num_rows();
                pending.push(batch);
                if pending_rows >= self.batch_rows {
                    rows += self.ingest_pending(&context, &namespace, &command.table, &mut pending).await?;
                    pending_rows = 0;
                }
            }
            // No record batch at all: the schema alone creates the table; an existing one is left
            // as it is.
            if !created {
                let schema = batches.schema().cloned().ok_or_else(|| {
                    Status::invalid_argument(
                        "the ingest stream carried no schema: send the schema (a record batch of zero \
                         rows) to create an empty table",
                    )
                })?;
                create(&schema)?;
            }
            rows += self.ingest_pending(&context, &namespace, &command.table, &mut pending).await?;
            Ok(rows)
        })
        .await
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        let principal = self.principal(request.metadata())?;
        let tx = Arc::new(Transaction::new());
        let mut transactions = self.transactions.lock().unwrap_or_else(|p| p.into_inner());
        let before = transactions.len();
        transactions.retain(|_, open| open.last_used.elapsed() < TRANSACTION_IDLE_MAX);
        if transactions.len() < before {
            let live: HashSet<u64> = transactions.keys().copied().collect();
            self.forget_prepared(|tx| !live.contains(&tx));
        }
        if transactions.len() >= self.handles_max {
            return Err(Status::resource_exhausted(format!(
                "{} transactions are open; end some before beginning more",
                self.handles_max
            )));
        }
        transactions.insert(
            tx.id,
            OpenTransaction {
                owner: principal.user,
                tx: tx.clone(),
                last_used: Instant::now(),
                savepoints: Vec::new(),
                next_savepoint: 0,
            },
        );
        Ok(ActionBeginTransactionResult { transaction_id: tx.id.to_le_bytes().to_vec().into() })
    }

    async fn do_action_end_transaction(
        &self,
        query: ActionEndTransactionRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let principal = self.principal(request.metadata())?;
        let id = handle_id(&query.transaction_id, "transaction")?;
        let tx = self.transaction(id, &principal)?;
        self.transactions.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        self.forget_prepared(|tx| tx == id);
        match EndTransaction::try_from(query.action) {
            Ok(EndTransaction::Commit) => self.engine.commit(&tx).map(|_| ()).map_err(status),
            Ok(EndTransaction::Rollback) => Ok(()),
            _ => Err(Status::invalid_argument("end a transaction with COMMIT or ROLLBACK")),
        }
    }

    /// A savepoint of an open transaction; its handle is the transaction's id and the
    /// savepoint's number (16 bytes).
    async fn do_action_begin_savepoint(
        &self,
        query: ActionBeginSavepointRequest,
        request: Request<Action>,
    ) -> Result<ActionBeginSavepointResult, Status> {
        let principal = self.principal(request.metadata())?;
        let id = handle_id(&query.transaction_id, "transaction")?;
        let mut transactions = self.transactions.lock().unwrap_or_else(|p| p.into_inner());
        let open = owned(&mut transactions, id, &principal)?;
        if open.savepoints.len() >= SAVEPOINTS_MAX {
            return Err(Status::resource_exhausted(format!(
                "{SAVEPOINTS_MAX} savepoints are open in this transaction; release some first"
            )));
        }
        open.last_used = Instant::now();
        let number = open.next_savepoint;
        open.next_savepoint += 1;
        open.savepoints.push((number, query.name, open.tx.savepoint()));
        let mut handle = id.to_le_bytes().to_vec();
        handle.extend_from_slice(&number.to_le_bytes());
        Ok(ActionBeginSavepointResult { savepoint_id: handle.into() })
    }

    /// Releases a savepoint (the writes since it stay) or rolls back to it (they go); either way
    /// it ends, with every savepoint begun after it, as in SQL.
    async fn do_action_end_savepoint(
        &self,
        query: ActionEndSavepointRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let principal = self.principal(request.metadata())?;
        let handle: [u8; 16] = query.savepoint_id[..]
            .try_into()
            .map_err(|_| Status::invalid_argument("malformed savepoint handle; begin a new savepoint"))?;
        let (id, number) = (
            u64::from_le_bytes(handle[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(handle[8..].try_into().expect("8 bytes")),
        );
        let rollback = match query.action {
            END_SAVEPOINT_RELEASE => false,
            END_SAVEPOINT_ROLLBACK => true,
            _ => return Err(Status::invalid_argument("end a savepoint with RELEASE or ROLLBACK")),
        };
        let mut transactions = self.transactions.lock().unwrap_or_else(|p| p.into_inner());
        let open = owned(&mut transactions, id, &principal)?;
        open.last_used = Instant::now();
        let Some(at) = open.savepoints.iter().position(|(n, _, _)| *n == number) else {
            return Err(Status::not_found(
                "unknown savepoint (released, rolled back, or inside one that was); begin a new one",
            ));
        };
        let (_, _, state) = open.savepoints.drain(at..).next().expect("found above");
        if rollback {
            open.tx.rollback_to(state);
        }
        Ok(())
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let transaction = Self::transaction_id(&query.transaction_id)?;
        let context = self.context(request.metadata(), transaction)?;
        let (dataset, parameters) =
            self.engine.describe(context.clone(), &query.query).await.map_err(status)?;
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if prepared.len() >= self.handles_max {
            return Err(Status::resource_exhausted(format!(
                "{} prepared statements are open; close some first",
                self.handles_max
            )));
        }
        let id = crate::snowflake::next_id() as u64;
        prepared.insert(
            id,
            Prepared {
                owner: context.principal.user.clone(),
                sql: query.query,
                params: Vec::new(),
                transaction,
            },
        );
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: id.to_le_bytes().to_vec().into(),
            dataset_schema: schema_bytes(&dataset)?,
            parameter_schema: schema_bytes(&parameters)?,
        })
    }

    /// KalamDB's own actions: [`RESERVE_IDS_ACTION`].
    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        self.principal(request.metadata())?;
        let action = request.into_inner();
        if action.r#type != RESERVE_IDS_ACTION {
            return Err(Status::invalid_argument(format!(
                "unknown action {}: this server's actions are Flight SQL's and {RESERVE_IDS_ACTION}",
                action.r#type
            )));
        }
        let count = <[u8; 4]>::try_from(action.body.as_ref())
            .map(u32::from_be_bytes)
            .ok()
            .filter(|n| (1..=RESERVE_IDS_MAX).contains(n))
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "{RESERVE_IDS_ACTION} takes the number of ids (a big-endian u32 from 1 to {RESERVE_IDS_MAX})"
                ))
            })?;
        let first = crate::snowflake::next_ids(count as usize);
        let any = arrow_flight::sql::Any {
            type_url: format!("type.googleapis.com/{RESERVE_IDS_ACTION}"),
            value: first.to_be_bytes().to_vec().into(),
        };
        let result = arrow_flight::Result { body: any.encode_to_vec().into() };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(result)]))))
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<arrow_flight::ActionType, Status>>> {
        Some(vec![Ok(arrow_flight::ActionType {
            r#type: RESERVE_IDS_ACTION.into(),
            description: "reserve a run of SNOWFLAKE_ID() values: body = count (u32 big-endian), \
                          result = first id (i64 big-endian)"
                .into(),
        })])
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let principal = self.principal(request.metadata())?;
        let id = handle_id(&query.prepared_statement_handle, "prepared statement")?;
        // Closing is idempotent: the statements of a transaction went when it ended, and
        // clients close theirs afterwards. Another account's statement stays.
        let mut prepared = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if prepared.get(&id).is_some_and(|p| p.owner == principal.user) {
            prepared.remove(&id);
        }
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let principal = self.principal(request.metadata())?;
        self.prepared(&query.prepared_statement_handle, &principal)?;
        let params = Self::parameter_rows(request.into_inner()).await?;
        let id = handle_id(&query.prepared_statement_handle, "prepared statement")?;
        if let Some(p) = self.prepared.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id) {
            p.params = params;
        }
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(query.prepared_statement_handle) })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let principal = self.principal(request.metadata())?;
        let (sql, params, transaction) = self.prepared(&query.prepared_statement_handle, &principal)?;
        let context = self.context(request.metadata(), transaction)?;
        let Some((_, plan)) = self.engine.plan_if_query(context, &sql).await.map_err(status)? else {
            let changed = self.run_change(request.metadata(), transaction, &sql, params).await?;
            return Ok(Response::new(ran_info(changed, request.into_inner())?));
        };
        let params = query_params(params)?;
        let plan =
            if params.is_empty() { plan } else { crate::engine::bind(plan, params).map_err(status)? };
        let ticket = Ticket::new(query.as_any().encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(plan.schema().as_arrow())
            .map_err(|e| Status::internal(format!("cannot encode result schema: {e}")))?
            .with_descriptor(request.into_inner())
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_ordered(true);
        Ok(Response::new(info))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let principal = self.principal(request.metadata())?;
        let (sql, params, transaction) = self.prepared(&query.prepared_statement_handle, &principal)?;
        let context = self.context(request.metadata(), transaction)?;
        let batches =
            self.engine.query_with_params(context, &sql, query_params(params)?).await.map_err(status)?;
        Ok(stream_batches(batches))
    }

    /// Runs the statement once per parameter row (the rows bound before if none were sent; once
    /// if there are none), all in one transaction.
    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let principal = self.principal(request.metadata())?;
        let (sql, bound, transaction) = self.prepared(&query.prepared_statement_handle, &principal)?;
        let metadata = request.metadata().clone();
        let mut rows = Self::parameter_rows(request.into_inner()).await?;
        if rows.is_empty() {
            rows = bound;
        }
        Ok(self.run_change(&metadata, transaction, &sql, rows).await?.count())
    }

    /// A DoPut that cannot be read as a command. A client that has zero record batches to send
    /// may send nothing at all, not even its command: say so, instead of a bare "unhandled".
    async fn do_put_error_callback(
        &self,
        _request: Request<PeekableFlightDataStream>,
        error: DoPutError,
    ) -> Result<Response<<Self as FlightService>::DoPutStream>, Status> {
        Err(Status::invalid_argument(match error {
            DoPutError::MissingCommand => {
                "the DoPut stream ended before its first message, so it carried no command: a client \
                 with no record batches to send may send nothing; to create an empty table by bulk \
                 ingest, send the schema (a record batch of zero rows)"
            }
            DoPutError::MissingFlightDescriptor => {
                "the first message of a DoPut must carry the FlightDescriptor holding the command"
            }
        }))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.into_builder().schema();
        Ok(Response::new(metadata::flight_info(&query, &schema, request.into_inner())?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(request.metadata())?;
        Ok(one_batch(metadata::catalogs(&self.engine, query)?))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(metadata::flight_info(&query, &schema, request.into_inner())?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(request.metadata())?;
        Ok(one_batch(metadata::schemas(&self.engine, query)?))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(metadata::flight_info(&query, &schema, request.into_inner())?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(request.metadata())?;
        Ok(one_batch(metadata::tables(&self.engine, query).await?))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.into_builder().schema();
        Ok(Response::new(metadata::flight_info(&query, &schema, request.into_inner())?))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(request.metadata())?;
        Ok(one_batch(metadata::table_types(query)?))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        Ok(Response::new(metadata::flight_info(&query, &primary_keys_schema(), request.into_inner())?))
    }

    async fn do_get_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(request.metadata())?;
        let namespace = query.db_schema.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.into());
        let key = self
            .engine
            .store()
            .catalog()
            .find_table(&namespace, &query.table)
            .map(|(def, _)| def.primary_key.clone())
            .unwrap_or_default();
        let n = key.len();
        let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
        let batch = RecordBatch::try_new(
            primary_keys_schema(),
            vec![
                text(CATALOG),
                text(&namespace),
                text(&query.table),
                Arc::new(StringArray::from(key.clone())),
                Arc::new(StringArray::from(vec![None::<&str>; n])),
                Arc::new(Int32Array::from_iter_values(1..=n as i32)),
            ],
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(one_batch(batch))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata())?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        Ok(Response::new(metadata::flight_info(&query, &schema, request.into_inner())?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.principal(request.metadata())?;
        Ok(one_batch(metadata::sql_info_batch(&self.sql_info, query)?))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// The result schema of GetPrimaryKeys, as Flight SQL defines it.
fn primary_keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringViewArray;

    // Goal: a large batch goes out in pieces near the message target, and the pieces together
    // hold about the bytes of the batch (no piece resends the whole string data).
    #[test]
    fn batches_are_cut_by_the_bytes_of_their_rows() {
        let values: Vec<String> =
            (0..100_000).map(|i| format!("row {i} with a string longer than twelve bytes")).collect();
        let column: ArrayRef = Arc::new(StringViewArray::from_iter_values(values.iter()));
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8View, false)]));
        let batch = RecordBatch::try_new(schema, vec![column]).unwrap();
        let total = crate::storage::table::batch_bytes(&batch);
        let pieces = message_pieces(batch);
        assert!(pieces.len() > 2, "{} pieces for {total} bytes", pieces.len());
        let sizes: Vec<usize> = pieces.iter().map(crate::storage::table::batch_bytes).collect();
        assert!(sizes.iter().all(|s| *s <= FLIGHT_DATA_BYTES_TARGET + 64 * 1024), "{sizes:?}");
        assert!(sizes.iter().sum::<usize>() < total + total / 10, "{sizes:?} vs {total}");
        assert_eq!(pieces.iter().map(|p| p.num_rows()).sum::<usize>(), 100_000);
    }
}
