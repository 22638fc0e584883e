//! Parquet segments: writing a table's in-memory rows out (flush), reading key columns back
//! (recovery of the primary key index) and removing files once no scan can still use them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{BooleanArray, RecordBatch};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::table::{self, Segment, SeqSet, TableDef, TableShared};
use super::wal::sync_dir;

/// Rows per Parquet row group: the unit that filters can skip.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// How long a file that left the table stays on disk for scans that already planned it.
const REMOVE_AFTER: Duration = Duration::from_secs(120);

/// LZ4: scans decompress several times faster than with zstd, for somewhat larger files.
fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .build()
}

/// Writes `batches` to `path` (through a temporary file, synced, then renamed).
fn write_segment(path: &Path, batches: &[RecordBatch]) -> Result<Segment, String> {
    let schema = batches[0].schema();
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(writer_properties()))
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let (mut rows, mut min_seq, mut max_seq) = (0u64, i64::MAX, i64::MIN);
    for batch in batches {
        writer.write(batch).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        rows += batch.num_rows() as u64;
        for &seq in table::seqs(batch) {
            min_seq = min_seq.min(seq);
            max_seq = max_seq.max(seq);
        }
    }
    let file = writer.into_inner().map_err(|e| format!("cannot finish {}: {e}", tmp.display()))?;
    file.sync_all().map_err(|e| format!("cannot sync {}: {e}", tmp.display()))?;
    let bytes = file.metadata().map_err(|e| e.to_string())?.len();
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename {}: {e}", tmp.display()))?;
    sync_dir(path.parent().expect("segment paths have a parent"))?;
    let name = path.file_name().expect("segment paths have a name").to_string_lossy().into_owned();
    Ok(Segment { file: name, rows, bytes, min_seq, max_seq })
}

/// Flushes one table: every partition's in-memory rows (less deleted and expired ones) go to
/// a new segment, then the manifest records the segments, and only then the rows leave memory.
pub fn flush(def: &TableDef, shared: &TableShared) -> Result<(), String> {
    let _one_flush_at_a_time = shared.flush_lock.lock().unwrap_or_else(|p| p.into_inner());
    struct Work {
        key: String,
        batches: Vec<RecordBatch>,
        deleted: Arc<SeqSet>,
        segment_no: u64,
    }
    let seq_floor = def.ttl_seconds.map(|ttl| {
        let now = super::now_ms() as u64;
        crate::snowflake::floor_at_ms(now.saturating_sub(ttl * 1000))
    });
    let (work, lsn) = {
        let mut data = shared.lock();
        if data.dropped || data.applied_lsn == data.flushed_lsn {
            return Ok(());
        }
        let mut work = Vec::new();
        let mut next = data.next_segment;
        for (key, part) in &data.partitions {
            work.push(Work {
                key: key.clone(),
                batches: part.hot.clone(),
                deleted: part.deleted.clone(),
                segment_no: next,
            });
            if !part.hot.is_empty() {
                next += 1;
            }
        }
        data.next_segment = next;
        (work, data.applied_lsn)
    };

    let mut results = Vec::new();
    for item in &work {
        let mut kept = Vec::new();
        let mut gone = Vec::new();
        for batch in &item.batches {
            let live: BooleanArray = table::seqs(batch)
                .iter()
                .map(|seq| {
                    let deleted = item.deleted.contains(seq);
                    if deleted {
                        gone.push(*seq);
                    }
                    Some(!deleted && seq_floor.is_none_or(|floor| *seq >= floor))
                })
                .collect();
            let batch = arrow_select::filter::filter_record_batch(batch, &live).map_err(|e| e.to_string())?;
            if batch.num_rows() > 0 {
                kept.push(batch);
            }
        }
        let segment = if kept.is_empty() {
            None
        } else {
            let dir = shared.partition_dir(&item.key);
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Some(write_segment(&dir.join(format!("seg-{:08}.parquet", item.segment_no)), &kept)?)
        };
        results.push((segment, gone));
    }

    let mut data = shared.lock();
    if data.dropped {
        return Ok(());
    }
    for (item, (segment, gone)) in work.iter().zip(results) {
        let part = data.partitions.get_mut(&item.key).expect("partitions are never removed");
        let flushed_rows: usize = item.batches.iter().map(|b| b.num_rows()).sum();
        part.hot.drain(..item.batches.len());
        part.hot_rows -= flushed_rows;
        if part.hot.is_empty() {
            part.hot_since = None;
        }
        if let Some(segment) = segment {
            part.segments.push(Arc::new(segment));
        }
        if !gone.is_empty() {
            let deleted = Arc::make_mut(&mut part.deleted);
            for seq in gone {
                deleted.remove(&seq);
            }
        }
        // Whole segments past a STREAM table's TTL leave the table.
        if let Some(floor) = seq_floor {
            let dir = shared.partition_dir(&item.key);
            part.segments.retain(|s| {
                let keep = s.max_seq >= floor;
                if !keep {
                    remove_later(dir.join(&s.file));
                }
                keep
            });
        }
    }
    data.flushed_lsn = lsn;
    super::write_manifest(shared, &data)
}

/// Rebuilds the primary key index of every partition from segments and in-memory rows.
pub fn build_key_index(def: &TableDef, shared: &TableShared) -> Result<(), String> {
    if def.primary_key.is_empty() {
        return Ok(());
    }
    let mut data = shared.lock();
    let dir = shared.dir.clone();
    for (key, part) in data.partitions.iter_mut() {
        let mut batches = part.hot.clone();
        for segment in &part.segments {
            let path = table::partition_dir(&dir, key).join(&segment.file);
            let file = File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let mut columns: Vec<&str> = def.primary_key.iter().map(String::as_str).collect();
            columns.push(table::SEQ);
            let mask = parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), columns);
            let reader =
                builder.with_projection(mask).build().map_err(|e| format!("{}: {e}", path.display()))?;
            for batch in reader {
                batches.push(batch.map_err(|e| format!("{}: {e}", path.display()))?);
            }
        }
        for batch in &batches {
            let keys = table::primary_keys(def, batch)?;
            for (k, seq) in keys.into_iter().zip(table::seqs(batch)) {
                if !part.deleted.contains(seq) {
                    part.keys.insert(k, *seq);
                }
            }
        }
    }
    Ok(())
}

/// Removes a file or directory after [`REMOVE_AFTER`], on a background thread.
pub fn remove_later(path: PathBuf) {
    std::thread::spawn(move || {
        std::thread::sleep(REMOVE_AFTER);
        let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
    });
}
