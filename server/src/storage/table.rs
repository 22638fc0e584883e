//! One KalamDB table: its definition, its data (rows in memory since the last flush plus
//! Parquet segments, per partition), and the DataFusion provider that scans it.
//!
//! Every row carries `_seq` (a time-ordered id given when the row version is written, unique
//! in the server) and `_deleted`. A DELETE or an UPDATE never rewrites data: it adds the
//! `_seq` of the old row version to the partition's deletion set (an UPDATE also writes the new
//! version), and scans drop rows whose `_seq` is in it. USER and STREAM tables keep one
//! partition per user id, so a scan for one user never touches another user's data.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, new_null_array};
use arrow_row::{RowConverter, SortField};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::{Constraints, DFSchema, Statistics};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TableProviderFilterPushDown, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::union::UnionExec;
use serde::{Deserialize, Serialize};

use super::Violation;
use crate::session::RequestContext;

/// Row version id, assigned by the server.
pub const SEQ: &str = "_seq";
/// Always false in rows a query sees; deleted row versions are dropped by the scan.
pub const DELETED: &str = "_deleted";
/// Owner of a row of a USER or STREAM table.
pub const USER_ID: &str = "_userid";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TableKind {
    User,
    Shared,
    Stream,
}

impl TableKind {
    /// USER and STREAM tables keep one partition per user.
    pub fn per_user(self) -> bool {
        !matches!(self, TableKind::Shared)
    }

    pub fn name(self) -> &'static str {
        match self {
            TableKind::User => "USER",
            TableKind::Shared => "SHARED",
            TableKind::Stream => "STREAM",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "USER" => Some(TableKind::User),
            "SHARED" => Some(TableKind::Shared),
            "STREAM" => Some(TableKind::Stream),
            _ => None,
        }
    }
}

/// Who may read a SHARED table: `public` (every account) or `private` (service, dba and
/// system accounts only). Writing a SHARED table always needs a service, dba or system account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    Public,
    Private,
}

/// When rows held in memory are written to a Parquet segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushPolicy {
    pub rows: usize,
    pub interval_secs: u64,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self { rows: 1_000_000, interval_secs: 300 }
    }
}

impl FlushPolicy {
    /// Parses `'rows:N,interval:S'` (either part may be left out).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!(
                "FLUSH_POLICY '{text}' is not valid: write 'rows:N,interval:S' with N and S positive integers"
            )
        };
        let mut policy = FlushPolicy::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once(':').ok_or_else(bad)?;
            let value: u64 = value.trim().parse().map_err(|_| bad())?;
            if value == 0 {
                return Err(bad());
            }
            match key.trim().to_ascii_lowercase().as_str() {
                "rows" => policy.rows = value as usize,
                "interval" => policy.interval_secs = value,
                _ => return Err(bad()),
            }
        }
        Ok(policy)
    }

    pub fn to_text(self) -> String {
        format!("rows:{},interval:{}", self.rows, self.interval_secs)
    }
}

/// The definition of a table, as the catalog persists it.
#[derive(Clone, Debug)]
pub struct TableDef {
    pub id: u64,
    pub namespace: String,
    pub name: String,
    pub kind: TableKind,
    /// Every column, the system columns included.
    pub schema: SchemaRef,
    pub primary_key: Vec<String>,
    /// Column defaults as SQL expressions.
    pub defaults: Vec<(String, String)>,
    pub flush: FlushPolicy,
    pub ttl_seconds: Option<u64>,
    pub access: AccessLevel,
    pub created_ms: i64,
}

impl TableDef {
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    pub fn is_system_column(name: &str) -> bool {
        matches!(name, SEQ | DELETED | USER_ID)
    }

    /// The system columns a table of `kind` gets after its own columns.
    pub fn system_fields(kind: TableKind) -> Vec<Field> {
        let mut fields =
            vec![Field::new(SEQ, DataType::Int64, true), Field::new(DELETED, DataType::Boolean, true)];
        if kind.per_user() {
            fields.push(Field::new(USER_ID, DataType::Utf8, true));
        }
        fields
    }

