//! Durable storage: the catalog, the write-ahead log, per-table data and Parquet segments.
//!
//! Files under the data directory:
//! - `catalog.json`: namespaces, table definitions and accounts, rewritten atomically by DDL.
//! - `wal/`: the write-ahead log ([`wal`]); a commit is acknowledged after its records are
//!   fsynced.
//! - `tables/<id>/manifest.json`: a table's segments and deletion sets, with the LSN up to
//!   which they hold every commit; `tables/<id>/<partition>/seg-N.parquet`: the segments.
//!
//! Recovery loads the catalog and manifests, then replays the commits above each table's
//! flushed LSN. A flush writes the in-memory rows of a table to new segments, then its
//! manifest, and lets the log drop files no table needs any more.

pub mod segment;
pub mod table;
pub mod wal;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::session::{Role, TableWrites};
use table::{AccessLevel, FlushPolicy, Partition, Segment, TableData, TableDef, TableKind, TableShared};
use wal::{Wal, write_atomically};

/// A failed storage operation.
#[derive(Debug)]
pub enum StoreError {
    /// The request is wrong (unknown or duplicate object, duplicate key, NULL where not allowed).
    Invalid(String),
    /// A concurrent transaction changed the same rows first.
    Conflict(String),
    /// The disk failed; nothing of the operation was applied.
    Io(String),
    /// A row breaks a rule of its table (a key taken, a NULL in a NOT NULL column, a value that
    /// does not fit the column).
    Violation(Violation),
}

/// A row that breaks a rule of its table, with the PostgreSQL SQLSTATE that names the rule, so
/// that a PostgreSQL client can raise the error PostgreSQL itself would.
#[derive(Clone, Debug)]
pub struct Violation {
    pub sqlstate: &'static str,
    pub message: String,
    /// Which values (`Key (id)=(5) already exists.`).
    pub detail: Option<String>,
}

impl Violation {
    pub const UNIQUE: &'static str = "23505";
    pub const NOT_NULL: &'static str = "23502";
    pub const OUT_OF_RANGE: &'static str = "22003";
    pub const DATA: &'static str = "22000";
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Invalid(m) | StoreError::Conflict(m) | StoreError::Io(m) => f.write_str(m),
            StoreError::Violation(v) => f.write_str(&v.message),
        }
    }
}

impl From<String> for StoreError {
    fn from(message: String) -> Self {
        StoreError::Io(message)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NamespaceEntry {
    pub created_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserEntry {
    pub role: Role,
    /// PBKDF2-HMAC-SHA256 of the password, hex; empty means the account cannot log in.
    pub password_hash: String,
    pub salt: String,
    pub created_ms: i64,
}

/// A table definition as `catalog.json` stores it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TableDefFile {
    id: u64,
    namespace: String,
    name: String,
    kind: TableKind,
    /// The Arrow schema as an IPC stream header, base64.
    schema: String,
    primary_key: Vec<String>,
    defaults: Vec<(String, String)>,
    flush: FlushPolicy,
    ttl_seconds: Option<u64>,
    access: AccessLevel,
    created_ms: i64,
}

impl TableDefFile {
    fn from_def(def: &TableDef) -> Result<Self, String> {
        let mut bytes = Vec::new();
        let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &def.schema)
            .map_err(|e| format!("cannot encode the schema of {}: {e}", def.qualified_name()))?;
        writer.finish().map_err(|e| e.to_string())?;
        drop(writer);
        Ok(Self {
            id: def.id,
            namespace: def.namespace.clone(),
            name: def.name.clone(),
            kind: def.kind,
            schema: base64::engine::general_purpose::STANDARD.encode(bytes),
            primary_key: def.primary_key.clone(),
            defaults: def.defaults.clone(),
            flush: def.flush,
            ttl_seconds: def.ttl_seconds,
            access: def.access,
            created_ms: def.created_ms,
        })
    }

    fn to_def(&self) -> Result<TableDef, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.schema)
            .map_err(|e| format!("catalog.json: bad schema of table {}: {e}", self.name))?;
        let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes), None)
            .map_err(|e| format!("catalog.json: bad schema of table {}: {e}", self.name))?;
        Ok(TableDef {
            id: self.id,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            kind: self.kind,
            schema: reader.schema(),
            primary_key: self.primary_key.clone(),
            defaults: self.defaults.clone(),
            flush: self.flush,
            ttl_seconds: self.ttl_seconds,
            access: self.access,
            created_ms: self.created_ms,
        })
    }
}

