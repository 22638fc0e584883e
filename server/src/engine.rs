//! The query engine: one DataFusion session shared by every protocol front end, over the
//! durable [`Store`].
//!
//! KalamDB namespaces are DataFusion schemas of the catalog [`CATALOG`]; the `system`
//! namespace holds read-only views of the server's state. A request runs in a session that
//! carries its [`RequestContext`] (account, acting user, transaction). Queries stream; writes
//! are staged in a transaction and committed through the store (autocommit when the request
//! has no transaction of its own).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{Array as _, ArrayRef, RecordBatch, UInt64Array};
use arrow_schema::{Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::common::{Constraint, Constraints, DFSchema, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{DdlStatement, DmlStatement, Expr, LogicalPlan, Projection, WriteOp};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;

use crate::auth::{self, Sessions};
use crate::config::Config;
use crate::kalamsql::{self, AlterOp, Command, TableName};
use crate::session::{Principal, RequestContext, Role, TableRef, Transaction};
use crate::storage::table::{self, KalamTable, TableDef, TableKind, TableShared};
use crate::storage::{Store, StoreError, UserEntry, Violation, now_ms};

/// Catalog that holds every namespace.
pub const CATALOG: &str = "kalam";
/// Namespace of unqualified table names.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Read-only views of the server's state.
pub const SYSTEM_NAMESPACE: &str = "system";
/// DataFusion's own schema of SQL-standard views; not a KalamDB namespace.
const INFORMATION_SCHEMA: &str = "information_schema";

/// A failed statement, classified so each front end can answer with the right status.
#[derive(Debug)]
pub enum EngineError {
    /// The statement is wrong: bad SQL, unknown table or column, wrong types, duplicate key.
    InvalidStatement(String),
    /// The caller may not do this.
    PermissionDenied(String),
    /// A concurrent transaction got there first; retrying may succeed.
    Conflict(String),
    /// The statement is valid but exceeds a limit of the server.
    LimitExceeded(String),
    /// Something failed inside the server.
    Internal(String),
    /// A row breaks a rule of its table; says which (SQLSTATE).
    Violation(Violation),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::InvalidStatement(m)
            | EngineError::PermissionDenied(m)
            | EngineError::Conflict(m)
            | EngineError::LimitExceeded(m)
            | EngineError::Internal(m) => f.write_str(m),
            EngineError::Violation(v) => f.write_str(&v.message),
        }
    }
}

impl From<DataFusionError> for EngineError {
    fn from(err: DataFusionError) -> Self {
        let message = err.strip_backtrace();
        if message.contains("permission denied") {
            return EngineError::PermissionDenied(message);
        }
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

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Invalid(m) => EngineError::InvalidStatement(m),
            StoreError::Conflict(m) => EngineError::Conflict(m),
            StoreError::Io(m) => EngineError::Internal(m),
            StoreError::Violation(v) => EngineError::Violation(v),
        }
    }
}

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::InvalidStatement(message.into())
}

/// The result of INSERT, UPDATE or DELETE sent as a query: one row, the number of rows changed.
pub fn rows_affected_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("rows_affected", arrow_schema::DataType::Int64, false)]))
}

/// What a statement produced.
pub enum Outcome {
    Rows(SendableRecordBatchStream),
    /// Rows inserted, updated or deleted.
    Count(i64),
    /// A statement that changed the catalog or the accounts (DDL, CREATE USER, ...).
    Done,
}

/// The result of [`Engine::execute`]: the batches of a query (bounded by the caller's limit),
/// or the number of rows a DML statement changed.
pub struct StatementResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub affected_rows: Option<i64>,
}

pub struct Engine {
    ctx: SessionContext,
    store: Arc<Store>,
    catalog: Arc<MemoryCatalogProvider>,
    pub sessions: Arc<Sessions>,
    write_bytes_max: usize,
}

/// A table as metadata requests list it.
pub struct TableEntry {
    pub catalog: String,
    pub namespace: String,
    pub name: String,
    pub is_view: bool,
    pub schema: SchemaRef,
    pub primary_key: Vec<String>,
    /// SHARED, USER or STREAM (`None` for views and system tables).
    pub kind: Option<TableKind>,
}

