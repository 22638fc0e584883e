//! [`KalamClient`]: one gRPC connection to a KalamDB server, with its credentials, and
//! [`QueryStream`], the result of a statement query read batch by batch.
//!
//! Credentials ([`Auth`]) are attached to every request. With [`Auth::Login`] the client logs
//! in once (a Basic handshake), keeps the session token the server hands out, renews it by a
//! handshake with the token when half of its lease has passed without a request, and logs in
//! again, once, when the server says the session is gone.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginSavepointResult, ActionBeginTransactionRequest,
    ActionBeginTransactionResult, ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, ActionEndSavepointRequest, ActionEndTransactionRequest,
    CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTables,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery, CommandStatementUpdate,
    DoPutUpdateResult, EndTransaction, ProstMessageExt, TableDefinitionOptions, TableExistsOption,
    TableNotExistOption,
};
use arrow_flight::{FlightClient, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, Ticket};
use arrow_schema::SchemaRef;
use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error::Error;
use crate::protocol::{
    END_SAVEPOINT_RELEASE, END_SAVEPOINT_ROLLBACK, FLIGHT_DATA_BYTES_TARGET, MESSAGE_BYTES_MAX,
    SESSION_LEASE_HEADER, USER_ID_HEADER,
};

/// Flow-control windows of the HTTP/2 connection. gRPC's 64 KiB default makes a reader wait
/// for a window update every 64 KiB, which caps loopback throughput far below the server's;
/// these let a few 2 MiB result messages be in flight, which also bounds what is buffered.
const STREAM_WINDOW_BYTES: u32 = 8 * 1024 * 1024;
const CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;

/// How the client proves who it is.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No credentials (a server without a root password).
    #[default]
    None,
    /// A fixed `authorization` header value sent with every request, e.g. `Bearer <token>`.
    Header(String),
    /// User name and password: one Basic handshake, then the session token it returns.
    Login { user: String, password: String },
}

impl fmt::Debug for Auth {
    /// Never shows a secret: configurations end up in logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => write!(f, "None"),
            Auth::Header(_) => write!(f, "Header(<redacted>)"),
            Auth::Login { user, .. } => write!(f, "Login {{ user: {user:?}, password: <redacted> }}"),
        }
    }
}

/// TLS settings; PEM text.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificates the server's certificate must chain to.
    pub ca_pem: String,
    /// Client certificate and key, for servers that require mutual TLS.
    pub identity: Option<(String, String)>,
    /// Name checked against the server certificate (the host name the user gave, even when the
    /// connection is made to an address resolved beforehand).
    pub domain: String,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("domain", &self.domain)
            .field("client_identity", &self.identity.is_some())
            .finish()
    }
}

/// Where and how to reach a server. Built by the caller from its own options.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    pub auth: Auth,
    pub tls: Option<TlsConfig>,
    /// The address `host` resolved to, when the caller resolved it: connections go there, while
    /// messages (and TLS) keep using `host`.
    pub resolved: Option<std::net::IpAddr>,
}

impl ClientConfig {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            message_bytes_max: MESSAGE_BYTES_MAX,
            auth: Auth::None,
            tls: None,
            resolved: None,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self.request_timeout = timeout;
        self
    }

    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
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

/// The session of an [`Auth::Login`] client.
#[derive(Default)]
struct Session {
    token: Option<String>,
    /// When the server last saw the token (each request renews its lease).
    used_at: Option<Instant>,
    /// The lease the server announced; unknown for servers that do not send it.
    lease: Option<Duration>,
}

/// A connection to one KalamDB server. Cheap to clone: clones share the HTTP/2 connection and
/// the session.
#[derive(Clone)]
pub struct KalamClient {
    channel: Channel,
    config: ClientConfig,
    session: Arc<Mutex<Session>>,
}

impl fmt::Debug for KalamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KalamClient").field("addr", &self.config.addr()).finish()
    }
}