    fn seq_index(&self) -> usize {
        self.schema.index_of(SEQ).expect("every table has _seq")
    }
}

/// A Parquet file holding flushed rows of one partition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Segment {
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub min_seq: i64,
    pub max_seq: i64,
}

/// Key of a primary key value (arrow-row encoding of the key columns).
pub type Key = Box<[u8]>;
/// Sets and maps of keys, hashed with aHash: a bulk load checks and records every row's key.
pub type KeySet = HashSet<Key, ahash::RandomState>;
/// Sets of `_seq` values (deleted row versions), hashed with aHash: every scanned row is looked up.
pub type SeqSet = HashSet<i64, ahash::RandomState>;
pub type KeyMap<V> = HashMap<Key, V, ahash::RandomState>;

#[derive(Default)]
pub struct Partition {
    /// Committed rows not yet flushed, in commit order.
    pub hot: Vec<RecordBatch>,
    pub hot_rows: usize,
    /// When the oldest row in `hot` was committed.
    pub hot_since: Option<Instant>,
    pub segments: Vec<Arc<Segment>>,
    /// `_seq` of every deleted or replaced row version.
    pub deleted: Arc<SeqSet>,
    /// Primary key → `_seq` of the live row with that key (tables with a primary key).
    pub keys: KeyMap<i64>,
}

pub struct TableData {
    pub partitions: BTreeMap<String, Partition>,
    /// LSN of the last commit applied to this table.
    pub applied_lsn: u64,
    /// Every commit at or below this LSN is in the segments and deletion sets on disk.
    pub flushed_lsn: u64,
    pub next_segment: u64,
    pub dropped: bool,
}

/// The data of a table, shared by every provider generation of it (ALTER TABLE makes a new
/// provider around the same data).
pub struct TableShared {
    pub id: u64,
    pub dir: PathBuf,
    pub data: Mutex<TableData>,
    /// Serializes flushes of this table.
    pub flush_lock: Mutex<()>,
}

impl TableShared {
    pub fn new(id: u64, dir: PathBuf, flushed_lsn: u64) -> Self {
        Self {
            id,
            dir,
            data: Mutex::new(TableData {
                partitions: BTreeMap::new(),
                applied_lsn: flushed_lsn,
                flushed_lsn,
                next_segment: 1,
                dropped: false,
            }),
            flush_lock: Mutex::new(()),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, TableData> {
        self.data.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Directory of a partition's segments.
    pub fn partition_dir(&self, partition: &str) -> PathBuf {
        partition_dir(&self.dir, partition)
    }
}

pub fn partition_dir(table_dir: &Path, partition: &str) -> PathBuf {
    if partition.is_empty() {
        table_dir.join("shared")
    } else {
        let hex: String = partition.bytes().map(|b| format!("{b:02x}")).collect();
        table_dir.join(format!("u-{hex}"))
    }
}

/// Encodes the primary key of every row of `batch`.
pub fn primary_keys(def: &TableDef, batch: &RecordBatch) -> std::result::Result<Vec<Key>, String> {
    let mut columns = Vec::with_capacity(def.primary_key.len());
    for name in &def.primary_key {
        let column = batch
            .column_by_name(name)
            .ok_or_else(|| format!("primary key column {name} is missing"))?
            .clone();
        if column.null_count() > 0 {
            return Err(format!(
                "primary key column {name} of {} cannot be NULL; give it a value or a DEFAULT",
                def.qualified_name()
            ));
        }
        columns.push(column);
    }
    encode_keys(&columns)
}

/// Encodes the rows of key `columns` (arrow-row format: equal keys, equal bytes).
pub fn encode_keys(columns: &[ArrayRef]) -> std::result::Result<Vec<Key>, String> {
    let fields = columns.iter().map(|c| SortField::new(c.data_type().clone())).collect();
    let converter = RowConverter::new(fields).map_err(|e| e.to_string())?;
    let rows = converter.convert_columns(columns).map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|row| row.as_ref().to_vec().into_boxed_slice()).collect())
}

/// The `_seq` values of a batch.
pub fn seqs(batch: &RecordBatch) -> &[i64] {
    batch.column_by_name(SEQ).expect("batches carry _seq").as_primitive::<Int64Type>().values()
}

/// Reshapes a batch written under an older definition to `schema`: columns are matched by
/// name, new columns are NULL, dropped ones go away, changed types are cast.
pub fn adapt_batch(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => arrow_cast::cast(column, field.data_type())
                .map_err(|e| format!("column {} cannot become {}: {e}", field.name(), field.data_type())),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<std::result::Result<Vec<ArrayRef>, String>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// Which partitions a scan reads.
#[derive(Clone, Debug)]
pub enum PartitionScope {
    One(String),
    All,
}

/// What a scan reads, taken under the table lock and then used without it.
struct Snapshot {
    batches: Vec<RecordBatch>,
    files: Vec<(PathBuf, u64)>,
    deleted: Vec<Arc<SeqSet>>,
    file_rows: u64,
}

/// The DataFusion face of a table: an immutable definition around the shared data.
#[derive(Debug)]
pub struct KalamTable {
    pub def: Arc<TableDef>,
    pub shared: Arc<TableShared>,
    defaults: HashMap<String, Expr>,
    constraints: Constraints,
}

impl std::fmt::Debug for TableShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableShared({})", self.id)
    }
}