#[derive(Default, Serialize, Deserialize)]
struct CatalogFile {
    next_table_id: u64,
    namespaces: BTreeMap<String, NamespaceEntry>,
    tables: Vec<TableDefFile>,
    users: BTreeMap<String, UserEntry>,
    #[serde(default)]
    views: Vec<ViewEntry>,
}

#[derive(Default, Serialize, Deserialize)]
struct ManifestPartition {
    segments: Vec<Segment>,
    deleted: Vec<i64>,
}

#[derive(Default, Serialize, Deserialize)]
struct Manifest {
    flushed_lsn: u64,
    next_segment: u64,
    partitions: BTreeMap<String, ManifestPartition>,
}

/// The catalog in memory.
pub struct Catalog {
    pub namespaces: BTreeMap<String, NamespaceEntry>,
    pub tables: BTreeMap<u64, (Arc<TableDef>, Arc<TableShared>)>,
    pub users: BTreeMap<String, UserEntry>,
    /// Views in creation order (a view may use an older one).
    pub views: Vec<ViewEntry>,
    next_table_id: u64,
}

/// A view: its name and the `CREATE VIEW` statement that defines it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ViewEntry {
    pub namespace: String,
    pub name: String,
    pub sql: String,
}

impl Catalog {
    #[cfg(test)]
    pub fn empty_for_tests() -> Self {
        Self {
            namespaces: BTreeMap::new(),
            tables: BTreeMap::new(),
            users: BTreeMap::new(),
            views: Vec::new(),
            next_table_id: 1,
        }
    }

    pub fn find_table(&self, namespace: &str, name: &str) -> Option<&(Arc<TableDef>, Arc<TableShared>)> {
        self.tables.values().find(|(def, _)| def.namespace == namespace && def.name == name)
    }
}

pub struct Store {
    dir: PathBuf,
    catalog: Mutex<Catalog>,
    /// Also the commit lock: commits append and apply in LSN order.
    wal: Mutex<Wal>,
}

/// One record of the log.
enum Record {
    Write { tx: u64, table: u64, partition: String, deleted: Vec<i64>, batch: Option<RecordBatch> },
    Commit { tx: u64 },
}

const RECORD_WRITE: u8 = 1;
const RECORD_COMMIT: u8 = 2;