impl KalamClient {
    /// Connects now (and logs in, for [`Auth::Login`]), so that an unreachable server or bad
    /// credentials are reported here, with the server's address.
    pub async fn connect(config: ClientConfig) -> Result<Self, Error> {
        let addr = config.addr();
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        let target = match config.resolved {
            Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", config.port),
            Some(ip) => format!("{ip}:{}", config.port),
            None => addr.clone(),
        };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{target}"))
            .map_err(|e| Error::Config(format!("invalid KalamDB server address {addr}: {e}")))?
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .tcp_nodelay(true);
        if let Some(tls) = &config.tls {
            let mut tls_config = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                .domain_name(tls.domain.clone());
            if let Some((cert, key)) = &tls.identity {
                tls_config = tls_config.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint
                .tls_config(tls_config)
                .map_err(|e| Error::Config(format!("invalid TLS settings for {addr}: {}", innermost(&e))))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| Error::Unreachable { addr: addr.clone(), reason: innermost(&e) })?;
        let client = Self { channel, config, session: Arc::default() };
        if matches!(client.config.auth, Auth::Login { .. }) {
            client.login().await?;
        }
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn service(&self) -> FlightServiceClient<Channel> {
        FlightServiceClient::new(self.channel.clone())
            .max_decoding_message_size(self.config.message_bytes_max)
            .max_encoding_message_size(self.config.message_bytes_max)
    }

    /// A Flight client carrying the credentials and, when given, the user acted for.
    async fn flight(&self, user_id: Option<&str>) -> Result<FlightClient, Error> {
        let mut flight = FlightClient::new_from_inner(self.service());
        if let Some(authorization) = self.authorization().await? {
            flight
                .add_header("authorization", &authorization)
                .map_err(|_| Error::Config("the auth_header option is not a valid header value".into()))?;
        }
        if let Some(user_id) = user_id {
            flight
                .add_header(USER_ID_HEADER, user_id)
                .map_err(|_| Error::Config(format!("user id {user_id:?} is not a valid header value")))?;
        }
        Ok(flight)
    }

    /// The `authorization` value for the next request; renews or opens the session if needed.
    async fn authorization(&self) -> Result<Option<String>, Error> {
        match &self.config.auth {
            Auth::None => Ok(None),
            Auth::Header(value) => Ok(Some(value.clone())),
            Auth::Login { .. } => {
                let (token, due) = {
                    let session = self.session.lock().unwrap_or_else(|p| p.into_inner());
                    let due = match (session.used_at, session.lease) {
                        (Some(used), Some(lease)) => used.elapsed() >= lease / 2,
                        _ => false,
                    };
                    (session.token.clone(), due)
                };
                let token = match token {
                    Some(token) if due => self.renew(&token).await?,
                    Some(token) => token,
                    None => self.login().await?,
                };
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Basic handshake: opens a session and keeps its token.
    async fn login(&self) -> Result<String, Error> {
        let Auth::Login { user, password } = &self.config.auth else {
            unreachable!("login is only called for Auth::Login")
        };
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.handshake(format!("Basic {basic}")).await.map_err(|e| match e {
            Error::Server {
                code: tonic::Code::Unauthenticated | tonic::Code::PermissionDenied,
                message,
                ..
            } => Error::Auth { addr: self.config.addr(), user: user.clone(), message },
            other => other,
        })
    }

    /// Handshake with the current token, which renews its lease; a new login if it has expired.
    async fn renew(&self, token: &str) -> Result<String, Error> {
        match self.handshake(format!("Bearer {token}")).await {
            Err(Error::Server { code: tonic::Code::Unauthenticated, .. }) => self.login().await,
            other => other,
        }
    }

    async fn handshake(&self, authorization: String) -> Result<String, Error> {
        let mut request = tonic::Request::new(futures::stream::iter([HandshakeRequest::default()]));
        let value: MetadataValue<_> = authorization
            .parse()
            .map_err(|_| Error::Config("the login credentials are not valid header text".into()))?;
        request.metadata_mut().insert("authorization", value);
        let mut service = self.service();
        let response =
            match tokio::time::timeout(self.config.request_timeout, service.handshake(request)).await {
                Err(_) => return Err(self.timeout_error()),
                Ok(Err(status)) => return Err(Error::from_status(status)),
                Ok(Ok(response)) => response,
            };
        let token = bearer(response.metadata())
            .ok_or_else(|| Error::Protocol("the handshake answer carries no session token".into()))?;
        let lease = response
            .metadata()
            .get(SESSION_LEASE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis);
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        session.token = Some(token.clone());
        session.used_at = Some(Instant::now());
        session.lease = lease;
        Ok(token)
    }

    /// Notes a request the server accepted: it renewed the session's lease.
    fn used(&self) {
        if matches!(self.config.auth, Auth::Login { .. }) {
            self.session.lock().unwrap_or_else(|p| p.into_inner()).used_at = Some(Instant::now());
        }
    }

    /// Forgets the session after the server refused its token, so the next request logs in.
    fn forget_session(&self) {
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        *session = Session::default();
    }

    /// Runs `request` with credentials; for a login session the server no longer knows (it
    /// expired, or the server restarted), logs in again and retries once. A refused token means
    /// the request did not run, so running it again is safe.
    async fn with_session<T, F, Fut>(&self, user_id: Option<&str>, request: F) -> Result<T, Error>
    where
        F: Fn(FlightClient) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let result = request(self.flight(user_id).await?).await;
        let result = match result {
            Err(Error::Server { code: tonic::Code::Unauthenticated, .. })
                if matches!(self.config.auth, Auth::Login { .. }) =>
            {
                self.forget_session();
                request(self.flight(user_id).await?).await
            }
            other => other,
        };
        match result {
            Ok(value) => {
                self.used();
                Ok(value)
            }
            // The channel reconnects on each request: a server gone since the last one is a
            // connection that cannot be made, said with its address.
            Err(Error::Server { code: tonic::Code::Unavailable, message, sqlstate: None, .. })
                if message.contains("connect") =>
            {
                Err(Error::Unreachable { addr: self.config.addr(), reason: message })
            }
            // A connection that broke under the request (kalamdb-server never cancels one).
            Err(Error::Server { code: tonic::Code::Cancelled, message, sqlstate: None, .. }) => {
                Err(Error::Lost { addr: self.config.addr(), reason: message })
            }
            Err(e) => Err(e),
        }
    }

    /// Runs a statement query: GetFlightInfo, then DoGet on each endpoint in order. Returns as
    /// soon as the server has planned the query; batches are read with [`QueryStream::next_batch`].
    /// `user_id`: the user a dba or system account acts for (USER tables).
    pub async fn query(&self, sql: &str, user_id: Option<&str>) -> Result<QueryStream, Error> {
        self.query_in(sql, user_id, None).await
    }

    /// [`KalamClient::query`] inside a transaction (which sees its own writes), or outside any.
    pub async fn query_in(
        &self,
        sql: &str,
        user_id: Option<&str>,
        transaction: Option<&TransactionId>,
    ) -> Result<QueryStream, Error> {
        let transaction_id = transaction.map(|t| t.0.clone());
        let command = CommandStatementQuery { query: sql.to_string(), transaction_id };
        let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
        let (flight, info) = self
            .with_session(user_id, |mut flight| {
                let descriptor = descriptor.clone();
                async move {
                    let info = self.bounded(flight.get_flight_info(descriptor)).await?;
                    Ok((flight, info))
                }
            })
            .await?;
        QueryStream::new(flight, info, self.clone())
    }

    /// Plans a statement query without running it: the result schema the server announces and
    /// the rows it expects (`None` when it does not say). Nothing is fetched: no DoGet follows.
    pub async fn describe(
        &self,
        sql: &str,
        user_id: Option<&str>,
    ) -> Result<(SchemaRef, Option<u64>), Error> {
        let command = CommandStatementQuery { query: sql.to_string(), transaction_id: None };
        let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
        let info = self
            .with_session(user_id, |mut flight| {
                let descriptor = descriptor.clone();
                async move { self.bounded(flight.get_flight_info(descriptor)).await }
            })
            .await?;
        let rows = u64::try_from(info.total_records).ok();
        let schema = info
            .try_decode_schema()
            .map_err(|e| Error::Protocol(format!("FlightInfo carries no valid schema: {e}")))?;
        Ok((Arc::new(schema), rows))
    }

    /// A string-list entry of the server's GetSqlInfo (such as
    /// [`crate::protocol::PG_FUNCTIONS_INFO`]); empty when the server does not have the entry.
    pub async fn sql_info_strings(&self, info: u32) -> Result<Vec<String>, Error> {
        let command = CommandGetSqlInfo { info: vec![info] };
        let batches = self.metadata(command.as_any().encode_to_vec(), None).await?;
        let mut strings = Vec::new();
        for batch in batches {
            let (Some(names), Some(values)) =
                (batch.column_by_name("info_name"), batch.column_by_name("value"))
            else {
                return Err(Error::Protocol("GetSqlInfo answered without info_name and value".into()));
            };
            let names = names.as_primitive_opt::<arrow_array::types::UInt32Type>();
            let values = values.as_any().downcast_ref::<arrow_array::UnionArray>();
            let (Some(names), Some(values)) = (names, values) else {
                return Err(Error::Protocol("GetSqlInfo answered with unexpected types".into()));
            };
            for row in 0..batch.num_rows() {
                if names.value(row) != info {
                    continue;
                }
                let value = values.value(row);
                let Some(list) = value.as_list_opt::<i32>() else {
                    return Err(Error::Protocol(format!("GetSqlInfo entry {info} is not a string list")));
                };
                let items = list.value(0);
                let items = items.as_string_opt::<i32>().ok_or_else(|| {
                    Error::Protocol(format!("GetSqlInfo entry {info} is not a string list"))
                })?;
                strings.extend(items.iter().flatten().map(str::to_string));
            }
        }
        Ok(strings)
    }

    /// The result of a metadata command (GetSqlInfo, GetPrimaryKeys, ...): small, read whole.
    async fn metadata(&self, command: Vec<u8>, user_id: Option<&str>) -> Result<Vec<RecordBatch>, Error> {
        let descriptor = FlightDescriptor::new_cmd(command);
        self.with_session(user_id, |mut flight| {
            let descriptor = descriptor.clone();
            async move {
                let info = self.bounded(flight.get_flight_info(descriptor)).await?;
                let mut batches = Vec::new();
                for endpoint in info.endpoint {
                    let ticket = endpoint
                        .ticket
                        .ok_or_else(|| Error::Protocol("FlightInfo endpoint has no ticket".into()))?;
                    let stream = self.bounded(flight.do_get(ticket)).await?;
                    let read =
                        tokio::time::timeout(self.config.request_timeout, stream.try_collect::<Vec<_>>());
                    batches
                        .extend(read.await.map_err(|_| self.timeout_error())?.map_err(Error::from_flight)?);
                }
                Ok(batches)
            }
        })
        .await
    }

    /// The namespaces (Flight SQL db schemas) of the server.
    pub async fn namespaces(&self) -> Result<Vec<String>, Error> {
        let command = CommandGetDbSchemas { catalog: None, db_schema_filter_pattern: None };
        let mut namespaces = Vec::new();
        for batch in self.metadata(command.as_any().encode_to_vec(), None).await? {
            let names = batch
                .column_by_name("db_schema_name")
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| Error::Protocol("GetDbSchemas answered without db_schema_name".into()))?;
            namespaces.extend(names.iter().flatten().map(str::to_string));
        }
        namespaces.sort();
        Ok(namespaces)
    }

    /// The tables of `namespace` with their Arrow schemas (Flight SQL GetTables), by name.
    /// A KalamDB server adds each table's kind to its schema's metadata
    /// ([`crate::protocol::TABLE_KIND_METADATA`]).
    pub async fn tables(&self, namespace: &str) -> Result<Vec<TableListing>, Error> {
        // No pattern: `_` and `%` in a name would be wildcards; the namespace is matched here.
        let command = CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: None,
            table_types: Vec::new(),
            include_schema: true,
        };
        let mut tables = Vec::new();
        for batch in self.metadata(command.as_any().encode_to_vec(), None).await? {
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .ok_or_else(|| Error::Protocol(format!("GetTables answered without {name}")))
            };
            let (schemas, names, types, ipc) = (
                column("db_schema_name")?,
                column("table_name")?,
                column("table_type")?,
                column("table_schema")?,
            );
            let (Some(schemas), Some(names), Some(types), Some(ipc)) = (
                schemas.as_string_opt::<i32>(),
                names.as_string_opt::<i32>(),
                types.as_string_opt::<i32>(),
                ipc.as_binary_opt::<i32>(),
            ) else {
                return Err(Error::Protocol("GetTables answered with unexpected types".into()));
            };
            for row in 0..batch.num_rows() {
                if arrow_array::Array::is_null(schemas, row) || schemas.value(row) != namespace {
                    continue;
                }
                let schema = arrow_schema::Schema::try_from(arrow_flight::IpcMessage(
                    bytes::Bytes::copy_from_slice(ipc.value(row)),
                ))
                .map_err(|e| Error::Protocol(format!("GetTables sent a schema that does not decode: {e}")))?;
                tables.push(TableListing {
                    name: names.value(row).to_string(),
                    table_type: types.value(row).to_string(),
                    schema,
                });
            }
        }
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tables)
    }