impl Engine {
    /// Opens the store under the configured data directory, recovering every acknowledged
    /// write, and registers every namespace and table.
    pub fn open(config: &Config) -> Result<Self, String> {
        // PostgreSQL's dialect: it parses the JSON key operator `?` (the generic one reads `?` as
        // a placeholder) and treats identifiers as PostgreSQL users expect.
        let session = SessionConfig::new()
            .set_str("datafusion.sql_parser.dialect", "PostgreSQL")
            .with_default_catalog_and_schema(CATALOG, DEFAULT_NAMESPACE)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            .with_batch_size(config.limits.batch_rows);
        // KalamDB's column types (UUID, JSON, FILE, EMBEDDING(n), microsecond times).
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(session)
            .with_default_features()
            .with_type_planner(Arc::new(crate::types::KalamTypePlanner))
            .with_analyzer_rules(analyzer_rules())
            .build();
        let mut ctx = SessionContext::new_with_state(state);
        // JSON operators (`->`, `->>`, `?`) and functions (json_get, json_as_text, ...).
        datafusion_functions_json::register_all(&mut ctx).expect("JSON functions register on a new session");
        ctx.register_udf(crate::snowflake::SnowflakeId::udf());
        ctx.register_udf(crate::types::ToUuid::udf());
        for function in crate::pg_functions::all() {
            ctx.register_udf(function);
        }
        ctx.register_udaf(crate::pg_sum::udaf());
        ctx.register_udf(crate::pg_avg::udf());

        let store = Arc::new(Store::open(&config.server.data_dir)?);
        let catalog = Arc::new(MemoryCatalogProvider::new());
        ctx.register_catalog(CATALOG, catalog.clone());
        let sessions = Arc::new(Sessions::new(&config.auth));
        let engine = Self { ctx, store, catalog, sessions, write_bytes_max: config.limits.write_bytes_max };

        let catalog: Arc<dyn CatalogProvider> = engine.catalog.clone();
        let system = crate::system::SystemSchema::new(
            engine.store.clone(),
            engine.sessions.clone(),
            Arc::downgrade(&catalog),
        );
        engine.catalog.register_schema(SYSTEM_NAMESPACE, Arc::new(system)).map_err(|e| e.to_string())?;
        {
            let mut catalog = engine.store.catalog();
            if !catalog.namespaces.contains_key(DEFAULT_NAMESPACE) {
                catalog.namespaces.insert(
                    DEFAULT_NAMESPACE.into(),
                    crate::storage::NamespaceEntry { created_ms: now_ms() },
                );
            }
            auth::bootstrap_root(&mut catalog, config.auth.root_password.as_deref());
            engine.store.persist(&catalog)?;
            for name in catalog.namespaces.keys() {
                engine.register_namespace(name);
            }
            for (def, shared) in catalog.tables.values() {
                engine.register_table(def.clone(), shared.clone()).map_err(|e| e.to_string())?;
            }
        }
        let views = engine.store.catalog().views.clone();
        for view in views {
            let ctx = engine.ctx.clone();
            let created = futures::executor::block_on(async move { ctx.sql(&view.sql).await.map(|_| ()) });
            created.map_err(|e| format!("cannot restore view {}.{}: {e}", view.namespace, view.name))?;
        }
        Ok(engine)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn register_namespace(&self, name: &str) {
        if self.catalog.schema(name).is_none() {
            let _ = self.catalog.register_schema(name, Arc::new(MemorySchemaProvider::new()));
        }
    }

    fn register_table(&self, def: Arc<TableDef>, shared: Arc<TableShared>) -> Result<(), EngineError> {
        let provider = self.provider(def.clone(), shared)?;
        let schema = self
            .catalog
            .schema(&def.namespace)
            .ok_or_else(|| EngineError::Internal(format!("namespace {} is not registered", def.namespace)))?;
        schema.deregister_table(&def.name)?;
        schema.register_table(def.name.clone(), Arc::new(provider))?;
        Ok(())
    }

    fn provider(&self, def: Arc<TableDef>, shared: Arc<TableShared>) -> Result<KalamTable, EngineError> {
        let df_schema = DFSchema::try_from(def.schema.as_ref().clone())?;
        let state = self.ctx.state();
        let mut defaults = HashMap::new();
        for (column, sql) in &def.defaults {
            defaults.insert(column.clone(), state.create_logical_expr(sql, &df_schema)?);
        }
        let key: Vec<usize> = def.primary_key.iter().filter_map(|c| def.schema.index_of(c).ok()).collect();
        let constraints = if key.is_empty() {
            Constraints::default()
        } else {
            Constraints::new_unverified(vec![Constraint::PrimaryKey(key)])
        };
        Ok(KalamTable::new(def, shared, defaults, constraints))
    }

    /// A session for one request.
    fn session(&self, request: Arc<RequestContext>) -> SessionContext {
        let config = self.ctx.copied_config().with_extension(request);
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(self.ctx.state())
            .with_config(config)
            .build();
        SessionContext::new_with_state(state)
    }

    /// The context of a request: `principal` acting for `acting_user`, inside `transaction`.
    pub fn request(
        &self,
        principal: Principal,
        acting_user: Option<String>,
        transaction: Option<Arc<Transaction>>,
    ) -> Result<Arc<RequestContext>, EngineError> {
        RequestContext::new(principal, acting_user, transaction)
            .map(Arc::new)
            .map_err(EngineError::PermissionDenied)
    }

    /// Runs a read-only query as a stream: batches are produced as the consumer pulls them.
    pub async fn query(
        &self,
        request: Arc<RequestContext>,
        sql: &str,
    ) -> Result<SendableRecordBatchStream, EngineError> {
        self.query_with_params(request, sql, Vec::new()).await
    }

    /// [`Engine::query`] with values for the placeholders `$1`, `$2`, ...
    pub async fn query_with_params(
        &self,
        request: Arc<RequestContext>,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<SendableRecordBatchStream, EngineError> {
        let (ctx, plan) = self.plan_query(request, sql).await?;
        let plan = if params.is_empty() { plan } else { bind(plan, params)? };
        let frame = ctx.execute_logical_plan(plan).await?;
        let announced = Arc::new(frame.schema().as_arrow().clone());
        Ok(as_announced(frame.execute_stream().await?, announced))
    }

    /// The result schema and the parameter schema (`$1`, `$2`, ... in order) of a statement, for
    /// prepared statements. Statements that change something have an empty result schema: that
    /// is how Flight SQL clients (JDBC's driver among them) tell an update from a query. Run as
    /// a query anyway, INSERT, UPDATE and DELETE answer [`rows_affected_schema`].
    pub async fn describe(
        &self,
        request: Arc<RequestContext>,
        sql: &str,
    ) -> Result<(Schema, Schema), EngineError> {
        let plan = match kalamsql::parse(sql).map_err(invalid)? {
            Command::Sql => self.plan_statement(&self.session(request).state(), sql).await?,
            Command::Query(_) => self.plan_query(request, sql).await?.1,
            Command::ExecuteAs { user, statement } => {
                let request = self.act_as(&request, user)?;
                return Box::pin(self.describe(request, &statement)).await;
            }
            _ => return Ok((Schema::empty(), Schema::empty())),
        };
        let mut parameters: Vec<(usize, Field)> = plan
            .get_parameter_types()?
            .into_iter()
            .map(|(name, data_type)| {
                let position = name.trim_start_matches('$').parse().unwrap_or(usize::MAX);
                (position, Field::new(name, data_type.unwrap_or(arrow_schema::DataType::Null), true))
            })
            .collect();
        parameters.sort_by_key(|(position, _)| *position);
        let dataset = if is_read_only(&plan) { plan.schema().as_arrow().clone() } else { Schema::empty() };
        Ok((dataset, Schema::new(parameters.into_iter().map(|(_, f)| f).collect::<Vec<_>>())))
    }

    /// Rows a planned query is expected to return, when the plan knows.
    pub async fn estimate_rows(ctx: &SessionContext, plan: &LogicalPlan) -> Option<i64> {
        let physical = ctx.state().create_physical_plan(plan).await.ok()?;
        let stats = datafusion::physical_plan::StatisticsContext::new()
            .compute(physical.as_ref(), &datafusion::physical_plan::StatisticsArgs::new())
            .ok()?;
        stats.num_rows.get_value().map(|rows| *rows as i64)
    }

    async fn plan_query(
        &self,
        request: Arc<RequestContext>,
        sql: &str,
    ) -> Result<(SessionContext, LogicalPlan), EngineError> {
        self.plan_if_query(request, sql).await?.ok_or_else(|| {
            invalid(
                "this statement changes data, the catalog or accounts: run it as a statement query \
                 or an update (Flight SQL CommandStatementQuery or CommandStatementUpdate)",
            )
        })
    }

    /// Plans `sql` if it only reads; `None` for a statement that changes something (which is
    /// planned here too, so a bad statement is an error now, but not run).
    pub async fn plan_if_query(
        &self,
        request: Arc<RequestContext>,
        sql: &str,
    ) -> Result<Option<(SessionContext, LogicalPlan)>, EngineError> {
        match kalamsql::parse(sql).map_err(invalid)? {
            Command::Query(rewritten) => Box::pin(self.plan_if_query(request, &rewritten)).await,
            Command::ExecuteAs { user, statement } => {
                let request = self.act_as(&request, user)?;
                Box::pin(self.plan_if_query(request, &statement)).await
            }
            Command::Sql => {
                let ctx = self.session(request);
                let plan = self.plan_statement(&ctx.state(), sql).await?;
                Ok(is_read_only(&plan).then_some((ctx, plan)))
            }
            _ => Ok(None),
        }
    }

    fn act_as(&self, request: &RequestContext, user: String) -> Result<Arc<RequestContext>, EngineError> {
        if !request.principal.role.is_admin() {
            return Err(EngineError::PermissionDenied(format!(
                "permission denied: EXECUTE AS USER needs a dba or system account; '{}' is {}",
                request.principal.user,
                request.principal.role.name()
            )));
        }
        self.request(request.principal.clone(), Some(user), request.transaction.clone())
    }

    /// Runs any statement. Writes outside a transaction commit before this returns.
    pub async fn run(&self, request: Arc<RequestContext>, sql: &str) -> Result<Outcome, EngineError> {
        self.run_with_params(request, sql, Vec::new()).await
    }

    /// [`Engine::run`] with values for the placeholders `$1`, `$2`, ...
    pub async fn run_with_params(
        &self,
        request: Arc<RequestContext>,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<Outcome, EngineError> {
        match kalamsql::parse(sql).map_err(invalid)? {
            Command::Sql => {}
            Command::Query(rewritten) => return Ok(Outcome::Rows(self.query(request, &rewritten).await?)),
            Command::ExecuteAs { user, statement } => {
                let request = self.act_as(&request, user)?;
                return Box::pin(self.run_with_params(request, &statement, params)).await;
            }
            command => return self.ddl(&request, command).await.map(|_| Outcome::Done),
        }
        let (request, autocommit) = match &request.transaction {
            Some(_) => (request, None),
            None => {
                let tx = Arc::new(Transaction::new());
                let request =
                    self.request(request.principal.clone(), request.acting_user.clone(), Some(tx.clone()))?;
                (request, Some(tx))
            }
        };
        let ctx = self.session(request.clone());
        let plan = self.plan_statement(&ctx.state(), sql).await?;
        let plan = if params.is_empty() { plan } else { bind(plan, params)? };
        let outcome = match plan {
            LogicalPlan::Dml(dml) => Outcome::Count(self.dml(&ctx.state(), &request, dml).await?),
            LogicalPlan::Ddl(ddl @ (DdlStatement::CreateView(_) | DdlStatement::DropView(_))) => {
                self.view_ddl(&request, sql, ddl).await?;
                Outcome::Done
            }
            LogicalPlan::Ddl(ddl) => return Err(unsupported_ddl(&ddl)),
            LogicalPlan::Statement(_) | LogicalPlan::Copy(_) => {
                return Err(invalid(
                    "this statement is not supported by kalamdb-server; transactions are Flight SQL \
                     BeginTransaction/EndTransaction",
                ));
            }
            plan => Outcome::Rows(ctx.execute_logical_plan(plan).await?.execute_stream().await?),
        };
        if let Some(tx) = autocommit {
            self.commit(&tx)?;
        }
        Ok(outcome)
    }

    /// Plans a DataFusion statement: `?` parameters read as `$1`, `$2`, ...; then
    /// [`crate::rewrite`] fills in INSERT column lists and converts values written to UUID
    /// columns.
    async fn plan_statement(&self, state: &SessionState, sql: &str) -> Result<LogicalPlan, EngineError> {
        use datafusion::sql::parser::Statement as DFStatement;
        use datafusion::sql::sqlparser::ast::Statement;
        let dialect = state.config().options().sql_parser.dialect;
        let sql = kalamsql::numbered_placeholders(sql).map_err(invalid)?;
        let mut statement = state.sql_to_statement(&sql, &dialect)?;
        let find = |namespace: Option<&str>, table: &str| {
            let namespace = namespace.unwrap_or(DEFAULT_NAMESPACE);
            self.store.catalog().find_table(namespace, table).map(|(def, _)| def.clone())
        };
        if let DFStatement::Statement(inner) = &mut statement {
            match inner.as_mut() {
                Statement::Insert(insert) => crate::rewrite::insert(insert, &find),
                Statement::Update(update) => crate::rewrite::update(update, &find),
                _ => {}
            }
        }
        Ok(state.statement_to_plan(statement).await?)
    }

    /// CREATE VIEW and DROP VIEW: applied to DataFusion's catalog and kept in ours (as the
    /// statement text, replayed at startup).
    async fn view_ddl(
        &self,
        request: &RequestContext,
        sql: &str,
        ddl: DdlStatement,
    ) -> Result<i64, EngineError> {
        require_admin(request, "create and drop views")?;
        let (name, creating) = match &ddl {
            DdlStatement::CreateView(view) => (view.name.clone(), true),
            DdlStatement::DropView(drop) => (drop.name.clone(), false),
            _ => unreachable!("only view statements come here"),
        };
        let namespace = name.schema().unwrap_or(DEFAULT_NAMESPACE).to_string();
        let view = name.table().to_string();
        {
            let catalog = self.store.catalog();
            if !catalog.namespaces.contains_key(&namespace) {
                return Err(invalid(format!(
                    "namespace {namespace} does not exist: CREATE NAMESPACE {namespace} first"
                )));
            }
            if creating && catalog.find_table(&namespace, &view).is_some() {
                return Err(invalid(format!("a table named {namespace}.{view} already exists")));
            }
        }
        self.ctx.execute_logical_plan(LogicalPlan::Ddl(ddl)).await?;
        let mut catalog = self.store.catalog();
        catalog.views.retain(|v| !(v.namespace == namespace && v.name == view));
        if creating {
            catalog.views.push(crate::storage::ViewEntry { namespace, name: view, sql: sql.to_string() });
        }
        self.store.persist(&catalog).map_err(EngineError::Internal)?;
        Ok(0)
    }

    /// Commits a transaction's staged writes.
    pub fn commit(&self, tx: &Transaction) -> Result<u64, EngineError> {
        Ok(self.store.commit(tx.id, tx.take_writes())?)
    }

    /// Runs any statement and collects its result, refusing results over `rows_max` rows.
    pub async fn execute(
        &self,
        request: Arc<RequestContext>,
        sql: &str,
        rows_max: usize,
    ) -> Result<StatementResult, EngineError> {
        match self.run(request, sql).await? {
            Outcome::Count(count) => Ok(StatementResult {
                schema: Arc::new(Schema::empty()),
                batches: Vec::new(),
                affected_rows: Some(count),
            }),
            Outcome::Done => Ok(StatementResult {
                schema: Arc::new(Schema::empty()),
                batches: Vec::new(),
                affected_rows: None,
            }),
            Outcome::Rows(mut stream) => {
                let schema = stream.schema();
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
                Ok(StatementResult { schema, batches, affected_rows: None })
            }
        }
    }

    /// Rows of a statement update; queries are refused.
    pub async fn update(&self, request: Arc<RequestContext>, sql: &str) -> Result<i64, EngineError> {
        self.update_with_params(request, sql, Vec::new()).await
    }

    /// [`Engine::update`] with values for the placeholders `$1`, `$2`, ...
    pub async fn update_with_params(
        &self,
        request: Arc<RequestContext>,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<i64, EngineError> {
        match self.run_with_params(request, sql, params).await? {
            Outcome::Count(count) => Ok(count),
            Outcome::Done => Ok(0),
            Outcome::Rows(_) => Err(invalid("this statement returns rows: run it as a query, not an update")),
        }
    }

    /// INSERT, UPDATE and DELETE: the input plan is run here and its rows staged in the
    /// request's transaction. Returns the number of rows.
    async fn dml(
        &self,
        state: &SessionState,
        request: &Arc<RequestContext>,
        dml: DmlStatement,
    ) -> Result<i64, EngineError> {
        let provider = source_as_provider(&dml.target)?;
        let Some(table) = provider.downcast_ref::<KalamTable>() else {
            return Err(invalid(format!("{} is read-only", dml.table_name)));
        };
        let tx = request.transaction.clone().expect("statements run inside a transaction");
        let def = table.def.clone();
        let mut input = Arc::unwrap_or_clone(dml.input);
        let is_update = matches!(dml.op, WriteOp::Update);
        match dml.op {
            WriteOp::Insert(InsertOp::Append) => {}
            WriteOp::Insert(_) => {
                return Err(invalid("only INSERT INTO ... is supported (not OVERWRITE or REPLACE)"));
            }
            WriteOp::Delete | WriteOp::Update => {
                request.check_change(&def).map_err(EngineError::PermissionDenied)?;
                if is_update {
                    input = update_input_with_old_keys(input, &def)?;
                }
            }
            _ => return Err(invalid("this statement is not supported by kalamdb-server")),
        }
        let mut stream = SessionContext::new_with_state(state.clone())
            .execute_logical_plan(input)
            .await?
            .execute_stream()
            .await?;
        let mut staged: Vec<(String, RecordBatch)> = Vec::new();
        // Row versions going, by partition: their `_seq` and key.
        let mut deletes: HashMap<String, Vec<(i64, Option<table::Key>)>> = HashMap::new();
        let mut count = 0i64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            count += batch.num_rows() as i64;
            if matches!(dml.op, WriteOp::Insert(_)) {
                for (owner, rows) in split_by_owner(&batch, &def) {
                    let partition = request
                        .write_partition(&def, owner.as_deref())
                        .map_err(EngineError::PermissionDenied)?;
                    let owner = def.kind.per_user().then_some(partition.as_str());
                    let rows = table::stamp_rows(&def, &rows, owner).map_err(StoreError::Violation)?;
                    staged.push((partition, rows));
                }
                continue;
            }
            // UPDATE and DELETE: the old row version goes; for UPDATE the new one comes.
            let keys =
                if def.primary_key.is_empty() { None } else { Some(old_keys(&def, &batch, is_update)?) };
            for (owner, rows, indices) in split_by_owner_with_indices(&batch, &def) {
                let partition = owner.unwrap_or_default();
                let going = deletes.entry(partition.clone()).or_default();
                for (&seq, &index) in table::seqs(&rows).iter().zip(&indices) {
                    going.push((seq, keys.as_ref().map(|k| k[index].clone())));
                }
                if is_update {
                    let owner = def.kind.per_user().then_some(partition.as_str());
                    let rows = table::stamp_rows(&def, &rows, owner).map_err(StoreError::Violation)?;
                    staged.push((partition, rows));
                }
            }
        }
        // The statement's writes join the transaction only once all of them were produced and
        // their keys checked: a statement that fails leaves nothing staged.
        let target = (&table.def, &table.shared);
        let removing: Vec<(&str, &table::Key)> = deletes
            .iter()
            .flat_map(|(p, rows)| rows.iter().filter_map(|(_, key)| key.as_ref().map(|k| (p.as_str(), k))))
            .collect();
        let keys = checked_keys(&tx, target, &staged, &removing)?;
        for (partition, rows) in deletes {
            tx.stage_deletes(target, &partition, rows);
        }
        for ((partition, rows), keys) in staged.into_iter().zip(keys) {
            tx.stage_insert(target, &partition, rows, keys, self.write_bytes_max)
                .map_err(EngineError::LimitExceeded)?;
        }
        Ok(count)
    }

    /// Bulk ingest: `batches` appended to `table` inside `request`'s transaction.
    pub async fn ingest(
        &self,
        request: &Arc<RequestContext>,
        namespace: &str,
        name: &str,
        batch: RecordBatch,
    ) -> Result<i64, EngineError> {
        let (def, shared) = {
            let catalog = self.store.catalog();
            catalog
                .find_table(namespace, name)
                .cloned()
                .ok_or_else(|| invalid(format!("table {namespace}.{name} does not exist")))?
        };
        let tx = request.transaction.clone().expect("ingest runs inside a transaction");
        for field in batch.schema().fields() {
            if def.schema.field_with_name(field.name()).is_err() {
                return Err(invalid(format!("table {namespace}.{name} has no column {}", field.name())));
            }
        }
        let rows = batch.num_rows() as i64;
        let batch = self.with_defaults(&def, batch)?;
        let mut staged = Vec::new();
        for (owner, part) in split_by_owner(&batch, &def) {
            let partition =
                request.write_partition(&def, owner.as_deref()).map_err(EngineError::PermissionDenied)?;
            let owner = def.kind.per_user().then_some(partition.as_str());
            staged.push((
                partition.clone(),
                table::stamp_rows(&def, &part, owner).map_err(StoreError::Violation)?,
            ));
        }
        let keys = checked_keys(&tx, (&def, &shared), &staged, &[])?;
        for ((partition, part), keys) in staged.into_iter().zip(keys) {
            tx.stage_insert((&def, &shared), &partition, part, keys, self.write_bytes_max)
                .map_err(EngineError::LimitExceeded)?;
        }
        Ok(rows)
    }

    /// `batch` with the columns it leaves out that have a default (`SNOWFLAKE_ID()`, `NOW()`, a
    /// constant), computed for each of its rows, as an INSERT that names the other columns.
    fn with_defaults(&self, def: &TableDef, batch: RecordBatch) -> Result<RecordBatch, EngineError> {
        let missing: Vec<&(String, String)> =
            def.defaults.iter().filter(|(column, _)| batch.column_by_name(column).is_none()).collect();
        if missing.is_empty() {
            return Ok(batch);
        }
        let df_schema = DFSchema::try_from(def.schema.as_ref().clone())?;
        let state = self.ctx.state();
        // NOW() is the time of this write, one value for all of its rows, as in a statement.
        let simplify = datafusion::optimizer::simplify_expressions::SimplifyContext::builder()
            .with_schema(Arc::new(df_schema.clone()))
            .with_current_time()
            .build();
        let simplifier = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(simplify);
        let mut fields = batch.schema().fields().to_vec();
        let mut columns = batch.columns().to_vec();
        for (column, sql) in missing {
            let expr = simplifier.simplify(state.create_logical_expr(sql, &df_schema)?)?;
            let physical = state.create_physical_expr(expr, &df_schema)?;
            // A default reads no column: evaluated over the batch, it makes a value per row.
            let values = physical.evaluate(&batch)?.into_array(batch.num_rows())?;
            fields.push(Arc::new(arrow_schema::Field::new(column, values.data_type().clone(), true)));
            columns.push(values);
        }
        let options =
            datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(Arc::new(arrow_schema::Schema::new(fields)), columns, &options)
            .map_err(|e| {
                EngineError::Internal(format!("cannot add the defaults of {}: {e}", def.qualified_name()))
            })
    }

    /// Creates a SHARED table with the columns of `schema` (bulk ingest into a new table).
    pub fn create_table_for(
        &self,
        request: &RequestContext,
        namespace: &str,
        name: &str,
        schema: &Schema,
    ) -> Result<(), EngineError> {
        require_admin(request, "create tables")?;
        store_schema_check(schema)?;
        let fields: Vec<Field> =
            schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        let def = TableDef {
            id: 0,
            namespace: namespace.to_string(),
            name: name.to_string(),
            kind: TableKind::Shared,
            schema: table::schema_with_system_columns(fields, TableKind::Shared),
            primary_key: Vec::new(),
            defaults: Vec::new(),
            flush: Default::default(),
            ttl_seconds: None,
            access: table::AccessLevel::Public,
            created_ms: now_ms(),
        };
        self.add_table(def, false).map(|_| ())
    }

    fn add_table(&self, def: TableDef, if_not_exists: bool) -> Result<i64, EngineError> {
        let mut catalog = self.store.catalog();
        if !catalog.namespaces.contains_key(&def.namespace) {
            return Err(invalid(format!(
                "namespace {} does not exist: CREATE NAMESPACE {} first",
                def.namespace, def.namespace
            )));
        }
        if catalog.find_table(&def.namespace, &def.name).is_some() {
            return if if_not_exists {
                Ok(0)
            } else {
                Err(invalid(format!("table {} already exists", def.qualified_name())))
            };
        }
        let (def, shared) = self.store.add_table(&mut catalog, def).map_err(EngineError::Internal)?;
        if let Err(e) = self.store.persist(&catalog) {
            self.store.remove_table(&mut catalog, def.id);
            return Err(EngineError::Internal(e));
        }
        self.register_table(def, shared)?;
        Ok(0)
    }

    async fn ddl(&self, request: &RequestContext, command: Command) -> Result<i64, EngineError> {
        match command {
            Command::CreateNamespace { name, if_not_exists } => {
                require_admin(request, "create namespaces")?;
                if matches!(name.as_str(), SYSTEM_NAMESPACE | INFORMATION_SCHEMA) || name.is_empty() {
                    return Err(invalid(format!("namespace name {name} is reserved")));
                }
                let mut catalog = self.store.catalog();
                if catalog.namespaces.contains_key(&name) {
                    return if if_not_exists {
                        Ok(0)
                    } else {
                        Err(invalid(format!("namespace {name} already exists")))
                    };
                }
                catalog
                    .namespaces
                    .insert(name.clone(), crate::storage::NamespaceEntry { created_ms: now_ms() });
                self.store.persist(&catalog).map_err(EngineError::Internal)?;
                self.register_namespace(&name);
                Ok(0)
            }
            Command::DropNamespace { name, if_exists, cascade } => {
                require_admin(request, "drop namespaces")?;
                if matches!(name.as_str(), SYSTEM_NAMESPACE | DEFAULT_NAMESPACE) {
                    return Err(invalid(format!("namespace {name} cannot be dropped")));
                }
                let mut catalog = self.store.catalog();
                if !catalog.namespaces.contains_key(&name) {
                    return if if_exists {
                        Ok(0)
                    } else {
                        Err(invalid(format!("namespace {name} does not exist")))
                    };
                }
                let ids: Vec<u64> =
                    catalog.tables.values().filter(|(d, _)| d.namespace == name).map(|(d, _)| d.id).collect();
                let views = catalog.views.iter().filter(|v| v.namespace == name).count();
                if ids.len() + views > 0 && !cascade {
                    return Err(invalid(format!(
                        "namespace {name} has {} tables and {views} views: drop them first or use \
                         DROP NAMESPACE {name} CASCADE",
                        ids.len()
                    )));
                }
                for id in ids {
                    self.store.remove_table(&mut catalog, id);
                }
                catalog.views.retain(|v| v.namespace != name);
                catalog.namespaces.remove(&name);
                self.store.persist(&catalog).map_err(EngineError::Internal)?;
                let _ = self.catalog.deregister_schema(&name, true);
                Ok(0)
            }
            Command::CreateTable { table, if_not_exists, columns, plain_sql, options } => {
                require_admin(request, "create tables")?;
                let namespace = table.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.into());
                let plan = self.ctx.state().create_logical_plan(&plain_sql).await?;
                let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = plan else {
                    return Err(invalid("expected CREATE TABLE"));
                };
                let user_schema = create.input.schema().as_arrow().clone();
                store_schema_check(&user_schema)?;
                let kind = options.kind.unwrap_or(TableKind::Shared);
                if kind == TableKind::Stream && options.ttl_seconds.is_none() {
                    return Err(invalid("a STREAM table needs WITH (TTL_SECONDS = n)"));
                }
                if kind != TableKind::Stream && options.ttl_seconds.is_some() {
                    return Err(invalid("TTL_SECONDS applies to STREAM tables only"));
                }
                if kind != TableKind::Shared && options.access.is_some() {
                    return Err(invalid("ACCESS_LEVEL applies to SHARED tables only"));
                }
                let primary_key: Vec<String> = create
                    .constraints
                    .iter()
                    .find_map(|c| match c {
                        Constraint::PrimaryKey(indices) => {
                            Some(indices.iter().map(|&i| user_schema.field(i).name().clone()).collect())
                        }
                        _ => None,
                    })
                    .unwrap_or_default();
                let defaults = columns
                    .iter()
                    .filter_map(|c| kalamsql::column_default(c).map(|d| (c.name.value.clone(), d)))
                    .collect();
                // Key columns never hold NULL.
                let fields = user_schema
                    .fields()
                    .iter()
                    .map(|f| {
                        f.as_ref().clone().with_nullable(f.is_nullable() && !primary_key.contains(f.name()))
                    })
                    .collect();
                let def = TableDef {
                    id: 0,
                    namespace,
                    name: table.name,
                    kind,
                    schema: table::schema_with_system_columns(fields, kind),
                    primary_key,
                    defaults,
                    flush: options.flush.unwrap_or_default(),
                    ttl_seconds: options.ttl_seconds,
                    access: options.access.unwrap_or(table::AccessLevel::Public),
                    created_ms: now_ms(),
                };
                self.add_table(def, if_not_exists)
            }
            Command::DropTable { table, kind, if_exists } => {
                require_admin(request, "drop tables")?;
                let (namespace, name) = resolve(&table);
                let mut catalog = self.store.catalog();
                let Some((def, _)) = catalog.find_table(&namespace, &name).cloned() else {
                    return if if_exists {
                        Ok(0)
                    } else {
                        Err(invalid(format!("table {namespace}.{name} does not exist")))
                    };
                };
                if let Some(kind) = kind.filter(|k| *k != def.kind) {
                    return Err(invalid(format!(
                        "{namespace}.{name} is a {} table, not a {} table",
                        def.kind.name(),
                        kind.name()
                    )));
                }
                self.store.remove_table(&mut catalog, def.id);
                self.store.persist(&catalog).map_err(EngineError::Internal)?;
                if let Some(schema) = self.catalog.schema(&namespace) {
                    schema.deregister_table(&name)?;
                }
                Ok(0)
            }
            Command::AlterTable { table, op } => {
                require_admin(request, "alter tables")?;
                self.alter_table(&table, op).await
            }
            Command::CreateUser { name, password, role, if_not_exists } => {
                require_admin(request, "create accounts")?;
                if role == Role::System && request.principal.role != Role::System {
                    return Err(EngineError::PermissionDenied(
                        "permission denied: only a system account can create system accounts".into(),
                    ));
                }
                let mut catalog = self.store.catalog();
                if catalog.users.contains_key(&name) {
                    return if if_not_exists {
                        Ok(0)
                    } else {
                        Err(invalid(format!("user {name} already exists")))
                    };
                }
                auth::check_password(&password).map_err(invalid)?;
                let (password_hash, salt) = auth::hash_password(&password);
                catalog.users.insert(name, UserEntry { role, password_hash, salt, created_ms: now_ms() });
                self.store.persist(&catalog).map_err(EngineError::Internal)?;
                Ok(0)
            }
            Command::AlterUser { name, password, role } => {
                let own = request.principal.user == name;
                if !(request.principal.role.is_admin() || own && role.is_none()) {
                    return Err(EngineError::PermissionDenied(
                        "permission denied: only dba and system accounts change other accounts or roles"
                            .into(),
                    ));
                }
                let mut catalog = self.store.catalog();
                let user = catalog
                    .users
                    .get_mut(&name)
                    .ok_or_else(|| invalid(format!("user {name} does not exist")))?;
                if let Some(password) = password {
                    auth::check_password(&password).map_err(invalid)?;
                    (user.password_hash, user.salt) = auth::hash_password(&password);
                }
                if let Some(role) = role {
                    user.role = role;
                }
                self.store.persist(&catalog).map_err(EngineError::Internal)?;
                self.sessions.forget_user(&name);
                Ok(0)
            }
            Command::DropUser { name, if_exists } => {
                require_admin(request, "drop accounts")?;
                if name == auth::ROOT {
                    return Err(invalid("the root account cannot be dropped"));
                }
                let mut catalog = self.store.catalog();
                if catalog.users.remove(&name).is_none() {
                    return if if_exists {
                        Ok(0)
                    } else {
                        Err(invalid(format!("user {name} does not exist")))
                    };
                }
                self.store.persist(&catalog).map_err(EngineError::Internal)?;
                self.sessions.forget_user(&name);
                Ok(0)
            }
            Command::Query(_) | Command::Sql | Command::ExecuteAs { .. } => unreachable!("handled by run"),
        }
    }

    async fn alter_table(&self, table: &TableName, op: AlterOp) -> Result<i64, EngineError> {
        let (namespace, name) = resolve(table);
        // Type the new column (or type) the way CREATE TABLE would.
        let typed = match &op {
            AlterOp::AddColumn { column, .. } => Some(self.column_field(&column.to_string()).await?),
            AlterOp::ModifyColumn { name, data_type } => {
                Some(self.column_field(&format!("{} {data_type}", kalamsql::quote_ident(name))).await?)
            }
            AlterOp::DropColumn { .. } => None,
        };
        let mut catalog = self.store.catalog();
        let (old, shared) = catalog
            .find_table(&namespace, &name)
            .cloned()
            .ok_or_else(|| invalid(format!("table {namespace}.{name} does not exist")))?;
        let mut def = (*old).clone();
        let mut fields: Vec<Field> = def.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let system_at =
            fields.iter().position(|f| TableDef::is_system_column(f.name())).unwrap_or(fields.len());
        match op {
            AlterOp::AddColumn { column, if_not_exists } => {
                let field = typed.expect("typed above");
                if fields.iter().any(|f| f.name() == field.name()) {
                    return if if_not_exists {
                        Ok(0)
                    } else {
                        Err(invalid(format!("column {} already exists", field.name())))
                    };
                }
                store_schema_check(&Schema::new(vec![field.clone()]))?;
                if !field.is_nullable() {
                    return Err(invalid(format!(
                        "a new column must allow NULL: rows already stored have no value for {}",
                        field.name()
                    )));
                }
                if let Some(default) = kalamsql::column_default(&column) {
                    def.defaults.push((field.name().clone(), default));
                }
                fields.insert(system_at, field);
            }
            AlterOp::DropColumn { name: column, if_exists } => {
                let Some(at) = fields.iter().position(|f| f.name() == &column) else {
                    return if if_exists {
                        Ok(0)
                    } else {
                        Err(invalid(format!("column {column} does not exist")))
                    };
                };
                if TableDef::is_system_column(&column) || def.primary_key.contains(&column) {
                    return Err(invalid(format!(
                        "column {column} cannot be dropped (system or primary key column)"
                    )));
                }
                fields.remove(at);
                def.defaults.retain(|(c, _)| c != &column);
            }
            AlterOp::ModifyColumn { name: column, .. } => {
                let field = typed.expect("typed above");
                let at = fields
                    .iter()
                    .position(|f| f.name() == &column)
                    .ok_or_else(|| invalid(format!("column {column} does not exist")))?;
                if TableDef::is_system_column(&column) || def.primary_key.contains(&column) {
                    return Err(invalid(format!(
                        "column {column} cannot change type (system or primary key column)"
                    )));
                }
                if !arrow_cast::can_cast_types(fields[at].data_type(), field.data_type()) {
                    return Err(invalid(format!(
                        "column {column} cannot change from {} to {}",
                        fields[at].data_type(),
                        field.data_type()
                    )));
                }
                fields[at] = fields[at].clone().with_data_type(field.data_type().clone());
            }
        }
        def.schema = Arc::new(Schema::new(fields));
        let def = self.store.replace_definition(&mut catalog, def).map_err(invalid)?;
        if let Err(e) = self.store.persist(&catalog) {
            let _ = self.store.replace_definition(&mut catalog, (*old).clone());
            return Err(EngineError::Internal(e));
        }
        self.register_table(def, shared)?;
        Ok(0)
    }

    /// The Arrow field of one column definition.
    async fn column_field(&self, column_sql: &str) -> Result<Field, EngineError> {
        let plan = self
            .ctx
            .state()
            .create_logical_plan(&format!("CREATE TABLE kalam_column_probe ({column_sql})"))
            .await?;
        let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = plan else {
            return Err(invalid("expected a column definition"));
        };
        let schema = create.input.schema().as_arrow().clone();
        store_schema_check(&schema)?;
        Ok(schema.field(0).clone())
    }

    pub fn catalog_names(&self) -> Vec<String> {
        vec![CATALOG.to_string()]
    }

    /// Every (catalog, namespace) pair.
    pub fn namespaces(&self) -> Vec<(String, String)> {
        self.catalog.schema_names().into_iter().map(|ns| (CATALOG.to_string(), ns)).collect()
    }

    /// Every table of every namespace, with its Arrow schema.
    pub async fn tables(&self) -> Vec<TableEntry> {
        let mut tables = Vec::new();
        for namespace in self.catalog.schema_names() {
            let Some(schema) = self.catalog.schema(&namespace) else { continue };
            for name in schema.table_names() {
                // A table dropped since it was listed is simply left out.
                let Ok(Some(table)) = schema.table(&name).await else { continue };
                let kalam = table.downcast_ref::<KalamTable>();
                let primary_key = kalam.map(|t| t.def.primary_key.clone()).unwrap_or_default();
                let kind = kalam.map(|t| t.def.kind);
                tables.push(TableEntry {
                    catalog: CATALOG.to_string(),
                    namespace: namespace.clone(),
                    is_view: table.table_type() == datafusion::datasource::TableType::View,
                    schema: table.schema(),
                    name,
                    primary_key,
                    kind,
                });
            }
        }
        tables
    }

    /// Writes every table's in-memory rows to Parquet (shutdown, tests).
    pub fn flush_all(&self) -> Result<(), String> {
        for (def, shared) in self.store.all_tables() {
            self.store.flush_table(&def, &shared)?;
        }
        Ok(())
    }

    /// Flushes the tables whose FLUSH_POLICY is due.
    pub fn flush_due(&self) -> Result<(), String> {
        for (def, shared) in self.store.due_for_flush() {
            self.store.flush_table(&def, &shared)?;
        }
        Ok(())
    }
}

/// DataFusion's analyzer rules, after [`crate::types::UuidText`] (which must see comparisons of
/// UUIDs with text before type coercion refuses them).
fn analyzer_rules() -> Vec<Arc<dyn datafusion::optimizer::AnalyzerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn datafusion::optimizer::AnalyzerRule + Send + Sync>> =
        vec![Arc::new(crate::types::UuidText)];
    rules.extend(datafusion::optimizer::Analyzer::new().rules);
    rules
}

fn resolve(table: &TableName) -> (String, String) {
    (table.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.into()), table.name.clone())
}