impl KalamTable {
    pub fn new(
        def: Arc<TableDef>,
        shared: Arc<TableShared>,
        defaults: HashMap<String, Expr>,
        constraints: Constraints,
    ) -> Self {
        Self { def, shared, defaults, constraints }
    }

    /// What a scan reads; an error if this transaction's own rows no longer fit the table
    /// (a column changed type since they were staged).
    fn snapshot(
        &self,
        scope: &PartitionScope,
        request: &RequestContext,
    ) -> std::result::Result<Snapshot, String> {
        let mut snapshot =
            Snapshot { batches: Vec::new(), files: Vec::new(), deleted: Vec::new(), file_rows: 0 };
        {
            let data = self.shared.lock();
            let mut take = |key: &String, partition: &Partition| {
                snapshot.batches.extend(partition.hot.iter().cloned());
                let dir = self.shared.partition_dir(key);
                for segment in &partition.segments {
                    snapshot.files.push((dir.join(&segment.file), segment.bytes));
                    snapshot.file_rows += segment.rows;
                }
                if !partition.deleted.is_empty() {
                    snapshot.deleted.push(partition.deleted.clone());
                }
            };
            match scope {
                PartitionScope::One(key) => {
                    if let Some(partition) = data.partitions.get(key) {
                        take(key, partition);
                    }
                }
                PartitionScope::All => data.partitions.iter().for_each(|(k, p)| take(k, p)),
            }
        }
        // Read-your-writes: the transaction's own uncommitted rows and deletions.
        let mut failed = None;
        if let Some(tx) = &request.transaction {
            tx.visit_writes(self.shared.id, scope, |inserts, deleted| {
                for batch in inserts {
                    match adapt_batch(batch, &self.def.schema) {
                        Ok(batch) => snapshot.batches.push(batch),
                        Err(e) => failed = Some(e),
                    }
                }
                if !deleted.is_empty() {
                    snapshot.deleted.push(Arc::new(deleted.clone()));
                }
            });
        }
        match failed {
            Some(e) => Err(format!("rows this transaction wrote to {}: {e}", self.def.qualified_name())),
            None => Ok(snapshot),
        }
    }

    /// The oldest `_seq` a STREAM table still shows.
    fn seq_floor(&self) -> Option<i64> {
        let ttl = self.def.ttl_seconds?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Some(crate::snowflake::floor_at_ms(now_ms.saturating_sub(ttl * 1000)))
    }
}