    /// The primary key columns of `namespace.table`, in key order (Flight SQL GetPrimaryKeys);
    /// empty when the table has none, or the server does not implement the command.
    pub async fn primary_keys(
        &self,
        namespace: &str,
        table: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        let command = CommandGetPrimaryKeys {
            catalog: None,
            db_schema: Some(namespace.to_string()),
            table: table.to_string(),
        };
        let batches = match self.metadata(command.as_any().encode_to_vec(), user_id).await {
            Err(Error::Server { code: tonic::Code::Unimplemented, .. }) => return Ok(Vec::new()),
            other => other?,
        };
        let mut keys = Vec::new();
        for batch in batches {
            let (Some(names), Some(sequence)) =
                (batch.column_by_name("column_name"), batch.column_by_name("key_sequence"))
            else {
                return Err(Error::Protocol(
                    "GetPrimaryKeys answered without column_name and key_sequence".into(),
                ));
            };
            let names = names.as_string_opt::<i32>();
            let sequence = sequence.as_primitive_opt::<arrow_array::types::Int32Type>();
            let (Some(names), Some(sequence)) = (names, sequence) else {
                return Err(Error::Protocol("GetPrimaryKeys answered with unexpected types".into()));
            };
            for row in 0..batch.num_rows() {
                keys.push((sequence.value(row), names.value(row).to_string()));
            }
        }
        keys.sort();
        Ok(keys.into_iter().map(|(_, name)| name).collect())
    }