fn require_admin(request: &RequestContext, what: &str) -> Result<(), EngineError> {
    if request.principal.role.is_admin() {
        Ok(())
    } else {
        Err(EngineError::PermissionDenied(format!(
            "permission denied: only dba and system accounts {what}; '{}' is {}",
            request.principal.user,
            request.principal.role.name()
        )))
    }
}

fn store_schema_check(schema: &Schema) -> Result<(), EngineError> {
    crate::storage::check_user_columns(&Arc::new(schema.clone())).map_err(invalid)
}

fn unsupported_ddl(ddl: &DdlStatement) -> EngineError {
    invalid(format!(
        "{} is not supported by kalamdb-server: use CREATE NAMESPACE, CREATE [USER|SHARED|STREAM] TABLE, \
         ALTER TABLE or DROP TABLE",
        ddl.name()
    ))
}

/// Binds `params` to the placeholders of `plan`. A value of another type than the one the
/// placeholder needs (an Int64 for an INT column, a Utf8 for a Utf8View) is cast to it first
/// where a row written to the column would be, exactly.
pub fn bind(plan: LogicalPlan, params: Vec<ScalarValue>) -> Result<LogicalPlan, EngineError> {
    let wanted = plan.get_parameter_types()?;
    let mut bound = Vec::with_capacity(params.len());
    for (i, value) in params.into_iter().enumerate() {
        let Some(Some(to)) = wanted.get(&format!("${}", i + 1)) else {
            bound.push(value);
            continue;
        };
        if value.data_type() == *to {
            bound.push(value);
        } else if value.is_null() {
            bound.push(ScalarValue::try_from(to)?);
        } else {
            // A value with no exact cast goes as it is: the statement may convert it itself
            // (text written to a UUID column), or refuses it with its own error.
            let field = arrow_schema::Field::new(format!("${}", i + 1), to.clone(), true);
            match crate::types::conform(&field, value.to_array()?) {
                Ok(cast) => bound.push(ScalarValue::try_from_array(&cast, 0)?),
                Err(_) => bound.push(value),
            }
        }
    }
    Ok(plan.with_param_values(bound)?)
}