#[async_trait]
impl TableProvider for KalamTable {
    fn schema(&self) -> SchemaRef {
        self.def.schema.clone()
    }

    fn constraints(&self) -> Option<&Constraints> {
        Some(&self.constraints)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters prune Parquet row groups; DataFusion still applies them to every row.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let request = RequestContext::of(state.config());
        let scope = request.read_scope(&self.def).map_err(DataFusionError::Plan)?;
        let snapshot = self.snapshot(&scope, &request).map_err(DataFusionError::Plan)?;
        let schema = self.def.schema.clone();
        let seq_index = self.def.seq_index();
        let seq_floor = self.seq_floor();
        let filter_rows = !snapshot.deleted.is_empty() || seq_floor.is_some();

        // The scan itself reads `_seq` too when rows must be checked against the deletion set.
        let wanted: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..schema.fields().len()).collect());
        let mut read = wanted.clone();
        if filter_rows && !read.contains(&seq_index) {
            read.push(seq_index);
        }
        let source_limit = if filter_rows { None } else { limit };

        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !snapshot.files.is_empty() {
            let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
            let mut source = ParquetSource::new(schema.clone());
            if let Some(predicate) = filters.iter().cloned().reduce(Expr::and) {
                source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
            }
            let groups_max = state.config().target_partitions().max(1);
            let mut groups: Vec<Vec<PartitionedFile>> =
                vec![Vec::new(); groups_max.min(snapshot.files.len())];
            let group_count = groups.len();
            for (i, (path, bytes)) in snapshot.files.iter().enumerate() {
                let path =
                    path.to_str().ok_or_else(|| DataFusionError::Internal("non UTF-8 data path".into()))?;
                groups[i % group_count].push(PartitionedFile::new(path.trim_start_matches('/'), *bytes));
            }
            let config = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                .with_projection_indices(Some(read.clone()))?
                .with_statistics(
                    Statistics::new_unknown(&schema)
                        .with_num_rows(Precision::Exact(snapshot.file_rows as usize)),
                )
                .with_limit(source_limit)
                .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }
        if !snapshot.batches.is_empty() || inputs.is_empty() {
            let memory =
                MemorySourceConfig::try_new(&[snapshot.batches], schema.clone(), Some(read.clone()))?
                    .with_limit(source_limit);
            inputs.push(DataSourceExec::from_data_source(memory));
        }
        let plan = UnionExec::try_new(inputs)?;
        if !filter_rows {
            return Ok(plan);
        }

        // Keep live rows only, then drop `_seq` again if the query did not ask for it.
        let live = ScalarUDF::new_from_impl(LiveRows { deleted: snapshot.deleted, seq_floor });
        let seq_position = read.iter().position(|&i| i == seq_index).expect("_seq is read");
        let read_schema = Arc::new(schema.project(&read)?);
        let read_df_schema = DFSchema::try_from(read_schema.as_ref().clone())?;
        let seq_column = Expr::Column(read_df_schema.qualified_field(seq_position).1.name().as_str().into());
        let predicate = state.create_physical_expr(live.call(vec![seq_column]), &read_df_schema)?;
        let filter = FilterExecBuilder::new(predicate, plan)
            .apply_projection(Some((0..wanted.len()).collect()))?
            .build()?;
        Ok(Arc::new(filter))
    }
}

/// `kalam_live(_seq)`: false for deleted row versions and rows older than a STREAM table's TTL.
#[derive(Debug)]
struct LiveRows {
    deleted: Vec<Arc<SeqSet>>,
    seq_floor: Option<i64>,
}