    /// Prepares a statement on the server, inside `transaction` when given (its executions
    /// then belong to that transaction). Closed by [`KalamClient::close_prepared`]; the server
    /// also forgets the statements of a transaction when the transaction ends.
    pub async fn prepare(
        &self,
        sql: &str,
        user_id: Option<&str>,
        transaction: Option<&TransactionId>,
    ) -> Result<PreparedId, Error> {
        let body = ActionCreatePreparedStatementRequest {
            query: sql.to_string(),
            transaction_id: transaction.map(|t| t.0.clone()),
        }
        .as_any()
        .encode_to_vec();
        let answer = self.action("CreatePreparedStatement", body, user_id).await?;
        let result = ActionCreatePreparedStatementResult::decode(answer.as_slice())
            .map_err(|e| Error::Protocol(format!("invalid CreatePreparedStatement answer: {e}")))?;
        Ok(PreparedId(result.prepared_statement_handle))
    }

    /// Runs a prepared update once per row of `parameters` (one request for all of them) and
    /// returns the rows changed in all, as the server reports it.
    pub async fn execute_prepared_update(
        &self,
        prepared: &PreparedId,
        parameters: RecordBatch,
        user_id: Option<&str>,
    ) -> Result<i64, Error> {
        let command = CommandPreparedStatementUpdate { prepared_statement_handle: prepared.0.clone() };
        let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
        self.with_session(user_id, |mut flight| {
            let descriptor = descriptor.clone();
            let parameters = parameters.clone();
            async move {
                let data = FlightDataEncoderBuilder::new()
                    .with_max_flight_data_size(FLIGHT_DATA_BYTES_TARGET)
                    .with_flight_descriptor(Some(descriptor))
                    .build(futures::stream::iter([Ok(parameters)]));
                let results = self.bounded(flight.do_put(data)).await?;
                self.update_count(results).await
            }
        })
        .await
    }