fn is_read_only(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::Copy(_)
    )
}

/// Name of the extra column an UPDATE's input carries for the old value of a key column.
fn old_key_column(column: &str) -> String {
    format!("__kalam_old_{column}")
}

/// Adds the old primary key values to an UPDATE's input (its new values may differ), and
/// refuses assignments to system columns.
fn update_input_with_old_keys(input: LogicalPlan, def: &TableDef) -> Result<LogicalPlan, EngineError> {
    let LogicalPlan::Projection(projection) = input else {
        return Err(EngineError::Internal("unexpected UPDATE plan".into()));
    };
    for (expr, field) in projection.expr.iter().zip(def.schema.fields()) {
        let expr = match expr {
            Expr::Alias(alias) => alias.expr.as_ref(),
            expr => expr,
        };
        if TableDef::is_system_column(field.name())
            && !matches!(expr, Expr::Column(c) if c.name == *field.name())
        {
            return Err(invalid(format!(
                "column {} is set by the server and cannot be updated",
                field.name()
            )));
        }
    }
    let mut exprs = projection.expr.clone();
    for key in &def.primary_key {
        let (qualifier, field) = projection.input.schema().qualified_field_with_unqualified_name(key)?;
        exprs.push(
            Expr::Column(datafusion::common::Column::new(qualifier.cloned(), field.name()))
                .alias(old_key_column(key)),
        );
    }
    Ok(LogicalPlan::Projection(Projection::try_new(exprs, projection.input.clone())?))
}