impl PartialEq for LiveRows {
    fn eq(&self, other: &Self) -> bool {
        self.seq_floor == other.seq_floor
            && self.deleted.len() == other.deleted.len()
            && self.deleted.iter().zip(&other.deleted).all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl Eq for LiveRows {}

impl std::hash::Hash for LiveRows {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.seq_floor.hash(state);
        for set in &self.deleted {
            (Arc::as_ptr(set) as usize).hash(state);
        }
    }
}

static LIVE_SIGNATURE: std::sync::LazyLock<Signature> =
    std::sync::LazyLock::new(|| Signature::exact(vec![DataType::Int64], Volatility::Stable));

impl ScalarUDFImpl for LiveRows {
    fn name(&self) -> &str {
        "kalam_live"
    }

    fn signature(&self) -> &Signature {
        &LIVE_SIGNATURE
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let seqs = args.args[0].clone().into_array(args.number_rows)?;
        let seqs = seqs.as_primitive::<Int64Type>();
        let floor = self.seq_floor.unwrap_or(i64::MIN);
        let live: BooleanArray = seqs
            .values()
            .iter()
            .map(|seq| Some(*seq >= floor && !self.deleted.iter().any(|set| set.contains(seq))))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(live)))
    }
}

/// Bytes the rows of `batch` take (not the buffers they are slices of).
pub fn batch_bytes(batch: &RecordBatch) -> usize {
    batch.columns().iter().map(column_bytes).sum()
}

/// The slice of a column its rows use; for view columns that is the views plus the data
/// buffers (which a slice cannot split).
fn column_bytes(column: &ArrayRef) -> usize {
    let data_buffers = match column.data_type() {
        DataType::Utf8View => column.as_string_view().data_buffers().iter().map(|b| b.len()).sum(),
        DataType::BinaryView => column.as_binary_view().data_buffers().iter().map(|b| b.len()).sum(),
        _ => 0,
    };
    let slice = column.to_data().get_slice_memory_size().unwrap_or_else(|_| column.get_array_memory_size());
    slice + data_buffers
}

/// A string or binary view column whose data buffers are far larger than what its rows use
/// (a slice of a bigger array, or an array decoded from a larger message) gets compacted, so
/// it neither pins memory nor sends unused bytes over the wire.
pub fn compact_views(batch: RecordBatch) -> RecordBatch {
    let compacted = |column: &ArrayRef| -> Option<ArrayRef> {
        match column.data_type() {
            DataType::Utf8View => {
                let array = column.as_string_view();
                view_sparse(array.views(), array.data_buffers()).then(|| Arc::new(array.gc()) as ArrayRef)
            }
            DataType::BinaryView => {
                let array = column.as_binary_view();
                view_sparse(array.views(), array.data_buffers()).then(|| Arc::new(array.gc()) as ArrayRef)
            }
            _ => None,
        }
    };
    let replaced: Vec<Option<ArrayRef>> = batch.columns().iter().map(compacted).collect();
    if replaced.iter().all(Option::is_none) {
        return batch;
    }
    let columns = replaced
        .into_iter()
        .zip(batch.columns())
        .map(|(new, old)| new.unwrap_or_else(|| old.clone()))
        .collect();
    RecordBatch::try_new(batch.schema(), columns).expect("same schema, same lengths")
}

/// True if the data buffers hold more than twice (plus 4 KiB) the bytes the views point at.
fn view_sparse(views: &[u128], buffers: &[arrow_buffer::Buffer]) -> bool {
    let held: usize = buffers.iter().map(|b| b.len()).sum();
    if held <= 4096 {
        return false;
    }
    // A view's low 32 bits are the value's length; values of 12 bytes or less are inline.
    let used: usize = views.iter().map(|v| *v as u32 as usize).filter(|len| *len > 12).sum();
    held > 2 * used + 4096
}