    /// The row count of the first answer of an update's DoPut.
    async fn update_count(
        &self,
        mut results: impl futures::Stream<
            Item = Result<arrow_flight::PutResult, arrow_flight::error::FlightError>,
        > + Unpin,
    ) -> Result<i64, Error> {
        let first = match tokio::time::timeout(self.config.request_timeout, results.next()).await {
            Err(_) => return Err(self.timeout_error()),
            Ok(None) => return Err(Error::Protocol("the server sent no result for an update".into())),
            Ok(Some(result)) => result.map_err(Error::from_flight)?,
        };
        let result = DoPutUpdateResult::decode(first.app_metadata)
            .map_err(|e| Error::Protocol(format!("invalid update result: {e}")))?;
        Ok(result.record_count)
    }

    /// Closes a prepared statement.
    pub async fn close_prepared(&self, prepared: &PreparedId, user_id: Option<&str>) -> Result<(), Error> {
        let body = ActionClosePreparedStatementRequest { prepared_statement_handle: prepared.0.clone() }
            .as_any()
            .encode_to_vec();
        self.action("ClosePreparedStatement", body, user_id).await.map(drop)
    }

    /// Runs a statement that returns no rows (DDL, INSERT/UPDATE/DELETE) and returns the number
    /// of rows it changed, as the server reports it.
    pub async fn execute_update(&self, sql: &str, user_id: Option<&str>) -> Result<i64, Error> {
        self.execute_update_in(sql, user_id, None).await
    }