/// The primary keys of the rows a statement adds (`adds`, by partition), each batch's, once
/// checked against the keys taken in the transaction's view with the keys of the rows the
/// statement removes (`removing`) freed; a key taken or given twice is a 23505 violation.
fn checked_keys(
    tx: &Transaction,
    table: TableRef,
    adds: &[(String, RecordBatch)],
    removing: &[(&str, &table::Key)],
) -> Result<Vec<Vec<table::Key>>, EngineError> {
    let def = table.0;
    if def.primary_key.is_empty() {
        return Ok(vec![Vec::new(); adds.len()]);
    }
    let mut keys = Vec::with_capacity(adds.len());
    for (_, batch) in adds {
        keys.push(table::primary_keys(def, batch).map_err(invalid)?);
    }
    let partitions: HashSet<&str> = adds.iter().map(|(p, _)| p.as_str()).collect();
    for partition in partitions {
        // All the statement's keys for the partition, with where each came from.
        let mut all: Vec<&table::Key> = Vec::new();
        let mut origin = Vec::new();
        for (index, ((p, _), batch_keys)) in adds.iter().zip(&keys).enumerate() {
            if p == partition {
                for (row, key) in batch_keys.iter().enumerate() {
                    all.push(key);
                    origin.push((index, row));
                }
            }
        }
        let freed: HashSet<&table::Key, ahash::RandomState> =
            removing.iter().filter(|(p, _)| *p == partition).map(|(_, k)| *k).collect();
        if let Some(taken) = tx.key_taken(table, partition, &all, &freed) {
            let (index, row) = origin[taken];
            return Err(StoreError::Violation(table::duplicate_key(def, &adds[index].1, row)).into());
        }
    }
    Ok(keys)
}