impl Record {
    fn encode(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        match self {
            Record::Commit { tx } => {
                out.push(RECORD_COMMIT);
                out.extend_from_slice(&tx.to_le_bytes());
            }
            Record::Write { tx, table, partition, deleted, batch } => {
                out.push(RECORD_WRITE);
                out.extend_from_slice(&tx.to_le_bytes());
                out.extend_from_slice(&table.to_le_bytes());
                out.extend_from_slice(&(partition.len() as u32).to_le_bytes());
                out.extend_from_slice(partition.as_bytes());
                out.extend_from_slice(&(deleted.len() as u32).to_le_bytes());
                for seq in deleted {
                    out.extend_from_slice(&seq.to_le_bytes());
                }
                if let Some(batch) = batch {
                    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())
                        .map_err(|e| e.to_string())?;
                    writer.write(batch).map_err(|e| e.to_string())?;
                    writer.finish().map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let bad = || "write-ahead log: malformed record".to_string();
        let take = |at: &mut usize, n: usize| -> Result<&[u8], String> {
            let slice = bytes.get(*at..*at + n).ok_or_else(bad)?;
            *at += n;
            Ok(slice)
        };
        let mut at = 1;
        let tx = u64::from_le_bytes(take(&mut at, 8)?.try_into().expect("8 bytes"));
        match bytes.first() {
            Some(&RECORD_COMMIT) => Ok(Record::Commit { tx }),
            Some(&RECORD_WRITE) => {
                let table = u64::from_le_bytes(take(&mut at, 8)?.try_into().expect("8 bytes"));
                let len = u32::from_le_bytes(take(&mut at, 4)?.try_into().expect("4 bytes")) as usize;
                let partition = String::from_utf8(take(&mut at, len)?.to_vec()).map_err(|_| bad())?;
                let count = u32::from_le_bytes(take(&mut at, 4)?.try_into().expect("4 bytes")) as usize;
                let mut deleted = Vec::with_capacity(count);
                for _ in 0..count {
                    deleted.push(i64::from_le_bytes(take(&mut at, 8)?.try_into().expect("8 bytes")));
                }
                let batch = if at < bytes.len() {
                    let mut reader =
                        arrow_ipc::reader::StreamReader::try_new(Cursor::new(&bytes[at..]), None)
                            .map_err(|e| format!("write-ahead log: {e}"))?;
                    reader.next().transpose().map_err(|e| format!("write-ahead log: {e}"))?
                } else {
                    None
                };
                Ok(Record::Write { tx, table, partition, deleted, batch })
            }
            _ => Err(bad()),
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Store {
    /// Opens (or creates) the store in `dir` and recovers every acknowledged write.
    pub fn open(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir.join("tables"))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let catalog_path = dir.join("catalog.json");
        let file: CatalogFile = match std::fs::read(&catalog_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not readable: {e}", catalog_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CatalogFile::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", catalog_path.display())),
        };

        let mut tables = BTreeMap::new();
        let mut max_seq = 0i64;
        for entry in &file.tables {
            let def = Arc::new(entry.to_def()?);
            let table_dir = dir.join("tables").join(def.id.to_string());
            let manifest = read_manifest(&table_dir)?;
            let shared = TableShared::new(def.id, table_dir, manifest.flushed_lsn);
            {
                let mut data = shared.lock();
                data.next_segment = manifest.next_segment.max(1);
                for (key, part) in manifest.partitions {
                    max_seq = max_seq.max(part.segments.iter().map(|s| s.max_seq).max().unwrap_or(0));
                    data.partitions.insert(
                        key,
                        Partition {
                            segments: part.segments.into_iter().map(Arc::new).collect(),
                            deleted: Arc::new(part.deleted.into_iter().collect()),
                            ..Partition::default()
                        },
                    );
                }
            }
            remove_unlisted_segments(&shared);
            tables.insert(def.id, (def, Arc::new(shared)));
        }

        remove_dropped_tables(&dir.join("tables"), &tables);

        // Replay: writes wait for their commit record; writes of a transaction whose commit
        // never reached the disk are dropped.
        let mut pending: HashMap<u64, Vec<Record>> = HashMap::new();
        let wal = Wal::open(&dir.join("wal"), |lsn, payload| {
            match Record::decode(payload)? {
                record @ Record::Write { tx, .. } => pending.entry(tx).or_default().push(record),
                Record::Commit { tx } => {
                    for record in pending.remove(&tx).unwrap_or_default() {
                        let Record::Write { table, partition, deleted, batch, .. } = record else { continue };
                        let Some((def, shared)) = tables.get(&table) else { continue };
                        let mut data = shared.lock();
                        if lsn <= data.flushed_lsn {
                            continue;
                        }
                        let part = data.partitions.entry(partition).or_default();
                        if let Some(batch) = batch {
                            let batch = table::adapt_batch(&batch, &def.schema)?;
                            max_seq = max_seq.max(table::seqs(&batch).iter().copied().max().unwrap_or(0));
                            part.hot_rows += batch.num_rows();
                            part.hot_since.get_or_insert_with(Instant::now);
                            part.hot.push(batch);
                        }
                        if !deleted.is_empty() {
                            Arc::make_mut(&mut part.deleted).extend(deleted);
                        }
                        data.applied_lsn = lsn;
                    }
                }
            }
            Ok(())
        })?;
        crate::snowflake::observe(max_seq);
        for (def, shared) in tables.values() {
            segment::build_key_index(def, shared)?;
        }

        Ok(Self {
            dir: dir.to_path_buf(),
            catalog: Mutex::new(Catalog {
                namespaces: file.namespaces,
                tables,
                users: file.users,
                views: file.views,
                next_table_id: file.next_table_id.max(1),
            }),
            wal: Mutex::new(wal),
        })
    }

    pub fn catalog(&self) -> MutexGuard<'_, Catalog> {
        lock(&self.catalog)
    }

    /// Writes the catalog; DDL calls it with the catalog lock held, after changing it.
    pub fn persist(&self, catalog: &Catalog) -> Result<(), String> {
        let file = CatalogFile {
            views: catalog.views.clone(),
            next_table_id: catalog.next_table_id,
            namespaces: catalog.namespaces.clone(),
            tables: catalog
                .tables
                .values()
                .map(|(def, _)| TableDefFile::from_def(def))
                .collect::<Result<_, _>>()?,
            users: catalog.users.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        write_atomically(&self.dir.join("catalog.json"), &bytes)
    }

    /// Adds a table to the catalog (not yet persisted: the caller persists once it is done).
    pub fn add_table(
        &self,
        catalog: &mut Catalog,
        mut def: TableDef,
    ) -> Result<(Arc<TableDef>, Arc<TableShared>), String> {
        def.id = catalog.next_table_id;
        catalog.next_table_id += 1;
        let table_dir = self.dir.join("tables").join(def.id.to_string());
        std::fs::create_dir_all(&table_dir)
            .map_err(|e| format!("cannot create {}: {e}", table_dir.display()))?;
        // Commits before this one never touch the new table.
        let flushed_lsn = lock(&self.wal).next_lsn() - 1;
        let shared = Arc::new(TableShared::new(def.id, table_dir, flushed_lsn));
        write_manifest(&shared, &shared.lock())?;
        let def = Arc::new(def);
        catalog.tables.insert(def.id, (def.clone(), shared.clone()));
        Ok((def, shared))
    }

    /// Removes a table from the catalog; its files go once running scans are done.
    pub fn remove_table(&self, catalog: &mut Catalog, id: u64) {
        if let Some((_, shared)) = catalog.tables.remove(&id) {
            shared.lock().dropped = true;
            segment::remove_later(shared.dir.clone());
        }
    }

    /// Replaces a table's definition (ALTER TABLE), reshaping its rows held in memory.
    pub fn replace_definition(&self, catalog: &mut Catalog, def: TableDef) -> Result<Arc<TableDef>, String> {
        let (_, shared) = catalog.tables.get(&def.id).cloned().ok_or("the table was dropped")?;
        let _commits = lock(&self.wal);
        let mut data = shared.lock();
        let mut reshaped = Vec::new();
        for part in data.partitions.values() {
            reshaped.push(
                part.hot.iter().map(|b| table::adapt_batch(b, &def.schema)).collect::<Result<Vec<_>, _>>()?,
            );
        }
        for (part, hot) in data.partitions.values_mut().zip(reshaped) {
            part.hot = hot;
        }
        let def = Arc::new(def);
        catalog.tables.insert(def.id, (def.clone(), shared.clone()));
        Ok(def)
    }

    /// Applies a transaction's writes atomically and durably; returns the rows it wrote.
    pub fn commit(&self, tx_id: u64, writes: BTreeMap<u64, TableWrites>) -> Result<u64, StoreError> {
        if writes.is_empty() {
            return Ok(0);
        }
        // Current definitions: a table altered since the writes were staged gets its rows reshaped.
        let current: HashMap<u64, Arc<TableDef>> = {
            let catalog = self.catalog();
            writes
                .keys()
                .map(|id| {
                    catalog.tables.get(id).map(|(def, _)| (*id, def.clone())).ok_or_else(|| {
                        StoreError::Conflict(format!(
                            "table {} was dropped while this transaction was writing to it",
                            writes[id].def.qualified_name()
                        ))
                    })
                })
                .collect::<Result<_, _>>()?
        };

        let mut wal = lock(&self.wal);
        let mut guards: Vec<(&TableWrites, &Arc<TableDef>, MutexGuard<'_, TableData>)> =
            writes.iter().map(|(id, w)| (w, &current[id], w.shared.lock())).collect();

        // Validate everything before changing anything.
        let mut plans = Vec::new();
        for (writes, def, data) in &guards {
            plans.push(plan_table_commit(writes, def, data)?);
        }

        // Records go to the log one at a time (a large ingest is never encoded whole in memory);
        // only the commit record, written last, makes them count at recovery.
        for ((writes, _, _), plan) in guards.iter().zip(&plans) {
            for (key, part) in &plan.parts {
                let record = |deleted: Vec<i64>, batch: Option<RecordBatch>| Record::Write {
                    tx: tx_id,
                    table: writes.shared.id,
                    partition: key.clone(),
                    deleted,
                    batch,
                };
                if !part.deleted.is_empty() {
                    wal.append(&[record(part.deleted.clone(), None).encode()?])?;
                }
                for batch in &part.inserts {
                    wal.append(&[record(Vec::new(), Some(batch.clone())).encode()?])?;
                }
            }
        }
        let lsn = wal.append(&[Record::Commit { tx: tx_id }.encode()?])?;
        wal.sync()?;

        let mut written = 0u64;
        for ((_, _, data), plan) in guards.iter_mut().zip(plans) {
            for (key, part_plan) in plan.parts {
                let part = data.partitions.entry(key).or_default();
                if !part_plan.deleted.is_empty() {
                    Arc::make_mut(&mut part.deleted).extend(part_plan.deleted.iter().copied());
                }
                for key in part_plan.removed_keys {
                    part.keys.remove(&key);
                }
                for (key, seq) in part_plan.added_keys {
                    part.keys.insert(key, seq);
                }
                for batch in part_plan.inserts {
                    written += batch.num_rows() as u64;
                    part.hot_rows += batch.num_rows();
                    part.hot_since.get_or_insert_with(Instant::now);
                    part.hot.push(batch);
                }
            }
            data.applied_lsn = lsn;
        }
        Ok(written)
    }

    /// Tables whose flush policy says they are due, with their definitions.
    pub fn due_for_flush(&self) -> Vec<(Arc<TableDef>, Arc<TableShared>)> {
        let tables: Vec<_> = self.catalog().tables.values().cloned().collect();
        tables
            .into_iter()
            .filter(|(def, shared)| {
                let data = shared.lock();
                data.partitions.values().any(|p| {
                    p.hot_rows >= def.flush.rows || table::hot_age(p).as_secs() >= def.flush.interval_secs
                }) || (data.applied_lsn > data.flushed_lsn
                    && data.partitions.values().all(|p| p.hot.is_empty())
                    && data.partitions.values().any(|p| !p.deleted.is_empty()))
            })
            .collect()
    }

    /// Every table (for a full flush).
    pub fn all_tables(&self) -> Vec<(Arc<TableDef>, Arc<TableShared>)> {
        self.catalog().tables.values().cloned().collect()
    }

    /// Writes a table's in-memory rows to Parquet segments and records them in its manifest,
    /// then drops log files no table needs any more.
    pub fn flush_table(&self, def: &TableDef, shared: &TableShared) -> Result<(), String> {
        segment::flush(def, shared)?;
        self.truncate_wal()
    }

    fn truncate_wal(&self) -> Result<(), String> {
        let tables = self.all_tables();
        let mut wal = lock(&self.wal);
        let mut needed_after = wal.next_lsn() - 1;
        for (_, shared) in &tables {
            let data = shared.lock();
            if data.applied_lsn > data.flushed_lsn {
                needed_after = needed_after.min(data.flushed_lsn);
            }
        }
        wal.truncate_through(needed_after)
    }

    pub fn wal_files(&self) -> usize {
        lock(&self.wal).file_count()
    }
}

/// What a commit will do to one table, worked out before anything is written.
struct TableCommitPlan {
    parts: BTreeMap<String, PartCommitPlan>,
}

#[derive(Default)]
struct PartCommitPlan {
    inserts: Vec<RecordBatch>,
    deleted: Vec<i64>,
    removed_keys: Vec<table::Key>,
    added_keys: Vec<(table::Key, i64)>,
}

fn plan_table_commit(
    writes: &TableWrites,
    def: &TableDef,
    data: &TableData,
) -> Result<TableCommitPlan, StoreError> {
    if data.dropped {
        return Err(StoreError::Conflict(format!("table {} was dropped", def.qualified_name())));
    }
    let mut parts = BTreeMap::new();
    for (key, staged) in &writes.parts {
        let mut plan = PartCommitPlan::default();
        // Rows both inserted and deleted by this transaction never reach the table.
        let mut staged_seqs = HashSet::new();
        for batch in &staged.inserts {
            let batch = table::adapt_batch(batch, &def.schema).map_err(StoreError::Invalid)?;
            staged_seqs.extend(table::seqs(&batch).iter().copied());
            let keep: arrow_array::BooleanArray =
                table::seqs(&batch).iter().map(|s| Some(!staged.deleted.contains(s))).collect();
            let batch = arrow_select::filter::filter_record_batch(&batch, &keep)
                .map_err(|e| StoreError::Io(e.to_string()))?;
            if batch.num_rows() > 0 {
                plan.inserts.push(batch);
            }
        }
        let existing = data.partitions.get(key);
        for seq in &staged.deleted {
            if staged_seqs.contains(seq) {
                continue;
            }
            if existing.is_some_and(|p| p.deleted.contains(seq)) {
                return Err(StoreError::Conflict(format!(
                    "a row of {} was changed by another transaction after this one read it; retry the transaction",
                    def.qualified_name()
                )));
            }
            plan.deleted.push(*seq);
            if let Some(key) = staged.deleted_keys.get(seq) {
                plan.removed_keys.push(key.clone());
            }
        }
        if !def.primary_key.is_empty() {
            let removed: HashSet<&table::Key, ahash::RandomState> = plan.removed_keys.iter().collect();
            // Every added key with its row version, and the batch it is in (for the error).
            let mut added_keys = Vec::new();
            let mut batch_of = Vec::new();
            for (index, batch) in plan.inserts.iter().enumerate() {
                let keys = table::primary_keys(def, batch).map_err(StoreError::Invalid)?;
                batch_of.resize(batch_of.len() + keys.len(), index);
                added_keys.extend(keys.into_iter().zip(table::seqs(batch).iter().copied()));
            }
            let mut added = HashSet::with_capacity_and_hasher(added_keys.len(), ahash::RandomState::new());
            for ((key, seq), &index) in added_keys.iter().zip(&batch_of) {
                let taken = existing.is_some_and(|p| p.keys.contains_key(key)) && !removed.contains(key);
                if taken || !added.insert(key) {
                    let batch = &plan.inserts[index];
                    let row = keys_row(batch, seq);
                    return Err(StoreError::Violation(table::duplicate_key(def, batch, row)));
                }
            }
            drop(added);
            plan.added_keys = added_keys;
        }
        parts.insert(key.clone(), plan);
    }
    Ok(TableCommitPlan { parts })
}

/// The row of `batch` whose `_seq` is `seq`.
fn keys_row(batch: &RecordBatch, seq: &i64) -> usize {
    table::seqs(batch).iter().position(|s| s == seq).unwrap_or(0)
}

fn read_manifest(table_dir: &Path) -> Result<Manifest, String> {
    let path = table_dir.join("manifest.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| format!("{} is not readable: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

pub(crate) fn write_manifest(shared: &TableShared, data: &TableData) -> Result<(), String> {
    let manifest = Manifest {
        flushed_lsn: data.flushed_lsn,
        next_segment: data.next_segment,
        partitions: data
            .partitions
            .iter()
            .filter(|(_, p)| !p.segments.is_empty() || !p.deleted.is_empty())
            .map(|(key, p)| {
                let mut deleted: Vec<i64> = p.deleted.iter().copied().collect();
                deleted.sort_unstable();
                (
                    key.clone(),
                    ManifestPartition {
                        segments: p.segments.iter().map(|s| (**s).clone()).collect(),
                        deleted,
                    },
                )
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    write_atomically(&shared.dir.join("manifest.json"), &bytes)
}

/// Segment files a crash left behind before their manifest listed them.
fn remove_unlisted_segments(shared: &TableShared) {
    let data = shared.lock();
    let Ok(entries) = std::fs::read_dir(&shared.dir) else { return };
    for entry in entries.flatten() {
        let Ok(files) = std::fs::read_dir(entry.path()) else { continue };
        let listed: HashSet<String> = data
            .partitions
            .iter()
            .filter(|(key, _)| table::partition_dir(&shared.dir, key) == entry.path())
            .flat_map(|(_, p)| p.segments.iter().map(|s| s.file.clone()))
            .collect();
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().to_string();
            if !listed.contains(&name) {
                let _ = std::fs::remove_file(file.path());
            }
        }
    }
}

/// Directories of tables dropped before a restart removed them.
fn remove_dropped_tables(tables_dir: &Path, tables: &BTreeMap<u64, (Arc<TableDef>, Arc<TableShared>)>) {
    let Ok(entries) = std::fs::read_dir(tables_dir) else { return };
    for entry in entries.flatten() {
        let id = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok());
        if id.is_some_and(|id| !tables.contains_key(&id)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Checks that a schema is usable for a table (no reserved column names).
pub fn check_user_columns(schema: &SchemaRef) -> Result<(), String> {
    for field in schema.fields() {
        if TableDef::is_system_column(field.name()) {
            return Err(format!("column name {} is reserved: the server adds and fills it", field.name()));
        }
        // Queries compute with 76-digit decimals (`CAST(x AS DECIMAL(76,6))`); columns keep 38.
        let mut data_type = field.data_type();
        while let arrow_schema::DataType::List(element) = data_type {
            data_type = element.data_type();
        }
        if let arrow_schema::DataType::Decimal256(precision, _) = data_type {
            return Err(format!(
                "column {} has {precision} digits: a DECIMAL column holds at most 38",
                field.name()
            ));
        }
    }
    Ok(())
}