    /// [`KalamClient::execute_update`] inside a transaction, or outside any.
    pub async fn execute_update_in(
        &self,
        sql: &str,
        user_id: Option<&str>,
        transaction: Option<&TransactionId>,
    ) -> Result<i64, Error> {
        let transaction_id = transaction.map(|t| t.0.clone());
        let command = CommandStatementUpdate { query: sql.to_string(), transaction_id };
        let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
        self.with_session(user_id, |mut flight| {
            let descriptor = descriptor.clone();
            async move {
                let request = futures::stream::iter([Ok(FlightData::new().with_descriptor(descriptor))]);
                let results = self.bounded(flight.do_put(request)).await?;
                self.update_count(results).await
            }
        })
        .await
    }

    /// Appends `batches` to `namespace.table` (Flight SQL bulk ingest) and returns the rows the
    /// server appended. The batches are encoded as they are pulled from the stream, in messages
    /// of at most [`FLIGHT_DATA_BYTES_TARGET`], so a long stream is never held whole.
    ///
    /// Without `transaction`, all or nothing: the ingest runs in a transaction of its own,
    /// committed when the server has taken every batch and rolled back otherwise. Inside the
    /// caller's `transaction`, an ingest that fails may have staged some of its batches there:
    /// the caller rolls back the transaction, or to a savepoint begun before the ingest.
    pub async fn ingest<S>(
        &self,
        namespace: &str,
        table: &str,
        batches: S,
        user_id: Option<&str>,
        transaction: Option<&TransactionId>,
    ) -> Result<i64, Error>
    where
        S: futures::Stream<Item = Result<RecordBatch, Error>> + Send + 'static,
    {
        if let Some(transaction) = transaction {
            return self.ingest_in(namespace, table, batches, user_id, transaction).await;
        }
        // A gRPC upload that is cancelled can look to the server like one that ended: only a
        // commit after the server answered makes the batches count.
        let own = self.begin_transaction(user_id).await?;
        match self.ingest_in(namespace, table, batches, user_id, &own).await {
            Ok(rows) => {
                self.end_transaction(&own, true, user_id).await?;
                Ok(rows)
            }
            Err(e) => {
                let _ = self.end_transaction(&own, false, user_id).await;
                Err(e)
            }
        }
    }

