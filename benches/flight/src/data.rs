//! TPC-H lineitem as Arrow record batches, and how many bytes of Arrow buffers batches hold.

use arrow_array::{Array, RecordBatch};
use datafusion::arrow::array::ArrayData;
use tpchgen::generators::LineItemGenerator;
use tpchgen_arrow::LineItemArrow;

/// Name of the table in the ceiling server (the kalamdb-server table is [`table_name`]).
pub const LINEITEM: &str = "lineitem";

/// `lineitem_sf0_01` for SF 0.01: one table per scale factor, so runs at different scale
/// factors can share a server.
pub fn table_name(sf: f64) -> String {
    format!("lineitem_sf{sf}").replace('.', "_")
}

/// Generates lineitem in as many parts as there are cores, one thread each, and returns the
/// batches in TPC-H order.
pub fn generate_lineitem(sf: f64, batch_rows: usize) -> Result<Vec<RecordBatch>, String> {
    let parts = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
    let threads: Vec<_> = (1..=parts)
        .map(|part| {
            std::thread::spawn(move || {
                LineItemArrow::new(LineItemGenerator::new(sf, part, parts))
                    .with_batch_size(batch_rows)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut batches = Vec::new();
    for thread in threads {
        batches.extend(thread.join().map_err(|_| "the lineitem generator panicked".to_string())?);
    }
    if batches.is_empty() {
        return Err(format!("SF {sf} generates no lineitem rows; use a larger --sf"));
    }
    Ok(batches)
}

/// Consecutive runs of whole batches of at most `rows_max` rows each (a batch larger than
/// that goes alone).
pub fn chunks(batches: &[RecordBatch], rows_max: usize) -> Vec<&[RecordBatch]> {
    let mut chunks = Vec::new();
    let (mut start, mut rows) = (0, 0);
    for (i, batch) in batches.iter().enumerate() {
        if i > start && rows + batch.num_rows() > rows_max {
            chunks.push(&batches[start..i]);
            (start, rows) = (i, 0);
        }
        rows += batch.num_rows();
    }
    if start < batches.len() {
        chunks.push(&batches[start..]);
    }
    chunks
}

/// Bytes of the Arrow buffers the batches reference: the payload a scan moves. Unlike
/// `get_array_memory_size`, it does not count spare capacity.
pub fn batches_bytes(batches: &[RecordBatch]) -> usize {
    batches.iter().map(batch_bytes).sum()
}

pub fn batch_bytes(batch: &RecordBatch) -> usize {
    batch.columns().iter().map(|column| data_bytes(&column.to_data())).sum()
}

fn data_bytes(data: &ArrayData) -> usize {
    let nulls = data.nulls().map_or(0, |nulls| nulls.buffer().len());
    let buffers: usize = data.buffers().iter().map(|buffer| buffer.len()).sum();
    let children: usize = data.child_data().iter().map(data_bytes).sum();
    nulls + buffers + children
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator splits work by part; the parts together must be the whole table.
    #[test]
    fn parts_make_the_whole_table() {
        let batches = generate_lineitem(0.001, 1000).unwrap();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let whole: usize =
            LineItemArrow::new(LineItemGenerator::new(0.001, 1, 1)).map(|batch| batch.num_rows()).sum();
        assert_eq!(rows, whole);
        assert_eq!(batches[0].num_columns(), 16);
        assert!(batches_bytes(&batches) > rows * 100);
    }

    #[test]
    fn chunks_hold_whole_batches_up_to_the_limit() {
        let batches = generate_lineitem(0.001, 1000).unwrap();
        let rows = |chunk: &[RecordBatch]| chunk.iter().map(RecordBatch::num_rows).sum::<usize>();
        let chunks = chunks(&batches, 2500);
        assert!(chunks.iter().all(|chunk| rows(chunk) <= 2500 && !chunk.is_empty()));
        assert_eq!(chunks.iter().map(|chunk| chunk.len()).sum::<usize>(), batches.len());
        assert_eq!(super::chunks(&batches, 10).len(), batches.len());
    }

    #[test]
    fn table_name_is_an_identifier() {
        assert_eq!(table_name(1.0), "lineitem_sf1");
        assert_eq!(table_name(0.01), "lineitem_sf0_01");
    }
}