/// Fills the system columns of rows about to be written: a fresh `_seq` each, `_deleted` false
/// and, for per-user tables, the owner.
pub fn stamp_rows(
    def: &TableDef,
    batch: &RecordBatch,
    owner: Option<&str>,
) -> std::result::Result<RecordBatch, Violation> {
    let rows = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(def.schema.fields().len());
    for field in def.schema.fields() {
        let column: ArrayRef = match field.name().as_str() {
            SEQ => {
                let first = crate::snowflake::next_ids(rows);
                Arc::new(arrow_array::Int64Array::from_iter_values(first..first + rows as i64))
            }
            DELETED => Arc::new(BooleanArray::from(vec![false; rows])),
            USER_ID => Arc::new(StringArray::from(vec![owner; rows])),
            name => {
                let column = batch
                    .column_by_name(name)
                    .cloned()
                    .unwrap_or_else(|| new_null_array(field.data_type(), rows));
                if !field.is_nullable() && column.null_count() > 0 {
                    return Err(Violation {
                        sqlstate: Violation::NOT_NULL,
                        message: format!(
                            "null value in column {name} of {} violates its NOT NULL constraint; give it a value",
                            def.qualified_name()
                        ),
                        detail: None,
                    });
                }
                crate::types::conform(field, column).map_err(|e| Violation {
                    sqlstate: if field.data_type().is_numeric() {
                        Violation::OUT_OF_RANGE
                    } else {
                        Violation::DATA
                    },
                    message: format!(
                        "column {name} of {} is {}: {e}",
                        def.qualified_name(),
                        crate::types::type_name(field)
                    ),
                    detail: None,
                })?
            }
        };
        columns.push(column);
    }
    RecordBatch::try_new(def.schema.clone(), columns).map(compact_views).map_err(|e| Violation {
        sqlstate: Violation::DATA,
        message: format!("rows for {} do not fit its columns: {e}", def.qualified_name()),
        detail: None,
    })
}

/// The error of a row of `batch` whose primary key another row already has, naming its
/// values as PostgreSQL does (`Key (id)=(5) already exists.`).
pub fn duplicate_key(def: &TableDef, batch: &RecordBatch, row: usize) -> Violation {
    let options = arrow_cast::display::FormatOptions::default().with_null("null");
    let values: Vec<String> = def
        .primary_key
        .iter()
        .map(|name| {
            batch
                .column_by_name(name)
                .and_then(|c| {
                    arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &options)
                        .ok()
                        .map(|f| f.value(row).to_string())
                })
                .unwrap_or_default()
        })
        .collect();
    Violation {
        sqlstate: Violation::UNIQUE,
        message: format!("duplicate key value violates the primary key of {}", def.qualified_name()),
        detail: Some(format!("Key ({})=({}) already exists.", def.primary_key.join(", "), values.join(", "))),
    }
}

/// Time a partition's oldest unflushed row has waited.
pub fn hot_age(partition: &Partition) -> Duration {
    partition.hot_since.map(|t| t.elapsed()).unwrap_or_default()
}

/// The owner column of a per-user table's rows, if present and non-null.
pub fn owners(batch: &RecordBatch) -> Option<&StringArray> {
    batch.column_by_name(USER_ID)?.as_string_opt::<i32>()
}

pub fn schema_with_system_columns(user_fields: Vec<Field>, kind: TableKind) -> SchemaRef {
    let mut fields = user_fields;
    fields.extend(TableDef::system_fields(kind));
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringViewArray;

    // Goal: a slice of a string view column stops carrying its parent's data buffers; a dense
    // column is left as it is.
    #[test]
    fn sparse_view_columns_are_compacted() {
        let long: Vec<String> =
            (0..10_000).map(|i| format!("a value long enough to leave the view {i}")).collect();
        let column: ArrayRef = Arc::new(StringViewArray::from_iter_values(long.iter()));
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8View, false)]));
        let batch = RecordBatch::try_new(schema, vec![column]).unwrap();
        let held = |b: &RecordBatch| -> usize {
            b.column(0).as_string_view().data_buffers().iter().map(|d| d.len()).sum()
        };
        let full = held(&batch);
        assert_eq!(held(&compact_views(batch.clone())), full);
        let slice = compact_views(batch.slice(100, 10));
        assert!(held(&slice) < 1000, "{} bytes kept for 10 values", held(&slice));
        assert_eq!(slice.column(0).as_string_view().value(0), long[100]);
    }
}