/// Primary keys of the old row versions of an UPDATE or DELETE input.
fn old_keys(def: &TableDef, batch: &RecordBatch, is_update: bool) -> Result<Vec<table::Key>, EngineError> {
    let columns: Vec<ArrayRef> = def
        .primary_key
        .iter()
        .map(|key| {
            let name = if is_update { old_key_column(key) } else { key.clone() };
            batch
                .column_by_name(&name)
                .cloned()
                .ok_or_else(|| EngineError::Internal(format!("{name} missing")))
        })
        .collect::<Result<_, _>>()?;
    table::encode_keys(&columns).map_err(invalid)
}

/// The stream in the types of the logical plan's schema (`announced`: what GetFlightInfo told
/// the client). DataFusion 55's physical plan can produce other types: `sum` of a decimal next
/// to a DISTINCT aggregate is summed twice (per group of the distinct values, then overall),
/// each time with ten more digits of precision, so a DECIMAL(22,3) arrives as DECIMAL(32,3).
/// The cast cannot lose a value: the announced type is the one the plan computes them in.
fn as_announced(stream: SendableRecordBatchStream, announced: SchemaRef) -> SendableRecordBatchStream {
    let same = stream.schema().fields().len() == announced.fields().len()
        && stream
            .schema()
            .fields()
            .iter()
            .zip(announced.fields())
            .all(|(a, b)| a.data_type() == b.data_type());
    if same {
        return stream;
    }
    let schema = Arc::new(Schema::new_with_metadata(
        stream
            .schema()
            .fields()
            .iter()
            .zip(announced.fields())
            .map(|(physical, logical)| physical.as_ref().clone().with_data_type(logical.data_type().clone()))
            .collect::<Vec<_>>(),
        stream.schema().metadata().clone(),
    ));
    let target = schema.clone();
    let batches = stream.map(move |batch| {
        let batch = batch?;
        if batch.schema().fields().iter().zip(target.fields()).all(|(a, b)| a.data_type() == b.data_type()) {
            return Ok(batch);
        }
        let columns = batch
            .columns()
            .iter()
            .zip(target.fields())
            .map(|(column, field)| arrow_cast::cast(column, field.data_type()))
            .collect::<Result<Vec<_>, _>>()?;
        let options =
            datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(target.clone(), columns, &options)?)
    });
    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, batches))
}