    async fn ingest_in<S>(
        &self,
        namespace: &str,
        table: &str,
        batches: S,
        user_id: Option<&str>,
        transaction: &TransactionId,
    ) -> Result<i64, Error>
    where
        S: futures::Stream<Item = Result<RecordBatch, Error>> + Send + 'static,
    {
        let command = CommandStatementIngest {
            table_definition_options: Some(TableDefinitionOptions {
                if_not_exist: TableNotExistOption::Fail as i32,
                if_exists: TableExistsOption::Append as i32,
            }),
            table: table.to_string(),
            schema: Some(namespace.to_string()),
            catalog: None,
            temporary: false,
            transaction_id: Some(transaction.0.clone()),
            options: Default::default(),
        };
        let descriptor = FlightDescriptor::new_cmd(command.as_any().encode_to_vec());
        // The stream is consumed once: an ingest is not retried after a refused session.
        let mut flight = self.flight(user_id).await?;
        let data = FlightDataEncoderBuilder::new()
            .with_max_flight_data_size(FLIGHT_DATA_BYTES_TARGET)
            .with_flight_descriptor(Some(descriptor))
            .build(batches.map_err(|e| arrow_flight::error::FlightError::ExternalError(Box::new(e))));
        // A batch that fails (the caller's, or its encoding) must not end the upload the way its
        // last batch does, which would tell the server that the batches before it are all: the
        // upload stays open and the call is dropped instead, which cancels it.
        let (failed, mut failure) = tokio::sync::oneshot::channel::<arrow_flight::error::FlightError>();
        let data =
            futures::stream::unfold((Box::pin(data), Some(failed)), |(mut data, mut failed)| async move {
                match data.next().await {
                    Some(Ok(message)) => Some((Ok(message), (data, failed))),
                    Some(Err(e)) => {
                        if let Some(failed) = failed.take() {
                            let _ = failed.send(e);
                        }
                        futures::future::pending::<()>().await;
                        None
                    }
                    None => None,
                }
            });
        // No bound on the whole call: the caller's stream may take long; each reply is bounded.
        let call = async {
            let mut results = flight.do_put(data).await.map_err(Error::from_flight)?;
            match tokio::time::timeout(self.config.request_timeout, results.next()).await {
                Err(_) => Err(self.timeout_error()),
                Ok(None) => Err(Error::Protocol("the server sent no result for an ingest".into())),
                Ok(Some(result)) => result.map_err(Error::from_flight),
            }
        };
        let first = tokio::select! {
            first = call => first?,
            Ok(e) = &mut failure => return Err(Error::from_flight(e)),
        };
        self.used();
        let result = DoPutUpdateResult::decode(first.app_metadata)
            .map_err(|e| Error::Protocol(format!("invalid ingest result: {e}")))?;
        Ok(result.record_count)
    }

    /// Begins a transaction on the server; its writes are seen only inside it until
    /// [`KalamClient::end_transaction`] commits them.
    pub async fn begin_transaction(&self, user_id: Option<&str>) -> Result<TransactionId, Error> {
        let body = ActionBeginTransactionRequest {}.as_any().encode_to_vec();
        let answer = self.action("BeginTransaction", body, user_id).await?;
        let result = ActionBeginTransactionResult::decode(answer.as_slice())
            .map_err(|e| Error::Protocol(format!("invalid BeginTransaction answer: {e}")))?;
        Ok(TransactionId(result.transaction_id))
    }

    /// Commits (`commit`) or rolls back a transaction. A failed commit leaves nothing of it.
    pub async fn end_transaction(
        &self,
        transaction: &TransactionId,
        commit: bool,
        user_id: Option<&str>,
    ) -> Result<(), Error> {
        let action = if commit { EndTransaction::Commit } else { EndTransaction::Rollback };
        let body =
            ActionEndTransactionRequest { transaction_id: transaction.0.clone(), action: action as i32 }
                .as_any()
                .encode_to_vec();
        self.action("EndTransaction", body, user_id).await.map(drop)
    }

    /// Begins a savepoint in a transaction.
    pub async fn begin_savepoint(
        &self,
        transaction: &TransactionId,
        name: &str,
        user_id: Option<&str>,
    ) -> Result<SavepointId, Error> {
        let body =
            ActionBeginSavepointRequest { transaction_id: transaction.0.clone(), name: name.to_string() }
                .as_any()
                .encode_to_vec();
        let answer = self.action("BeginSavepoint", body, user_id).await?;
        let result = ActionBeginSavepointResult::decode(answer.as_slice())
            .map_err(|e| Error::Protocol(format!("invalid BeginSavepoint answer: {e}")))?;
        Ok(SavepointId(result.savepoint_id))
    }

    /// Releases a savepoint (its writes stay) or rolls back to it (they go); either ends it and
    /// every savepoint begun after it.
    pub async fn end_savepoint(
        &self,
        savepoint: &SavepointId,
        rollback: bool,
        user_id: Option<&str>,
    ) -> Result<(), Error> {
        let action = if rollback { END_SAVEPOINT_ROLLBACK } else { END_SAVEPOINT_RELEASE };
        let body =
            ActionEndSavepointRequest { savepoint_id: savepoint.0.clone(), action }.as_any().encode_to_vec();
        self.action("EndSavepoint", body, user_id).await.map(drop)
    }

    /// Reserves `count` consecutive `SNOWFLAKE_ID()` values of the server
    /// ([`crate::protocol::RESERVE_IDS_ACTION`]) and returns the first.
    pub async fn reserve_ids(&self, count: u32) -> Result<i64, Error> {
        let body =
            self.action(crate::protocol::RESERVE_IDS_ACTION, count.to_be_bytes().to_vec(), None).await?;
        <[u8; 8]>::try_from(body.as_slice())
            .map(i64::from_be_bytes)
            .map_err(|_| Error::Protocol("the server's reserved ids are not one 8-byte integer".into()))
    }

    /// Runs a Flight SQL action and returns the body of its first result (empty when none).
    async fn action(&self, kind: &str, body: Vec<u8>, user_id: Option<&str>) -> Result<Vec<u8>, Error> {
        self.with_session(user_id, |mut flight| {
            let action = arrow_flight::Action::new(kind, body.clone());
            async move {
                let mut results = self.bounded(flight.do_action(action)).await?;
                match tokio::time::timeout(self.config.request_timeout, results.next()).await {
                    Err(_) => Err(self.timeout_error()),
                    Ok(None) => Ok(Vec::new()),
                    Ok(Some(result)) => {
                        let body = result.map_err(Error::from_flight)?;
                        // Results are packed as `Any` messages; the caller decodes the value.
                        let any = arrow_flight::sql::Any::decode(body)
                            .map_err(|e| Error::Protocol(format!("invalid {kind} answer: {e}")))?;
                        Ok(any.value.to_vec())
                    }
                }
            }
        })
        .await
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

/// A transaction begun on the server (its opaque handle).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionId(pub bytes::Bytes);

/// A statement prepared on the server (its opaque handle).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedId(pub bytes::Bytes);

/// A savepoint begun in a transaction (its opaque handle).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavepointId(pub bytes::Bytes);

/// The token of an `authorization: Bearer <token>` header.
fn bearer(metadata: &MetadataMap) -> Option<String> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?;
    (!token.is_empty()).then(|| token.to_string())
}

/// The batches of one query, fetched lazily: at most one Flight message is buffered here.
/// A table of a GetTables answer.
#[derive(Debug, Clone)]
pub struct TableListing {
    pub name: String,
    /// Flight SQL's table type (`TABLE`, `VIEW`, ...).
    pub table_type: String,
    pub schema: arrow_schema::Schema,
}

pub struct QueryStream {
    client: KalamClient,
    flight: FlightClient,
    schema: SchemaRef,
    tickets: VecDeque<Ticket>,
    /// The DoGet being read, and whether its schema message has arrived.
    current: Option<(FlightDataDecoder, bool)>,
    /// Bytes of the Flight messages received (IPC headers and bodies).
    received_bytes: u64,
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
        Ok(Self { client, flight, schema: schema.into(), tickets, current: None, received_bytes: 0 })
    }

    /// Bytes of the Flight messages received so far: what the result cost on the wire.
    pub fn received_bytes(&self) -> u64 {
        self.received_bytes
    }

    /// Schema announced by the server before any batch arrived.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The next batch with rows, or `None` at the end of the result. Batches without columns
    /// (a query that reads no column, such as `count(*)`) count as rows too.
    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>, Error> {
        loop {
            if self.current.is_none() {
                let Some(ticket) = self.tickets.pop_front() else {
                    return Ok(None);
                };
                let stream = self.client.bounded(self.flight.do_get(ticket)).await?;
                self.current = Some((stream.into_inner(), false));
            }
            let (stream, had_schema) = self.current.as_mut().expect("set above");
            let next = tokio::time::timeout(self.client.config.request_timeout, stream.next()).await;
            let decoded = match next {
                Err(_) => return Err(self.client.timeout_error()),
                Ok(None) => {
                    self.current = None;
                    continue;
                }
                Ok(Some(Err(e))) => return Err(Error::from_stream(e, &self.client.config.addr())),
                Ok(Some(Ok(decoded))) => decoded,
            };
            self.received_bytes += (decoded.inner.data_header.len() + decoded.inner.data_body.len()) as u64;
            match decoded.payload {
                DecodedPayload::RecordBatch(batch) if batch.num_rows() > 0 => return Ok(Some(batch)),
                DecodedPayload::Schema(_) if *had_schema => {
                    return Err(Error::Protocol("a second schema arrived in the same result stream".into()));
                }
                DecodedPayload::Schema(_) => *had_schema = true,
                DecodedPayload::RecordBatch(_) | DecodedPayload::None => {}
            }
        }
    }
}

/// The innermost cause of an error ("Connection refused"), without the layers' wrapping.
fn innermost(err: &dyn std::error::Error) -> String {
    let mut source = err;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}