/// Splits rows by their `_userid` (per-user tables), keeping the row indices.
fn split_by_owner_with_indices(
    batch: &RecordBatch,
    def: &TableDef,
) -> Vec<(Option<String>, RecordBatch, Vec<usize>)> {
    let owners = if def.kind.per_user() { table::owners(batch) } else { None };
    let Some(owners) = owners.filter(|o| o.null_count() < o.len()) else {
        return vec![(None, batch.clone(), (0..batch.num_rows()).collect())];
    };
    let mut groups: HashMap<Option<String>, Vec<u64>> = HashMap::new();
    for i in 0..batch.num_rows() {
        let owner = owners.is_valid(i).then(|| owners.value(i).to_string());
        groups.entry(owner).or_default().push(i as u64);
    }
    groups
        .into_iter()
        .map(|(owner, rows)| {
            let indices = UInt64Array::from(rows.clone());
            let part = arrow_select::take::take_record_batch(batch, &indices).expect("indices are in range");
            (owner, part, rows.into_iter().map(|r| r as usize).collect())
        })
        .collect()
}

fn split_by_owner(batch: &RecordBatch, def: &TableDef) -> Vec<(Option<String>, RecordBatch)> {
    split_by_owner_with_indices(batch, def).into_iter().map(|(o, b, _)| (o, b)).collect()
}
